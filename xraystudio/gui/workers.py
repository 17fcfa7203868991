"""Background work: opening studies and generating images without blocking the window.

Each job is a QThread whose signals reach the window through queued connections. Generation
and anatomy segmentation run in child processes (engine_process.py), where torch and diffusers
are imported, so the window opens in about a second and never waits on a model. Everything the UI thread will show
(8-bit previews, display words, metrics) is computed off it, so it only wraps finished arrays.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import threading
from pathlib import Path

import numpy as np
from PySide6.QtCore import QThread, Signal

from xraystudio.errors import XRayStudioError
from xraystudio.gui.canvas.image_item import DisplayLUT
from xraystudio.gui.engine_process import (
    EngineProcess,
    GeneratedImage,
    Job,
    SegmentJob,
    relay_events,
    release,
)
from xraystudio.gui.pixels import grey_to_rgb32
from xraystudio.image import XRayImage
from xraystudio.io.masks_io import load_masks
from xraystudio.masks import MaskStack
from xraystudio.study import Study

log = logging.getLogger(__name__)


# ------------------------------------------------------------------ opening
def mask_sidecar(image_path: Path) -> Path | None:
    """Masks saved beside a radiograph: ``<stem>.masks.npz`` (what the app writes), or
    ``<stem>_masks.npz`` (the bundled sample), or a ``<stem>.masks/`` folder of PNGs."""
    for name in (".masks.npz", "_masks.npz", ".masks"):
        candidate = image_path.with_name(image_path.stem + name)
        if candidate.exists():
            return candidate
    return None


@dataclasses.dataclass
@dataclasses.dataclass
class Prepared:
    """The study's display arrays, computed off the UI thread (~0.25 s at 3000 x 3000)."""

    lut: DisplayLUT  # for the canvas
    reference: np.ndarray  # display values in [0, 1], what results are compared with
    reference_pixels: np.ndarray  # their grey RGB32 words

    @classmethod
    def of(cls, image: XRayImage) -> Prepared:
        reference = image.display()
        return cls(DisplayLUT(image), reference, grey_to_rgb32(reference))


@dataclasses.dataclass
class OpenedStudy:
    """A study fresh from disk, with what the user should know about how it was read."""

    study: Study
    path: Path
    notes: list[str]
    synthetic: bool  # a generated image (its provenance JSON beside it says so)
    prepared: Prepared | None = None  # made on demand when not made by the opening thread
    masks_from: Path | None = None  # the masks file or folder read beside it, if any

    def display(self) -> Prepared:
        if self.prepared is None:
            self.prepared = Prepared.of(self.study.image)
        return self.prepared


def open_study(path: str | os.PathLike) -> OpenedStudy:
    """Open a radiograph and the masks saved beside it, if any."""
    path = Path(path)
    study = Study.open(path)
    notes = list(study.image.notes)
    sidecar = mask_sidecar(path)
    if sidecar is not None:
        # A file without spacing takes the spacing its saved masks were drawn with.
        unknown = study.image.spacing_source == "default"
        masks = load_masks(sidecar, study.shape, None if unknown else study.spacing_mm)
        image = study.image.with_spacing(masks.spacing_mm) if unknown else study.image
        study = Study(image, masks, study.name)
        notes.append(f"masks loaded from {sidecar.name}")
    if study.image.spacing_source == "default":
        notes.append(f"the file has no pixel spacing; assuming {study.spacing_mm[0]:g} mm")
    return OpenedStudy(study, path, notes, _is_synthetic(path), Prepared.of(study.image),
                       masks_from=sidecar)


def _is_synthetic(path: Path) -> bool:
    """True when a provenance file (``<stem>.json``) beside the image marks it as generated."""
    meta = path.with_suffix(".json")
    if not meta.is_file():
        return False
    try:
        return bool(json.loads(meta.read_text(encoding="utf-8")).get("synthetic"))
    except (OSError, ValueError, AttributeError):
        return False


class OpenThread(QThread):
    """Reads a study off the UI thread (large or JPEG 2000 DICOMs take a second or more)."""

    opened = Signal(object)  # OpenedStudy
    failed = Signal(object, str)  # Path, message

    def __init__(self, path: str | os.PathLike, parent=None) -> None:
        super().__init__(parent)
        self.path = Path(path)

    def run(self) -> None:
        try:
            opened = open_study(self.path)
        except XRayStudioError as exc:
            self.failed.emit(self.path, str(exc))
        except Exception as exc:  # a decoder bug must not kill the app
            log.exception("opening %s failed", self.path)
            self.failed.emit(self.path, f"{self.path.name} could not be opened: {exc}")
        else:
            self.opened.emit(opened)


# --------------------------------------------------------------- generation
class GenerationThread(QThread):
    """Hands one request to the engine process and relays its events as signals.

    The thread only waits on a queue (which releases the GIL) and turns finished images into
    display words, so neither the model nor its imports ever hold up the UI thread.
    """

    stage = Signal(str)  # what is happening, for the status line
    progressed = Signal(object, object)  # Progress, preview as uint8 or None
    produced = Signal(list)  # list[GeneratedImage]
    cancelled = Signal()
    failed = Signal(str)

    def __init__(self, engine: EngineProcess, model_ref: str | None, masks: MaskStack,
                 image: XRayImage | None, params: dict, parent=None) -> None:
        super().__init__(parent)
        self.engine = engine
        self.model_ref = model_ref
        self.masks = masks  # a copy: the user keeps painting on the original
        self.image = image
        self.params = params

    def cancel(self) -> None:
        self.engine.cancel()

    def run(self) -> None:
        job, blocks = Job.pack(self.model_ref, self.masks, self.image, self.params)
        try:
            self.engine.submit(job)
            self._relay()
        finally:
            release(blocks)

    def _relay(self) -> None:
        def done(results: list[GeneratedImage]) -> None:
            for r in results:
                r.take()
                r.pixels = grey_to_rgb32(r.image)
            self.produced.emit(results)

        relay_events(self.engine, {
            "stage": self.stage.emit, "progress": self.progressed.emit, "done": done,
            "cancelled": self.cancelled.emit, "failed": self.failed.emit,
        })


# ------------------------------------------------------------- segmentation
def segmenter_process() -> EngineProcess:
    """A process of its own for the anatomy segmenter (which needs torch), started on the first
    segmentation and kept with the model loaded. It is not the generation process: a study
    opened while a long generation runs is segmented at once, not after the generation."""
    return EngineProcess(name="xraystudio-segmenter", what="segmentation")


class SegmentThread(QThread):
    """Segments the anatomy of a radiograph in the segmenter process and waits for the masks;
    the UI thread applies them as one undo step. One at a time per process."""

    segmented = Signal(dict)  # structure name -> boolean mask at the image size
    failed = Signal(str)

    def __init__(self, process: EngineProcess, display: np.ndarray, parent=None) -> None:
        super().__init__(parent)
        self.process = process
        self.display = display

    def run(self) -> None:
        try:
            job, blocks = SegmentJob.pack(self.display)
            try:
                self.process.submit(job)
                self._relay()
            finally:
                release(blocks)
        except Exception as exc:
            log.exception("segmentation failed")
            self.failed.emit(f"Segmentation failed unexpectedly: {exc}")

    def _relay(self) -> None:
        relay_events(self.process, {"segmented": lambda result: self.segmented.emit(result.take()),
                            "failed": self.failed.emit})


# ---------------------------------------------------------- project results
class ResultImagesThread(QThread):
    """Reads stored result PNGs (paths taken from the project on the UI thread, so the
    non-thread-safe Project is never touched here) and makes their display words."""

    loaded = Signal(str, object, object)  # result id, float32 image in [0, 1], RGB32 words

    def __init__(self, items: list[tuple[str, Path]], parent=None) -> None:
        super().__init__(parent)
        self.items = items
        self._stop = threading.Event()

    def stop(self) -> None:
        self._stop.set()

    def run(self) -> None:
        for rid, path in self.items:
            if self._stop.is_set():
                return
            image = read_result_png(path)
            if image is not None:
                self.loaded.emit(rid, image, grey_to_rgb32(image))


def read_result_png(path: Path) -> np.ndarray | None:
    """A stored result's 16-bit PNG as float32 in [0, 1]; None (logged) when unreadable."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            return np.asarray(im).astype(np.float32) / np.float32(65535.0)
    except OSError as exc:
        log.warning("cannot read result image %s: %s", path, exc)
        return None


@dataclasses.dataclass
class StoredResult:
    """What reading a stored result needs, taken from the project on the UI thread."""

    id: str
    png: Path
    edit: Path  # its changed pixels, for an edit-mode result (absent otherwise)
    provenance: dict


class StudyResultsThread(QThread):
    """Reads the stored results of the open study like ResultImagesThread, and rebuilds an
    edit-mode result at full size from ``source`` (the open radiograph) and its stored changed
    pixels, when the source is the one it was made from (same pixel hash)."""

    loaded = Signal(str, object, object, object)  # id, image in [0, 1], RGB32 words,
    # (values, changed) of an edit result or None

    def __init__(self, items: list[StoredResult], source: XRayImage, parent=None) -> None:
        super().__init__(parent)
        self.items = items
        self.source = source
        self._stop = threading.Event()
        self._source_hash: str | None = None

    def stop(self) -> None:
        self._stop.set()

    def run(self) -> None:
        for item in self.items:
            if self._stop.is_set():
                return
            image = read_result_png(item.png)
            if image is not None:
                self.loaded.emit(item.id, image, grey_to_rgb32(image), self._edit(item))

    def _edit(self, item: StoredResult) -> tuple[np.ndarray, np.ndarray] | None:
        from xraystudio.curation.project import read_edit
        from xraystudio.gui.edit_results import edit_arrays

        if not item.edit.is_file():
            return None
        if self._source_hash is None:
            self._source_hash = self.source.pixel_hash()
        made_from = (item.provenance.get("source_image") or {}).get("pixel_hash")
        if made_from not in (None, self._source_hash):
            log.warning("result %s was made from other pixels than the open source", item.id)
            return None
        try:
            changed, values = read_edit(item.edit)
        except XRayStudioError as exc:
            log.warning("%s", exc)
            return None
        if changed.shape != self.source.shape:
            return None
        return edit_arrays(self.source.values, changed, values), changed

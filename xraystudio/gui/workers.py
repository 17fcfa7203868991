"""Background work of the window besides the engine's jobs (gui.engine_job): opening studies
and reading stored result images without blocking the window.

Each job is a QThread whose signals reach the window through queued connections. Everything the
UI thread will show (display words, rebuilt edits) is computed off it, so it only wraps
finished arrays.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PySide6.QtCore import QThread, Signal

from xraystudio.engine.client import EngineProcess
from xraystudio.engine.opening import StudyFile, read_study
from xraystudio.engine.pixels import grey_to_rgb32
from xraystudio.engine.protocol import GeneratedImage, Job, SegmentJob
from xraystudio.errors import XRayStudioError
from xraystudio.gui.canvas.image_item import DisplayLUT
from xraystudio.gui.engine_job import EngineJobThread
from xraystudio.image import XRayImage
from xraystudio.masks import MaskStack

log = logging.getLogger(__name__)


# ------------------------------------------------------------------ opening
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
class OpenedStudy(StudyFile):
    """A study fresh from disk with its display arrays, as the window shows it."""

    prepared: Prepared | None = None  # made on demand when not made by the opening thread

    def display(self) -> Prepared:
        if self.prepared is None:
            self.prepared = Prepared.of(self.study.image)
        return self.prepared


def open_study(path: str | os.PathLike) -> OpenedStudy:
    """Read a study (engine.opening.read_study) and prepare its display."""
    read = read_study(path)
    fields = {f.name: getattr(read, f.name) for f in dataclasses.fields(StudyFile)}
    return OpenedStudy(**fields, prepared=Prepared.of(read.study.image))


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


# ------------------------------------------------------------- engine jobs
def received(results: list[GeneratedImage]) -> list[GeneratedImage]:
    """Results fresh from the process as the window shows them (private arrays, words)."""
    for r in results:
        r.take()
        r.pixels = grey_to_rgb32(r.image)
    return results


def generation_thread(engine: EngineProcess, model_ref: str | None, masks: MaskStack,
                      image: XRayImage | None, params: dict, parent=None) -> EngineJobThread:
    """Generates from ``masks`` (a copy: the user keeps painting on the original); ``done``
    carries the list of GeneratedImage."""
    return EngineJobThread(engine, lambda: Job.pack(model_ref, masks, image, params),
                           "Generation", received, parent=parent)


def segmenter_process() -> EngineProcess:
    """A process of its own for the anatomy segmenter (which needs torch), started on the first
    segmentation and kept with the model loaded. It is not the generation process: a study
    opened while a long generation runs is segmented at once, not after the generation."""
    return EngineProcess(name="xraystudio-segmenter", what="segmentation")


def segment_thread(process: EngineProcess, display: np.ndarray, parent=None) -> EngineJobThread:
    """Segments the anatomy of a radiograph; ``done`` carries {structure: boolean mask}."""
    return EngineJobThread(process, lambda: SegmentJob.pack(display), "Segmentation",
                           lambda segmented: segmented.take(), parent=parent)


# ---------------------------------------------------------- stored results
@dataclasses.dataclass
class StoredImage:
    """What reading a stored result needs, taken from the project on the UI thread (the
    project is not thread-safe, so it is never touched by the reader)."""

    key: object  # what the reader's signal names it by: a result id, a sweep cell index
    png: Path
    edit: Path | None = None  # its changed pixels, for an edit-mode result
    provenance: dict = dataclasses.field(default_factory=dict)


def read_result_png(path: Path) -> np.ndarray | None:
    """A stored result's 16-bit PNG as float32 in [0, 1]; None (logged) when unreadable."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            return np.asarray(im).astype(np.float32) / np.float32(65535.0)
    except OSError as exc:
        log.warning("cannot read result image %s: %s", path, exc)
        return None


class ResultImagesThread(QThread):
    """Reads stored result PNGs and makes their display words; with ``source`` (the open
    radiograph) it also rebuilds an edit-mode result at full size from its stored changed
    pixels, when the source is the one it was made from (same pixel hash)."""

    loaded = Signal(object, object, object, object)  # key, image in [0, 1], display words,
    # (values, changed) of an edit result or None

    def __init__(self, items: list[StoredImage], *, source: XRayImage | None = None,
                 words: Callable[[np.ndarray], np.ndarray] = grey_to_rgb32, parent=None) -> None:
        super().__init__(parent)
        self.items = items
        self.source = source
        self.words = words
        self._cancel = threading.Event()
        self._source_hash: str | None = None

    def cancel(self) -> None:
        """Stop after the image being read (its signal may still arrive: disconnect it)."""
        self._cancel.set()

    def run(self) -> None:
        for item in self.items:
            if self._cancel.is_set():
                return
            image = read_result_png(item.png)
            if image is not None:
                self.loaded.emit(item.key, image, self.words(image), self._edit(item))

    def _edit(self, item: StoredImage) -> tuple[np.ndarray, np.ndarray] | None:
        from xraystudio.curation.project import read_edit
        from xraystudio.engine.edit_results import edit_arrays

        if self.source is None or item.edit is None or not item.edit.is_file():
            return None
        if self._source_hash is None:
            self._source_hash = self.source.pixel_hash()
        made_from = (item.provenance.get("source_image") or {}).get("pixel_hash")
        if made_from not in (None, self._source_hash):
            log.warning("result %s was made from other pixels than the open source", item.key)
            return None
        try:
            changed, values = read_edit(item.edit)
        except XRayStudioError as exc:
            log.warning("%s", exc)
            return None
        if changed.shape != self.source.shape:
            return None
        return edit_arrays(self.source.values, changed, values), changed

"""Background work: opening studies and generating images without blocking the window.

Each job is a QThread whose signals reach the window through queued connections. The heavy
imports (torch, diffusers) happen inside the generation thread the first time it runs, so the
window opens in well under two seconds. Everything the UI thread will show (8-bit previews,
metrics) is computed here too, so the UI thread only wraps finished arrays.
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

from xraystudio.errors import GenerationCancelled, XRayStudioError
from xraystudio.image import XRayImage
from xraystudio.io.masks_io import load_masks
from xraystudio.masks import MaskStack
from xraystudio.study import Study

log = logging.getLogger(__name__)


# ------------------------------------------------------------------ opening
def mask_sidecar(image_path: Path) -> Path | None:
    """Masks saved beside a radiograph: ``<stem>.masks.npz`` or a ``<stem>.masks/`` folder."""
    for candidate in (image_path.with_name(image_path.stem + ".masks.npz"),
                      image_path.with_name(image_path.stem + ".masks")):
        if candidate.exists():
            return candidate
    return None


@dataclasses.dataclass
class OpenedStudy:
    """A study fresh from disk, with what the user should know about how it was read."""

    study: Study
    path: Path
    notes: list[str]
    synthetic: bool  # a generated image (its provenance JSON beside it says so)


def open_study(path: str | os.PathLike) -> OpenedStudy:
    """Open a radiograph and the masks saved beside it, if any."""
    path = Path(path)
    study = Study.open(path)
    notes = list(study.image.notes)
    sidecar = mask_sidecar(path)
    if sidecar is not None:
        masks = load_masks(sidecar, study.shape, study.spacing_mm)
        study = Study(study.image, masks, study.name)
        notes.append(f"masks loaded from {sidecar.name}")
    if study.image.spacing_source == "default":
        notes.append(f"the file has no pixel spacing; assuming {study.spacing_mm[0]:g} mm")
    return OpenedStudy(study, path, notes, _is_synthetic(path))


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
@dataclasses.dataclass
class GeneratedImage:
    """One result, ready to show: the image, its 8-bit copy, its metrics and where it came from."""

    image: np.ndarray  # float32 [0, 1] at the source size
    pixels: np.ndarray  # uint32 grey RGB32 words of ``image``
    condition: np.ndarray  # (C, S, S) model input
    layers: list[str]  # which mask layer each leading condition channel holds
    seed: int
    metrics: dict[str, float]
    provenance: dict


class EngineCache:
    """Loaded engines by model and device, so the second generation starts at once."""

    def __init__(self) -> None:
        self._engines: dict[tuple[str | None, str], object] = {}
        self._lock = threading.Lock()

    def get(self, model_ref: str | None, device: str = "auto"):
        from xraystudio.synthesis.engine import Engine

        with self._lock:
            key = (model_ref, device)
            if key not in self._engines:
                self._engines[key] = Engine.load(model_ref, device=device)
            return self._engines[key]


class GenerationThread(QThread):
    """Loads the model if needed and runs one generation request, reporting every step."""

    stage = Signal(str)  # what is happening, for the status line
    progressed = Signal(object, object)  # Progress, preview as uint8 or None
    produced = Signal(list)  # list[GeneratedImage]
    cancelled = Signal()
    failed = Signal(str)

    def __init__(self, engines: EngineCache, model_ref: str | None, masks: MaskStack,
                 image: XRayImage | None, params: dict, device: str = "auto",
                 parent=None) -> None:
        super().__init__(parent)
        self.engines = engines
        self.model_ref = model_ref
        self.masks = masks  # a copy: the user keeps painting on the original meanwhile
        self.image = image
        self.params = params
        self.device = device
        self.cancel_event = threading.Event()

    def cancel(self) -> None:
        self.cancel_event.set()

    def run(self) -> None:
        try:
            self.produced.emit(self._generate())
        except GenerationCancelled:
            self.cancelled.emit()
        except XRayStudioError as exc:
            self.failed.emit(str(exc))
        except MemoryError:
            self.failed.emit("The computer ran out of memory. Generate fewer images at once or "
                             "close other programs, then try again.")
        except Exception as exc:
            log.exception("generation failed")
            self.failed.emit(f"Generation failed unexpectedly: {exc}")

    def _generate(self) -> list[GeneratedImage]:
        from xraystudio.gui.qimage import grey_to_rgb32

        self.stage.emit("Loading the model…")
        engine = self.engines.get(self.model_ref, self.device)
        if self.cancel_event.is_set():
            raise GenerationCancelled("generation cancelled")
        from xraystudio.synthesis.engine import GenerationRequest, compare_with_source

        request = GenerationRequest(masks=self.masks, image=self.image, **self.params)
        self.stage.emit(f"Generating with {engine.spec.name}…")
        results = engine.generate(request, progress=self._progress, cancel=self.cancel_event)
        out = []
        for r in results:
            metrics = compare_with_source(r, self.image, self.masks) if self.image else {}
            out.append(GeneratedImage(
                image=r.image, pixels=grey_to_rgb32(r.image), condition=r.condition,
                layers=list(engine.spec.layers), seed=r.seed, metrics=metrics,
                provenance={**r.provenance, "metrics": metrics},
            ))
        return out

    def _progress(self, p) -> None:
        from xraystudio.gui.qimage import to_uint8

        preview = to_uint8(p.preview) if p.preview is not None else None
        self.progressed.emit(p, preview)


# ------------------------------------------------------------- segmentation
class SegmenterCache:
    """The anatomy segmenter, loaded on first use (it needs torch)."""

    def __init__(self) -> None:
        self._segmenter = None
        self._lock = threading.Lock()

    def get(self):
        from xraystudio.segmentation.segmenter import Segmenter

        with self._lock:
            if self._segmenter is None:
                self._segmenter = Segmenter.load()
            return self._segmenter


class SegmentThread(QThread):
    """Segments the anatomy of a radiograph; the UI thread applies the masks as one undo step."""

    segmented = Signal(dict)  # structure name -> boolean mask at the image size
    failed = Signal(str)

    def __init__(self, cache: SegmenterCache, display: np.ndarray, parent=None) -> None:
        super().__init__(parent)
        self.cache = cache
        self.display = display

    def run(self) -> None:
        try:
            self.segmented.emit(self.cache.get().segment(self.display))
        except XRayStudioError as exc:
            self.failed.emit(f"{exc}. Train one with `xraystudio train-segmenter` or paint the "
                             "anatomy by hand.")
        except Exception as exc:
            log.exception("segmentation failed")
            self.failed.emit(f"Segmentation failed unexpectedly: {exc}")

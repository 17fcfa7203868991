"""Anatomy segmentation as the window drives it: the segmenter process, one run at a time, and
the result applied as one undoable edit by the core's merge rule (segmentation.merge)."""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
from PySide6.QtCore import QObject, QTimer, Signal

from xraystudio import chest_check
from xraystudio.gui.dialogs.chest_confirm import CHEST
from xraystudio.gui.engine_job import EngineJobThread
from xraystudio.gui.film_warnings import FilmWarnings
from xraystudio.gui.panels.layers import layer_title
from xraystudio.gui.workers import segment_thread, segmenter_process
from xraystudio.masks import ANATOMY
from xraystudio.segmentation.merge import merge_segmentation
from xraystudio.study import Study

log = logging.getLogger(__name__)


class SegmentationController(QObject):
    status = Signal(str, int)  # a status line message, how long to show it (ms; 0: until replaced)
    failed = Signal(str, str)  # title, message
    applied = Signal()  # the masks changed (one undo step)

    def __init__(self, film_warnings: FilmWarnings, study: Callable[[], Study | None],
                 parent: QObject) -> None:
        super().__init__(parent)
        self.film_warnings = film_warnings
        self.study = study  # the study shown now
        self.process = segmenter_process()  # not the generation engine: see segmenter_process
        self.thread: EngineJobThread | None = None
        self._queued: tuple[Study, np.ndarray, bool] | None = None  # the run to start next

    def segment(self, study: Study, display: np.ndarray, automatic: bool = False) -> None:
        """Segment ``study`` (its display image) in the background; the result is one undoable
        edit. The manual run replaces every anatomy layer; the automatic one never overwrites
        the user's painting (segmentation.merge). A result for a study that is no longer shown
        is discarded; one arriving mid-stroke waits until the stroke is finished. A missing
        model is a status-bar note, not a dialog, in the automatic case."""
        if self.thread is not None:
            # One segmentation at a time; the newest request runs when this one finishes.
            self._queued = (study, display, automatic)
            return
        self.status.emit("Segmenting the anatomy…", 0)
        thread = segment_thread(self.process, display, self)
        thread.done.connect(lambda masks: self._apply(study, masks, automatic))
        thread.failed.connect(lambda message: self._failed(study, message, automatic))
        thread.finished.connect(lambda: self._done(thread))
        self.thread = thread
        thread.start()

    def segment_unpainted(self, study: Study, display: np.ndarray) -> None:
        """After opening: segment automatically when no anatomy layer is painted yet and the
        file's labels do not say it is no frontal chest (a hip, a leg, a lateral view: no
        "lungs" painted on it)."""
        if any(study.masks[name].any() for name in ANATOMY if name in study.masks):
            return
        labels = chest_check.check(study.image)
        if labels.warning:
            self.film_warnings.add(CHEST, labels.warning)
            self.status.emit(f"{labels.warning}. No automatic anatomy segmentation (Tools ▸ "
                             "Segment anatomy, Ctrl+Shift+A, segments anyway).", 30000)
        else:
            self.segment(study, display, automatic=True)

    def _apply(self, study: Study, masks: dict, automatic: bool) -> None:
        if self.study() is not study:
            log.info("discarded the segmentation of %s: another study is open", study.name)
            return
        if study.masks.in_step:  # the user is in the middle of a stroke: let it finish
            QTimer.singleShot(100, lambda: self._apply(study, masks, automatic))
            return
        merge = merge_segmentation(study.masks, study.image, masks, automatic)
        if merge.not_chest:  # unlabelled (a PNG of a knee): the masks show it is no chest
            self.film_warnings.add(CHEST, merge.not_chest)
            self.status.emit(f"Automatic segmentation not applied. {merge.not_chest} (Tools ▸ "
                             "Segment anatomy, Ctrl+Shift+A, segments anyway).", 30000)
            return
        if automatic and not merge.layers:
            self.status.emit("Automatic segmentation not applied: every anatomy layer was "
                             "already painted", 8000)
            return
        study.masks.begin("Segment anatomy")
        try:
            for name in merge.layers:
                study.masks.set_layer(name, masks[name])
        finally:
            study.masks.commit()
        self.applied.emit()
        message = ("Anatomy segmented automatically" if automatic
                   else "Anatomy segmented") + " (Ctrl+Z undoes it)"
        if merge.kept:
            message += "; kept your painting of " + ", ".join(layer_title(n) for n in merge.kept)
        self.status.emit(message, 8000)

    def _failed(self, study: Study, message: str, automatic: bool) -> None:
        if not automatic:
            self.failed.emit("Cannot segment", message)
        elif self.study() is study:
            self.status.emit(f"No automatic segmentation: {message}", 15000)

    def _done(self, thread: EngineJobThread) -> None:
        self.thread = None
        thread.deleteLater()
        queued, self._queued = self._queued, None
        if queued is not None and queued[0] is self.study():
            self.segment(*queued)

    def shutdown(self) -> None:
        if self.thread is not None:
            self.thread.wait(10_000)
        self.process.close()

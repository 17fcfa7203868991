"""The results of the open study as the window handles them: the strip and the compared result,
new results stored in the project, stored ones read back when a study opens, and Save result….

Moved out of the main window, which only wires it. An edit-mode result travels with its exact
edited values; the project keeps what changed (``results/<rid>.edit.npz``), and reading a stored
result back rebuilds the full edit from the open source, so a reopened project saves the same
full-resolution file in the source's format as the session that made it.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QFileDialog, QWidget

from xraystudio.engine.edit_results import save_result
from xraystudio.engine.protocol import GeneratedImage
from xraystudio.errors import XRayStudioError
from xraystudio.gui.dialogs import keep_results
from xraystudio.gui.film_warnings import FilmWarnings
from xraystudio.gui.panels.nodules import NodulesPanel
from xraystudio.gui.panels.results import CompareView, ResultsStrip
from xraystudio.gui.project_controller import ProjectController
from xraystudio.gui.settings import AppSettings
from xraystudio.gui.workers import ResultImagesThread, StoredImage
from xraystudio.masks import MaskStack
from xraystudio.study import Study

log = logging.getLogger(__name__)


def save_filter(result: GeneratedImage, source_format: str | None) -> tuple[str, str]:
    """(file suffix, dialog filter) for saving ``result``: an edit of a DICOM is a DICOM."""
    if result.is_edit and source_format == "DICOM":
        return ".dcm", "DICOM (*.dcm)"
    return ".png", "PNG (*.png)"


def writable_folder(*candidates: str | Path | None) -> Path:
    """The first candidate that is an existing folder the user may write in, else home."""
    for folder in candidates:
        if folder and Path(folder).is_dir() and os.access(folder, os.W_OK):
            return Path(folder)
    return Path.home()


@dataclasses.dataclass
class UnsavedResult:
    """A result of this session that no project holds: what storing it later needs."""

    result: GeneratedImage
    masks: MaskStack
    on_stored: Callable[[list[str]], None] | None = None


@dataclasses.dataclass
class Kept:
    """What the user keeps across a project switch: results, and the sweep grid they fill
    (``SweepController.session``). False when there is nothing to keep."""

    results: list[UnsavedResult]
    sweep: tuple | None = None

    def __bool__(self) -> bool:
        return bool(self.results)


class ResultsController(QObject):
    """Given its widgets and the project controller when built; speaks to the window through
    its signals."""

    status = Signal(str, int)  # a status line message, how long to show it (ms)
    failed = Signal(str, str)  # title, message

    def __init__(self, strip: ResultsStrip, compare: CompareView, nodules: NodulesPanel,
                 save_action: QAction, projects: ProjectController, film_warnings: FilmWarnings,
                 settings: AppSettings, study: Callable[[], Study | None],
                 parent: QWidget) -> None:
        super().__init__(parent)
        self.strip, self.compare_view, self.nodules = strip, compare, nodules
        self.save_action, self.projects, self.film_warnings = save_action, projects, film_warnings
        self.settings, self.study = settings, study
        self.loader: ResultImagesThread | None = None
        #: Results in the strip that no project holds (made without a writable project open).
        self.unsaved: list[UnsavedResult] = []

    # ------------------------------------------------------------ new results
    def add_generated(self, results: list[GeneratedImage], masks: MaskStack, select: bool,
                      on_stored: Callable[[list[str]], None] | None = None) -> None:
        """Show new results in the strip and store them in the project (in the background);
        without a project they are remembered as unsaved, so a project switch can keep them."""
        warnings = self.film_warnings.records()
        for r in results:  # what the user was warned of about the film travels with the result
            if warnings:
                r.provenance["warnings"] = warnings
        first_new = len(self.strip.results)
        self.strip.add(results)
        self._store(results, masks, on_stored)
        if select:
            self.strip.setCurrentRow(first_new)

    def _store(self, results: list[GeneratedImage], masks: MaskStack,
               on_stored: Callable[[list[str]], None] | None) -> None:
        def stored(ids: list[str]) -> None:
            self._on_stored(results, ids)
            if on_stored is not None:
                on_stored(ids)

        if not self.projects.add_results(results, masks, stored):
            self.unsaved += [UnsavedResult(r, masks, on_stored) for r in results]

    def clear(self) -> None:
        """Another study is shown: the strip starts over (unsaved results go with it)."""
        self.strip.clear_results()
        self.nodules.show_drawn(None, None)
        self.unsaved = []

    def before_project_change(self, verb: str) -> Kept | None:
        """Ask what to do with the unsaved results before a project is created or opened:
        what to keep (nothing when there are none or the user discards them), or None when
        the user cancels. Call it before the switch (the window adds the sweep grid to keep:
        it starts over with the switch)."""
        if not self.unsaved:
            return Kept([])
        choice = keep_results.ask_keep(self.parent(), len(self.unsaved), verb)
        if choice is keep_results.KeepChoice.CANCEL:
            return None
        if choice is keep_results.KeepChoice.DISCARD:
            return Kept([])
        return Kept(list(self.unsaved))

    def may_discard(self, verb: str) -> bool:
        """True when nothing unsaved would be lost by ``verb``, or the user lets it go."""
        return not self.unsaved or keep_results.ask_discard(self.parent(), len(self.unsaved), verb)

    def keep(self, what: Kept) -> None:
        """Show the kept results again (the strip started over) and store them in the project
        now open (the window shows their sweep first); any it cannot take (read-only) stay
        unsaved."""
        kept = what.results
        strip = self.strip
        for item in kept:
            strip.add([item.result])
        results = [item.result for item in kept]

        def stored(ids: list[str]) -> None:  # in order, on one thread: the project keeps it
            self._on_stored(results, ids)
            for item, rid in zip(kept, ids):
                if item.on_stored is not None:
                    item.on_stored([rid])

        if kept and not self.projects.add_results(results, [i.masks for i in kept], stored):
            self.unsaved += kept
        if kept and self.compare_view.result is None:
            strip.setCurrentRow(strip.count() - 1)  # Compare shows the newest again

    def _on_stored(self, results: list[GeneratedImage], ids: list[str]) -> None:
        """Results were committed to the project: link the strip's items to their ids."""
        strip = self.strip
        for r, rid in zip(results, ids):
            for i, shown in enumerate(strip.results):
                if shown is r:
                    strip.result_ids[i] = rid
                    break

    def compare(self, result: GeneratedImage, number: int) -> None:
        study = self.study()
        self.compare_view.show_result(result, number)
        self.save_action.setEnabled(True)
        self.nodules.show_drawn(result, study.image if study else None)

    # ------------------------------------------------------------------ save
    def save_suffix(self) -> str:
        """The file type Save result… writes for the compared result (.dcm or .png)."""
        result, study = self.compare_view.result, self.study()
        if result is None:
            return ""
        return save_filter(result, study.image.format if study else None)[0]

    def save_result(self) -> None:
        result = self.compare_view.result
        if result is None:
            return
        study = self.study()
        suffix, file_filter = save_filter(result, study.image.format if study else None)
        name = (f"{study.name if study else 'result'}_{'edit_' if result.is_edit else ''}"
                f"seed{result.seed}{suffix}")
        project = self.projects.project
        folder = writable_folder(self.settings.last_save_folder,
                                 project.folder if self.projects.writable else None)
        path, _ = QFileDialog.getSaveFileName(self.parent(), "Save the result", str(folder / name),
                                              file_filter)
        if path:
            self.save_to(path)

    def save_to(self, path: str | Path) -> list[Path] | None:
        """Write the compared result to ``path`` (its format follows the result); the paths
        written, or None after an error message."""
        view = self.compare_view
        if view.result is None:
            return None
        try:
            written = save_result(view.result, view.source, path)
        except (XRayStudioError, OSError) as exc:
            self.failed.emit("Cannot save the result", str(exc))
            return None
        self.settings.last_save_folder = str(Path(path).parent)
        names = [p.name for p in written]
        self.status.emit(
            "Saved " + (", ".join(names[:-1]) + " and " + names[-1] if len(names) > 1
                        else names[0]), 5000)
        return written

    # ---------------------------------------------------------- stored ones
    def load_project_results(self) -> None:
        """Fill the strip with the study's stored results, read in the background."""
        self.stop()
        sid, project, study = self.projects.study_id, self.projects.project, self.study()
        if sid is None or project is None or study is None:
            return
        items = [StoredImage(r.id, project.result_path(r.id), project.edit_path(r.id),
                             r.provenance) for r in project.results(study=sid)]
        if not items:
            return
        thread = ResultImagesThread(items, source=study.image, parent=self)
        thread.loaded.connect(self._on_loaded)
        thread.finished.connect(lambda: self._loader_done(thread))
        self.loader = thread
        thread.start()

    def stop(self, wait_ms: int = 0) -> None:
        if self.loader is not None:
            self.loader.cancel()
            self.loader.loaded.disconnect(self._on_loaded)
            if wait_ms:
                self.loader.wait(wait_ms)
            self.loader = None

    def _loader_done(self, thread: ResultImagesThread) -> None:
        if self.loader is thread:
            self.loader = None
        thread.deleteLater()

    def _on_loaded(self, rid: str, image: np.ndarray, pixels: np.ndarray, edit) -> None:
        project, study = self.projects.project, self.study()
        if project is None or rid in self.strip.result_ids:
            return
        rec = project.result(rid)
        if rec.study_id != self.projects.study_id or image.shape != (study.shape
                                                                     if study else None):
            return
        values, changed = edit if edit is not None else (None, None)
        result = GeneratedImage(image=image, condition=np.zeros((0, 1, 1), np.float32), layers=[],
                                seed=int(rec.parameters.get("seed") or 0),
                                metrics=dict(rec.provenance.get("metrics") or {}),
                                provenance=rec.provenance, pixels=pixels, values=values,
                                changed=changed)
        self.strip.add([result], [rid])
        if self.compare_view.result is None:
            self.strip.setCurrentRow(0)

    def show_project_result(self, rid: str) -> None:
        """A result chosen in the gallery is compared when it belongs to the open study."""
        if self.strip.select_id(rid):
            return
        project = self.projects.project
        if project is not None and self.projects.study_id is not None:
            if project.result(rid).study_id != self.projects.study_id:
                self.status.emit(
                    f"{rid} belongs to study {project.result(rid).study_id}; open it to compare",
                    5000)

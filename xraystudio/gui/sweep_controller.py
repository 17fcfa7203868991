"""The conditioning explorer as the window drives it: the Sweep tab, the run, the record.

The sweep runs in the window's engine process (engine.sweep), one cell after another, while a
thread here only waits on its events and makes display words, so the UI thread never computes
more than a caption. Each finished cell becomes an ordinary result at once: it joins the results
strip and the project (with provenance and the masks it was made from, curatable like any
other), and the sweep record — saved in the project after every cell — names its result id, so
a cancelled or crashed sweep keeps its finished cells and a reopened project shows the grid.
The Generation panel's model and settings are the base of every cell; the axes override them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PySide6.QtCore import QObject, QThread, QTimer, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QFileDialog, QTabWidget, QWidget

from xraystudio.engine.pixels import grey_to_rgb32
from xraystudio.engine.protocol import CellMasks, GeneratedImage
from xraystudio.errors import XRayStudioError
from xraystudio.explore.axes import parse_axes
from xraystudio.explore.sweep import BASE_KEYS, CellRecord, Sweep, SweepRecord
from xraystudio.gui.engine_job import EngineJobThread
from xraystudio.gui.generation_controller import GenerationController
from xraystudio.gui.panels.generation import model_spec
from xraystudio.gui.panels.results import ResultsStrip
from xraystudio.gui.panels.sweep import SweepPanel
from xraystudio.gui.project_controller import ProjectController
from xraystudio.gui.results_controller import ResultsController
from xraystudio.gui.settings import AppSettings
from xraystudio.gui.workers import ResultImagesThread, StoredImage
from xraystudio.masks import MaskStack
from xraystudio.study import Study

log = logging.getLogger(__name__)

#: Cell pictures in the grid are at most this many pixels on their longer side.
CELL_PICTURE_PX = 768


def cell_words(image: np.ndarray) -> np.ndarray:
    step = max(1, int(np.ceil(max(image.shape) / CELL_PICTURE_PX)))
    return grey_to_rgb32(np.ascontiguousarray(image[::step, ::step]))


class ExportThread(QThread):
    """Writes the grid PNG, CSV and JSON off the UI thread (resizing full-size cells)."""

    done = Signal(list)
    failed = Signal(str)

    def __init__(self, folder: Path, record: SweepRecord, images: list, metric: str | None,
                 parent=None) -> None:
        super().__init__(parent)
        self.folder, self.record, self.images, self.metric = folder, record, images, metric

    def run(self) -> None:
        from xraystudio.explore import grid

        try:
            self.done.emit(grid.export(self.folder, self.record, self.images,
                                       metric=self.metric or None))
        except (XRayStudioError, OSError) as exc:
            self.failed.emit(str(exc))


class SweepController(QObject):
    """The Sweep tab; given its widgets and the controllers it works with when built."""

    compareRequested = Signal()  # show the Compare tab (a cell was opened)
    failed = Signal(str, str)  # title, message

    def __init__(self, tabs: QTabWidget, generation: GenerationController,
                 results: ResultsController, projects: ProjectController, strip: ResultsStrip,
                 settings: AppSettings, study: Callable[[], Study | None],
                 parent: QWidget) -> None:
        super().__init__(parent)
        self.tabs, self.generation, self.results_ctl = tabs, generation, results
        self.projects, self.strip, self.settings, self.study = projects, strip, settings, study
        self.panel = SweepPanel()
        self.tab_index = tabs.addTab(self.panel, "Sweep")
        self.thread: EngineJobThread | None = None
        self.loader: ResultImagesThread | None = None
        self.exporter: ExportThread | None = None
        self.record: SweepRecord | None = None
        self.images: dict[int, np.ndarray] = {}  # cell index -> image in [0, 1]
        self.results: dict[int, GeneratedImage] = {}  # cell index -> result of this session
        self._study = None
        self._masks: MaskStack | None = None
        self.faithfulness = True
        self.note = ""  # what the run changed of the settings, for the status line
        self.sweep_tab_action = QAction("S&weep view", parent)
        self.sweep_tab_action.setShortcut("Ctrl+Shift+W")
        self.sweep_tab_action.triggered.connect(self.show_tab)
        parent.addAction(self.sweep_tab_action)
        p = self.panel
        p.runRequested.connect(self.run)
        p.cancelRequested.connect(self.cancel)
        p.exportRequested.connect(self.choose_export)
        p.cellClicked.connect(self.open_cell)
        p.sweepChosen.connect(self.open_saved)
        projects.projectChanged.connect(self.study_changed)
        strip.model().rowsInserted.connect(self._number_cells)
        self.study_changed()

    @property
    def running(self) -> bool:
        return self.thread is not None

    def show_tab(self) -> None:
        self.tabs.setCurrentIndex(self.tab_index)

    # ----------------------------------------------------------------- run
    def build(self) -> Sweep:
        """The sweep the panel describes over the Generation panel's settings."""
        panel, masks = self.generation.panel, self.study().masks
        axes = parse_axes(self.panel.axis_texts())
        params = panel.params()
        base = {k: v for k, v in params.items() if k in BASE_KEYS}
        ref = panel.model_ref()
        sweep = Sweep(axes, base, ref or None, params.get("seed"))
        specs = {}
        for r in (sweep.axis("model").values if sweep.axis("model") else [sweep.model]):
            spec = model_spec(r or "")
            if spec is None:
                raise XRayStudioError(f"{r} is not a readable model folder")
            specs[r] = spec
        note = sweep.prepare(masks, specs)
        self.note = f" ({note})" if note else ""
        return sweep

    def run(self) -> None:
        study = self.study()
        if study is None or self.running:
            return
        if self.generation.busy:
            self.panel.show_message("A generation is running; the sweep can start when it is "
                                    "done.", error=True)
            return
        if not self.generation.film_warnings.confirm(self.parent(), "Run the sweep"):
            return
        try:
            sweep = self.build()
        except XRayStudioError as exc:
            self.panel.show_message(str(exc), error=True)
            return
        record = SweepRecord.new(sweep, study=self.projects.study_id)
        self._store(record)
        self.show(record)
        self._study = study
        self._masks = masks = study.masks.copy()

        def receive_cell(rec: dict, result: GeneratedImage | None, cell_masks: CellMasks | None):
            """A finished cell as the UI thread shows it (in the job thread)."""
            words = None
            if result is not None:
                result.take()
                result.pixels = grey_to_rgb32(result.image)
                words = cell_words(result.image)
            if cell_masks is not None:
                cell_masks = cell_masks.take(masks.spacing_mm, masks.source_nodules)
            return CellRecord.from_dict(rec), result, words, cell_masks

        def wire(thread: EngineJobThread) -> None:
            thread.stage.connect(self.panel.show_message)
            thread.progressed.connect(lambda p, _preview: self.panel.show_progress(p))
            thread.item.connect(lambda cell: self._on_cell(*cell))
            thread.done.connect(self._on_done)
            thread.failed.connect(self._on_failed)
            thread.finished.connect(self._on_thread_finished)
            self.thread = thread
            self.panel.set_running(True)
            self.panel.show_message(f"Starting a sweep of {sweep.n_cells} cells{self.note}…")

        self.generation.start_sweep(record, masks, study.image, self.faithfulness, receive_cell,
                                    wire, parent=self)

    def cancel(self) -> None:
        if self.thread is not None:
            self.thread.cancel()
            self.panel.show_message("Cancelling… the finished cells are kept")

    def _on_cell(self, rec: CellRecord, result, words, masks) -> None:
        record = self.record
        if record is None or self._study is not self.study():
            return
        record.cells[rec.index] = rec
        if result is not None:
            self.images[rec.index] = result.image
            self.results[rec.index] = result
            self.panel.set_cell_pixels(rec.index, words, result.image.shape)
            self._add_result(rec.index, result, masks if masks is not None else self._masks)
        self.panel.refresh_captions()
        self._store(record)

    def _add_result(self, index: int, result, masks: MaskStack) -> None:
        """The cell as an ordinary result: in the strip and, with a project, stored (or kept
        as unsaved until a project is made, when :meth:`keep_session` keeps the grid too)."""
        record = self.record

        def stored(ids: list[str], record=record) -> None:
            if ids and record is not None:
                record.cells[index].result = ids[0]
                self._store(record)

        self.results_ctl.add_generated([result], masks, select=False, on_stored=stored)

    def _on_done(self, data: dict) -> None:
        record = self.record
        if record is None:
            return
        done = SweepRecord.from_dict(data)
        record.status, record.finished = done.status, done.finished
        for i, cell in enumerate(done.cells):  # figures as the process ended; ids are ours
            cell.result = record.cells[i].result
            record.cells[i] = cell
        self._store(record)
        n = len(record.done)
        word = "Cancelled" if record.status == "cancelled" else "Done"
        self.panel.show_message(f"{word}: {n} of {len(record.cells)} cells"
                                + (" kept" if record.status == "cancelled" else ""))
        self.panel.progress.setValue(1000 if record.status == "done" else
                                     self.panel.progress.value())
        self.panel.refresh_captions()
        self._fill_saved()

    def _on_failed(self, message: str) -> None:
        if self.record is not None:
            self.record.status, self.record.error = "failed", message
            self._store(self.record)
        self.panel.show_message(f"The sweep failed: {message}", error=True)

    def _on_thread_finished(self) -> None:
        self.thread = None  # deleted by the generation controller, whose job it was
        self.panel.set_running(False)

    def _store(self, record: SweepRecord) -> None:
        """Save the record in the project (giving it its id the first time)."""
        projects = self.projects
        if not projects.writable or record.study is None:
            return
        if record.study != projects.study_id:
            return
        try:
            record.id = projects.project.save_sweep(record.to_dict())
        except (XRayStudioError, OSError) as exc:
            log.warning("cannot save the sweep: %s", exc)

    # ------------------------------------------------------- project switch
    def session(self) -> tuple[SweepRecord, dict, dict] | None:
        """The sweep shown when it is in no project yet (record, images, results), to keep."""
        if self.record is None or self.record.id or self.running:
            return None
        return self.record, dict(self.images), dict(self.results)

    def keep_session(self, session: tuple[SweepRecord, dict, dict]) -> None:
        """Show a kept sweep again and save it in the project now open; its cells link to
        their results as those are stored (see :meth:`_add_result`)."""
        record, images, results = session
        record.study = self.projects.study_id
        self.show(record)
        self.images, self.results = images, results
        for index, image in images.items():
            self.panel.set_cell_pixels(index, cell_words(image), image.shape)
        self.panel.refresh_captions()
        self._store(record)
        self._fill_saved()
        self.panel.show_message(f"Sweep {record.id or ''} kept: {len(record.done)} of "
                                f"{len(record.cells)} cells ({record.status})")
        QTimer.singleShot(0, self.panel.fit)  # once the rebuilt grid has its size

    def _number_cells(self, *_: object) -> None:
        """Caption each cell with its number in the results strip (results arrive later)."""
        record, strip = self.record, self.strip
        if record is None:
            return
        numbers = {}
        for cell in record.cells:
            mine = self.results.get(cell.index)
            row = next((i for i, r in enumerate(strip.results) if r is mine), None)
            if row is None and cell.result in strip.result_ids:
                row = strip.result_ids.index(cell.result)
            if row is not None:
                numbers[cell.index] = row + 1
        if numbers != self.panel.numbers:
            self.panel.numbers = numbers
            self.panel.refresh_captions()

    # ------------------------------------------------------------ showing
    def show(self, record: SweepRecord | None) -> None:
        self.stop_loading()
        self.record = record
        self.images = {}
        self.results = {}
        self.panel.numbers = {}
        self.panel.show_record(record)
        if record is not None:
            self.panel.set_axis_texts([a.text for a in record.sweep.axes])
        self._fill_saved()
        self._number_cells()

    def _fill_saved(self) -> None:
        items = []
        project, sid = self.projects.project, self.projects.study_id
        if project is not None and sid is not None:
            for d in project.sweeps(study=sid):
                shape = "×".join(str(n) for n in d.get("shape", []) if n > 1) or "1"
                axes = ", ".join(a["name"] for a in d.get("axes", []))
                items.append((d["id"], f"{d['id']}: {axes} ({shape}, {d.get('status')})"))
        if self.record is not None and not self.record.id:
            items.append(("", "this session (not in a project)"))
        self.panel.set_saved(items, self.record.id if self.record else None)

    def study_changed(self) -> None:
        """A study was opened or closed (or the project changed): show its latest sweep."""
        if self.running and self._study is not self.study():
            self.cancel()
        if self.running:
            return
        project, sid = self.projects.project, self.projects.study_id
        latest = None
        if project is not None and sid is not None:
            saved = project.sweeps(study=sid)
            latest = saved[-1]["id"] if saved else None
        if latest is not None:
            self.open_saved(latest)
        else:
            self.show(None)
            self.panel.show_message("Choose up to three axes and run the sweep.")
        self.panel.run.setEnabled(self.study() is not None)

    def open_saved(self, sweep_id: str) -> None:
        """Show a sweep kept in the project, its cells read from their result PNGs."""
        project = self.projects.project
        if not sweep_id or project is None or self.running:
            return
        try:
            record = SweepRecord.from_dict(project.sweep(sweep_id))
        except XRayStudioError as exc:
            self.panel.show_message(str(exc), error=True)
            return
        self.show(record)
        self.panel.show_message(f"Sweep {record.id}: {len(record.done)} of "
                                f"{len(record.cells)} cells ({record.status})")
        items = []
        for cell in record.cells:
            if cell.result:
                try:
                    items.append(StoredImage(cell.index, project.result_path(cell.result)))
                except XRayStudioError:
                    continue
        if items:
            loader = ResultImagesThread(items, words=cell_words, parent=self)
            loader.loaded.connect(self._on_loaded)
            loader.finished.connect(lambda t=loader: self._loader_done(t))
            self.loader = loader
            loader.start()

    def _on_loaded(self, index: int, image: np.ndarray, words: np.ndarray, _edit=None) -> None:
        if self.record is None:
            return
        self.images[index] = image
        self.panel.set_cell_pixels(index, words, image.shape)

    def _loader_done(self, thread: ResultImagesThread) -> None:
        if self.loader is thread:
            self.loader = None
        thread.deleteLater()

    def stop_loading(self) -> None:
        if self.loader is not None:
            self.loader.cancel()
            self.loader.loaded.disconnect(self._on_loaded)
            self.loader = None

    def open_cell(self, index: int) -> None:
        """Compare the cell's result with the source (the Compare tab)."""
        record, strip = self.record, self.strip
        if record is None:
            return
        rid = record.cells[index].result
        mine = self.results.get(index)
        row = next((i for i, r in enumerate(strip.results) if r is mine), None)
        if row is not None:
            strip.setCurrentRow(row)
        elif not (rid and strip.select_id(rid)):
            self.panel.show_message(f"Cell {index + 1} has no image yet")
            return
        self.compareRequested.emit()

    # ------------------------------------------------------------- export
    def choose_export(self) -> None:
        folder = QFileDialog.getExistingDirectory(self.parent(), "Export the sweep grid to a folder",
                                                  self.settings.last_folder)
        if folder:
            self.export_to(folder)

    def export_to(self, folder: str | Path) -> ExportThread | None:
        record = self.record
        if record is None or self.exporter is not None:
            return None
        images = [self.images.get(c.index) for c in record.cells]
        thread = ExportThread(Path(folder), record, images, self.panel.metric_key, self)
        thread.done.connect(lambda paths: self.panel.show_message(
            "Exported " + ", ".join(p.name for p in paths) + f" to {folder}"))
        thread.failed.connect(lambda m: self.failed.emit("Cannot export the sweep", m))
        thread.finished.connect(self._export_finished)
        self.exporter = thread
        thread.start()
        return thread

    def _export_finished(self) -> None:
        thread, self.exporter = self.exporter, None
        if thread is not None:
            thread.deleteLater()

    def shutdown(self) -> None:
        """Before the window closes: stop the sweep (its finished cells are saved)."""
        self.stop_loading()
        if self.thread is not None:
            self.thread.cancel()
            self.thread.wait(15_000)
        if self.exporter is not None:
            self.exporter.wait(15_000)

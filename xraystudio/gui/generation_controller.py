"""Generation as the window drives it: the engine process, the Generation panel's runs, and the
rule that one engine job (a generation or a sweep) runs at a time.

The controller is given its panel and what it reads when built; it tells the window what
happened through signals (results, failures, status lines) and never reaches into it.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QFileDialog, QWidget

from xraystudio.engine.client import EngineProcess
from xraystudio.engine.protocol import SweepJob
from xraystudio.gui.engine_job import EngineJobThread
from xraystudio.gui.film_warnings import FilmWarnings
from xraystudio.gui.panels.generation import GenerationPanel, model_spec
from xraystudio.gui.settings import AppSettings
from xraystudio.gui.workers import generation_thread
from xraystudio.image import XRayImage
from xraystudio.masks import MaskStack
from xraystudio.study import Study


class GenerationController(QObject):
    generated = Signal(list, object)  # list[GeneratedImage], the MaskStack they were made from
    failed = Signal(str, str)  # title, message
    status = Signal(str, int)  # a status line message, how long to show it (ms)

    def __init__(self, panel: GenerationPanel, cancel_action: QAction, settings: AppSettings,
                 film_warnings: FilmWarnings, study: Callable[[], Study | None],
                 parent: QWidget) -> None:
        super().__init__(parent)
        self.panel = panel
        self.cancel_action = cancel_action
        self.settings = settings
        self.film_warnings = film_warnings
        self.study = study  # the study shown now
        self.engine = EngineProcess()
        self.generation: EngineJobThread | None = None
        self.job: EngineJobThread | None = None  # the generation or sweep running, if any
        self._generation_study: Study | None = None  # what the running generation is for
        self._generation_masks: MaskStack | None = None  # the masks it was started from
        panel.generateRequested.connect(self.generate)
        panel.cancelRequested.connect(self.cancel)
        panel.addModelRequested.connect(self.add_model)
        cancel_action.triggered.connect(self.cancel)
        cancel_action.setEnabled(False)

    @property
    def busy(self) -> bool:
        """True while a generation or a sweep runs: the engine takes one job at a time."""
        return self.job is not None

    def update_enabled(self) -> None:
        self.panel.generate.setEnabled(self.study() is not None and not self.busy)

    # ------------------------------------------------------------- models
    def add_model(self) -> None:
        folder = QFileDialog.getExistingDirectory(self.parent(), "Add a model folder",
                                                  self.settings.last_folder)
        if folder:
            self.add_model_folder(folder)

    def add_model_folder(self, folder: str) -> bool:
        """Offer ``folder`` in the model list when the engine can load it (as the CLI can)."""
        if model_spec(folder) is None:
            self.failed.emit(
                "Not a model folder",
                f"{folder} is not a model folder. A model folder holds xraystudio.json and its "
                "weights as .safetensors, or is a diffusers Stable Diffusion ControlNet pipeline "
                "folder (model_index.json).")
            return False
        self.settings.model_folders = self.settings.model_folders + [folder]
        self.panel.set_models(self.settings.model_folders, current=folder)
        return True

    # -------------------------------------------------------------- runs
    def generate(self) -> None:
        study = self.study()
        if study is None or self.busy:
            return
        if not self.film_warnings.confirm(self.parent(), "Generate"):
            return
        self.settings.generation = self.panel.saved_state()
        self._generation_masks = study.masks.copy()
        self._generation_study = study
        thread = generation_thread(self.engine, self.panel.model_ref(), self._generation_masks,
                                   study.image, self.panel.params(), parent=self)
        thread.stage.connect(self.panel.show_stage)
        thread.progressed.connect(self.panel.show_progress)
        thread.done.connect(self._on_generated)
        thread.cancelled.connect(lambda: self.panel.show_done("Cancelled; nothing was kept",
                                                              False))
        thread.failed.connect(self._on_failed)
        self.generation = thread
        self.cancel_action.setEnabled(True)
        self._start(thread)

    def start_sweep(self, record, masks: MaskStack, image: XRayImage | None, faithfulness: bool,
                    receive_item: Callable, wire: Callable[[EngineJobThread], None],
                    parent: QObject) -> EngineJobThread | None:
        """Run a sweep on this engine: its job thread, connected by ``wire`` before it starts;
        None (nothing started) while another job runs."""
        if self.busy:
            return None
        thread = EngineJobThread(self.engine,
                                 lambda: SweepJob.pack(record, masks, image, faithfulness),
                                 "The sweep", receive_item=receive_item, parent=parent)
        wire(thread)
        self._start(thread)
        return thread

    def _start(self, thread: EngineJobThread) -> None:
        thread.finished.connect(lambda t=thread: self._on_finished(t))
        self.job = thread
        if thread is self.generation:
            self.panel.set_running(True)
        self.update_enabled()
        thread.start()

    def cancel(self) -> None:
        if self.generation is not None:
            self.generation.cancel()
            self.panel.show_stage("Cancelling…")

    def _on_generated(self, results: list) -> None:
        if self._generation_study is not self.study():
            return  # made for a study that has been closed since
        self.generated.emit(results, self._generation_masks)
        self.panel.show_done(f"{len(results)} image(s) ready — see Compare (Ctrl+R)", True)
        self.status.emit(f"Generated {len(results)} image(s)", 8000)

    def _on_failed(self, message: str) -> None:
        self.panel.show_done("Failed", False)
        self.failed.emit("Generation failed", message)

    def _on_finished(self, thread: EngineJobThread) -> None:
        if self.generation is thread:
            self.generation = None
            self.panel.set_running(False)
            self.cancel_action.setEnabled(False)
        if self.job is thread:
            self.job = None
        thread.deleteLater()
        self.update_enabled()

    def shutdown(self) -> None:
        """Before the window closes: stop a generation and the engine process."""
        if self.generation is not None:
            self.generation.cancel()
            self.generation.wait(10_000)
        self.engine.close()

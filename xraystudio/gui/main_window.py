"""The main window: canvas and comparison in the centre, panels docked around, and the actions
(menus, toolbar, single-key shortcuts) that tie them to the study and the generation worker.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QAction, QActionGroup, QCloseEvent, QKeySequence
from PySide6.QtWidgets import (
    QComboBox,
    QDockWidget,
    QDoubleSpinBox,
    QFileDialog,
    QLabel,
    QMainWindow,
    QMessageBox,
    QTabWidget,
    QWidget,
)

from xraystudio import __version__, chest_check
from xraystudio.curation.project import Project, ProjectEvent
from xraystudio.engine.opening import mask_sidecar
from xraystudio.errors import XRayStudioError
from xraystudio.gui import recent_menus
from xraystudio.gui.canvas.tools import Tool, all_tools
from xraystudio.gui.canvas.view import CanvasView
from xraystudio.gui.dialogs import help as help_dialog
from xraystudio.gui.dialogs import restore as restore_dialog
from xraystudio.gui.dialogs.chest_confirm import CHEST, failed_chest_check
from xraystudio.gui.dialogs.export import ExportDialog
from xraystudio.gui.dock_sizes import BottomDockSizer, scrolling
from xraystudio.gui.film_warnings import FilmWarnings
from xraystudio.gui.generation_controller import GenerationController
from xraystudio.gui.panels.gallery import GalleryPanel
from xraystudio.gui.panels.generation import GenerationPanel
from xraystudio.gui.panels.layers import LayersPanel, layer_title
from xraystudio.gui.panels.nodules import NodulesPanel
from xraystudio.gui.panels.results import CompareView, ResultsStrip
from xraystudio.gui.panels.warning_banner import with_banner
from xraystudio.gui.project_controller import ProjectController
from xraystudio.gui.results_controller import Kept, ResultsController
from xraystudio.gui.segmentation_controller import SegmentationController
from xraystudio.gui.settings import AppSettings
from xraystudio.gui.shortcut_guard import ShortcutGuard
from xraystudio.gui.sweep_controller import SweepController
from xraystudio.gui.workers import OpenedStudy, OpenThread
from xraystudio.image import Window
from xraystudio.io.masks_io import load_masks, save_masks
from xraystudio.masks import ANATOMY, STRUCTURES, MaskStack
from xraystudio.study import Study

log = logging.getLogger(__name__)

OPEN_FILTER = ("Radiographs (*.dcm *.dicom *.png *.jpg *.jpeg *.tif *.tiff *.bmp);;"
               "DICOM (*.dcm *.dicom);;All files (*)")
BRUSH_MM = (0.5, 100.0)


class MainWindow(QMainWindow):
    def __init__(self, settings: AppSettings | None = None) -> None:
        super().__init__()
        self.settings = settings or AppSettings()
        self.opened: OpenedStudy | None = None
        self._open_thread: OpenThread | None = None
        self.export_dialog: ExportDialog | None = None
        self.projects = ProjectController(self)
        self.last_error: QMessageBox | None = None
        self.setWindowTitle("xraystudio")
        self.setObjectName("mainWindow")

        self.canvas = CanvasView()
        self.canvas.setObjectName("canvas")
        self.compare = CompareView()
        self.tabs = QTabWidget()
        self.tabs.setObjectName("centralTabs")
        edit_page, banner = with_banner(self.canvas)
        self.film_warnings = FilmWarnings(banner, self)  # kept until read, in provenance
        self.tabs.addTab(edit_page, "Edit")
        self.tabs.addTab(self.compare, "Compare")
        self.setCentralWidget(self.tabs)

        self.layers = LayersPanel(self.canvas)
        self.nodules = NodulesPanel(self.canvas)
        self.generator = GenerationPanel()
        self.strip = ResultsStrip()
        self.gallery = GalleryPanel(self.projects)
        self._dock("Layers", self.layers, Qt.DockWidgetArea.LeftDockWidgetArea)
        self._dock("Nodules", self.nodules, Qt.DockWidgetArea.LeftDockWidgetArea)
        scroll = scrolling(self.generator, horizontal=False)
        scroll.setMinimumWidth(self.generator.minimumSizeHint().width()
                               + scroll.verticalScrollBar().sizeHint().width())
        self._dock("Generation", scroll, Qt.DockWidgetArea.RightDockWidgetArea)
        results_dock = self._dock("Results", self.strip, Qt.DockWidgetArea.BottomDockWidgetArea)
        self.gallery_dock = self._dock("Gallery", scrolling(self.gallery),
                                       Qt.DockWidgetArea.BottomDockWidgetArea)
        self.tabifyDockWidget(results_dock, self.gallery_dock)
        results_dock.raise_()
        self.dock_sizer = BottomDockSizer(self, results_dock, self.gallery_dock)

        study = lambda: self.study  # noqa: E731 (what the controllers read as the shown study)
        self.save_result_action = self._action(
            "Save &result…", lambda: self.results.save_result(), "Ctrl+Shift+S",
            "Save the compared result with its provenance JSON (an edit at full size in the "
            "source's format)")
        self.cancel_action = self._action("&Cancel generation", lambda: None)
        self.gen = GenerationController(self.generator, self.cancel_action, self.settings,
                                        self.film_warnings, study, self)
        self.segments = SegmentationController(self.film_warnings, study, self)
        # the strip, Compare, stored results, saving
        self.results = ResultsController(self.strip, self.compare, self.nodules,
                                         self.save_result_action, self.projects,
                                         self.film_warnings, self.settings, study, self)
        self.sweeps = SweepController(self.tabs, self.gen, self.results, self.projects, self.strip,
                                      self.settings, study, self)  # the Sweep tab

        self.position = QLabel()
        self.zoom_label = QLabel()
        self.synthetic_label = QLabel("SYNTHETIC IMAGE")
        self.synthetic_label.setStyleSheet("color: #f5a524; font-weight: bold;")
        self.synthetic_label.setVisible(False)
        self.statusBar().addPermanentWidget(self.synthetic_label)
        self.statusBar().addPermanentWidget(self.position)
        self.statusBar().addPermanentWidget(self.zoom_label)

        self.tools = all_tools()
        self._build_actions()
        self.shortcut_guard = ShortcutGuard(self, self.statusBar())
        self._connect()
        self._restore_settings()
        # Once shown, so a restored layout is fitted too.
        QTimer.singleShot(0, self.dock_sizer, self.dock_sizer.fit)
        self._set_study_enabled(False)
        self._on_project_changed()

    # ------------------------------------------------------------- building
    def _dock(self, title: str, widget: QWidget, area: Qt.DockWidgetArea) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(f"{title.lower()}Dock")
        dock.setWidget(widget)
        self.addDockWidget(area, dock)
        return dock

    def _action(self, text: str, slot, shortcut=None, tip: str = "") -> QAction:
        action = QAction(text, self)
        if shortcut is not None:
            shortcuts = shortcut if isinstance(shortcut, list) else [shortcut]
            action.setShortcuts([QKeySequence(s) for s in shortcuts])
        action.setStatusTip(tip)
        action.triggered.connect(slot)
        self.addAction(action)  # shortcuts work while docks have focus too
        return action

    def _build_actions(self) -> None:
        a = self._action
        self.open_action = a("&Open…", self.choose_file, QKeySequence.StandardKey.Open,
                             "Open a DICOM or image file")
        self.load_masks_action = a("Load &masks…", self.choose_masks, None,
                                   "Load masks saved as .npz")
        self.load_mask_folder_action = a("Load mask &folder…", self.choose_mask_folder, None,
                                         "Load a folder with one PNG per layer")
        self.save_masks_action = a("&Save masks", self.save_masks, QKeySequence.StandardKey.Save,
                                   "Save the masks beside the radiograph (<name>.masks.npz)")
        self.save_masks_as_action = a("Save masks &as…", self.save_masks_as, None)
        self.quit_action = a("&Quit", self.close, QKeySequence.StandardKey.Quit)
        self.new_project_action = a("&New project…", self.choose_new_project, None,
                                    "Create a project folder: studies, results and decisions")
        self.open_project_action = a("Open &project…", self.choose_project, "Ctrl+Shift+O")
        self.save_project_as_action = a("Save project &as…", self.save_project_as, None,
                                        "Copy the project to a new folder and continue there")
        self.close_project_action = a("&Close project", self.close_project, None)
        self.export_action = a("&Export…", self.show_export, None,
                               "Export the accepted results (nnU-Net, JSRT layout, DICOM)")
        self.gallery_action = a("&Gallery", self.show_gallery, "Ctrl+G",
                                "Review every result of the project")
        self.undo_action = a("&Undo", self.undo, "Ctrl+Z")
        self.redo_action = a("&Redo", self.redo, ["Ctrl+Shift+Z", "Ctrl+Y"])
        self.segment_action = a("Segment &anatomy", lambda: self.segment_anatomy(),
                                "Ctrl+Shift+A",
                                "Replace the anatomy layers with the automatic segmentation")
        self.auto_segment_action = a("Segment anatomy automatically after opening",
                                     self._set_auto_segment, None,
                                     "Segment a radiograph opened without masks in the background")
        self.auto_segment_action.setCheckable(True)
        self.auto_segment_action.setChecked(self.settings.auto_segment)
        self.smaller_action = a("Smaller brush", lambda: self.step_brush(1 / 1.25), "[")
        self.bigger_action = a("Bigger brush", lambda: self.step_brush(1.25), "]")
        self.fit_action = a("&Fit to window", self.canvas.fit, "F")
        self.actual_action = a("&Actual size (1:1)", self.canvas.actual_size, "Ctrl+1")
        self.zoom_in_action = a("Zoom &in", lambda: self.canvas.zoom_by(1.25), ["+", "="])
        self.zoom_out_action = a("Zoom &out", lambda: self.canvas.zoom_by(0.8), "-")
        self.masks_action = a("Show/hide &masks", self.layers.toggle_masks, "H")
        self.outline_action = a("Filled/&outline masks", self.layers.toggle_display, "C")
        self.edit_tab_action = a("&Edit view", lambda: self.tabs.setCurrentIndex(0), "Ctrl+E")
        self.compare_tab_action = a("&Compare view", lambda: self.tabs.setCurrentIndex(1), "Ctrl+R")
        self.generate_action = a("&Generate", self.gen.generate, "Ctrl+Return",
                                 "Generate images from the current masks")
        self.help_action = a("&Keyboard and mouse…", self.show_help, "F1")
        self.about_action = a("&About xraystudio", self.show_about)

        self.tool_group = QActionGroup(self)
        self.tool_actions: dict[str, QAction] = {}
        for tool in self.tools:
            act = a(tool.name, lambda _=False, t=tool: self.set_tool(t), tool.key, tool.help)
            act.setCheckable(True)
            act.setToolTip(f"{tool.name} ({tool.key}): {tool.help}")
            self.tool_group.addAction(act)
            self.tool_actions[tool.name] = act
        self.layer_actions = [
            a(f"Layer {i + 1}: {layer_title(name)}",
              lambda _=False, i=i: self.layers.set_active_index(i), str(i + 1))
            for i, name in enumerate(STRUCTURES)
        ]

        menu = self.menuBar()
        file_menu = menu.addMenu("&File")
        file_menu.addAction(self.open_action)
        self.recent_menu = file_menu.addMenu("Open &recent")
        self.recent_menu.aboutToShow.connect(lambda: recent_menus.fill_recent(
            self.recent_menu, self.settings.recent_files, self.open_file,
            self.settings.clear_recent, "No recent files"))
        file_menu.addSeparator()
        for act in (self.load_masks_action, self.load_mask_folder_action, self.save_masks_action,
                    self.save_masks_as_action):
            file_menu.addAction(act)
        file_menu.addSeparator()
        file_menu.addAction(self.new_project_action)
        file_menu.addAction(self.open_project_action)
        self.recent_projects_menu = file_menu.addMenu("Recent projec&ts")
        self.recent_projects_menu.aboutToShow.connect(lambda: recent_menus.fill_recent(
            self.recent_projects_menu, self.settings.recent_projects, self.open_project,
            self.settings.clear_recent_projects, "No recent projects"))
        file_menu.addAction(self.save_project_as_action)
        file_menu.addAction(self.close_project_action)
        file_menu.addAction(self.export_action)
        file_menu.addSeparator()
        file_menu.addAction(self.save_result_action)
        file_menu.addSeparator()
        file_menu.addAction(self.quit_action)
        edit_menu = menu.addMenu("&Edit")
        for act in (self.undo_action, self.redo_action, None, self.segment_action, None,
                    self.smaller_action, self.bigger_action):
            edit_menu.addAction(act) if act else edit_menu.addSeparator()
        view_menu = menu.addMenu("&View")
        for act in (self.fit_action, self.actual_action, self.zoom_in_action, self.zoom_out_action,
                    None, self.masks_action, self.outline_action, None, self.edit_tab_action,
                    self.compare_tab_action, self.sweeps.sweep_tab_action, self.gallery_action):
            view_menu.addAction(act) if act else view_menu.addSeparator()
        view_menu.addSeparator()
        for dock in self.findChildren(QDockWidget):
            view_menu.addAction(dock.toggleViewAction())
        tools_menu = menu.addMenu("&Tools")
        for act in self.tool_actions.values():
            tools_menu.addAction(act)
        tools_menu.addSeparator()
        for act in self.layer_actions:
            tools_menu.addAction(act)
        tools_menu.addSeparator()
        tools_menu.addAction(self.auto_segment_action)
        gen_menu = menu.addMenu("&Generate")
        gen_menu.addAction(self.generate_action)
        gen_menu.addAction(self.cancel_action)
        help_menu = menu.addMenu("&Help")
        help_menu.addAction(self.help_action)
        help_menu.addAction(self.about_action)

        bar = self.addToolBar("Main")
        bar.setObjectName("mainToolbar")
        bar.addAction(self.open_action)
        bar.addSeparator()
        for act in self.tool_actions.values():
            bar.addAction(act)
        bar.addAction(self.segment_action)
        bar.addSeparator()
        bar.addWidget(QLabel(" Brush "))
        self.brush_size = QDoubleSpinBox()
        self.brush_size.setObjectName("brushSize")
        self.brush_size.setRange(*BRUSH_MM)
        self.brush_size.setDecimals(1)
        self.brush_size.setSuffix(" mm")
        self.brush_size.setValue(self.canvas.tool_settings.brush_mm)
        self.brush_size.setToolTip("Brush and eraser diameter ([ and ])")
        bar.addWidget(self.brush_size)
        bar.addSeparator()
        bar.addWidget(QLabel(" Window "))
        self.window_combo = QComboBox()
        self.window_combo.setObjectName("windowCombo")
        self.window_combo.setMinimumContentsLength(26)
        self.window_combo.setToolTip("Display window presets (right-drag on the image to adjust)")
        bar.addWidget(self.window_combo)
        bar.addSeparator()
        bar.addAction(self.fit_action)
        bar.addAction(self.actual_action)
        bar.addSeparator()
        bar.addAction(self.undo_action)
        bar.addAction(self.redo_action)

    def _connect(self) -> None:
        c = self.canvas
        c.cursorMoved.connect(self._show_position)
        c.zoomChanged.connect(lambda s: self.zoom_label.setText(f"Zoom {s * 100:.0f} %"))
        c.windowChanged.connect(self._show_window)
        c.filesDropped.connect(self._on_drop)
        c.edited.connect(self._update_undo)
        self.brush_size.valueChanged.connect(self.canvas.set_brush_mm)
        self.window_combo.activated.connect(self._choose_window)
        for controller in (self.gen, self.segments, self.results, self.sweeps):
            controller.failed.connect(self.show_error)
        for controller in (self.gen, self.segments, self.results):
            controller.status.connect(self.statusBar().showMessage)
        self.gen.generated.connect(self._on_generated)
        self.segments.applied.connect(self._update_undo)
        self.sweeps.compareRequested.connect(lambda: self.tabs.setCurrentIndex(1))
        self.strip.resultChosen.connect(self.results.compare)
        self.compare.save_button.clicked.connect(self.results.save_result)
        self.projects.projectChanged.connect(self._on_project_changed)
        self.projects.changed.connect(self._on_project_event)
        self.projects.failed.connect(self.show_error)
        self.gallery.resultSelected.connect(self.results.show_project_result)

    # ------------------------------------------------------------- settings
    def _restore_settings(self) -> None:
        geometry, state = self.settings.window_state()
        if geometry is not None:
            self.restoreGeometry(geometry)
        else:
            self.resize(1440, 900)
        if state is not None:
            self.restoreState(state)
        self.generator.set_models(self.settings.model_folders)
        self.generator.restore(self.settings.generation)
        edit = self.settings.editing
        try:
            self.brush_size.setValue(float(edit.get("brush_mm", self.brush_size.value())))
            self.nodules.stamp_size.setValue(float(edit.get("nodule_mm",
                                                            self.nodules.stamp_size.value())))
            self.layers.opacity.setValue(int(edit.get("opacity", self.layers.opacity.value())))
            self.layers.display.setCurrentIndex(0 if edit.get("fill", True) else 1)
        except (TypeError, ValueError):
            pass
        names = [t.name for t in self.tools]
        tool = edit.get("tool") if edit.get("tool") in names else "Brush"
        self.set_tool(self.tools[names.index(tool)])

    def save_settings(self) -> None:
        self.settings.save_window_state(self.saveGeometry(), self.saveState())
        self.settings.generation = self.generator.saved_state()
        self.settings.editing = {
            "brush_mm": self.brush_size.value(), "nodule_mm": self.nodules.stamp_size.value(),
            "opacity": self.layers.opacity.value(), "fill": self.layers.display.currentIndex() == 0,
            "tool": self.canvas.tool.name if self.canvas.tool else "Brush",
        }
        self.settings.sync()

    # ---------------------------------------------------------------- files
    def choose_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open a radiograph", self.settings.last_folder,
                                              OPEN_FILTER)
        if path:
            self.open_file(path)

    def open_file(self, path: str | Path) -> None:
        """Open ``path`` in the background; the current study stays until the new one is read."""
        if self._open_thread is not None and self._open_thread.isRunning():
            return
        if not self.maybe_save():
            return
        self.statusBar().showMessage(f"Opening {Path(path).name}…")
        thread = OpenThread(path, self)
        thread.opened.connect(self._on_opened)
        thread.failed.connect(self._on_open_failed)
        thread.finished.connect(thread.deleteLater)
        self._open_thread = thread
        thread.start()

    def _on_drop(self, paths: list[str]) -> None:
        """A dropped ``.npz`` or folder is masks for the open study; anything else a radiograph."""
        path = Path(paths[0])
        if self.study is not None and (path.suffix.lower() == ".npz" or path.is_dir()):
            self.load_masks(path)
        else:
            self.open_file(path)

    def _on_opened(self, opened: OpenedStudy) -> None:
        self._open_thread = None
        self.settings.add_recent(opened.path)
        source = opened.study.image.source
        in_project = source is not None and self.projects.study_for(source) is not None
        self.set_study(opened, from_file=True)
        note = "; ".join(opened.notes)
        self.statusBar().showMessage(f"Opened {opened.path.name}" + (f" ({note})" if note else ""),
                                     8000)
        if (self.settings.auto_segment and opened.masks_from is None and not in_project
                and self.study is not None
                and not any(self.study.masks[name].any() for name in ANATOMY
                            if name in self.study.masks)):
            labels = chest_check.check(self.study.image)
            if labels.warning:  # a hip, a leg, a lateral view: no "lungs" painted on it
                self.film_warnings.add(CHEST, labels.warning)
                self.statusBar().showMessage(
                    f"{labels.warning}. No automatic anatomy segmentation "
                    "(Tools ▸ Segment anatomy, Ctrl+Shift+A, segments anyway).", 30000)
            else:
                self.segment_anatomy(automatic=True)

    def _on_open_failed(self, path: Path, message: str) -> None:
        self._open_thread = None
        self.statusBar().clearMessage()
        self.show_error("Cannot open the file", message)

    def set_study(self, opened: OpenedStudy | None, from_file: bool = False) -> None:
        """Show ``opened``; with a project open it becomes (or is found as) a project study:
        fresh from its file it takes the project's masks, otherwise its masks are saved."""
        self.gen.cancel()  # the results of a running generation would belong to a closed study
        self.opened = opened
        study = opened.study if opened else None
        if study is None:
            self.projects.detach_study()
        else:
            try:
                self.projects.attach_study(study, keep_masks=not from_file)
            except (XRayStudioError, OSError) as exc:
                self.show_error("Cannot add the study to the project", str(exc))
        prepared = opened.display() if opened else None
        self.canvas.set_study(study, prepared.lut if prepared else None)
        self.film_warnings.study_opened(study)
        self.layers.set_layers(study.masks.names if study else self.layers.names())
        self.nodules.attach()
        self.results.clear()
        self.compare.set_reference(prepared.reference if prepared else None,
                                   prepared.reference_pixels if prepared else None,
                                   study.image if study else None)
        self.results.load_project_results()
        self.sweeps.study_changed()
        if study is not None:
            study.masks.subscribe(self._on_masks_changed)
        self._fill_windows()
        self._update_undo()
        self._set_study_enabled(study is not None)
        self.synthetic_label.setVisible(bool(opened and opened.synthetic))
        self._update_title()
        self.setWindowModified(False)

    def _update_title(self) -> None:
        study = self.study
        # "[*]" is where Qt shows the unsaved-changes mark (setWindowModified).
        parts = [f"{study.name}[*]"] if study else []
        if self.projects.is_open:
            parts.append(f"project {self.projects.title}")
        title = " — ".join(parts + ["xraystudio"])
        if self.opened is not None and self.opened.synthetic:
            title += " (synthetic)"
        self.setWindowTitle(title)

    def _on_masks_changed(self, layer: str, rect) -> None:
        self._update_undo()
        # A project study is saved to the project after each change: nothing is left unsaved.
        self.setWindowModified(self.projects.study_id is None or not self.projects.writable)

    def maybe_save(self) -> bool:
        """Before the study closes: ask about results in no project, offer to save changed
        masks; False means: do not close."""
        if not self.results.may_discard("closing this radiograph"):
            return False
        self.projects.flush_masks()
        if self.study is None or not self.isWindowModified():
            return True
        answer = QMessageBox.question(
            self, "Unsaved masks", f"Save the changes to the masks of {self.study.name}?",
            QMessageBox.StandardButton.Save | QMessageBox.StandardButton.Discard
            | QMessageBox.StandardButton.Cancel, QMessageBox.StandardButton.Save)
        if answer == QMessageBox.StandardButton.Save:
            self.save_masks()
            return not self.isWindowModified()
        return answer == QMessageBox.StandardButton.Discard

    def _set_study_enabled(self, enabled: bool) -> None:
        for act in (self.save_masks_action, self.save_masks_as_action, self.load_masks_action,
                    self.load_mask_folder_action, self.generate_action, self.segment_action):
            act.setEnabled(enabled)
        self.gen.update_enabled()
        self.save_result_action.setEnabled(self.compare.result is not None)

    @property
    def study(self) -> Study | None:
        return self.opened.study if self.opened else None

    def _replace_masks(self, masks) -> None:
        assert self.opened is not None
        self.opened.study = Study(self.study.image, masks, self.study.name)
        self.set_study(self.opened)

    def choose_masks(self) -> None:
        if self.study is None:
            return
        path, _ = QFileDialog.getOpenFileName(self, "Load masks", self.settings.last_folder,
                                              "Masks (*.npz)")
        if path:
            self.load_masks(path)

    def choose_mask_folder(self) -> None:
        if self.study is None:
            return
        path = QFileDialog.getExistingDirectory(self, "Load a mask folder",
                                                self.settings.last_folder)
        if path:
            self.load_masks(path)

    def load_masks(self, path: str | Path) -> None:
        try:
            masks = load_masks(path, self.study.shape, self.study.spacing_mm)
        except XRayStudioError as exc:
            self.show_error("Cannot load the masks", str(exc))
            return
        self._replace_masks(masks)
        self.statusBar().showMessage(f"Masks loaded from {Path(path).name}", 5000)

    def save_masks(self) -> None:
        if self.study is None:
            return
        source = self.opened.path if self.opened else None
        if source is None:
            self.save_masks_as()
            return
        self._write_masks(mask_sidecar(source) or source.with_name(source.stem + ".masks.npz"))

    def save_masks_as(self) -> None:
        if self.study is None:
            return
        start = str(Path(self.settings.last_folder) / f"{self.study.name}.masks.npz")
        path, _ = QFileDialog.getSaveFileName(self, "Save masks", start, "Masks (*.npz)")
        if path:
            self._write_masks(Path(path))

    def _write_masks(self, path: Path) -> None:
        try:
            save_masks(self.study.masks, path)
        except (XRayStudioError, OSError) as exc:
            self.show_error("Cannot save the masks", str(exc))
            return
        self.setWindowModified(False)
        self.statusBar().showMessage(f"Masks saved to {path}", 5000)

    # ------------------------------------------------------------- editing
    def set_tool(self, tool: Tool) -> None:
        self.canvas.set_tool(tool)
        self.tool_actions[tool.name].setChecked(True)
        self.statusBar().showMessage(f"{tool.name}: {tool.help}", 4000)

    def _set_auto_segment(self, on: bool) -> None:
        self.settings.auto_segment = on
        self.settings.sync()

    def segment_anatomy(self, automatic: bool = False) -> None:
        """Segment the anatomy of the shown study in the background (SegmentationController)."""
        if self.study is not None:
            self.segments.segment(self.study, self.opened.display().reference, automatic)

    def step_brush(self, factor: float) -> None:
        self.brush_size.setValue(min(max(self.brush_size.value() * factor, BRUSH_MM[0]),
                                     BRUSH_MM[1]))

    def undo(self) -> None:
        if self.study is not None and self.canvas.tool is not None:
            self.canvas.tool.cancel(self.canvas)
        if self.study is not None and self.study.masks.undo():
            self._update_undo()

    def redo(self) -> None:
        if self.study is not None and self.study.masks.redo():
            self._update_undo()

    def _update_undo(self) -> None:
        masks = self.study.masks if self.study else None
        self.undo_action.setEnabled(bool(masks and masks.can_undo))
        self.redo_action.setEnabled(bool(masks and masks.can_redo))
        # The menu names the step; the toolbar button (icon text) stays short.
        self.undo_action.setText(f"&Undo {masks.undo_label}" if masks and masks.can_undo
                                 else "&Undo")
        self.redo_action.setText(f"&Redo {masks.redo_label}" if masks and masks.can_redo
                                 else "&Redo")
        self.undo_action.setIconText("Undo")
        self.redo_action.setIconText("Redo")

    def _show_position(self, x: float, y: float) -> None:
        study = self.study
        if study is None or math.isnan(x):
            self.position.clear()
            return
        xi, yi = int(x), int(y)
        sy, sx = study.spacing_mm
        value = float(study.image.values[yi, xi])
        self.position.setText(f"x {xi}, y {yi} px  ·  {xi * sx:.1f}, {yi * sy:.1f} mm  ·  "
                              f"value {value:g}")

    def _fill_windows(self) -> None:
        self.window_combo.clear()
        if self.study is not None:
            for w in self.study.image.windows:
                self.window_combo.addItem(w.label, w)
            self._show_window(self.canvas.image.window)

    def _show_window(self, window: Window) -> None:
        index = self.window_combo.findText(window.label)
        if index < 0:
            manual = self.window_combo.findData("manual", Qt.ItemDataRole.UserRole + 1)
            if manual < 0:
                self.window_combo.addItem("")
                manual = self.window_combo.count() - 1
                self.window_combo.setItemData(manual, "manual", Qt.ItemDataRole.UserRole + 1)
            self.window_combo.setItemText(manual, window.label)
            self.window_combo.setItemData(manual, window)
            index = manual
        self.window_combo.setCurrentIndex(index)

    def _choose_window(self, index: int) -> None:
        window = self.window_combo.itemData(index)
        if isinstance(window, Window):
            self.canvas.set_window(window)

    def _on_generated(self, results: list, masks: MaskStack) -> None:
        # Compare follows the newest result (it kept showing #1 when results came in later).
        self.results.add_generated(results, masks, select=True)

    # ------------------------------------------------------------- projects
    def choose_new_project(self) -> None:
        # A save dialog, not a folder picker: the project folder is usually one to be made.
        folder, _ = QFileDialog.getSaveFileName(
            self, "New project: name a new folder (or choose an empty one)",
            self.settings.last_folder)
        if folder:
            self.new_project(folder)

    def new_project(self, folder: str | Path) -> bool:
        """Create a project in ``folder``; the radiograph on the canvas becomes its first study
        (with the session's results, if the user keeps them)."""
        kept = self._before_project_change("creating the project")
        if kept is None:
            return False
        try:
            project = Project.create(folder)
        except (XRayStudioError, OSError) as exc:
            self.show_error("Cannot create the project", str(exc))
            return False
        self._use_project(project, adopt_open_study=True)
        self._keep(kept)
        return True

    def choose_project(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open a project folder",
                                                  self.settings.last_folder)
        if folder:
            self.open_project(folder)

    def open_project(self, folder: str | Path) -> bool:
        """Open a project (offering to restore one not closed cleanly) and its latest study."""
        folder = Path(folder)
        current = self.projects.project
        if current is not None and current.folder == folder.absolute():
            return True  # reopening it here would take our own session for a crash
        kept = self._before_project_change("opening the project")
        if kept is None:
            return False
        try:
            project = Project.open(folder)
        except (XRayStudioError, OSError) as exc:
            self.show_error("Cannot open the project", str(exc))
            return False
        if project.needs_restore:
            choice = restore_dialog.ask_restore(self, folder, project.recovery)
            try:
                if choice is restore_dialog.RestoreChoice.RESTORE:
                    project.restore()
                elif choice is restore_dialog.RestoreChoice.READ_ONLY:
                    # The writable one is dropped unclosed: the crash mark stays for next time.
                    project = Project.open(folder, read_only=True)
                else:
                    return False
            except (XRayStudioError, OSError) as exc:
                self.show_error("Cannot restore the project", str(exc))
                return False
        # Kept results stay with the study on the canvas, which joins the project as its latest.
        self._use_project(project, adopt_open_study=bool(kept))
        if kept:
            self._keep(kept)
        elif project.studies:
            try:
                self.open_file(project.source_path(project.studies[-1].id))
            except XRayStudioError as exc:
                self.show_error("Source file missing", str(exc))
        return True

    def _before_project_change(self, verb: str) -> Kept | None:
        """What to keep of this session across a project switch (None: the user cancelled)."""
        kept = self.results.before_project_change(verb)
        if kept:
            kept.sweep = self.sweeps.session()
        return kept

    def _keep(self, kept: Kept) -> None:
        if kept.sweep is not None:
            self.sweeps.keep_session(kept.sweep)
        self.results.keep(kept)

    def _use_project(self, project: Project, adopt_open_study: bool) -> None:
        """Make ``project`` current; a new project adopts the radiograph on the canvas, an
        opened one starts from its own studies."""
        self.projects.set_project(project)
        self.settings.add_recent_project(project.folder)
        self.settings.last_folder = str(project.folder.parent)
        if self.opened is not None:
            self.set_study(self.opened if adopt_open_study else None)
        self.statusBar().showMessage(f"Project {project.name} at {project.folder}", 8000)

    def save_project_as(self) -> None:
        if not self.projects.writable:
            return
        folder, _ = QFileDialog.getSaveFileName(self, "Save the project as (a new folder)",
                                                self.settings.last_folder)
        if folder:
            try:
                self.projects.save_as(folder)
            except (XRayStudioError, OSError) as exc:
                self.show_error("Cannot save the project", str(exc))
                return
            self.settings.add_recent_project(folder)

    def close_project(self) -> None:
        self.projects.close()

    def _on_project_changed(self) -> None:
        is_open = self.projects.is_open
        self.save_project_as_action.setEnabled(self.projects.writable)
        self.close_project_action.setEnabled(is_open)
        self.export_action.setEnabled(is_open)
        self._update_title()

    def _on_project_event(self, event: ProjectEvent) -> None:
        if event.kind == "moved":
            self._update_title()

    def show_gallery(self) -> None:
        self.gallery_dock.show()
        self.gallery_dock.raise_()
        self.gallery.list.setFocus()

    def show_export(self) -> ExportDialog | None:
        """The Export… dialog (non-modal, so the window stays usable while it runs)."""
        project = self.projects.project
        if project is None:
            return None
        if self.export_dialog is None or self.export_dialog.thread is None:
            self.projects.flush_masks()
            self.export_dialog = ExportDialog(
                project.folder, self.settings.last_folder, self,
                flagged=lambda: [r.id for r in project.results(decision="accepted")
                                 if failed_chest_check(r.provenance)])
        self.export_dialog.open()
        return self.export_dialog

    # ---------------------------------------------------------------- help
    def show_error(self, title: str, text: str) -> None:
        """A window-modal message that does not block the event loop (workers keep running)."""
        box = QMessageBox(QMessageBox.Icon.Warning, title, text, QMessageBox.StandardButton.Ok,
                          self)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.last_error = box
        box.open()

    def shortcut_rows(self) -> list[tuple[str, str]]:
        """(keys, what they do) for every action with a shortcut, then the mouse."""
        return help_dialog.shortcut_rows(self)

    def show_help(self) -> None:
        help_dialog.show_help(self)

    def show_about(self) -> None:
        QMessageBox.about(self, "About xraystudio",
                          f"xraystudio {__version__}\n\nSynthetic chest X-rays from segmentation "
                          "masks. Generated images are synthetic and not for diagnosis.")

    # ---------------------------------------------------------------- close
    def closeEvent(self, event: QCloseEvent) -> None:
        if not self.maybe_save():
            event.ignore()
            return
        self.save_settings()
        self.gallery.shutdown()
        self.sweeps.shutdown()
        self.results.stop(wait_ms=5000)
        if self.export_dialog is not None and self.export_dialog.thread is not None:
            self.export_dialog.thread.cancel()
            self.export_dialog.thread.wait(30_000)
        self.gen.shutdown()
        self.projects.close()
        if self._open_thread is not None:
            self._open_thread.wait(10_000)
        self.segments.shutdown()
        event.accept()


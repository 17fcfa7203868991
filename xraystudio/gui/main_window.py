"""The main window: canvas and comparison in the centre, panels docked around, and the actions
(menus, toolbar, single-key shortcuts) that tie them to the study and the controllers (each
given its widgets; they answer through signals and never import the window).
"""

from __future__ import annotations

import logging
from pathlib import Path

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QAction, QActionGroup, QCloseEvent, QKeySequence
from PySide6.QtWidgets import (
    QDockWidget,
    QDoubleSpinBox,
    QFileDialog,
    QLabel,
    QMainWindow,
    QMenu,
    QMessageBox,
    QTabWidget,
    QToolBar,
    QWidget,
)

from xraystudio import __version__
from xraystudio.curation.project import ProjectEvent
from xraystudio.errors import XRayStudioError
from xraystudio.gui import recent_menus
from xraystudio.gui.canvas.tools import Tool, all_tools
from xraystudio.gui.canvas.view import CanvasView
from xraystudio.gui.dialogs import help as help_dialog
from xraystudio.gui.dialogs.chest_confirm import failed_chest_check
from xraystudio.gui.dialogs.export import ExportDialog
from xraystudio.gui.dock_sizes import BottomDockSizer, scrolling
from xraystudio.gui.film_warnings import FilmWarnings
from xraystudio.gui.generation_controller import GenerationController
from xraystudio.gui.mask_files import MaskFiles
from xraystudio.gui.panels.gallery import GalleryPanel
from xraystudio.gui.panels.generation import GenerationPanel
from xraystudio.gui.panels.layers import LayersPanel, layer_title
from xraystudio.gui.panels.nodules import NodulesPanel
from xraystudio.gui.panels.results import CompareView, ResultsStrip
from xraystudio.gui.panels.warning_banner import with_banner
from xraystudio.gui.position_label import PositionLabel
from xraystudio.gui.project_controller import ProjectController
from xraystudio.gui.project_switch import ProjectSwitch
from xraystudio.gui.results_controller import ResultsController
from xraystudio.gui.segmentation_controller import SegmentationController
from xraystudio.gui.settings import AppSettings
from xraystudio.gui.shortcut_guard import ShortcutGuard
from xraystudio.gui.sweep_controller import SweepController
from xraystudio.gui.window_presets import WindowPresets
from xraystudio.gui.workers import OpenedStudy, OpenThread
from xraystudio.masks import STRUCTURES, MaskStack
from xraystudio.study import Study

log = logging.getLogger(__name__)

OPEN_FILTER = ("Radiographs (*.dcm *.dicom *.png *.jpg *.jpeg *.tif *.tiff *.bmp);;"
               "DICOM (*.dcm *.dicom);;All files (*)")
BRUSH_MM = (0.5, 100.0)


def fill(target: QMenu | QToolBar, items: list) -> None:
    """Add actions, submenus and widgets to a menu or toolbar in order; None is a separator."""
    for item in items:
        if item is None:
            target.addSeparator()
        elif isinstance(item, QMenu):
            target.addMenu(item)
        elif isinstance(item, QWidget):
            target.addWidget(item)
        else:
            target.addAction(item)


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
            "Save &result…", None, "Ctrl+Shift+S",
            "Save the compared result with its provenance JSON (an edit at full size in the "
            "source's format)")
        self.cancel_action = self._action("&Cancel generation")
        self.gen = GenerationController(self.generator, self.cancel_action, self.settings,
                                        self.film_warnings, study, self)
        self.segments = SegmentationController(self.film_warnings, study, self)
        # the strip, Compare, stored results, saving
        self.results = ResultsController(self.strip, self.compare, self.nodules,
                                         self.save_result_action, self.projects,
                                         self.film_warnings, self.settings, study, self)
        self.sweeps = SweepController(self.tabs, self.gen, self.results, self.projects, self.strip,
                                      self.settings, study, self)  # the Sweep tab
        self.switch = ProjectSwitch(self.projects, self.results, self.sweeps, self.settings, self)
        self.mask_files = MaskFiles(self.settings, study,
                                    lambda: self.opened.path if self.opened else None, self)

        self.position = PositionLabel()
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

    def _action(self, text: str, slot=None, shortcut=None, tip: str = "") -> QAction:
        """An action of the window (``slot`` None: its controller connects it)."""
        action = QAction(text, self)
        if shortcut is not None:
            shortcuts = shortcut if isinstance(shortcut, list) else [shortcut]
            action.setShortcuts([QKeySequence(s) for s in shortcuts])
        action.setStatusTip(tip)
        if slot is not None:
            action.triggered.connect(slot)
        self.addAction(action)  # shortcuts work while docks have focus too
        return action

    def _build_actions(self) -> None:
        a = self._action
        self.open_action = a("&Open…", self.choose_file, QKeySequence.StandardKey.Open,
                             "Open a DICOM or image file")
        self.load_masks_action = a("Load &masks…", self.mask_files.choose_masks, None,
                                   "Load masks saved as .npz")
        self.load_mask_folder_action = a("Load mask &folder…", self.mask_files.choose_mask_folder, None,
                                         "Load a folder with one PNG per layer")
        self.save_masks_action = a("&Save masks", self.mask_files.save_masks, QKeySequence.StandardKey.Save,
                                   "Save the masks beside the radiograph (<name>.masks.npz)")
        self.save_masks_as_action = a("Save masks &as…", self.mask_files.save_masks_as, None)
        self.quit_action = a("&Quit", self.close, QKeySequence.StandardKey.Quit)
        self.new_project_action = a("&New project…", self.switch.choose_new_project, None,
                                    "Create a project folder: studies, results and decisions")
        self.open_project_action = a("Open &project…", self.switch.choose_project, "Ctrl+Shift+O")
        self.save_project_as_action = a("Save project &as…", self.switch.save_project_as, None,
                                        "Copy the project to a new folder and continue there")
        self.close_project_action = a("&Close project", self.projects.close, None)
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

        self.recent_menu = QMenu("Open &recent", self)
        self.recent_menu.aboutToShow.connect(lambda: recent_menus.fill_recent(
            self.recent_menu, self.settings.recent_files, self.open_file,
            self.settings.clear_recent, "No recent files"))
        self.recent_projects_menu = QMenu("Recent projec&ts", self)
        self.recent_projects_menu.aboutToShow.connect(lambda: recent_menus.fill_recent(
            self.recent_projects_menu, self.settings.recent_projects, self.switch.open_project,
            self.settings.clear_recent_projects, "No recent projects"))
        menu, tools = self.menuBar(), list(self.tool_actions.values())
        fill(menu.addMenu("&File"), [
            self.open_action, self.recent_menu, None, self.load_masks_action,
            self.load_mask_folder_action, self.save_masks_action, self.save_masks_as_action, None,
            self.new_project_action, self.open_project_action, self.recent_projects_menu,
            self.save_project_as_action, self.close_project_action, self.export_action, None,
            self.save_result_action, None, self.quit_action])
        fill(menu.addMenu("&Edit"), [self.undo_action, self.redo_action, None, self.segment_action,
                                     None, self.smaller_action, self.bigger_action])
        fill(menu.addMenu("&View"), [
            self.fit_action, self.actual_action, self.zoom_in_action, self.zoom_out_action, None,
            self.masks_action, self.outline_action, None, self.edit_tab_action,
            self.compare_tab_action, self.sweeps.sweep_tab_action, self.gallery_action, None,
            *(dock.toggleViewAction() for dock in self.findChildren(QDockWidget))])
        fill(menu.addMenu("&Tools"), [*tools, None, *self.layer_actions, None,
                                      self.auto_segment_action])
        fill(menu.addMenu("&Generate"), [self.generate_action, self.cancel_action])
        fill(menu.addMenu("&Help"), [self.help_action, self.about_action])

        self.brush_size = QDoubleSpinBox()
        self.brush_size.setObjectName("brushSize")
        self.brush_size.setRange(*BRUSH_MM)
        self.brush_size.setDecimals(1)
        self.brush_size.setSuffix(" mm")
        self.brush_size.setValue(self.canvas.tool_settings.brush_mm)
        self.brush_size.setToolTip("Brush and eraser diameter ([ and ])")
        self.window_combo = WindowPresets()
        bar = self.addToolBar("Main")
        bar.setObjectName("mainToolbar")
        fill(bar, [self.open_action, None, *tools, self.segment_action, None, QLabel(" Brush "),
                   self.brush_size, None, QLabel(" Window "), self.window_combo, None,
                   self.fit_action, self.actual_action, None, self.undo_action, self.redo_action])

    def _connect(self) -> None:
        c = self.canvas
        c.cursorMoved.connect(lambda x, y: self.position.show_at(self.study, x, y))
        c.zoomChanged.connect(lambda s: self.zoom_label.setText(f"Zoom {s * 100:.0f} %"))
        c.windowChanged.connect(self.window_combo.show_window)
        c.filesDropped.connect(self._on_drop)
        c.edited.connect(self._update_undo)
        self.brush_size.valueChanged.connect(self.canvas.set_brush_mm)
        self.window_combo.windowChosen.connect(self.canvas.set_window)
        for controller in (self.gen, self.segments, self.results, self.sweeps, self.switch,
                           self.mask_files):
            controller.failed.connect(self.show_error)
        for controller in (self.gen, self.segments, self.results, self.switch, self.mask_files):
            controller.status.connect(self.statusBar().showMessage)
        self.mask_files.loaded.connect(self._replace_masks)
        self.mask_files.saved.connect(lambda: self.setWindowModified(False))
        self.switch.switched.connect(self._on_switched)
        self.switch.openRequested.connect(self.open_file)
        # Compare follows the newest result (it kept showing #1 when results came in later).
        self.gen.generated.connect(lambda results, masks: self.results.add_generated(
            results, masks, select=True))
        self.segments.applied.connect(self._update_undo)
        self.sweeps.compareRequested.connect(lambda: self.tabs.setCurrentIndex(1))
        self.strip.resultChosen.connect(self.results.compare)
        self.compare.save_button.clicked.connect(self.results.save_result)
        self.save_result_action.triggered.connect(self.results.save_result)
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
            self.mask_files.load_masks(path)
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
                and self.study is not None):
            self.segments.segment_unpainted(self.study, self.opened.display().reference)

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
        self.window_combo.set_windows(study.image.windows if study else [],
                                      self.canvas.image.window if study else None)
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
            self.mask_files.save_masks()
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

    def _replace_masks(self, masks: MaskStack) -> None:
        assert self.opened is not None
        self.opened.study = Study(self.study.image, masks, self.study.name)
        self.set_study(self.opened)

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

    # ------------------------------------------------------------- projects
    def _on_switched(self, adopt_open_study: bool) -> None:
        if self.opened is not None:
            self.set_study(self.opened if adopt_open_study else None)

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


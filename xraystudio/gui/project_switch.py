"""Creating, opening and copying projects from the File menu: the questions asked on the way
(keep this session's results? restore a project not closed cleanly?) and what the switch
keeps. Given the controllers it works with when built; the window follows its signals."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QFileDialog, QWidget

from xraystudio.curation.project import Project
from xraystudio.errors import XRayStudioError
from xraystudio.gui.dialogs import restore as restore_dialog
from xraystudio.gui.project_controller import ProjectController
from xraystudio.gui.results_controller import Kept, ResultsController
from xraystudio.gui.settings import AppSettings
from xraystudio.gui.sweep_controller import SweepController


class ProjectSwitch(QObject):
    failed = Signal(str, str)  # title, message
    status = Signal(str, int)  # a status line message, how long to show it (ms)
    #: A project became current; True: the study on the canvas joins it, False: it closes.
    switched = Signal(bool)
    openRequested = Signal(object)  # the path of the opened project's latest study

    def __init__(self, projects: ProjectController, results: ResultsController,
                 sweeps: SweepController, settings: AppSettings, parent: QWidget) -> None:
        super().__init__(parent)
        self.projects, self.results, self.sweeps, self.settings = projects, results, sweeps, settings

    def choose_new_project(self) -> None:
        # A save dialog, not a folder picker: the project folder is usually one to be made.
        folder, _ = QFileDialog.getSaveFileName(
            self.parent(), "New project: name a new folder (or choose an empty one)",
            self.settings.last_folder)
        if folder:
            self.new_project(folder)

    def new_project(self, folder: str | Path) -> bool:
        """Create a project in ``folder``; the radiograph on the canvas becomes its first study
        (with the session's results, if the user keeps them)."""
        kept = self._before_switch("creating the project")
        if kept is None:
            return False
        try:
            project = Project.create(folder)
        except (XRayStudioError, OSError) as exc:
            self.failed.emit("Cannot create the project", str(exc))
            return False
        self._use(project, adopt_open_study=True)
        self._keep(kept)
        return True

    def choose_project(self) -> None:
        folder = QFileDialog.getExistingDirectory(self.parent(), "Open a project folder",
                                                  self.settings.last_folder)
        if folder:
            self.open_project(folder)

    def open_project(self, folder: str | Path) -> bool:
        """Open a project (offering to restore one not closed cleanly) and its latest study."""
        folder = Path(folder)
        current = self.projects.project
        if current is not None and current.folder == folder.absolute():
            return True  # reopening it here would take our own session for a crash
        kept = self._before_switch("opening the project")
        if kept is None:
            return False
        try:
            project = Project.open(folder)
        except (XRayStudioError, OSError) as exc:
            self.failed.emit("Cannot open the project", str(exc))
            return False
        if project.needs_restore:
            choice = restore_dialog.ask_restore(self.parent(), folder, project.recovery)
            try:
                if choice is restore_dialog.RestoreChoice.RESTORE:
                    project.restore()
                elif choice is restore_dialog.RestoreChoice.READ_ONLY:
                    # The writable one is dropped unclosed: the crash mark stays for next time.
                    project = Project.open(folder, read_only=True)
                else:
                    return False
            except (XRayStudioError, OSError) as exc:
                self.failed.emit("Cannot restore the project", str(exc))
                return False
        # Kept results stay with the study on the canvas, which joins the project as its latest.
        self._use(project, adopt_open_study=bool(kept))
        if kept:
            self._keep(kept)
        elif project.studies:
            try:
                self.openRequested.emit(project.source_path(project.studies[-1].id))
            except XRayStudioError as exc:
                self.failed.emit("Source file missing", str(exc))
        return True

    def _before_switch(self, verb: str) -> Kept | None:
        """What to keep of this session across the switch (None: the user cancelled)."""
        kept = self.results.before_project_change(verb)
        if kept:
            kept.sweep = self.sweeps.session()
        return kept

    def _keep(self, kept: Kept) -> None:
        if kept.sweep is not None:
            self.sweeps.keep_session(kept.sweep)
        self.results.keep(kept)

    def _use(self, project: Project, adopt_open_study: bool) -> None:
        """Make ``project`` current; a new project adopts the radiograph on the canvas, an
        opened one starts from its own studies."""
        self.projects.set_project(project)
        self.settings.add_recent_project(project.folder)
        self.settings.last_folder = str(project.folder.parent)
        self.switched.emit(adopt_open_study)
        self.status.emit(f"Project {project.name} at {project.folder}", 8000)

    def save_project_as(self) -> None:
        if not self.projects.writable:
            return
        folder, _ = QFileDialog.getSaveFileName(self.parent(), "Save the project as (a new folder)",
                                                self.settings.last_folder)
        if folder:
            try:
                self.projects.save_as(folder)
            except (XRayStudioError, OSError) as exc:
                self.failed.emit("Cannot save the project", str(exc))
                return
            self.settings.add_recent_project(folder)

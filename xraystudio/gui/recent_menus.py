"""The File menu's Open recent and Recent projects lists, filled each time they open (moved out
of the main window, which only connects them)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from xraystudio.gui.main_window import MainWindow


def fill_recent(w: MainWindow) -> None:
    menu = w.recent_menu
    menu.clear()
    recent = w.settings.recent_files
    for path in recent:
        menu.addAction(Path(path).name, lambda p=path: w.open_file(p)).setToolTip(path)
    if recent:
        menu.addSeparator()
        menu.addAction("Clear list", w.settings.clear_recent)
    else:
        menu.addAction("No recent files").setEnabled(False)


def fill_recent_projects(w: MainWindow) -> None:
    menu = w.recent_projects_menu
    menu.clear()
    recent = w.settings.recent_projects
    for folder in recent:
        menu.addAction(Path(folder).name, lambda f=folder: w.open_project(f)).setToolTip(folder)
    if recent:
        menu.addSeparator()
        menu.addAction("Clear list", w.settings.clear_recent_projects)
    else:
        menu.addAction("No recent projects").setEnabled(False)

"""The File menu's Open recent and Recent projects lists, filled each time they open (moved out
of the main window, which only connects them)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtWidgets import QMenu


def fill_recent(menu: QMenu, recent: list[str], open_: Callable[[str], object],
                clear: Callable[[], None], empty: str) -> None:
    """``recent`` paths as entries that ``open_`` them, then Clear list (``clear``); ``empty``
    is the disabled entry shown when there are none."""
    menu.clear()
    for path in recent:
        menu.addAction(Path(path).name, lambda p=path: open_(p)).setToolTip(path)
    if recent:
        menu.addSeparator()
        menu.addAction("Clear list", clear)
    else:
        menu.addAction(empty).setEnabled(False)

"""The question asked when a project was not closed cleanly.

Why a module-level function: it is the one modal question on the opening path, and tests (and
other front ends) replace it to answer without a user.
"""

from __future__ import annotations

import enum
from pathlib import Path

from PySide6.QtWidgets import QMessageBox, QWidget

from xraystudio.curation.project import Recovery


class RestoreChoice(enum.Enum):
    RESTORE = "restore"  # keep every saved action, delete leftovers of the interrupted one
    READ_ONLY = "read_only"  # look without changing anything
    CANCEL = "cancel"


def recovery_text(recovery: Recovery) -> str:
    """What the core found, in words."""
    lines = []
    if recovery.last_action:
        when = f" ({recovery.last_time})" if recovery.last_time else ""
        lines.append(f"The last saved action was: {recovery.last_action}{when}. "
                     "Everything up to it is in the project.")
    if recovery.leftovers:
        names = ", ".join(p.name for p in recovery.leftovers[:5])
        more = f" and {len(recovery.leftovers) - 5} more" if len(recovery.leftovers) > 5 else ""
        lines.append(f"Restoring deletes {len(recovery.leftovers)} leftover file(s) of an "
                     f"interrupted action: {names}{more}.")
    if recovery.unreadable:
        lines.append(f"{len(recovery.unreadable)} result record(s) could not be read and are "
                     "skipped (left in place).")
    return "\n\n".join(lines)


def ask_restore(parent: QWidget | None, folder: Path, recovery: Recovery) -> RestoreChoice:
    """Ask whether to restore a project whose last session ended without closing it."""
    box = QMessageBox(QMessageBox.Icon.Warning, "Restore project?",
                      f"xraystudio did not close cleanly the last time {folder.name} was open. "
                      "Restore?", QMessageBox.StandardButton.NoButton, parent)
    box.setInformativeText(recovery_text(recovery))
    restore = box.addButton("Restore", QMessageBox.ButtonRole.AcceptRole)
    read_only = box.addButton("Open read-only", QMessageBox.ButtonRole.ActionRole)
    box.addButton(QMessageBox.StandardButton.Cancel)
    box.setDefaultButton(restore)
    box.exec()
    clicked = box.clickedButton()
    if clicked is restore:
        return RestoreChoice.RESTORE
    if clicked is read_only:
        return RestoreChoice.READ_ONLY
    return RestoreChoice.CANCEL

"""The questions asked before an action would drop results that are in no project yet
(generated, edited or swept without a project open): creating or opening a project (keep them
in it, discard, cancel), opening another radiograph or quitting (discard or cancel).

Why a question: switching projects starts the results strip over, so without one those results
would vanish. Keeping them stores them (with their masks and provenance) in the project being
created or opened; only the user's choice discards them. Module-level functions, so tests
and other front ends can answer without a user.
"""

from __future__ import annotations

import enum

from PySide6.QtWidgets import QMessageBox, QWidget


class KeepChoice(enum.Enum):
    KEEP = "keep"  # store them in the new project
    DISCARD = "discard"
    CANCEL = "cancel"  # neither create nor open the project


def ask_keep(parent: QWidget | None, count: int, verb: str) -> KeepChoice:
    """Ask what to do with ``count`` unsaved results before ``verb`` ("creating the project")."""
    plural = "" if count == 1 else "s"
    box = QMessageBox(QMessageBox.Icon.Question, "Keep this session's results?",
                      f"This session has {count} result{plural} that {'is' if count == 1 else 'are'}"
                      f" in no project yet.", QMessageBox.StandardButton.NoButton, parent)
    box.setInformativeText(f"Keep {'it' if count == 1 else 'them'} in the project (stored with "
                           f"{'its' if count == 1 else 'their'} masks and provenance) before "
                           f"{verb}, or discard {'it' if count == 1 else 'them'}?")
    keep = box.addButton("Keep in the project", QMessageBox.ButtonRole.AcceptRole)
    discard = box.addButton("Discard", QMessageBox.ButtonRole.DestructiveRole)
    box.addButton(QMessageBox.StandardButton.Cancel)
    box.setDefaultButton(keep)
    box.exec()
    clicked = box.clickedButton()
    if clicked is keep:
        return KeepChoice.KEEP
    if clicked is discard:
        return KeepChoice.DISCARD
    return KeepChoice.CANCEL


def ask_discard(parent: QWidget | None, count: int, verb: str) -> bool:
    """Ask before ``verb`` ("opening another radiograph", "quitting") drops ``count`` results
    that are in no project (there is no project to keep them in); True means go on."""
    plural = "" if count == 1 else "s"
    answer = QMessageBox.question(
        parent, "Discard this session's results?",
        f"{count} result{plural} of this session {'is' if count == 1 else 'are'} in no project "
        f"and will be lost by {verb}. Discard {'it' if count == 1 else 'them'}?\n\n"
        "To keep them, cancel and create a project (File ▸ New project…), or save a result "
        "(File ▸ Save result…).",
        QMessageBox.StandardButton.Discard | QMessageBox.StandardButton.Cancel,
        QMessageBox.StandardButton.Cancel)
    return answer == QMessageBox.StandardButton.Discard

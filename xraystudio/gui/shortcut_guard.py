"""Single-key shortcuts (N, F, H, 1-5 …) while a text field has the keyboard focus.

Qt gives a key to the focused text field before any shortcut, which is right for a note or a
filter but left the user with nothing when the field could not take the key: "N" in the brush
size box was rejected by the number field and the Nodule tool did not come either, silently.
This filter lets a letter go to its shortcut when the focus is in a number field (spin boxes
take no letters) and, where the key went into a text field, says so in the status bar with how
to reach the shortcut.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtGui import QAction, QKeyEvent, QKeySequence
from PySide6.QtWidgets import QAbstractSpinBox, QApplication, QLineEdit, QStatusBar, QWidget

#: Keys a number field uses itself (digits, separators, signs are never taken from it).
NUMBER_KEYS = set("0123456789.,-+eE ")


class ShortcutGuard(QObject):
    """Installed on the application for ``window`` (its actions, its status bar)."""

    def __init__(self, window: QWidget, status: QStatusBar) -> None:
        super().__init__(window)
        self.window, self.status = window, status
        QApplication.instance().installEventFilter(self)

    def _action_for(self, key: str) -> QAction | None:
        sequence = QKeySequence(key.upper())
        for action in self.window.actions():
            if action.isEnabled() and any(s.matches(sequence) == QKeySequence.SequenceMatch.ExactMatch
                                          for s in action.shortcuts()):
                return action
        return None

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt naming)
        if event.type() != QEvent.Type.ShortcutOverride or not isinstance(event, QKeyEvent):
            return False
        if event.modifiers() not in (Qt.KeyboardModifier.NoModifier,
                                     Qt.KeyboardModifier.ShiftModifier):
            return False
        text = event.text()
        if len(text) != 1 or not text.isprintable() or not isinstance(watched, QWidget):
            return False
        if watched.window() is not self.window:
            return False  # a dialog's field: its keys are its own
        spin = watched if isinstance(watched, QAbstractSpinBox) else watched.parent()
        action = self._action_for(text)
        if action is None:
            return False
        if isinstance(spin, QAbstractSpinBox) and text not in NUMBER_KEYS:
            event.ignore()  # not for the number field: the shortcut gets it
            return True
        if isinstance(watched, QLineEdit) and not watched.isReadOnly():
            name = action.text().replace("&", "")
            self.status.showMessage(
                f"“{text}” was typed into the text field; to use its shortcut ({name}), click "
                "the image first", 6000)
        return False

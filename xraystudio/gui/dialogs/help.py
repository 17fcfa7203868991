"""Help ▸ Keyboard and mouse: every action with a shortcut (tools included), then the mouse."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QTextBrowser, QVBoxLayout, QWidget

MOUSE_HELP = (
    ("Wheel", "Zoom about the cursor"),
    ("Middle drag, or Space + drag", "Pan"),
    ("Right drag", "Window/level: left-right width, up-down level"),
    ("Left button", "Use the active tool"),
    ("Double-click (polygon)", "Close and fill the polygon"),
    ("Esc / Backspace (polygon)", "Cancel / remove the last vertex"),
    ("Delete (nodule list)", "Delete the selected nodule"),
)


def shortcut_rows(window: QWidget) -> list[tuple[str, str]]:
    """(keys, what they do) for every action of ``window`` with a shortcut, then the mouse."""
    rows = []
    for act in window.actions():
        keys = ", ".join(s.toString(QKeySequence.SequenceFormat.NativeText)
                         for s in act.shortcuts())
        if keys:
            text = act.text().replace("&", "").rstrip("…")
            tip = act.statusTip()
            rows.append((keys, f"{text}: {tip}" if tip and act.isCheckable() else text))
    return rows + [(k, v) for k, v in MOUSE_HELP]


def show_help(window: QWidget) -> QDialog:
    dialog = QDialog(window)
    dialog.setWindowTitle("Keyboard and mouse")
    text = QTextBrowser()
    rows = "".join(f"<tr><td><b>{k}</b></td><td>&nbsp;&nbsp;{v}</td></tr>"
                   for k, v in shortcut_rows(window))
    text.setHtml(f"<table>{rows}</table>")
    buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
    buttons.rejected.connect(dialog.reject)
    layout = QVBoxLayout(dialog)
    layout.addWidget(text)
    layout.addWidget(buttons)
    dialog.resize(620, 640)
    dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    dialog.open()
    return dialog

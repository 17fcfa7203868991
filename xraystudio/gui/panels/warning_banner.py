"""A banner over the canvas that keeps the warnings about the open film until they are read.

Why not the status bar: "pixel spacing assumed" (every mm value rests on it) and "no plausible
lungs" were overwritten by the next message seconds later. Each warning here stays until the
user dismisses it (✕); dismissing hides it, it does not make it untrue (the results' provenance
still records it).
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QToolButton, QVBoxLayout, QWidget


def with_banner(widget: QWidget) -> tuple[QWidget, WarningBanner]:
    """``widget`` (the canvas) under a banner of its own: the page holding both, and the banner."""
    page = QWidget()
    layout = QVBoxLayout(page)
    layout.setContentsMargins(0, 0, 0, 0)
    layout.setSpacing(0)
    banner = WarningBanner()
    layout.addWidget(banner)
    layout.addWidget(widget, 1)
    return page, banner


class WarningBanner(QFrame):
    """One row per warning (key, text), each with a dismiss button; hidden when none is left."""

    dismissed = Signal(str)  # the key of the warning the user dismissed

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("warningBanner")
        self.setStyleSheet("#warningBanner { background: #fff3cd; border-bottom: 1px solid "
                           "#e0b84c; } #warningBanner QLabel { color: #5c4400; }")
        self._layout = QVBoxLayout(self)
        self._layout.setContentsMargins(8, 4, 4, 4)
        self._layout.setSpacing(2)
        self.rows: dict[str, tuple[QWidget, QLabel]] = {}
        self.setVisible(False)

    def set_warning(self, key: str, text: str) -> None:
        """Show (or replace) the warning ``key``."""
        if key in self.rows:
            self.rows[key][1].setText(f"⚠ {text}")
        else:
            row = QWidget()
            line = QHBoxLayout(row)
            line.setContentsMargins(0, 0, 0, 0)
            label = QLabel(f"⚠ {text}")
            label.setWordWrap(True)
            label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            close = QToolButton()
            close.setText("✕")
            close.setAutoRaise(True)
            close.setToolTip("Dismiss (the results made from this film still record it)")
            close.clicked.connect(lambda _=False, k=key: self.dismiss(k))
            line.addWidget(label, 1)
            line.addWidget(close, 0, Qt.AlignmentFlag.AlignTop)
            self._layout.addWidget(row)
            self.rows[key] = (row, label)
        self.setVisible(True)

    def text(self, key: str) -> str | None:
        row = self.rows.get(key)
        return None if row is None else row[1].text()

    def dismiss(self, key: str) -> None:
        row = self.rows.pop(key, None)
        if row is not None:
            row[0].deleteLater()
            self.dismissed.emit(key)
        self.setVisible(bool(self.rows))

    def clear(self) -> None:
        for key in list(self.rows):
            row = self.rows.pop(key)
            row[0].deleteLater()
        self.setVisible(False)

"""The toolbar's display-window presets: the image's windows, plus the one dragged by hand."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QComboBox, QWidget

from xraystudio.image import Window

_MANUAL = Qt.ItemDataRole.UserRole + 1  # marks the entry that shows a hand-dragged window


class WindowPresets(QComboBox):
    windowChosen = Signal(object)  # Window

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("windowCombo")
        self.setMinimumContentsLength(26)
        self.setToolTip("Display window presets (right-drag on the image to adjust)")
        self.activated.connect(self._choose)

    def set_windows(self, windows: list[Window], current: Window | None) -> None:
        self.clear()
        for w in windows:
            self.addItem(w.label, w)
        if current is not None:
            self.show_window(current)

    def show_window(self, window: Window) -> None:
        """Select ``window``'s preset, or show it in the manual entry when it is none."""
        index = self.findText(window.label)
        if index < 0:
            manual = self.findData("manual", _MANUAL)
            if manual < 0:
                self.addItem("")
                manual = self.count() - 1
                self.setItemData(manual, "manual", _MANUAL)
            self.setItemText(manual, window.label)
            self.setItemData(manual, window)
            index = manual
        self.setCurrentIndex(index)

    def _choose(self, index: int) -> None:
        window = self.itemData(index)
        if isinstance(window, Window):
            self.windowChosen.emit(window)

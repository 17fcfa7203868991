"""The layers panel: which structure the tools paint, which are shown, and how.

Checking a row shows or hides a layer; selecting a row makes it the active layer. The panel edits
the canvas' overlay style and tool settings; the canvas redraws from them.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor, QIcon, QPixmap
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSlider,
    QVBoxLayout,
    QWidget,
)

from xraystudio.gui.canvas.overlay import COLORS
from xraystudio.gui.canvas.view import CanvasView
from xraystudio.masks import STRUCTURES
from xraystudio.synthesis.edit import REMOVE_LAYER


def layer_title(name: str) -> str:
    if name == REMOVE_LAYER:
        return "Remove (edit mode, X)"
    return name.replace("_", " ").capitalize()


def swatch(name: str, size: int = 14) -> QIcon:
    pix = QPixmap(size, size)
    pix.fill(QColor(*COLORS.get(name, (200, 200, 200))))
    return QIcon(pix)


class LayersPanel(QWidget):
    activeLayerChanged = Signal(str)

    def __init__(self, canvas: CanvasView, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.canvas = canvas
        self.list = QListWidget()
        self.list.setObjectName("layerList")
        self._updating = False
        self.show_masks = QCheckBox("Show masks (H)")
        self.show_masks.setChecked(canvas.overlay_style.visible)
        self.opacity = QSlider(Qt.Orientation.Horizontal)
        self.opacity.setRange(0, 100)
        self.opacity.setValue(round(canvas.overlay_style.opacity * 100))
        self.display = QComboBox()
        self.display.addItems(["Filled", "Outline"])
        self.display.setCurrentIndex(0 if canvas.overlay_style.fill else 1)
        self.clear_button = QPushButton("Clear layer")
        self.clear_button.setToolTip("Erase the whole active layer (undoable)")

        form = QFormLayout()
        form.addRow("Opacity", self.opacity)
        form.addRow("Display", self.display)
        buttons = QHBoxLayout()
        buttons.addWidget(self.show_masks)
        buttons.addStretch(1)
        buttons.addWidget(self.clear_button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.list, 1)
        layout.addLayout(form)
        layout.addLayout(buttons)

        self.list.currentItemChanged.connect(self._on_current)
        self.list.itemChanged.connect(self._on_checked)
        self.opacity.valueChanged.connect(lambda v: self._set_opacity(v / 100.0))
        self.display.currentIndexChanged.connect(self._on_display)
        self.show_masks.toggled.connect(self._on_show)
        self.clear_button.clicked.connect(self._clear_active)
        canvas.layersChanged.connect(lambda: self.set_layers(self.canvas.masks.names))
        self.set_layers(list(STRUCTURES))

    def set_layers(self, names: list[str]) -> None:
        """List the study's layers (the standard six unless the masks file had others)."""
        wanted = self.canvas.tool_settings.layer
        self._updating = True
        self.list.blockSignals(True)
        self.list.clear()
        for i, name in enumerate(names):
            number = f"{i + 1}  " if i < len(STRUCTURES) else "    "  # keys 1-6 choose
            item = QListWidgetItem(swatch(name), f"{number}{layer_title(name)}")
            item.setData(Qt.ItemDataRole.UserRole, name)
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(Qt.CheckState.Unchecked if name in self.canvas.overlay_style.hidden
                               else Qt.CheckState.Checked)
            self.list.addItem(item)
        self.list.blockSignals(False)
        self._updating = False
        self.list.setCurrentRow(names.index(wanted) if wanted in names else 0)
        self._on_current(self.list.currentItem())

    def names(self) -> list[str]:
        return [self.list.item(i).data(Qt.ItemDataRole.UserRole) for i in range(self.list.count())]

    def set_active(self, name: str) -> None:
        names = self.names()
        if name in names:
            self.list.setCurrentRow(names.index(name))

    def set_active_index(self, index: int) -> None:
        if 0 <= index < self.list.count():
            self.list.setCurrentRow(index)

    def toggle_masks(self) -> None:
        self.show_masks.toggle()

    def toggle_display(self) -> None:
        self.display.setCurrentIndex(1 - self.display.currentIndex())

    def _on_current(self, item: QListWidgetItem | None, _previous=None) -> None:
        if item is None:
            return
        name = item.data(Qt.ItemDataRole.UserRole)
        self.canvas.tool_settings.layer = name
        self.activeLayerChanged.emit(name)

    def _on_checked(self, item: QListWidgetItem) -> None:
        if self._updating:
            return
        name = item.data(Qt.ItemDataRole.UserRole)
        hidden = self.canvas.overlay_style.hidden
        if item.checkState() == Qt.CheckState.Checked:
            hidden.discard(name)
        else:
            hidden.add(name)
        self._restyle()

    def _set_opacity(self, value: float) -> None:
        self.canvas.overlay_style.opacity = value
        if self.canvas.overlay is not None:
            self.canvas.overlay.set_opacity(value)

    def _on_display(self, index: int) -> None:
        self.canvas.overlay_style.fill = index == 0
        self._restyle()

    def _on_show(self, shown: bool) -> None:
        self.canvas.overlay_style.visible = shown
        if self.canvas.overlay is not None:
            self.canvas.overlay.update()

    def _restyle(self) -> None:
        if self.canvas.overlay is not None:
            self.canvas.overlay.restyle()

    def _clear_active(self) -> None:
        if self.canvas.study is not None:
            self.canvas.masks.clear(self.canvas.tool_settings.layer)
            self.canvas.edited.emit()

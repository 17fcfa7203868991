"""The nodule list: every stamped nodule with its position and diameter, editable in place.

Selecting a row selects the nodule on the canvas (and the other way round); editing a cell moves
or resizes it as one undo step; Delete removes it. The table follows the MaskStack, so undo, redo
and drags on the canvas show up here without the canvas knowing about the panel.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from xraystudio.errors import MaskError
from xraystudio.gui.canvas.view import CanvasView
from xraystudio.masks import NODULE, Rect

COLUMNS = ("#", "x (px)", "y (px)", "Ø (mm)")


class NodulesPanel(QWidget):
    def __init__(self, canvas: CanvasView, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.canvas = canvas
        self._filling = False
        self._unsubscribe = None
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setObjectName("noduleTable")
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.stamp_size = QDoubleSpinBox()
        self.stamp_size.setRange(1.0, 60.0)
        self.stamp_size.setSingleStep(1.0)
        self.stamp_size.setSuffix(" mm")
        self.stamp_size.setValue(canvas.tool_settings.nodule_mm)
        self.stamp_size.setToolTip("Diameter of new nodules (nodule tool, N)")
        self.delete_button = QPushButton("Delete")
        self.delete_button.setEnabled(False)
        self.empty_hint = QLabel("No nodules. Press N and click in a lung to stamp one.")
        self.empty_hint.setWordWrap(True)

        form = QFormLayout()
        form.addRow("New nodule Ø", self.stamp_size)
        row = QHBoxLayout()
        row.addStretch(1)
        row.addWidget(self.delete_button)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.empty_hint)
        layout.addLayout(row)

        self.stamp_size.valueChanged.connect(self._on_stamp_size)
        self.table.itemSelectionChanged.connect(self._on_selection)
        self.table.itemChanged.connect(self._on_edit)
        self.delete_button.clicked.connect(self.delete_selected)
        delete = QShortcut(QKeySequence.StandardKey.Delete, self.table)
        delete.setContext(Qt.ShortcutContext.WidgetShortcut)
        delete.activated.connect(self.delete_selected)
        canvas.noduleSelected.connect(self._select_row)
        canvas.noduleDragged.connect(self.refresh)

    def attach(self) -> None:
        """Follow the canvas' current study."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if self.canvas.study is not None:
            self._unsubscribe = self.canvas.masks.subscribe(self._on_change)
        self.refresh()

    def _on_change(self, layer: str, rect: Rect) -> None:
        if layer == NODULE:
            self.refresh()

    def refresh(self) -> None:
        nodules = self.canvas.masks.nodules if self.canvas.study is not None else []
        self._filling = True
        self.table.setRowCount(len(nodules))
        for row, n in enumerate(nodules):
            values = (str(n.id), f"{n.x:.0f}", f"{n.y:.0f}", f"{n.diameter_mm:.1f}")
            for col, text in enumerate(values):
                item = self.table.item(row, col)
                if item is None:
                    item = QTableWidgetItem()
                    self.table.setItem(row, col, item)
                item.setText(text)
                item.setData(Qt.ItemDataRole.UserRole, n.id)
                flags = Qt.ItemFlag.ItemIsSelectable | Qt.ItemFlag.ItemIsEnabled
                if col:
                    flags |= Qt.ItemFlag.ItemIsEditable
                item.setFlags(flags)
                item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self._filling = False
        self.empty_hint.setVisible(not nodules)
        self._select_row(self.canvas.selected_nodule)

    def selected_id(self) -> int | None:
        rows = self.table.selectionModel().selectedRows()
        if not rows:
            return None
        return self.table.item(rows[0].row(), 0).data(Qt.ItemDataRole.UserRole)

    def _select_row(self, nodule_id: int | None) -> None:
        self._filling = True
        self.table.clearSelection()
        for row in range(self.table.rowCount()):
            if self.table.item(row, 0).data(Qt.ItemDataRole.UserRole) == nodule_id:
                self.table.selectRow(row)
                break
        self._filling = False
        self.delete_button.setEnabled(nodule_id is not None)

    def _on_selection(self) -> None:
        if self._filling:
            return
        nodule_id = self.selected_id()
        self.delete_button.setEnabled(nodule_id is not None)
        self.canvas.select_nodule(nodule_id)
        if nodule_id is not None:
            self.canvas.center_on_nodule(nodule_id)

    def _on_edit(self, item: QTableWidgetItem) -> None:
        if self._filling:
            return
        nodule_id = item.data(Qt.ItemDataRole.UserRole)
        key = {1: "x", 2: "y", 3: "diameter_mm"}[item.column()]
        try:
            value = float(item.text().replace(",", "."))
            h, w = self.canvas.masks.shape
            if key == "x" and not 0 <= value < w or key == "y" and not 0 <= value < h:
                raise MaskError("outside the image")
            self.canvas.masks.update_nodule(nodule_id, **{key: value})
            self.canvas.edited.emit()
        except (ValueError, MaskError):
            pass  # the refresh below puts the old value back
        self.refresh()

    def _on_stamp_size(self, value: float) -> None:
        self.canvas.tool_settings.nodule_mm = value

    def delete_selected(self) -> None:
        nodule_id = self.selected_id()
        if nodule_id is not None and self.canvas.study is not None:
            self.canvas.masks.remove_nodule(nodule_id)
            self.canvas.edited.emit()

"""The nodule list: every stamped nodule with its position and diameter, editable in place.

Selecting a row selects the nodule on the canvas (and the other way round); editing a cell moves
or resizes it as one undo step; Delete removes it. The table follows the MaskStack, so undo, redo
and drags on the canvas show up here without the canvas knowing about the panel.

"Suggest nodules" adds a layout drawn by the layout sampler shipped beside the chosen model
(sizes, places, numbers and contrasts like the model's training data) as ordinary nodules, in one
undo step, so a user can start from a realistic layout and edit it. The "C %" column is the
conspicuity edit mode draws an inserted nodule to, in per cent of the film's value range (what
the nodule adds over its surroundings); a nodule is stamped at the contrast of its size and the
chosen subtlety grade (typical by default, see panels.conspicuity), blank leaves it to the model.
The "Drawn %" column shows what the compared edit result added at each nodule, measured on it.
The panel follows the generation panel's model choice itself, so the main window needs no wiring
for it.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QBrush, QKeySequence, QPalette, QShortcut
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMainWindow,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from xraystudio.errors import MaskError, ModelError
from xraystudio.gui.canvas.view import CanvasView
from xraystudio.gui.panels.conspicuity import ConspicuityChooser, parse_contrast
from xraystudio.gui.panels.generation import GenerationPanel, model_folder
from xraystudio.image import XRayImage
from xraystudio.masks import NODULE, MaskStack, Nodule, Rect
from xraystudio.synthesis.conspicuity import added_nodule
from xraystudio.synthesis.layout_sampler import LAYOUT_SAMPLER_FILE, LayoutSampler, default_sampler
from xraystudio.synthesis.model import builtin_model_dir

log = logging.getLogger(__name__)

COLUMNS = ("#", "x px", "y px", "Ø mm", "C %", "Drawn %", "Edit")
CONTRAST_COLUMN = COLUMNS.index("C %")
DRAWN_COLUMN = COLUMNS.index("Drawn %")
STATUS_COLUMN = len(COLUMNS) - 1
CONTRAST_TIP = ("Contrast edit mode draws this inserted nodule to: what it adds over its "
                "surroundings, in % of the film's value range (real nodules: about 0.5-5 %). "
                "Type a percentage, g1-g5 (a JSRT subtlety grade at this size), 'typical', or "
                "leave blank for the model's own")
DRAWN_TIP = ("The contrast the compared edit result added at this nodule, measured on it "
             "(edited minus source, in % of the film's value range)")
IN_SOURCE, PAINTED, MOVED, REMOVED = "in source", "painted", "moved", "removed"
STATUS_TIPS = {
    IN_SOURCE: "The radiograph has this nodule; edit mode keeps it as it is",
    PAINTED: "Not in the radiograph: edit mode inserts it",
    MOVED: "A nodule of the radiograph, moved or resized: edit mode removes it where it was "
           "and inserts it here",
    REMOVED: "Deleted from the radiograph's nodules: edit mode removes it (Ctrl+Z brings it back)",
}


def nodule_rows(masks: MaskStack) -> list[tuple[Nodule, str]]:
    """Every current nodule with its edit status, then the deleted source nodules."""
    source = {n.id: n for n in masks.source_nodules}
    rows = []
    for n in masks.nodules:
        s = source.get(n.id)
        if s is None:
            status = PAINTED
        elif np.allclose((n.x, n.y, n.diameter_mm), (s.x, s.y, s.diameter_mm), atol=1e-3):
            status = IN_SOURCE
        else:
            status = MOVED
        rows.append((n, status))
    current = {n.id for n in masks.nodules}
    rows += [(n, REMOVED) for n in masks.source_nodules if n.id not in current]
    return rows


class NodulesPanel(QWidget):
    def __init__(self, canvas: CanvasView, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.canvas = canvas
        self._filling = False
        self._unsubscribe = None
        self._model_folder: Path = builtin_model_dir()
        self._sampler: LayoutSampler | None = None
        self._sampler_problem = ""
        self._following: GenerationPanel | None = None
        self._drawn: dict[tuple[float, float, float], float] = {}  # (x, y, Ø) -> contrast
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setObjectName("noduleTable")
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.horizontalHeaderItem(CONTRAST_COLUMN).setToolTip(CONTRAST_TIP)
        self.table.horizontalHeaderItem(DRAWN_COLUMN).setToolTip(DRAWN_TIP)
        self.table.verticalHeader().setVisible(False)
        # Every column as wide as its header and values (a stretched one cut "Ø mm"); the
        # table scrolls sideways when the dock is narrower.
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(True)
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
        self.suggest_button = QPushButton("Suggest nodules")
        self.suggest_button.setObjectName("suggestNodules")
        self.empty_hint = QLabel("No nodules. Press N and click in a lung to stamp one.")
        self.empty_hint.setWordWrap(True)
        self.conspicuity = ConspicuityChooser()
        self.conspicuity.set_diameter(self.stamp_size.value())
        canvas.tool_settings.nodule_contrast = self.conspicuity.contrast_for

        form = QFormLayout()
        form.addRow("New nodule Ø", self.stamp_size)
        form.addRow("Conspicuity", self.conspicuity)
        row = QHBoxLayout()
        row.addWidget(self.suggest_button)
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
        self.suggest_button.clicked.connect(self.suggest_nodules)
        delete = QShortcut(QKeySequence.StandardKey.Delete, self.table)
        delete.setContext(Qt.ShortcutContext.WidgetShortcut)
        delete.activated.connect(self.delete_selected)
        canvas.noduleSelected.connect(self._select_row)
        canvas.noduleDragged.connect(self.refresh)
        self.set_model_folder(self._model_folder)

    def sizeHint(self) -> QSize:  # noqa: N802 (Qt naming)
        """Wide enough for every column of a typical row, so a dock with room shows them all
        (a narrower one scrolls sideways; the minimum width stays small)."""
        hint = super().sizeHint()
        metrics = self.table.fontMetrics()
        widest = ("99", "0000", "0000", "00.0", "0.00", "0.00", IN_SOURCE)
        columns = sum(max(metrics.horizontalAdvance(text), metrics.horizontalAdvance(title)) + 14
                      for text, title in zip(widest, COLUMNS))
        frame = 2 * self.table.frameWidth() + self.table.verticalScrollBar().sizeHint().width()
        margins = self.layout().contentsMargins()
        width = columns + frame + margins.left() + margins.right()
        return QSize(max(hint.width(), width), hint.height())

    def attach(self) -> None:
        """Follow the canvas' current study (and, from now on, the window's model choice)."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if self.canvas.study is not None:
            self._unsubscribe = self.canvas.masks.subscribe(self._on_change)
        self._follow_model_choice()
        self.refresh()
        self._update_suggest()

    # ------------------------------------------------------------ suggestions
    def _follow_model_choice(self) -> None:
        """Take the layout sampler of the model chosen in the window's generation panel."""
        generation = self.window().findChild(GenerationPanel)
        if generation is None or generation is self._following:
            return
        self._following = generation
        generation.modelChanged.connect(self.set_model_folder)
        self.set_model_folder(model_folder(generation.model.currentData() or ""))

    def set_model_folder(self, folder: Path) -> None:
        """Use the layout sampler beside the model in ``folder``, if it has one."""
        self._model_folder = Path(folder)
        try:
            self._sampler = default_sampler(self._model_folder)
            self._sampler_problem = "" if self._sampler else (
                f"The chosen model has no layout sampler ({LAYOUT_SAMPLER_FILE} in "
                f"{self._model_folder}); make one with xraystudio fit-layout")
        except ModelError as exc:
            self._sampler, self._sampler_problem = None, str(exc)
        self.conspicuity.set_sampler(self._sampler)
        self._update_suggest()

    def _update_suggest(self) -> None:
        if self._sampler is None:
            self.suggest_button.setEnabled(False)
            self.suggest_button.setToolTip(self._sampler_problem)
        elif self.canvas.study is None:
            self.suggest_button.setEnabled(False)
            self.suggest_button.setToolTip("Open a radiograph to suggest nodules in its lungs")
        else:
            self.suggest_button.setEnabled(True)
            self.suggest_button.setToolTip(
                "Add nodules with the sizes, places and subtlety of the model's training data, "
                "inside the lungs and clear of the other nodules (Ctrl+Z takes them back)")

    def suggest_nodules(self) -> None:
        """Add one sampled layout to the study's masks as editable nodules, in one undo step."""
        if self._sampler is None or self.canvas.study is None:
            return
        masks = self.canvas.masks
        seed = np.random.SeedSequence()
        existing = [(n.x, n.y, n.diameter_mm) for n in masks.nodules]
        try:
            layout = self._sampler.sample(masks, float(np.mean(masks.spacing_mm)),
                                          np.random.default_rng(seed), existing=existing)
        except MaskError as exc:
            self._status(f"No nodules suggested: {exc}")
            return
        masks.begin("Suggest nodules")
        added = [masks.add_nodule(n.x, n.y, n.diameter_mm, n.contrast) for n in layout]
        masks.commit()
        log.info("suggested nodules %s (seed %d)", [n.to_dict() for n in layout], seed.entropy)
        self.canvas.edited.emit()
        self.canvas.select_nodule(added[-1].id)
        self._status(f"Suggested {len(added)} nodule(s): "
                     + ", ".join(f"{n.diameter_mm:.1f} mm" + (
                         "" if n.contrast is None else f" at {100 * n.contrast:.1f} %")
                         for n in layout)
                     + "; edit them in the list, Ctrl+Z removes them")

    def _status(self, message: str) -> None:
        window = self.window()
        if isinstance(window, QMainWindow):
            window.statusBar().showMessage(message, 10000)

    def _on_change(self, layer: str, rect: Rect) -> None:
        if layer == NODULE:
            self.refresh()

    def refresh(self) -> None:
        rows = nodule_rows(self.canvas.masks) if self.canvas.study is not None else []
        grey = QBrush(self.palette().color(QPalette.ColorGroup.Disabled, QPalette.ColorRole.Text))
        self._filling = True
        self.table.setRowCount(len(rows))
        for row, (n, status) in enumerate(rows):
            contrast = "" if n.contrast is None else f"{100 * n.contrast:.2f}"
            drawn = self._drawn.get(_key(n.x, n.y, n.diameter_mm))
            values = (str(n.id), f"{n.x:.0f}", f"{n.y:.0f}", f"{n.diameter_mm:.1f}", contrast,
                      "" if drawn is None else f"{100 * drawn:.2f}", status)
            inserted = status in (PAINTED, MOVED)
            removed = status == REMOVED
            for col, text in enumerate(values):
                item = self.table.item(row, col)
                if item is None:
                    item = QTableWidgetItem()
                    self.table.setItem(row, col, item)
                item.setText(text)
                item.setData(Qt.ItemDataRole.UserRole, n.id)
                item.setData(Qt.ItemDataRole.UserRole + 1, status)
                item.setToolTip(CONTRAST_TIP if col == CONTRAST_COLUMN and inserted
                                else DRAWN_TIP if col == DRAWN_COLUMN else STATUS_TIPS[status])
                item.setData(Qt.ItemDataRole.ForegroundRole, grey if removed else None)
                font = item.font()
                font.setItalic(removed)
                item.setFont(font)
                flags = Qt.ItemFlag.ItemIsEnabled
                if not removed:
                    flags |= Qt.ItemFlag.ItemIsSelectable
                    if 0 < col < CONTRAST_COLUMN or col == CONTRAST_COLUMN and inserted:
                        flags |= Qt.ItemFlag.ItemIsEditable
                item.setFlags(flags)
                item.setTextAlignment((Qt.AlignmentFlag.AlignLeft if col == STATUS_COLUMN
                                       else Qt.AlignmentFlag.AlignRight)
                                      | Qt.AlignmentFlag.AlignVCenter)
        self._filling = False
        self.empty_hint.setVisible(not rows)
        self._select_row(self.canvas.selected_nodule)

    def statuses(self) -> dict[int, str]:
        """Nodule id -> its Edit column (as shown)."""
        return {self.table.item(r, 0).data(Qt.ItemDataRole.UserRole):
                self.table.item(r, STATUS_COLUMN).text() for r in range(self.table.rowCount())}

    def selected_id(self) -> int | None:
        rows = self.table.selectionModel().selectedRows()
        if not rows:
            return None
        return self.table.item(rows[0].row(), 0).data(Qt.ItemDataRole.UserRole)

    def _select_row(self, nodule_id: int | None) -> None:
        self._filling = True
        self.table.clearSelection()
        for row in range(self.table.rowCount()):
            item = self.table.item(row, 0)
            if item.data(Qt.ItemDataRole.UserRole) == nodule_id and \
                    item.data(Qt.ItemDataRole.UserRole + 1) != REMOVED:
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
        if item.column() == CONTRAST_COLUMN:
            self._on_contrast(nodule_id, item.text())
            return
        key = {1: "x", 2: "y", 3: "diameter_mm"}.get(item.column())
        if key is None:
            return
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

    def _on_contrast(self, nodule_id: int, text: str) -> None:
        """A percentage, a grade (g1-g5, typical), or blank for the model's own; anything else
        puts the old value back."""
        try:
            contrast = parse_contrast(text, self._sampler,
                                      self.canvas.masks.nodule(nodule_id).diameter_mm)
            self.canvas.masks.set_nodule_contrast(nodule_id, contrast)
            self.canvas.edited.emit()
        except (ValueError, MaskError) as exc:
            self._status(f"Contrast not changed: {exc}")
        self.refresh()

    def _on_stamp_size(self, value: float) -> None:
        self.canvas.tool_settings.nodule_mm = value
        self.conspicuity.set_diameter(value)

    def show_drawn(self, result, source: XRayImage | None) -> None:
        """Measure, on the compared result, the contrast each nodule it inserted was drawn to
        (only an edit result has the source's pixels to measure against)."""
        self._drawn = {}
        if result is not None and result.is_edit and source is not None:
            spacing = float(np.mean(source.spacing_mm or self.canvas.masks.spacing_mm))
            for site in result.provenance.get("edits") or []:
                if site.get("kind") != "insert" or not site.get("nodule"):
                    continue
                x, y, d = site["nodule"]
                try:
                    added = added_nodule(source.values, result.values, x, y, d, spacing,
                                         not source.invert)
                except ValueError:
                    continue
                self._drawn[_key(x, y, d)] = added.contrast
        self.refresh()

    def delete_selected(self) -> None:
        nodule_id = self.selected_id()
        if nodule_id is not None and self.canvas.study is not None:
            self.canvas.masks.remove_nodule(nodule_id)
            self.canvas.edited.emit()


def _key(x: float, y: float, diameter_mm: float) -> tuple[float, float, float]:
    """A nodule as an edit's provenance records it (rounded to 0.01), to match it again."""
    return round(x, 2), round(y, 2), round(diameter_mm, 2)

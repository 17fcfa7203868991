"""The Sweep tab: axes to sweep, the run's progress, and the grid of its cells.

Cells are labelled by their axis values (x across, y down, one page per z value), zoom and pan
together, carry a caption with the chosen metric and, with Heat-map on, a frame coloured by it
(blue low, red high, over the cells of the sweep). A click on a cell asks for it in Compare.
The panel only shows and collects; the SweepController runs the sweep and keeps the record.
"""

from __future__ import annotations

import math

import numpy as np
from PySide6.QtCore import QPoint, Qt, Signal
from PySide6.QtGui import QImage, QMouseEvent
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from xraystudio.explore.grid import metric_text
from xraystudio.explore.sweep import METRIC_TITLES, SweepRecord
from xraystudio.gui.panels.generation import format_eta
from xraystudio.gui.panels.results import LinkedView, follow
from xraystudio.gui.qimage import ArrayImage

PLACEHOLDERS = ("conditioning_scale=0.5:1.5:3", "seed=1,2,3", "layer.heart=on,off")
#: Cells shrink to this before the grid scrolls: small enough that a 3-row grid with its captions
#: fits the Sweep tab of a 900 px window (at 120 the bottom row's captions were scrolled away).
CELL_MIN = 64


def caption_colour(background: str) -> str:
    """Black or white text, whichever reads on ``background`` (#rrggbb), by its luminance."""
    r, g, b = (int(background[i:i + 2], 16) for i in (1, 3, 5))
    return "#000000" if 0.299 * r + 0.587 * g + 0.114 * b > 140 else "#ffffff"


def heat_colour(t: float) -> str:
    """A blue (0) to red (1) ramp through white-ish yellow, as a CSS colour."""
    if math.isnan(t):
        return "#444444"
    t = min(max(t, 0.0), 1.0)
    stops = [(0.0, (49, 54, 149)), (0.5, (255, 255, 191)), (1.0, (165, 0, 38))]
    for (t0, c0), (t1, c1) in zip(stops[:-1], stops[1:]):
        if t <= t1:
            f = (t - t0) / (t1 - t0)
            r, g, b = (round(a + (b_ - a) * f) for a, b_ in zip(c0, c1))
            return f"#{r:02x}{g:02x}{b:02x}"
    return "#a50026"


class CellView(LinkedView):
    """One cell of the grid: a linked view that reports a click (a press without a drag)."""

    clicked = Signal(int)

    def __init__(self, index: int, parent: QWidget | None = None) -> None:
        super().__init__("", parent)
        self.index = index
        self._pressed: QPoint | None = None
        self.setMinimumSize(CELL_MIN, CELL_MIN)
        # Lines of its own, unwrapped: a wrapped caption's height is reckoned at the narrowest
        # width, which pushed the grid past the view and hid the bottom row's captions.
        self.caption.setWordWrap(False)

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802 (Qt naming)
        self._pressed = event.position().toPoint()
        super().mousePressEvent(event)

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        super().mouseReleaseEvent(event)
        start, self._pressed = self._pressed, None
        if start is not None and (event.position().toPoint() - start).manhattanLength() < 4:
            self.clicked.emit(self.index)


class SweepPanel(QWidget):
    runRequested = Signal()
    cancelRequested = Signal()
    exportRequested = Signal()
    cellClicked = Signal(int)  # cell index
    sweepChosen = Signal(str)  # a saved sweep's id

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("sweepPanel")
        self.record: SweepRecord | None = None
        self.pixels: dict[int, tuple[np.ndarray, tuple[int, int]]] = {}  # index -> words, size
        #: Cell index -> the cell's number in the results strip, so both say the same "#n".
        self.numbers: dict[int, int] = {}
        self.views: list[CellView] = []
        self._syncing = False
        self.axis_edits = []
        form = QFormLayout()
        for name, example in zip("xyz", PLACEHOLDERS):
            edit = QLineEdit()
            edit.setObjectName(f"sweepAxis{name.upper()}")
            edit.setPlaceholderText(f"e.g. {example}")
            edit.setToolTip("NAME=VALUES: seed, conditioning_scale, control_start, control_end, "
                            "steps, scheduler, mode, guide_strength, prior, nodule_diameter, "
                            "model, layer.<name> (on, off, +Nmm, -Nmm); values a,b,c or "
                            "START:STOP:COUNT")
            edit.returnPressed.connect(self.runRequested)
            self.axis_edits.append(edit)
            form.addRow(f"{name.upper()} axis", edit)
        self.run = QPushButton("Run sweep")
        self.run.setObjectName("runSweep")
        self.run.setToolTip("Generate one image per combination, with the Generation panel's "
                            "model and settings for everything not swept")
        self.cancel = QPushButton("Cancel")
        self.cancel.setEnabled(False)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setValue(0)
        self.status = QLabel("Choose up to three axes and run the sweep.")
        self.status.setObjectName("sweepStatus")
        self.status.setWordWrap(True)
        self.saved = QComboBox()
        self.saved.setObjectName("savedSweeps")
        self.saved.setToolTip("Sweeps of this study kept in the project")
        self.saved.setMinimumContentsLength(24)
        self.page = QComboBox()
        self.page.setObjectName("sweepPage")
        self.page.setToolTip("The z axis: one grid per value")
        self.metric = QComboBox()
        self.metric.setObjectName("sweepMetric")
        self.metric.addItem("No metric", "")
        for key, title in METRIC_TITLES.items():
            self.metric.addItem(title, key)
        self.metric.setCurrentIndex(self.metric.findData("psnr"))
        self.heat = QCheckBox("Heat-map")
        self.heat.setToolTip("Colour each cell's frame by the chosen metric (blue low, red high)")
        self.legend = QLabel()
        self.fit_button = QPushButton("Fit")
        self.export = QPushButton("Export grid…")
        self.export.setToolTip("The labelled grid as one PNG, and a CSV and JSON of every "
                               "cell's parameters and metrics")
        self.export.setEnabled(False)

        buttons = QHBoxLayout()
        buttons.addWidget(self.run)
        buttons.addWidget(self.cancel)
        buttons.addWidget(self.progress, 1)
        top = QVBoxLayout()
        top.addLayout(form)
        top.addLayout(buttons)
        top.addWidget(self.status)
        bar = QHBoxLayout()
        bar.addWidget(QLabel("Sweep"))
        bar.addWidget(self.saved, 1)
        bar.addWidget(self.page)
        bar.addWidget(QLabel("Show"))
        bar.addWidget(self.metric)
        bar.addWidget(self.heat)
        bar.addWidget(self.legend, 1)
        bar.addWidget(self.fit_button)
        bar.addWidget(self.export)
        self.grid_host = QWidget()
        self.grid = QGridLayout(self.grid_host)
        self.grid.setSpacing(4)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(self.grid_host)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addLayout(bar)
        layout.addWidget(scroll, 1)

        self.run.clicked.connect(self.runRequested)
        self.cancel.clicked.connect(self.cancelRequested)
        self.export.clicked.connect(self.exportRequested)
        self.fit_button.clicked.connect(self.fit)
        self.page.currentIndexChanged.connect(lambda _: self._build_page())
        self.metric.currentIndexChanged.connect(lambda _: self.refresh_captions())
        self.heat.toggled.connect(lambda _: self.refresh_captions())
        self.saved.activated.connect(
            lambda i: self.sweepChosen.emit(self.saved.itemData(i) or ""))

    # ------------------------------------------------------------- settings
    def axis_texts(self) -> list[str]:
        return [e.text().strip() for e in self.axis_edits]

    def set_axis_texts(self, texts: list[str]) -> None:
        for edit, text in zip(self.axis_edits, list(texts) + ["", "", ""]):
            edit.setText(text)

    def set_running(self, running: bool) -> None:
        self.run.setEnabled(not running)
        self.cancel.setEnabled(running)
        for e in self.axis_edits:
            e.setEnabled(not running)
        self.saved.setEnabled(not running)

    def show_message(self, text: str, error: bool = False) -> None:
        self.status.setText(text)
        self.status.setStyleSheet("color: #e5484d;" if error else "")

    def show_progress(self, p) -> None:
        self.progress.setValue(round(1000 * p.fraction))
        self.show_message(f"Cell {p.cell + 1} of {p.n_cells} · step {p.step}/{p.total} · "
                          f"{format_eta(p.eta_s)} left")

    def set_saved(self, items: list[tuple[str, str]], current: str | None) -> None:
        """The saved sweeps as (id, text); ``current`` is selected."""
        self.saved.blockSignals(True)
        self.saved.clear()
        for sid, text in items:
            self.saved.addItem(text, sid)
        if current is not None:
            self.saved.setCurrentIndex(max(0, self.saved.findData(current)))
        self.saved.blockSignals(False)

    @property
    def metric_key(self) -> str:
        return self.metric.currentData() or ""

    # ----------------------------------------------------------------- grid
    def show_record(self, record: SweepRecord | None) -> None:
        """Start showing ``record`` (its cells' pictures come with set_cell_pixels)."""
        self.record = record
        self.pixels = {}
        self.page.blockSignals(True)
        self.page.clear()
        if record is not None and len(record.sweep.axes) == 3:
            z = record.sweep.axes[2]
            for label in z.labels:
                self.page.addItem(f"{z.name} = {label}")
        self.page.setVisible(self.page.count() > 0)
        self.page.blockSignals(False)
        self.export.setEnabled(record is not None)
        self._build_page()

    def _clear_grid(self) -> None:
        while self.grid.count():
            item = self.grid.takeAt(0)
            if item.widget() is not None:
                item.widget().hide()  # at once: deletion waits for the event loop
                item.widget().deleteLater()
        self.views = []

    def _build_page(self) -> None:
        self._clear_grid()
        record = self.record
        if record is None:
            return
        nx, ny, _ = record.sweep.shape
        axes = record.sweep.axes
        iz = max(0, self.page.currentIndex())
        for ix in range(nx):
            head = QLabel(f"{axes[0].name} = {axes[0].labels[ix]}")
            head.setAlignment(Qt.AlignmentFlag.AlignCenter)
            self.grid.addWidget(head, 0, ix + 1)
        for iy in range(ny):
            if len(axes) > 1:
                self.grid.addWidget(QLabel(f"{axes[1].name}\n= {axes[1].labels[iy]}"), iy + 1, 0)
            for ix in range(nx):
                index = (iz * ny + iy) * nx + ix
                view = CellView(index)
                view.setObjectName(f"sweepCell{index}")
                view.clicked.connect(self.cellClicked)
                view.viewChanged.connect(lambda v=view: self._sync_from(v))
                column = QVBoxLayout()
                column.setContentsMargins(3, 3, 3, 3)
                column.addWidget(view, 1)
                column.addWidget(view.caption)
                holder = QWidget()
                holder.setObjectName("sweepCellHolder")
                holder.setLayout(column)
                view.holder = holder
                self.grid.addWidget(holder, iy + 1, ix + 1)
                self.views.append(view)
                if index in self.pixels:
                    view.show_pixels(*self._wrap(index))
        self.refresh_captions()
        self.fit()

    def _wrap(self, index: int):
        words, size = self.pixels[index]
        return ArrayImage.wrap(words, QImage.Format.Format_RGB32), size

    def view(self, index: int) -> CellView | None:
        return next((v for v in self.views if v.index == index), None)

    def set_cell_pixels(self, index: int, words: np.ndarray, size: tuple[int, int]) -> None:
        """A cell's picture: RGB32 words (any size) shown over ``size`` (rows, columns)."""
        self.pixels[index] = (words, size)
        view = self.view(index)
        if view is not None:
            first = view.item is None and not any(v.item is not None for v in self.views
                                                   if v is not view)
            view.show_pixels(*self._wrap(index))
            if first:
                self.fit()
            else:
                self._sync_view(view)

    def refresh_captions(self) -> None:
        """Captions (metric overlay) and, with Heat-map, frames coloured by the metric."""
        record = self.record
        if record is None:
            self.legend.clear()
            return
        key = self.metric_key
        values = [c.metrics.get(key, math.nan) for c in record.cells] if key else []
        finite = [v for v in values if not (math.isnan(v) or math.isinf(v))]
        lo, hi = (min(finite), max(finite)) if finite else (math.nan, math.nan)
        heat = self.heat.isChecked() and bool(finite)
        if heat:
            self.legend.setText(f"<span style='color:#5b6ee1'>■</span> {lo:.3g} … "
                                f"<span style='color:#d7301f'>■</span> {hi:.3g}")
        else:
            self.legend.clear()
        for view in self.views:
            cell = record.cells[view.index]
            number = self.numbers.get(view.index)
            name = f"#{number}" if number is not None else f"cell {view.index + 1}"
            if cell.status == "done":
                text = metric_text(cell.metrics, key or None) if key else ""
                text = (text + "\n" if text else "") + f"{name} · seed {cell.seed}"
            elif cell.status == "failed":
                error = cell.error or ""
                text = f"{name} failed: {error[:40]}{'…' if len(error) > 40 else ''}"
            else:
                text = f"{name} waiting"
            view.caption.setText(text)
            view.setToolTip(cell_tooltip(record, view.index))
            colour = ""
            if heat and key in cell.metrics:
                v = cell.metrics[key]
                t = 0.5 if hi == lo else (v - lo) / (hi - lo)
                colour = heat_colour(t)
            view.holder.setStyleSheet(
                f"QWidget#sweepCellHolder {{ background: {colour}; }}" if colour else "")
            view.caption.setStyleSheet(f"color: {caption_colour(colour)};" if colour else "")

    # ------------------------------------------------------------ zoom/pan
    def fit(self) -> None:
        shown = [v for v in self.views if v.item is not None]
        if not shown:
            return
        shown[0].fitInView(shown[0].sceneRect(), Qt.AspectRatioMode.KeepAspectRatio)
        self._sync_from(shown[0])

    def _sync_view(self, view: CellView) -> None:
        source = next((v for v in self.views if v is not view and v.item is not None), None)
        if source is not None:
            self._syncing = True
            view.setTransform(source.transform())
            view.centerOn(source.center())
            self._syncing = False

    def _sync_from(self, source: LinkedView) -> None:
        if self._syncing:
            return
        self._syncing = True
        follow(source, self.views)
        self._syncing = False


def cell_tooltip(record: SweepRecord, index: int) -> str:
    cell = record.cells[index]
    lines = [", ".join(f"{k} = {v}" for k, v in cell.labels.items())]
    for key, title in METRIC_TITLES.items():
        if key in cell.metrics and not math.isnan(cell.metrics[key]):
            lines.append(f"{title}: {cell.metrics[key]:.4g}")
    if cell.seconds is not None:
        lines.append(f"{cell.seconds:.1f} s")
    lines.append("Click to open it in Compare")
    return "\n".join(lines)

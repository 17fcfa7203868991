"""Results: the source and generated images side by side with linked zoom and pan, metrics
under each, optional condition and difference views, and a strip of every result of the study.

An edit-mode result is shown as source | edited | difference, all at the source's full
resolution and zoomed together (Zoom to edits frames the changed pixels); its difference is
amplified, and says by how much, since it is zero outside the edits; its figures are measured in
the edit windows; Save result… writes it in the source's format (see engine.edit_results).
"""

from __future__ import annotations

import math

import numpy as np
from PySide6.QtCore import QPointF, QRectF, QSize, Qt, Signal
from PySide6.QtGui import QIcon, QImage, QPainter, QPalette, QPixmap, QTransform, QWheelEvent
from PySide6.QtWidgets import (
    QCheckBox,
    QGraphicsScene,
    QGraphicsView,
    QHBoxLayout,
    QLabel,
    QListView,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from xraystudio.engine.edit_results import changed_box, difference_gain
from xraystudio.engine.pixels import OPAQUE, grey_to_rgb32
from xraystudio.engine.protocol import GeneratedImage
from xraystudio.gui.canvas.image_item import RadiographItem
from xraystudio.gui.canvas.overlay import COLORS
from xraystudio.gui.qimage import ArrayImage
from xraystudio.image import XRayImage

THUMB = 96


def metrics_text(m: dict[str, float]) -> str:
    """One line of figures, e.g. ``PSNR 18.3 dB · SSIM 0.71 | lungs 17.2 dB · 0.65``."""
    if not m:
        return "No metrics (no reference image)"

    def db(v: float) -> str:
        return "∞ dB" if math.isinf(v) else f"{v:.1f} dB"

    if "changed_px" in m:  # an edit result: measured in its windows, at full resolution
        n = int(m.get("edit_windows", 0))
        text = f"In the {n} edit window{'' if n == 1 else 's'}"
        if "psnr_edit" in m:
            text += f": PSNR {db(m['psnr_edit'])}"
        if "ssim_edit" in m:
            text += f" · SSIM {m['ssim_edit']:.3f}"
        area = f" ({m['changed_mm2']:.0f} mm²)" if "changed_mm2" in m else ""
        return (text + f"   |   {int(m['changed_px']):,} px changed{area}; every other pixel "
                "is the source's")
    text = f"PSNR {db(m['psnr'])} · SSIM {m['ssim']:.3f}"
    if "psnr_lungs" in m:
        text += f"   |   lungs: PSNR {db(m['psnr_lungs'])} · SSIM {m['ssim_lungs']:.3f}"
    return text


def condition_rgb(result: GeneratedImage) -> np.ndarray:
    """The model input as a picture: the guide (if any) in grey, each layer in its colour."""
    cond = result.condition
    n = len(result.layers)
    out = np.zeros((*cond.shape[1:], 3), np.float32)
    if cond.shape[0] >= n + 2:  # guide and guide flag follow the layers
        out[...] = cond[n][..., None] * 0.8
    for i, name in enumerate(result.layers[: cond.shape[0]]):
        colour = np.asarray(COLORS.get(name, (200, 200, 200)), np.float32) / 255.0
        alpha = cond[i][..., None] * 0.55
        out = out * (1 - alpha) + colour * alpha
    u8 = (np.clip(out, 0, 1) * 255 + 0.5).astype(np.uint32)
    return OPAQUE | (u8[..., 0] << 16) | (u8[..., 1] << 8) | u8[..., 2]


def difference_rgb(generated: np.ndarray, reference: np.ndarray, gain: float = 2.0) -> np.ndarray:
    """Generated minus reference times ``gain``: blue where darker, red where brighter, white
    where equal."""
    d = np.clip((generated - reference) * np.float32(gain), -1.0, 1.0)
    pos, neg = np.clip(d, 0, 1), np.clip(-d, 0, 1)
    r = (255 * (1 - neg)).astype(np.uint32)
    g = (255 * (1 - np.maximum(pos, neg))).astype(np.uint32)
    b = (255 * (1 - pos)).astype(np.uint32)
    return OPAQUE | (r << 16) | (g << 8) | b


def edit_difference_rgb(edited: np.ndarray, source: np.ndarray, changed: np.ndarray
                        ) -> tuple[np.ndarray, float]:
    """An edit's difference picture and its gain: white everywhere (the pixels are the source's)
    but in the changed pixels' box, amplified so its largest change spans the colours. Only the
    box is computed, so a 3000 px radiograph costs milliseconds on the UI thread."""
    out = np.full(edited.shape, OPAQUE | 0xFFFFFF, np.uint32)
    box = changed_box(changed, margin=0)
    if box is None:
        return out, 1.0
    y0, x0, y1, x1 = box
    a, b = edited[y0:y1, x0:x1], source[y0:y1, x0:x1]
    gain = difference_gain(a - b)
    out[y0:y1, x0:x1] = difference_rgb(a, b, gain)
    return out, gain


def follow(source: LinkedView, views: list[LinkedView]) -> None:
    """Give every other view of ``views`` the zoom and centre of ``source``."""
    center = source.center()
    for view in views:
        if view is not source:
            view.setTransform(source.transform())
            view.centerOn(center)


class LinkedView(QGraphicsView):
    """An image view whose zoom and pan are mirrored to the other views of its group."""

    viewChanged = Signal()

    def __init__(self, title: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setScene(QGraphicsScene(self))
        self.setBackgroundBrush(Qt.GlobalColor.black)
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)
        self.setDragMode(QGraphicsView.DragMode.ScrollHandDrag)
        self.item: RadiographItem | None = None
        self.holder: QWidget | None = None  # the column with title and caption
        self.title = QLabel(title)
        self.caption = QLabel()
        self.caption.setObjectName("metrics")
        self.caption.setWordWrap(True)
        self.horizontalScrollBar().valueChanged.connect(self.viewChanged)
        self.verticalScrollBar().valueChanged.connect(self.viewChanged)

    def show_pixels(self, pixels: ArrayImage, size: tuple[int, int]) -> None:
        """Show ``pixels`` stretched over ``size`` (rows, columns) scene units."""
        if self.item is None:
            self.item = RadiographItem(pixels)
            self.scene().addItem(self.item)
        else:
            self.item.set_pixels(pixels)
        ph, pw = pixels.array.shape
        self.item.setTransform(QTransform.fromScale(size[1] / pw, size[0] / ph))
        self.setSceneRect(QRectF(0, 0, size[1], size[0]))

    def wheelEvent(self, event: QWheelEvent) -> None:
        delta = event.angleDelta().y()
        if delta:
            f = math.pow(1.0015, delta)
            self.scale(f, f)
            self.viewChanged.emit()
        event.accept()

    def center(self) -> QPointF:
        return self.mapToScene(self.viewport().rect().center())


class CompareView(QWidget):
    """Source | generated (| condition | difference), zoomed and panned together.

    The film is no "ground truth": a layout result is a new patient drawn from its masks, so its
    film is named "Source of the masks"; a guided or edit result redraws the film itself."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.reference: np.ndarray | None = None
        self.source: XRayImage | None = None  # the radiograph, for saving edit results
        self.result: GeneratedImage | None = None
        self._edit_difference: tuple | None = None  # (result, RGB32 words, gain) last shown
        self._syncing = False
        self.truth = LinkedView("Source")
        self.generated = LinkedView("Generated")
        self.condition = LinkedView("Condition (model input)")
        self.difference = LinkedView("Difference (generated − source)")
        self.views = [self.truth, self.generated, self.condition, self.difference]
        self.show_condition = QCheckBox("Condition")
        self.show_difference = QCheckBox("Difference")
        self.fit_button = QPushButton("Fit")
        self.zoom_edits_button = QPushButton("Zoom to edits")
        self.zoom_edits_button.setToolTip("Frame the pixels the edit changed (all views)")
        self.zoom_edits_button.setVisible(False)
        self.save_button = QPushButton("Save result…")
        self.save_button.setEnabled(False)
        self.hint = QLabel("Generate images to compare them with the radiograph.")

        row = QHBoxLayout()
        for view in self.views:
            column = QVBoxLayout()
            column.addWidget(view.title)
            column.addWidget(view, 1)
            column.addWidget(view.caption)
            holder = QWidget()
            holder.setLayout(column)
            view.holder = holder
            row.addWidget(holder, 1)
            view.viewChanged.connect(lambda v=view: self._sync_from(v))
        controls = QHBoxLayout()
        controls.addWidget(self.hint, 1)
        controls.addWidget(self.show_condition)
        controls.addWidget(self.show_difference)
        controls.addWidget(self.fit_button)
        controls.addWidget(self.zoom_edits_button)
        controls.addWidget(self.save_button)
        layout = QVBoxLayout(self)
        layout.addLayout(row, 1)
        layout.addLayout(controls)
        self.show_condition.toggled.connect(self._update_visibility)
        self.show_difference.toggled.connect(self._update_visibility)
        self.fit_button.clicked.connect(self.fit)
        self.zoom_edits_button.clicked.connect(self.zoom_to_edits)
        self._update_visibility()

    def set_reference(self, display: np.ndarray | None, pixels: np.ndarray | None = None,
                      source: XRayImage | None = None) -> None:
        """The radiograph the results are compared with (display values in [0, 1]).

        ``pixels`` are its RGB32 words when already computed off the UI thread; ``source`` is
        the radiograph itself (edit results are saved in its format).
        """
        self.reference = display
        self.source = source
        self.result = None
        self._edit_difference = None
        self.truth.title.setText("Source")
        self.show_condition.setVisible(True)
        self.show_difference.setVisible(True)
        self.zoom_edits_button.setVisible(False)
        self._update_visibility()
        self.save_button.setEnabled(False)
        self.generated.caption.clear()
        for view in self.views:
            if view.item is not None:
                view.scene().removeItem(view.item)
                view.item = None
        if display is not None:
            words = grey_to_rgb32(display) if pixels is None else pixels
            self.truth.show_pixels(ArrayImage.wrap(words, QImage.Format.Format_RGB32),
                                   display.shape)
            self.truth.caption.setText(f"{display.shape[1]} × {display.shape[0]} px")
            self.fit()

    def show_result(self, result: GeneratedImage, number: int) -> None:
        was_edit = self.result is not None and self.result.is_edit
        first = self.result is None
        self.result = result
        edit = result.is_edit
        self.hint.setText(f"Result #{number} · seed {result.seed}"
                          + (" · edit of this radiograph, full resolution" if edit else ""))
        size = result.image.shape
        layout = (result.provenance.get("parameters") or {}).get("mode") == "layout"
        self.truth.title.setText("Source of the masks" if layout else "Source")
        self.generated.title.setText(f"Edited #{number}" if edit else f"Generated #{number}")
        self.generated.show_pixels(ArrayImage.wrap(result.pixels, QImage.Format.Format_RGB32), size)
        self.generated.caption.setText(metrics_text(result.metrics))
        self.save_button.setEnabled(True)
        # An edit's model input is per window (not an image-sized picture); its difference is
        # the point of the comparison, so it is always shown.
        self.show_condition.setVisible(not edit)
        self.show_difference.setVisible(not edit)
        self.zoom_edits_button.setVisible(edit)
        self._update_visibility()
        if edit and not was_edit:
            self.zoom_to_edits()
        elif first or was_edit and not edit:
            self.fit()

    def _update_visibility(self) -> None:
        r = self.result
        edit = r is not None and r.is_edit
        show_condition = self.show_condition.isChecked() and not edit
        show_difference = self.show_difference.isChecked() or edit
        self.condition.holder.setVisible(show_condition)
        self.difference.holder.setVisible(show_difference)
        if r is None:
            return
        if show_condition:
            pixels = ArrayImage.wrap(condition_rgb(r), QImage.Format.Format_RGB32)
            self.condition.show_pixels(pixels, r.image.shape)
            self.condition.caption.setText(f"{r.condition.shape[0]} channels at "
                                           f"{r.condition.shape[2]} px")
        if show_difference and self.reference is not None:
            if edit:
                if self._edit_difference is None or self._edit_difference[0] is not r:
                    self._edit_difference = (r, *edit_difference_rgb(r.image, self.reference,
                                                                      r.changed))
                _, words, gain = self._edit_difference
                self.difference.title.setText(f"Difference (edited − source) × {gain:.3g}")
                self.difference.caption.setText(
                    f"red: brighter, blue: darker, amplified {gain:.3g}×; white: identical "
                    "(every pixel outside the edits)")
            else:
                words = difference_rgb(r.image, self.reference)
                self.difference.title.setText("Difference (generated − source)")
                self.difference.caption.setText("red: brighter than the source, blue: darker")
            self.difference.show_pixels(ArrayImage.wrap(words, QImage.Format.Format_RGB32),
                                        r.image.shape)
        self._sync_from(self.truth)

    def zoom_to_edits(self) -> None:
        """Frame the changed pixels of the shown edit result (with their surroundings)."""
        r = self.result
        box = changed_box(r.changed) if r is not None and r.is_edit else None
        if box is None:
            self.fit()
            return
        y0, x0, y1, x1 = box
        self.truth.fitInView(QRectF(x0, y0, x1 - x0, y1 - y0), Qt.AspectRatioMode.KeepAspectRatio)
        self._sync_from(self.truth)

    def fit(self) -> None:
        self.truth.fitInView(self.truth.sceneRect(), Qt.AspectRatioMode.KeepAspectRatio)
        self._sync_from(self.truth)

    def _sync_from(self, source: LinkedView) -> None:
        if self._syncing:
            return
        self._syncing = True
        follow(source, self.views)
        self._syncing = False


class ResultsStrip(QListWidget):
    """Thumbnails of every result of the current study; the selected one is compared."""

    resultChosen = Signal(object, int)  # GeneratedImage, its number (1-based)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("resultsStrip")
        self.setViewMode(QListView.ViewMode.IconMode)
        self.setFlow(QListView.Flow.LeftToRight)
        self.setWrapping(False)
        self.setIconSize(QSize(THUMB, THUMB))
        self.setMovement(QListView.Movement.Static)
        # Not fixed: a tabbed dock area grows no taller than its tabs' maximum heights allow.
        self.setMinimumHeight(THUMB + 48)
        self.setSpacing(4)
        self.results: list[GeneratedImage] = []
        self.result_ids: list[str | None] = []  # project result ids, None when not stored
        self.currentRowChanged.connect(self._on_row)

    def paintEvent(self, event) -> None:  # noqa: N802 (Qt naming)
        super().paintEvent(event)
        if self.count() == 0:
            painter = QPainter(self.viewport())
            painter.setPen(self.palette().color(QPalette.ColorRole.PlaceholderText))
            painter.drawText(self.viewport().rect(), Qt.AlignmentFlag.AlignCenter,
                             "Generated images of this study appear here (Generate: Ctrl+Return)")
            painter.end()

    def add(self, results: list[GeneratedImage], ids: list[str] | None = None) -> None:
        """Append results; ``ids`` are their project result ids when they are stored."""
        ids = list(ids or [])
        for i, r in enumerate(results):
            self.results.append(r)
            self.result_ids.append(ids[i] if i < len(ids) else None)
            number = len(self.results)
            small = _thumbnail(r.image)
            item = QListWidgetItem(QIcon(QPixmap.fromImage(small)), self._label(r, number))
            item.setToolTip(metrics_text(r.metrics))
            self.addItem(item)

    def clear_results(self) -> None:
        self.results = []
        self.result_ids = []
        self.clear()

    def select_id(self, result_id: str) -> bool:
        """Select the result stored as ``result_id``; False when the strip does not hold it."""
        if result_id not in self.result_ids:
            return False
        self.setCurrentRow(self.result_ids.index(result_id))
        return True

    @staticmethod
    def _label(r: GeneratedImage, number: int) -> str:
        psnr = r.metrics.get("psnr_edit", r.metrics.get("psnr"))
        figure = "" if psnr is None else (" · ∞ dB" if math.isinf(psnr) else f" · {psnr:.1f} dB")
        return f"#{number} {'edit ' if r.is_edit else ''}seed {r.seed}{figure}"

    def _on_row(self, row: int) -> None:
        if 0 <= row < len(self.results):
            self.resultChosen.emit(self.results[row], row + 1)


def _thumbnail(image: np.ndarray) -> QImage:
    """A small QImage that owns its pixels (safe to keep after the array is gone)."""
    step = max(1, max(image.shape) // (2 * THUMB))
    small = np.ascontiguousarray(image[::step, ::step])
    wrapped = ArrayImage.wrap(grey_to_rgb32(small), QImage.Format.Format_RGB32)
    return wrapped.image.scaled(THUMB, THUMB, Qt.AspectRatioMode.KeepAspectRatio,
                                Qt.TransformationMode.SmoothTransformation)

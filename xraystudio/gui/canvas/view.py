"""CanvasView: the radiograph with its masks, zoom/pan, window/level and the active tool.

Mouse: the wheel zooms about the cursor, the middle button (or Space + left) pans, the right
button drags window/level (horizontal: width, vertical: level), the left button drives the tool.
The view owns no data: it shows a Study and sends edits to its MaskStack.
"""

from __future__ import annotations

import math

from PySide6.QtCore import QPointF, QRectF, Qt, QTimer, Signal
from PySide6.QtGui import (
    QColor,
    QDragEnterEvent,
    QDropEvent,
    QKeyEvent,
    QMouseEvent,
    QPainter,
    QPainterPath,
    QPen,
    QWheelEvent,
)
from PySide6.QtWidgets import (
    QGraphicsEllipseItem,
    QGraphicsPathItem,
    QGraphicsScene,
    QGraphicsView,
    QWidget,
)

from xraystudio.gui.canvas.image_item import DisplayLUT, WindowedImage
from xraystudio.gui.canvas.overlay import COLORS, MaskOverlayItem, OverlayStyle
from xraystudio.gui.canvas.tools import Tool, ToolSettings
from xraystudio.image import Window
from xraystudio.masks import MaskStack
from xraystudio.study import Study
from xraystudio.synthesis.edit import REMOVE_LAYER

BACKGROUND = QColor(24, 24, 27)
MIN_SCALE, MAX_SCALE = 0.02, 40.0


class CanvasView(QGraphicsView):
    cursorMoved = Signal(float, float)  # image x, y (pixels), or NaN outside the image
    windowChanged = Signal(object)  # Window
    zoomChanged = Signal(float)  # screen pixels per image pixel
    filesDropped = Signal(list)  # list[str]
    noduleSelected = Signal(object)  # int id or None
    edited = Signal()  # a tool finished an edit (stroke, stamp, fill)
    noduleDragged = Signal()  # a nodule is being dragged
    layersChanged = Signal()  # a tool added a layer to the masks (the Remove tool's)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setScene(QGraphicsScene(self))
        self.setBackgroundBrush(BACKGROUND)
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)
        self.setResizeAnchor(QGraphicsView.ViewportAnchor.AnchorViewCenter)
        self.setViewportUpdateMode(QGraphicsView.ViewportUpdateMode.MinimalViewportUpdate)
        self.setOptimizationFlag(QGraphicsView.OptimizationFlag.DontSavePainterState, True)
        self.setMouseTracking(True)
        self.setAcceptDrops(True)
        self.viewport().setAcceptDrops(True)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.study: Study | None = None
        self.image: WindowedImage | None = None
        self.overlay: MaskOverlayItem | None = None
        self.overlay_style = OverlayStyle()
        self.tool_settings = ToolSettings()
        self.tool: Tool | None = None
        self.selected_nodule: int | None = None
        self._fit_mode = True
        self._pan_from: QPointF | None = None
        self._space = False
        self._wl_from: tuple[QPointF, Window] | None = None
        self._pending_window: Window | None = None
        self._window_timer = QTimer(self, singleShot=True, interval=0)
        self._window_timer.timeout.connect(self._apply_pending_window)
        self._unsubscribe = None

        self._brush = QGraphicsEllipseItem()
        pen = QPen(QColor(255, 255, 255, 220), 1.0)
        pen.setCosmetic(True)
        self._brush.setPen(pen)
        self._brush.setZValue(30)
        self._brush.setVisible(False)
        self.scene().addItem(self._brush)
        self._ring = QGraphicsEllipseItem()
        ring_pen = QPen(QColor(255, 255, 0), 2.0, Qt.PenStyle.DashLine)
        ring_pen.setCosmetic(True)
        self._ring.setPen(ring_pen)
        self._ring.setZValue(25)
        self._ring.setVisible(False)
        self.scene().addItem(self._ring)
        # Where edit mode will remove a nodule of the radiograph (deleted or moved away).
        self._removed = QGraphicsPathItem()
        removed_pen = QPen(QColor(*COLORS[REMOVE_LAYER]), 1.5, Qt.PenStyle.DashLine)
        removed_pen.setCosmetic(True)
        self._removed.setPen(removed_pen)
        self._removed.setZValue(24)
        self._removed.setToolTip("A nodule of the radiograph that edit mode will remove")
        self.scene().addItem(self._removed)

    # ------------------------------------------------------------------ study
    @property
    def masks(self) -> MaskStack:
        assert self.study is not None
        return self.study.masks

    def set_study(self, study: Study | None, lut: DisplayLUT | None = None) -> None:
        """Show ``study`` (or nothing), fitted to the window; ``lut`` if already computed."""
        if self.tool is not None and self.study is not None:
            self.tool.cancel(self)
        if self.overlay is not None:
            self.overlay.detach()
            self.scene().removeItem(self.overlay)
            self.overlay = None
        if self.image is not None:
            self.scene().removeItem(self.image.item)
            self.image = None
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        self.study = study
        self.selected_nodule = None
        self._ring.setVisible(False)
        self._removed.setPath(QPainterPath())
        if study is None:
            self.setSceneRect(QRectF(0, 0, 1, 1))
            self.viewport().update()
            return
        self.image = WindowedImage(study.image, lut)
        self.image.item.setZValue(0)
        self.scene().addItem(self.image.item)
        self.overlay = MaskOverlayItem(study.masks, self.overlay_style)
        self.overlay.setZValue(10)
        self.scene().addItem(self.overlay)
        self._unsubscribe = study.masks.subscribe(lambda layer, rect: self._update_ring())
        self._update_removed()
        h, w = study.shape
        self.setSceneRect(QRectF(0, 0, w, h))
        self.fit()
        self.windowChanged.emit(self.image.window)

    # ------------------------------------------------------------------ zoom
    @property
    def scale_factor(self) -> float:
        return self.transform().m11()

    def fit(self) -> None:
        self._fit_mode = True
        if self.study is not None:
            self.fitInView(self.sceneRect(), Qt.AspectRatioMode.KeepAspectRatio)
            self.zoomChanged.emit(self.scale_factor)

    def actual_size(self) -> None:
        self._set_scale(1.0)

    def zoom_by(self, factor: float) -> None:
        self._set_scale(self.scale_factor * factor)

    def _set_scale(self, scale: float) -> None:
        scale = min(max(scale, MIN_SCALE), MAX_SCALE)
        if self.study is None or scale == self.scale_factor:
            return
        self._fit_mode = False
        f = scale / self.scale_factor
        self.scale(f, f)
        self.zoomChanged.emit(self.scale_factor)
        self._update_brush(None)

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        if self._fit_mode:
            self.fit()

    def wheelEvent(self, event: QWheelEvent) -> None:
        delta = event.angleDelta().y() or event.angleDelta().x()
        if delta:
            self.zoom_by(math.pow(1.0015, delta))
        event.accept()

    # --------------------------------------------------------- window/level
    def set_window(self, window: Window) -> None:
        if self.image is not None:
            self._pending_window = window
            self._apply_pending_window()

    def _apply_pending_window(self) -> None:
        if self.image is None or self._pending_window is None:
            return
        window, self._pending_window = self._pending_window, None
        self.image.set_window(window)
        self.windowChanged.emit(window)

    def _drag_window(self, pos: QPointF) -> None:
        assert self._wl_from is not None and self.image is not None
        start, base = self._wl_from
        levels = self.image.lut.levels
        span = float(levels[-1] - levels[0]) or 1.0
        per_px = span / 800.0
        dx, dy = pos.x() - start.x(), pos.y() - start.y()
        if base.lut is not None:
            base = Window.from_range(float(levels[0]), float(levels[-1]), "")
        width = max(base.width * math.exp(dx / 300.0), per_px)
        center = base.center + dy * per_px
        fn = base.function if base.function in ("LINEAR", "LINEAR_EXACT", "SIGMOID") else "LINEAR"
        self._pending_window = Window(center, width, fn, "Manual")
        if not self._window_timer.isActive():
            self._window_timer.start()

    # ----------------------------------------------------------------- tools
    def set_tool(self, tool: Tool) -> None:
        if self.tool is not None and self.study is not None:
            self.tool.cancel(self)
        self.tool = tool
        self._update_brush(None)

    def set_brush_mm(self, mm: float) -> None:
        self.tool_settings.brush_mm = mm
        self._update_brush(None)

    def nodule_at(self, pos: QPointF) -> int | None:
        """The nodule under ``pos`` (the smallest, if they overlap)."""
        if self.study is None:
            return None
        hits = []
        for n in self.masks.nodules:
            r = max(self.masks.mm_to_px(n.diameter_mm) / 2.0, 4.0 / self.scale_factor)
            if (n.x - pos.x()) ** 2 + (n.y - pos.y()) ** 2 <= r * r:
                hits.append((n.diameter_mm, n.id))
        return min(hits)[1] if hits else None

    def select_nodule(self, nodule_id: int | None) -> None:
        if nodule_id != self.selected_nodule:
            self.selected_nodule = nodule_id
            self.noduleSelected.emit(nodule_id)
        self._update_ring()

    def center_on_nodule(self, nodule_id: int) -> None:
        n = self.masks.nodule(nodule_id)
        self.centerOn(QPointF(n.x, n.y))

    def removed_source_nodules(self) -> list:
        """The radiograph's nodules that edit mode will remove: deleted, moved or resized."""
        if self.study is None:
            return []
        now = {n.id: n for n in self.masks.nodules}

        def same(a, b) -> bool:  # as synthesis.edit.plan_from_masks compares them
            return all(abs(u - v) <= 1e-3 for u, v in
                       zip((a.x, a.y, a.diameter_mm), (b.x, b.y, b.diameter_mm)))

        return [s for s in self.masks.source_nodules if s.id not in now or not same(now[s.id], s)]

    def _update_removed(self) -> None:
        path = QPainterPath()
        for n in self.removed_source_nodules():
            r = self.masks.mm_to_px(n.diameter_mm) / 2.0
            path.addEllipse(QPointF(n.x, n.y), r, r)
        self._removed.setPath(path)

    def _update_ring(self) -> None:
        if self.study is not None and self.masks.source_nodules:
            self._update_removed()
        ids = {n.id for n in self.masks.nodules} if self.study is not None else set()
        if self.selected_nodule not in ids:
            if self.selected_nodule is not None:
                self.selected_nodule = None
                self.noduleSelected.emit(None)
            self._ring.setVisible(False)
            return
        n = self.masks.nodule(self.selected_nodule)
        r = self.masks.mm_to_px(n.diameter_mm) / 2.0 + 3.0 / max(self.scale_factor, 1e-6)
        self._ring.setRect(QRectF(n.x - r, n.y - r, 2 * r, 2 * r))
        self._ring.setVisible(True)

    def _update_brush(self, pos: QPointF | None) -> None:
        show = self.study is not None and self.tool is not None and self.tool.shows_brush
        if pos is None:
            pos = self._brush.rect().center() if self._brush.isVisible() else None
        if not show or pos is None:
            self._brush.setVisible(False)
            return
        r = max(self.masks.mm_to_px(self.tool_settings.brush_mm) / 2.0, 0.5)
        self._brush.setRect(QRectF(pos.x() - r, pos.y() - r, 2 * r, 2 * r))
        self._brush.setVisible(True)

    def _inside(self, pos: QPointF) -> bool:
        if self.study is None:
            return False
        h, w = self.study.shape
        return 0 <= pos.x() < w and 0 <= pos.y() < h

    # ----------------------------------------------------------------- mouse
    def mousePressEvent(self, event: QMouseEvent) -> None:
        pos = self._subpixel(event)
        button = event.button()
        if button == Qt.MouseButton.MiddleButton or (
            button == Qt.MouseButton.LeftButton and self._space
        ):
            self._pan_from = event.position()
            self.viewport().setCursor(Qt.CursorShape.ClosedHandCursor)
        elif button == Qt.MouseButton.RightButton and self.image is not None:
            self._wl_from = (event.position(), self.image.window)
        elif button == Qt.MouseButton.LeftButton and self.tool is not None and self._inside(pos):
            self.tool.press(self, pos)
        event.accept()

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        pos = self._subpixel(event)
        if self._pan_from is not None:
            delta = event.position() - self._pan_from
            self._pan_from = event.position()
            h, v = self.horizontalScrollBar(), self.verticalScrollBar()
            h.setValue(h.value() - round(delta.x()))
            v.setValue(v.value() - round(delta.y()))
            self._fit_mode = False
        elif self._wl_from is not None:
            self._drag_window(event.position())
        elif self.tool is not None and self.study is not None:
            self.tool.move(self, pos)
        self._update_brush(pos)
        if self._inside(pos):
            self.cursorMoved.emit(pos.x(), pos.y())
        else:
            self.cursorMoved.emit(math.nan, math.nan)
        event.accept()

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        if self._pan_from is not None and event.button() in (
            Qt.MouseButton.MiddleButton, Qt.MouseButton.LeftButton
        ):
            self._pan_from = None
            self.viewport().unsetCursor()
        elif self._wl_from is not None and event.button() == Qt.MouseButton.RightButton:
            self._wl_from = None
        elif self.tool is not None and self.study is not None:
            self.tool.release(self, self._subpixel(event))
        event.accept()

    def mouseDoubleClickEvent(self, event: QMouseEvent) -> None:
        if event.button() == Qt.MouseButton.LeftButton and self.tool is not None and self.study:
            self.tool.double_click(self, self._subpixel(event))
        event.accept()

    def leaveEvent(self, event) -> None:
        self._brush.setVisible(False)
        self.cursorMoved.emit(math.nan, math.nan)
        super().leaveEvent(event)

    def _subpixel(self, event: QMouseEvent) -> QPointF:
        """The scene point under the mouse, without rounding to whole screen pixels."""
        return self.viewportTransform().inverted()[0].map(event.position())

    # ------------------------------------------------------------------- keys
    def keyPressEvent(self, event: QKeyEvent) -> None:
        key = event.key()
        if key == Qt.Key.Key_Space and not event.isAutoRepeat():
            self._space = True
            self.viewport().setCursor(Qt.CursorShape.OpenHandCursor)
        elif self.tool is not None and self.study is not None and key in (
            Qt.Key.Key_Escape, Qt.Key.Key_Return, Qt.Key.Key_Enter, Qt.Key.Key_Backspace
        ):
            if key == Qt.Key.Key_Escape:
                self.tool.cancel(self)
            elif key == Qt.Key.Key_Backspace:
                self.tool.back(self)
            else:
                self.tool.finish(self)
        else:
            super().keyPressEvent(event)

    def keyReleaseEvent(self, event: QKeyEvent) -> None:
        if event.key() == Qt.Key.Key_Space and not event.isAutoRepeat():
            self._space = False
            self.viewport().unsetCursor()
        else:
            super().keyReleaseEvent(event)

    # ------------------------------------------------------------ drag & drop
    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    dragMoveEvent = dragEnterEvent  # type: ignore[assignment]

    def dropEvent(self, event: QDropEvent) -> None:
        paths = [u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()]
        if paths:
            event.acceptProposedAction()
            self.filesDropped.emit(paths)

    # -------------------------------------------------------------- painting
    def drawForeground(self, painter: QPainter, rect: QRectF) -> None:
        if self.study is not None:
            return
        painter.save()
        painter.resetTransform()
        painter.setPen(QColor(200, 200, 205))
        font = painter.font()
        font.setPointSizeF(font.pointSizeF() * 1.4)
        painter.setFont(font)
        painter.drawText(
            self.viewport().rect(), Qt.AlignmentFlag.AlignCenter,
            "Open a radiograph\n\nFile ▸ Open (Ctrl+O), or drop a DICOM, PNG or TIFF file here",
        )
        painter.restore()

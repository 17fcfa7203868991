"""Editing tools: each turns mouse input on the canvas into MaskStack edits.

A tool sees image coordinates (x right, y down, in pixels) and the canvas it works on; the stack
does the pixel work and reports what changed, so tools never touch the overlay. A whole stroke or
drag is one undo step (``begin``/``commit``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Protocol

from PySide6.QtCore import QPointF, Qt, SignalInstance
from PySide6.QtGui import QColor, QPainterPath, QPen
from PySide6.QtWidgets import QGraphicsPathItem, QGraphicsScene

from xraystudio.masks import MaskStack
from xraystudio.synthesis.edit import REMOVE_LAYER


@dataclasses.dataclass
class ToolSettings:
    """What the tools paint with; shared by the toolbar, the panels and the canvas."""

    layer: str = "right_lung"
    brush_mm: float = 8.0
    nodule_mm: float = 12.0
    #: The target contrast of a nodule stamped at a diameter (None: as the model draws it).
    nodule_contrast: Callable[[float], float | None] = lambda diameter_mm: None


class Canvas(Protocol):
    """What a tool uses of the canvas it works on (:class:`.view.CanvasView`, which holds the
    tools): written here so that the tools need not import the view back."""

    tool_settings: ToolSettings
    edited: SignalInstance
    layersChanged: SignalInstance
    noduleDragged: SignalInstance

    @property
    def masks(self) -> MaskStack: ...

    def nodule_at(self, pos: QPointF) -> int | None: ...

    def select_nodule(self, nodule_id: int | None) -> None: ...

    def scene(self) -> QGraphicsScene: ...


class Tool:
    """Base tool: ignores everything. Subclasses override the events they use."""

    name = ""
    key = ""
    help = ""
    shows_brush = False

    def press(self, canvas: Canvas, pos: QPointF) -> None: ...

    def move(self, canvas: Canvas, pos: QPointF) -> None: ...

    def release(self, canvas: Canvas, pos: QPointF) -> None: ...

    def double_click(self, canvas: Canvas, pos: QPointF) -> None: ...

    def finish(self, canvas: Canvas) -> None:
        """Enter: complete what is in progress."""

    def cancel(self, canvas: Canvas) -> None:
        """Escape (or a tool/study change): drop what is in progress."""

    def back(self, canvas: Canvas) -> None:
        """Backspace: undo the last partial input."""


class BrushTool(Tool):
    name, key, help = "Brush", "B", "Paint the active layer; [ and ] change the size"
    shows_brush = True
    value = True

    def __init__(self) -> None:
        self._last: tuple[float, float] | None = None

    def layer(self, canvas: Canvas) -> str:
        return canvas.tool_settings.layer

    def press(self, canvas: Canvas, pos: QPointF) -> None:
        masks, s = canvas.masks, canvas.tool_settings
        masks.begin(self.name)
        self._last = (pos.x(), pos.y())
        masks.paint(self.layer(canvas), [self._last], s.brush_mm, value=self.value)

    def move(self, canvas: Canvas, pos: QPointF) -> None:
        if self._last is None:
            return
        s = canvas.tool_settings
        point = (pos.x(), pos.y())
        canvas.masks.paint(self.layer(canvas), [self._last, point], s.brush_mm, value=self.value)
        self._last = point

    def release(self, canvas: Canvas, pos: QPointF) -> None:
        if self._last is not None:
            self._last = None
            canvas.masks.commit()
            canvas.edited.emit()

    def cancel(self, canvas: Canvas) -> None:
        # Escape during a stroke keeps what was painted, like lifting the pen.
        self.release(canvas, QPointF())


class EraserTool(BrushTool):
    name, key, help = "Eraser", "E", "Erase from the active layer; [ and ] change the size"
    value = False


class RemoveTool(BrushTool):
    """Paints the "remove" layer, whatever layer is active: edit mode fills what it covers with
    the patient's normal surroundings (a nodule, a marker, a line the source has)."""

    name, key, help = "Remove", "X", ("Paint over what edit mode should remove (filled with "
                                      "normal surroundings); [ and ] change the size")

    def layer(self, canvas: Canvas) -> str:
        return REMOVE_LAYER

    def press(self, canvas: Canvas, pos: QPointF) -> None:
        if REMOVE_LAYER not in canvas.masks:
            canvas.masks.add_layer(REMOVE_LAYER)
            canvas.layersChanged.emit()
        super().press(canvas, pos)


class FillTool(Tool):
    name, key, help = "Fill", "G", "Fill the enclosed region under the cursor in the active layer"

    def press(self, canvas: Canvas, pos: QPointF) -> None:
        canvas.masks.flood_fill(canvas.tool_settings.layer, pos.x(), pos.y())
        canvas.edited.emit()


class NoduleTool(Tool):
    """Click to stamp a nodule; drag an existing one to move it."""

    name, key, help = "Nodule", "N", "Click to stamp a nodule (diameter in mm); drag one to move it"

    def __init__(self) -> None:
        self._dragging: int | None = None
        self._offset = (0.0, 0.0)

    def press(self, canvas: Canvas, pos: QPointF) -> None:
        masks = canvas.masks
        hit = canvas.nodule_at(pos)
        if hit is not None:
            n = masks.nodule(hit)
            self._dragging, self._offset = hit, (n.x - pos.x(), n.y - pos.y())
            masks.begin("Move nodule")
        else:
            settings = canvas.tool_settings
            n = masks.add_nodule(pos.x(), pos.y(), settings.nodule_mm,
                                 settings.nodule_contrast(settings.nodule_mm))
            canvas.edited.emit()
        canvas.select_nodule(n.id)

    def move(self, canvas: Canvas, pos: QPointF) -> None:
        if self._dragging is None:
            return
        h, w = canvas.masks.shape
        x = min(max(pos.x() + self._offset[0], 0.0), w - 1.0)
        y = min(max(pos.y() + self._offset[1], 0.0), h - 1.0)
        canvas.masks.update_nodule(self._dragging, x=x, y=y)
        canvas.noduleDragged.emit()

    def release(self, canvas: Canvas, pos: QPointF) -> None:
        if self._dragging is not None:
            self._dragging = None
            canvas.masks.commit()
            canvas.edited.emit()

    def cancel(self, canvas: Canvas) -> None:
        self.release(canvas, QPointF())


class PolygonTool(Tool):
    """Click vertices; double-click or Enter fills, Backspace drops a vertex, Escape cancels."""

    name, key, help = "Polygon", "P", ("Click vertices; double-click or Enter fills the polygon, "
                                       "Backspace removes a vertex, Escape cancels")

    def __init__(self) -> None:
        self._points: list[QPointF] = []
        self._cursor: QPointF | None = None
        self._item: QGraphicsPathItem | None = None

    def press(self, canvas: Canvas, pos: QPointF) -> None:
        self._points.append(QPointF(pos))
        self._redraw(canvas)

    def move(self, canvas: Canvas, pos: QPointF) -> None:
        self._cursor = QPointF(pos)
        if self._points:
            self._redraw(canvas)

    def double_click(self, canvas: Canvas, pos: QPointF) -> None:
        self.finish(canvas)

    def finish(self, canvas: Canvas) -> None:
        points = _dedupe([(p.x(), p.y()) for p in self._points])
        self.cancel(canvas)
        if len(points) >= 3:
            canvas.masks.fill_polygon(canvas.tool_settings.layer, points)
            canvas.edited.emit()

    def cancel(self, canvas: Canvas) -> None:
        self._points = []
        if self._item is not None:
            canvas.scene().removeItem(self._item)
            self._item = None

    def back(self, canvas: Canvas) -> None:
        if self._points:
            self._points.pop()
            self._redraw(canvas)

    def _redraw(self, canvas: Canvas) -> None:
        if self._item is None:
            pen = QPen(QColor(255, 255, 255), 1.5, Qt.PenStyle.DashLine)
            pen.setCosmetic(True)
            self._item = canvas.scene().addPath(QPainterPath(), pen)
            self._item.setZValue(20)
        path = QPainterPath()
        if self._points:
            path.moveTo(self._points[0])
            for p in self._points[1:]:
                path.lineTo(p)
            if self._cursor is not None:
                path.lineTo(self._cursor)
        self._item.setPath(path)


def _dedupe(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Drop consecutive repeats (a double-click adds its point twice)."""
    out: list[tuple[float, float]] = []
    for p in points:
        if not out or abs(p[0] - out[-1][0]) + abs(p[1] - out[-1][1]) > 0.5:
            out.append(p)
    return out


def all_tools() -> list[Tool]:
    """One instance of each tool, in toolbar order."""
    return [BrushTool(), EraserTool(), NoduleTool(), PolygonTool(), FillTool(), RemoveTool()]

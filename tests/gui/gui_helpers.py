"""Helpers for the GUI tests: small radiographs and mouse/keyboard input in image coordinates."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image
from PySide6.QtCore import QPointF, Qt
from PySide6.QtTest import QTest

if TYPE_CHECKING:
    from xraystudio.gui.main_window import MainWindow

SHAPE = (240, 200)  # rows, columns


def chest_png(path: Path, shape: tuple[int, int] = SHAPE) -> Path:
    """An 8-bit chest-like PNG: two dark lung fields on a bright body."""
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.full(shape, 200.0)
    for cx in (w * 0.3, w * 0.7):
        img -= 120 * ((((xx - cx) / (w * 0.16)) ** 2 + ((yy - h * 0.5) / (h * 0.3)) ** 2) < 1)
    Image.fromarray(img.astype(np.uint8)).save(path)
    return path


def open_and_wait(qtbot, window: MainWindow, path: Path) -> None:
    window.open_file(path)
    qtbot.waitUntil(lambda: window.study is not None and window._open_thread is None,
                    timeout=10_000)


def to_view(window: MainWindow, x: float, y: float):
    """Viewport coordinates of image pixel (x, y)."""
    return window.canvas.mapFromScene(QPointF(x, y))


def drag(window: MainWindow, points: list[tuple[float, float]],
         button=Qt.MouseButton.LeftButton) -> None:
    """Press at the first image point, move through the others, release at the last."""
    vp = window.canvas.viewport()
    QTest.mousePress(vp, button, Qt.KeyboardModifier.NoModifier, to_view(window, *points[0]))
    for p in points[1:]:
        QTest.mouseMove(vp, to_view(window, *p))
    QTest.mouseRelease(vp, button, Qt.KeyboardModifier.NoModifier, to_view(window, *points[-1]))


def click(window: MainWindow, x: float, y: float) -> None:
    QTest.mouseClick(window.canvas.viewport(), Qt.MouseButton.LeftButton,
                     Qt.KeyboardModifier.NoModifier, to_view(window, x, y))


def key(window: MainWindow, k, modifiers=Qt.KeyboardModifier.NoModifier) -> None:
    QTest.keyClick(window.canvas, k, modifiers)

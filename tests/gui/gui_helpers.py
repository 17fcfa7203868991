"""Helpers for the GUI tests: small radiographs and mouse/keyboard input in image coordinates."""

from __future__ import annotations

import queue
import threading
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


class InProcessEngine:
    """The engine process's loop (``server.handle`` with its real job table) served on the job
    thread that submits, so what a test patches in this process (a faked ``Segmenter.load``, a
    broken handler) is what runs; the real process is spawned and would not see it."""

    def __init__(self) -> None:
        self.events: queue.Queue = queue.Queue()
        self.cache: dict = {}

    def submit(self, job) -> None:
        from xraystudio.engine.server import handle

        handle(job, self.cache, self.events, threading.Event())

    def next_event(self, timeout: float):
        try:
            return self.events.get(timeout=timeout)
        except queue.Empty:
            return None

    def cancel(self) -> None:
        pass

    def close(self, timeout: float = 5.0) -> None:
        pass

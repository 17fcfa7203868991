"""Fixtures for driving the real window offscreen: settings in tmp_path, small radiographs."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ for dicom_factory

pytest.importorskip("pytestqt")
from PySide6.QtCore import QPointF, QSettings, Qt  # noqa: E402
from PySide6.QtTest import QTest  # noqa: E402
from PySide6.QtWidgets import QMessageBox  # noqa: E402

from xraystudio.gui.main_window import MainWindow  # noqa: E402
from xraystudio.gui.settings import AppSettings  # noqa: E402

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


@pytest.fixture
def settings(tmp_path: Path) -> AppSettings:
    return AppSettings(QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat))


@pytest.fixture
def window(qtbot, settings: AppSettings, monkeypatch) -> MainWindow:
    # A modal "save changes?" question would wait forever offscreen: answer Discard.
    monkeypatch.setattr(QMessageBox, "question",
                        lambda *a, **k: QMessageBox.StandardButton.Discard)
    w = MainWindow(settings)
    qtbot.addWidget(w)
    w.resize(1200, 800)
    w.show()
    qtbot.waitExposed(w)
    return w


@pytest.fixture
def radiograph(tmp_path: Path) -> Path:
    return chest_png(tmp_path / "chest.png")


def open_and_wait(qtbot, window: MainWindow, path: Path) -> None:
    window.open_file(path)
    qtbot.waitUntil(lambda: window.study is not None and window._open_thread is None,
                    timeout=10_000)


@pytest.fixture
def opened(qtbot, window: MainWindow, radiograph: Path) -> MainWindow:
    open_and_wait(qtbot, window, radiograph)
    return window


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

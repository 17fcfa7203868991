"""Fixtures for driving the real window offscreen: settings in tmp_path, small radiographs."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # gui_helpers
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # dicom_factory

pytest.importorskip("pytestqt")
from gui_helpers import chest_png, open_and_wait  # noqa: E402
from PySide6.QtCore import QSettings  # noqa: E402
from PySide6.QtWidgets import QMessageBox  # noqa: E402

from xraystudio.gui.dialogs import keep_results  # noqa: E402
from xraystudio.gui.main_window import MainWindow  # noqa: E402
from xraystudio.gui.settings import AppSettings  # noqa: E402


@pytest.fixture
def settings(tmp_path: Path) -> AppSettings:
    s = AppSettings(QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat))
    # Automatic segmentation would edit the masks of every opened file a moment later;
    # test_gui_autosegment.py turns it on where it is the subject.
    s.auto_segment = False
    return s


@pytest.fixture
def window(qtbot, settings: AppSettings, monkeypatch) -> MainWindow:
    # A modal "save changes?" question would wait forever offscreen: answer Discard.
    monkeypatch.setattr(QMessageBox, "question",
                        lambda *a, **k: QMessageBox.StandardButton.Discard)

    def unexpected(*args, **kwargs):  # a test that switches projects with results must answer
        raise AssertionError("asked whether to keep the session's results")

    monkeypatch.setattr(keep_results, "ask_keep", unexpected)
    w = MainWindow(settings)
    qtbot.addWidget(w)
    w.resize(1200, 800)
    w.show()
    qtbot.waitExposed(w)
    return w


@pytest.fixture
def radiograph(tmp_path: Path) -> Path:
    return chest_png(tmp_path / "chest.png")


@pytest.fixture
def opened(qtbot, window: MainWindow, radiograph: Path) -> MainWindow:
    open_and_wait(qtbot, window, radiograph)
    return window

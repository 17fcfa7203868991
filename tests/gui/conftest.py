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
    # Closing the window with results in no project asks; the tests' windows close at teardown.
    monkeypatch.setattr(keep_results, "ask_discard", lambda *a: True)
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


@pytest.fixture(scope="module")
def shared_engine():
    """One engine process on one thread for a module's tests that generate (torch starts once)."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("diffusers")
    from test_gui_generation import SharedEngine

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    engine = SharedEngine(threads=1)
    yield engine
    engine.shutdown()
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def edit_model(tmp_path_factory) -> str:
    """A tiny random pixel model with a tiny edit model beside it (every mode)."""
    pytest.importorskip("diffusers")
    from xraystudio.synthesis.tiny import make_tiny_edit_model, make_tiny_pixel_model

    folder = tmp_path_factory.mktemp("models") / "tiny-edit"
    make_tiny_pixel_model(folder)
    make_tiny_edit_model(folder)
    return str(folder)


@pytest.fixture(scope="session")
def plain_model(tmp_path_factory) -> str:
    """A tiny random pixel model without an edit model."""
    pytest.importorskip("diffusers")
    from xraystudio.synthesis.tiny import make_tiny_pixel_model

    return str(make_tiny_pixel_model(tmp_path_factory.mktemp("models") / "tiny-plain"))

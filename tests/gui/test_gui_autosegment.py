"""Automatic anatomy segmentation after opening a radiograph without masks (issue 5)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from dicom_factory import make_dicom
from gui_helpers import InProcessEngine, chest_png, open_and_wait
from PySide6.QtCore import QSettings

from xraystudio.gui.settings import AppSettings
from xraystudio.io.masks_io import save_masks
from xraystudio.masks import ANATOMY, MaskStack
from xraystudio.segmentation.segmenter import Segmenter


@pytest.fixture
def settings(tmp_path: Path) -> AppSettings:
    """As the user gets it: automatic segmentation on (conftest turns it off elsewhere)."""
    s = AppSettings(QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat))
    assert s.auto_segment  # the default
    return s


class FakeSegmenter:
    """Each structure gets a block of its own; ``gate`` (if set) holds the first call back."""

    def __init__(self, gate: threading.Event | None = None) -> None:
        self.gate = gate
        self.calls = 0

    def segment(self, display: np.ndarray) -> dict[str, np.ndarray]:
        self.calls += 1
        if self.gate is not None and self.calls == 1:
            assert self.gate.wait(20)
        h, w = display.shape
        # Where a chest has them (the automatic run refuses masks that look like no chest).
        boxes = {"right_lung": (0.25, 0.65, 0.12, 0.42), "left_lung": (0.25, 0.65, 0.58, 0.88),
                 "heart": (0.45, 0.7, 0.4, 0.6), "right_clavicle": (0.15, 0.2, 0.15, 0.45),
                 "left_clavicle": (0.15, 0.2, 0.55, 0.85)}
        out = {}
        for name in ANATOMY:
            y0, y1, x0, x1 = boxes[name]
            m = np.zeros((h, w), bool)
            m[int(h * y0): int(h * y1), int(w * x0): int(w * x1)] = True
            out[name] = m
        return out


def use_fake(monkeypatch, window, seg: FakeSegmenter) -> None:
    monkeypatch.setattr(Segmenter, "load", classmethod(lambda cls, *a, **k: seg))
    window.segments.process = InProcessEngine()


@pytest.fixture
def fake(monkeypatch, window) -> FakeSegmenter:
    seg = FakeSegmenter()
    use_fake(monkeypatch, window, seg)
    return seg


def anatomy_filled(window) -> list[str]:
    masks = window.study.masks
    return [n for n in ANATOMY if masks[n].any()]


def wait_segmented(qtbot, window, timeout=30_000) -> None:
    qtbot.waitUntil(lambda: window.segments.thread is None and window.study is not None
                    and bool(anatomy_filled(window)), timeout=timeout)


def real_file(name: str) -> Path:
    """A NEMA WG04 radiograph of pydicom-data (the test extra), never downloaded."""
    from pydicom.data import get_testdata_file

    path = get_testdata_file(name, download=False)
    if path is None:
        pytest.skip(f"{name} is not installed (pip install pydicom-data)")
    return Path(path)


def test_real_model_fills_the_anatomy_and_one_undo_clears_it(qtbot, window, tmp_path):
    # A real chest: the automatic run keeps only masks that look like a chest's anatomy.
    open_and_wait(qtbot, window, real_file("RG1_UNCR.dcm"))
    wait_segmented(qtbot, window)
    qtbot.waitUntil(lambda: window.segments.thread is None)
    assert set(anatomy_filled(window)) >= {"right_lung", "left_lung"}
    assert window.study.masks.undo_label == "Segment anatomy"
    assert "Ctrl+Z" in window.statusBar().currentMessage()
    window.undo_action.trigger()
    assert anatomy_filled(window) == []
    assert not window.study.masks.can_undo


def test_dicom_is_segmented_in_the_background(qtbot, window, tmp_path, fake):
    open_and_wait(qtbot, window, make_dicom(tmp_path / "chest.dcm"))
    wait_segmented(qtbot, window)
    assert anatomy_filled(window) == list(ANATOMY)
    window.undo()
    assert anatomy_filled(window) == []


def test_setting_off_does_nothing_and_persists(qtbot, window, settings, tmp_path, fake):
    assert window.auto_segment_action.isChecked()
    window.auto_segment_action.trigger()  # the Tools menu checkbox
    assert not settings.auto_segment
    again = AppSettings(QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat))
    assert not again.auto_segment
    open_and_wait(qtbot, window, chest_png(tmp_path / "chest.png"))
    assert window.segments.thread is None
    qtbot.wait(200)
    assert fake.calls == 0
    assert anatomy_filled(window) == []
    assert not window.study.masks.can_undo


def test_masks_beside_the_file_are_not_resegmented(qtbot, window, tmp_path, fake):
    path = chest_png(tmp_path / "chest.png")
    stack = MaskStack((240, 200), (0.15, 0.15))
    stack.set_layer("heart", np.pad(np.ones((20, 20), bool), ((100, 120), (90, 90))))
    save_masks(stack, tmp_path / "chest.masks.npz")
    open_and_wait(qtbot, window, path)
    assert window.segments.thread is None
    qtbot.wait(200)
    assert fake.calls == 0
    assert anatomy_filled(window) == ["heart"]


def test_stale_result_is_discarded_when_another_file_is_opened(qtbot, window, tmp_path,
                                                               monkeypatch):
    gate = threading.Event()
    seg = FakeSegmenter(gate)
    use_fake(monkeypatch, window, seg)
    open_and_wait(qtbot, window, chest_png(tmp_path / "a.png"))
    first = window.study
    assert window.segments.thread is not None  # held at the gate
    open_and_wait(qtbot, window, chest_png(tmp_path / "b.png"))
    second = window.study
    assert second is not first
    gate.set()
    wait_segmented(qtbot, window)
    qtbot.waitUntil(lambda: window.segments.thread is None)
    assert seg.calls == 2  # the second study got its own run once the first finished
    assert not any(first.masks[n].any() for n in ANATOMY)
    assert not first.masks.can_undo
    assert anatomy_filled(window) == list(ANATOMY)


def test_painting_before_the_result_is_kept(qtbot, window, tmp_path, monkeypatch):
    gate = threading.Event()
    seg = FakeSegmenter(gate)
    use_fake(monkeypatch, window, seg)
    open_and_wait(qtbot, window, chest_png(tmp_path / "a.png"))
    masks = window.study.masks
    masks.begin("Brush")
    masks.paint("left_lung", [(150.0, 150.0)], 3.0)
    masks.commit()
    painted = masks["left_lung"].copy()
    gate.set()
    qtbot.waitUntil(lambda: masks.undo_label == "Segment anatomy", timeout=10_000)
    assert np.array_equal(masks["left_lung"], painted)
    assert set(anatomy_filled(window)) == set(ANATOMY)
    assert "kept your painting" in window.statusBar().currentMessage()
    window.undo()  # the segmentation, in one step
    assert anatomy_filled(window) == ["left_lung"]
    assert np.array_equal(masks["left_lung"], painted)


def test_missing_model_is_a_status_message_not_a_dialog(qtbot, window, tmp_path, monkeypatch):
    monkeypatch.setenv("XRAYSTUDIO_RESOURCES", str(tmp_path / "no-resources"))
    open_and_wait(qtbot, window, chest_png(tmp_path / "chest.png"))
    qtbot.waitUntil(lambda: window.segments.thread is None, timeout=30_000)
    assert window.last_error is None
    assert "No automatic segmentation" in window.statusBar().currentMessage()
    assert anatomy_filled(window) == []


def test_sample_style_masks_are_not_resegmented(qtbot, window, tmp_path, fake):
    """The bundled sample ships ``<stem>_masks.npz`` beside it."""
    path = chest_png(tmp_path / "sample.png")
    stack = MaskStack((240, 200), (0.15, 0.15))
    stack.set_layer("right_lung", np.pad(np.ones((20, 20), bool), ((100, 120), (90, 90))))
    save_masks(stack, tmp_path / "sample_masks.npz")
    open_and_wait(qtbot, window, path)
    qtbot.wait(200)
    assert fake.calls == 0
    assert anatomy_filled(window) == ["right_lung"]


def test_project_study_is_not_resegmented(qtbot, window, settings, tmp_path, fake):
    assert window.switch.new_project(tmp_path / "proj")
    path = chest_png(tmp_path / "chest.png")
    window.auto_segment_action.trigger()  # off: the study enters the project unsegmented
    open_and_wait(qtbot, window, path)
    assert window.projects.study_id is not None
    window.auto_segment_action.trigger()  # on again
    assert settings.auto_segment
    open_and_wait(qtbot, window, path)  # the same file again: the project's masks are the work
    qtbot.wait(200)
    assert window.segments.thread is None
    assert fake.calls == 0


TORCH_FREE_SEGMENTATION = """
import sys, time
from pathlib import Path
sys.path.insert(0, {helpers!r})
from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QApplication
app = QApplication([])
from gui_helpers import chest_png
from xraystudio.gui.main_window import MainWindow
from xraystudio.gui.settings import AppSettings
from xraystudio.masks import ANATOMY
settings = AppSettings(QSettings({settings!r}, QSettings.Format.IniFormat))
settings.auto_segment = True
w = MainWindow(settings)
w.show()
w.open_file({image!r})
deadline = time.monotonic() + 90
while not (w.study is not None and w._open_thread is None and w.segments.thread is None
           and w.study.masks.undo_label == "Segment anatomy"):
    if time.monotonic() > deadline:
        sys.exit(3)
    app.processEvents()
    time.sleep(0.01)
filled = [n for n in ANATOMY if w.study.masks[n].any()]
w.segments.process.close()
sys.exit(4 if not filled else 5 if "torch" in sys.modules else 0)
"""


def test_automatic_segmentation_never_imports_torch_in_the_window(tmp_path):
    """The segmenter runs in a process of its own: importing torch there cannot stall the
    window (it held the GIL for ~0.4 s when the segmenter ran in a thread)."""
    code = TORCH_FREE_SEGMENTATION.format(helpers=str(Path(__file__).resolve().parent),
                                          settings=str(tmp_path / "settings.ini"),
                                          image=str(real_file("RG1_UNCR.dcm")))
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    result = subprocess.run([sys.executable, "-c", code], env=env, timeout=120)
    assert result.returncode == 0  # 3: no result in time, 4: nothing segmented, 5: torch loaded


# ------------------------------------------------------------ issue 14: not a frontal chest
def test_labelled_lower_leg_gets_no_automatic_masks(qtbot, window, tmp_path, fake):
    """The WG04 lower leg (BodyPartExamined EXTREMITY): no 'left lung' on the ankle, a
    readable message, and the user can still segment by hand."""
    open_and_wait(qtbot, window, real_file("RG3_UNCR.dcm"))
    qtbot.wait(200)
    assert window.segments.thread is None and fake.calls == 0
    assert anatomy_filled(window) == [] and not window.study.masks.can_undo
    message = window.statusBar().currentMessage()
    assert "labelled EXTREMITY" in message and "frontal (PA/AP) chest" in message
    assert "Ctrl+Shift+A" in message and window.film_warnings.chest_warning
    assert window.last_error is None  # a note, not a dialog
    window.segment_anatomy()  # by hand (Ctrl+Shift+A): done as asked
    wait_segmented(qtbot, window)
    assert anatomy_filled(window) == list(ANATOMY)


def test_lateral_chest_gets_no_automatic_masks(qtbot, window, tmp_path, fake):
    import pydicom

    ds = pydicom.dcmread(real_file("RG1_UNCR.dcm"))
    ds.ViewPosition = "LL"
    ds.save_as(tmp_path / "lateral.dcm")
    open_and_wait(qtbot, window, tmp_path / "lateral.dcm")
    qtbot.wait(200)
    assert fake.calls == 0 and anatomy_filled(window) == []
    assert "lateral view (LL)" in window.statusBar().currentMessage()


class NoChestSegmenter(FakeSegmenter):
    """What the segmenter makes of a knee: one small 'lung', nothing else."""

    def segment(self, display: np.ndarray) -> dict[str, np.ndarray]:
        self.calls += 1
        out = {name: np.zeros(display.shape, bool) for name in ANATOMY}
        out["left_lung"][10:30, 10:40] = True
        return out


def test_unlabelled_image_whose_masks_are_no_chest_gets_none(qtbot, window, tmp_path,
                                                            monkeypatch):
    seg = NoChestSegmenter()
    use_fake(monkeypatch, window, seg)
    open_and_wait(qtbot, window, chest_png(tmp_path / "knee.png"))
    qtbot.waitUntil(lambda: window.segments.thread is None and seg.calls == 1, timeout=10_000)
    assert anatomy_filled(window) == [] and not window.study.masks.can_undo
    message = window.statusBar().currentMessage()
    assert message.startswith("Automatic segmentation not applied.")
    assert "no plausible pair of lungs" in message


# ------------------------------------------------ issue 33: warnings stay until read
def test_spacing_banner_stays_after_the_automatic_segmentation_message(qtbot, window, tmp_path,
                                                                      fake):
    """A PNG has no pixel spacing: the assumed value is on the canvas's banner, still there
    after the segmentation's status message replaced the opening one, until dismissed; the
    results made from the film record it."""
    open_and_wait(qtbot, window, chest_png(tmp_path / "chest.png"))
    wait_segmented(qtbot, window)
    assert "segmented automatically" in window.statusBar().currentMessage()
    banner = window.film_warnings.banner
    assert banner.isVisible() and "spacing assumed 0.2 mm" in banner.text("assumed_spacing")
    assert banner.mapTo(window, banner.rect().topLeft()).y() < window.canvas.mapTo(
        window, window.canvas.rect().topLeft()).y()  # above the canvas, in the Edit tab
    assert window.film_warnings.records()[0]["kind"] == "assumed_spacing"
    banner.dismiss("assumed_spacing")
    assert not banner.isVisible()
    assert window.film_warnings.records()  # dismissed, still true: provenance keeps it


def test_non_chest_film_warns_on_the_banner_and_asks_before_generating(qtbot, window, fake,
                                                                       monkeypatch):
    from xraystudio.gui.dialogs import chest_confirm

    open_and_wait(qtbot, window, real_file("RG3_UNCR.dcm"))
    banner = window.film_warnings.banner
    assert banner.isVisible() and "labelled EXTREMITY" in banner.text("chest_check")
    asked = []
    monkeypatch.setattr(chest_confirm, "confirm_unsupported",
                        lambda parent, reason, action: asked.append(action) or False)
    window.gen.generate()
    assert asked == ["Generate"] and window.gen.generation is None
    qtbot.wait(50)
    assert "labelled EXTREMITY" in banner.text("chest_check")  # still there

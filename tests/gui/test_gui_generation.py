"""Generation from the window with a tiny random model: results, metrics, cancel, errors."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from xraystudio.engine.client import EngineProcess
from xraystudio.gui.app import sample_study_path

pytest.importorskip("diffusers")
torch = pytest.importorskip("torch")


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """The test machine is shared: keep torch on one core (here and in the engine process)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


class SharedEngine(EngineProcess):
    """An engine process that outlives the windows of the tests (closing one keeps it)."""

    def close(self, timeout: float = 5.0) -> None:
        pass

    def shutdown(self) -> None:
        super().close()


@pytest.fixture(scope="module")
def shared_engine():
    """One engine process for the tests that generate: torch starts once, not per test."""
    engine = SharedEngine(threads=1)
    yield engine
    engine.shutdown()


@pytest.fixture
def engine(window, shared_engine):
    window.gen.engine = shared_engine
    return shared_engine


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> str:
    from xraystudio.synthesis.tiny import make_tiny_pixel_model

    return str(make_tiny_pixel_model(tmp_path_factory.mktemp("models") / "tiny", prior=True))


@pytest.fixture
def ready(opened, tiny_model, engine):
    """A window with a study with lungs, and the tiny model chosen."""
    w = opened
    w.study.masks.fill_polygon("right_lung", [(30, 50), (90, 50), (90, 190), (30, 190)])
    w.study.masks.fill_polygon("left_lung", [(110, 50), (170, 50), (170, 190), (110, 190)])
    w.gen.add_model_folder(tiny_model)
    assert w.generator.model_ref() == tiny_model
    return w


def test_generate_shows_results_metrics_and_keeps_the_ui_usable(ready, qtbot, tmp_path):
    w = ready
    g = w.generator
    g.random_seed.setChecked(False)
    g.seed.setValue(7)
    g.steps.setValue(3)
    g.n_images.setValue(2)
    steps = []
    w.generator.progress.valueChanged.connect(steps.append)
    with qtbot.waitSignal(w.strip.model().rowsInserted, timeout=60_000):
        g.generate.click()
        assert not g.generate.isEnabled() and g.cancel.isEnabled()
        # painting while the worker runs changes the study, not the running request
        w.study.masks.paint("heart", [(100, 120)], 10)
    qtbot.waitUntil(lambda: w.gen.generation is None, timeout=10_000)
    assert w.strip.count() == 2
    assert [r.seed for r in w.strip.results] == [7, 8]
    assert steps and max(steps) == g.progress.maximum()
    assert g.preview.pixmap() is not None and not g.preview.pixmap().isNull()
    caption = w.compare.generated.caption.text()
    assert "PSNR" in caption and "SSIM" in caption and "lungs" in caption
    first = w.strip.results[0]
    assert first.image.shape == w.study.shape
    assert first.provenance["synthetic"] is True and "metrics" in first.provenance
    assert g.generate.isEnabled() and not g.cancel.isEnabled()
    # the strip switches the compared result; condition and difference on demand
    w.strip.setCurrentRow(1)
    assert w.compare.result is w.strip.results[1]
    w.compare.show_condition.setChecked(True)
    w.compare.show_difference.setChecked(True)
    assert w.compare.condition.item is not None and w.compare.difference.item is not None
    # linked zoom: zooming one view zooms all
    w.tabs.setCurrentIndex(1)
    w.compare.truth.scale(2, 2)
    w.compare.truth.viewChanged.emit()
    assert w.compare.generated.transform().m11() == w.compare.truth.transform().m11()
    png, meta = w.results.save_to(tmp_path / "out.png")
    assert png.is_file() and json.loads(meta.read_text())["parameters"]["seed"] == 8


def test_layout_prior_choice_reaches_the_request(opened, tiny_model, tmp_path):
    from xraystudio.synthesis.tiny import make_tiny_pixel_model

    panel = opened.generator
    opened.gen.add_model_folder(tiny_model)
    panel.mode.setCurrentIndex(panel.mode.findData("layout"))
    assert not panel.prior.isHidden() and panel.prior.isEnabled()
    assert panel.params()["prior"] is True
    panel.prior.setChecked(False)
    assert panel.params()["prior"] is False
    assert panel.saved_state()["prior"] is False
    panel.mode.setCurrentIndex(panel.mode.findData("guided"))
    assert not panel.prior.isEnabled() and "prior" not in panel.params()
    # A model without a prior hides the choice and leaves the request to the engine.
    opened.gen.add_model_folder(str(make_tiny_pixel_model(tmp_path / "plain")))
    panel.mode.setCurrentIndex(panel.mode.findData("layout"))
    assert panel.prior.isHidden() and "prior" not in panel.params()


def test_cancel_mid_run_keeps_nothing(ready, qtbot):
    w = ready
    g = w.generator
    g.steps.setValue(400)
    with qtbot.waitSignal(w.generator.progress.valueChanged, timeout=60_000):
        g.generate.click()
    g.cancel.click()
    qtbot.waitUntil(lambda: w.gen.generation is None, timeout=30_000)
    assert w.strip.count() == 0
    assert "Cancelled" in g.status.text()
    assert g.generate.isEnabled()


def test_opening_another_study_cancels_the_run(ready, qtbot, tmp_path):
    from gui_helpers import chest_png, open_and_wait

    w = ready
    w.generator.steps.setValue(400)
    with qtbot.waitSignal(w.generator.progress.valueChanged, timeout=60_000):
        w.generator.generate.click()
    open_and_wait(qtbot, w, chest_png(tmp_path / "other.png", (120, 100)))
    qtbot.waitUntil(lambda: w.gen.generation is None, timeout=30_000)
    assert w.strip.count() == 0 and w.study.shape == (120, 100)


def test_missing_builtin_model_says_what_to_do(opened, qtbot, monkeypatch, tmp_path):
    monkeypatch.setenv("XRAYSTUDIO_RESOURCES", str(tmp_path / "no-resources"))
    w = opened
    w.gen.engine = EngineProcess(threads=1)  # a new process sees the changed environment
    w.generator.set_models([], current="")
    assert w.generator.model_ref() is None
    w.gen.generate()
    qtbot.waitUntil(lambda: w.last_error is not None, timeout=60_000)
    assert w.last_error.windowTitle() == "Generation failed"
    assert w.last_error.text()
    qtbot.waitUntil(lambda: w.gen.generation is None, timeout=10_000)


def test_not_a_model_folder_is_refused(opened, tmp_path):
    opened.gen.add_model_folder(str(tmp_path))
    assert opened.last_error is not None
    assert opened.settings.model_folders == []


def test_sample_study_opens_synthetic_with_its_masks(monkeypatch, tmp_path, window, qtbot):
    """The layout packaging/make_sample.py writes: image, <stem>_masks.npz, provenance JSON."""
    from gui_helpers import SHAPE, chest_png

    from xraystudio.io.masks_io import save_masks
    from xraystudio.masks import MaskStack

    monkeypatch.setenv("XRAYSTUDIO_RESOURCES", str(tmp_path))
    assert sample_study_path() is None
    sample = tmp_path / "sample"
    sample.mkdir()
    masks = MaskStack(SHAPE)
    masks.add_nodule(60, 100, 10)
    save_masks(masks, sample / "synthetic_chest_masks.npz")
    (sample / "synthetic_chest.json").write_text('{"synthetic": true}')
    chest_png(sample / "synthetic_chest.png")
    assert sample_study_path() == sample / "synthetic_chest.png"
    window.open_file(sample_study_path())
    qtbot.waitUntil(lambda: window.study is not None, timeout=10_000)
    assert len(window.study.masks.nodules) == 1
    assert "synthetic" in window.windowTitle() and window.synthetic_label.isVisibleTo(window)


def test_window_opens_without_torch():
    """torch and diffusers load only when a generation starts, so the window opens fast."""
    import subprocess

    code = ("import sys, xraystudio.gui.main_window, xraystudio.gui.app; "
            "sys.exit(int('torch' in sys.modules or 'diffusers' in sys.modules))")
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0


def test_only_the_gui_imports_qt():
    root = Path(__file__).resolve().parents[2] / "xraystudio"
    offenders = [p for p in root.rglob("*.py") if "gui" not in p.relative_to(root).parts
                 and ("PySide6" in p.read_text() or "PyQt" in p.read_text())]
    assert offenders == []


def test_generate_shortcut_is_ctrl_return(opened):
    assert opened.generate_action.shortcut().toString() == "Ctrl+Return"
    assert any(k == "Ctrl+Return" for k, _ in opened.shortcut_rows())


def test_segment_anatomy_is_one_undo_step(opened, qtbot, monkeypatch, tmp_path):
    from xraystudio.segmentation.model import UNet, UNetConfig
    from xraystudio.segmentation.segmenter import DEFAULT_MODEL, save_model

    monkeypatch.setenv("XRAYSTUDIO_RESOURCES", str(tmp_path))
    torch.manual_seed(0)
    save_model(UNet(UNetConfig(channels=(4, 8))), tmp_path / "models" / DEFAULT_MODEL, size=32)
    w = opened
    w.study.masks.paint("heart", [(100, 100)], 4)
    w.segment_action.trigger()
    qtbot.waitUntil(lambda: w.segments.thread is None, timeout=30_000)
    assert w.last_error is None
    assert w.study.masks.undo_label == "Segment anatomy"
    w.undo_action.trigger()
    assert w.study.masks["heart"][100, 100]  # back to the hand-painted state


def test_missing_segmenter_says_what_to_do(opened, qtbot, monkeypatch, tmp_path):
    monkeypatch.setenv("XRAYSTUDIO_RESOURCES", str(tmp_path))
    opened.segment_anatomy()
    qtbot.waitUntil(lambda: opened.segments.thread is None, timeout=30_000)
    assert "train-segmenter" in opened.last_error.text()


def test_engine_process_death_is_reported_and_the_next_run_works(ready, qtbot):
    import os
    import signal

    w = ready  # with the shared engine process, which this test kills and the next run restarts
    g = w.generator
    g.steps.setValue(400)
    with qtbot.waitSignal(g.progress.valueChanged, timeout=60_000):
        g.generate.click()
    os.kill(w.gen.engine._proc.pid, signal.SIGKILL)
    qtbot.waitUntil(lambda: w.gen.generation is None, timeout=30_000)
    assert "stopped unexpectedly" in w.last_error.text()
    g.steps.setValue(2)
    # a fresh engine process imports torch and loads the model first: over a minute on two
    # cores busy with other work
    with qtbot.waitSignal(w.strip.model().rowsInserted, timeout=180_000):
        g.generate.click()

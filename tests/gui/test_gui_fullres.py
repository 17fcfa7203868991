"""A new patient at full resolution from the window: the resolution choice, staged progress with
the coarse picture previewed first, and a result the size of the source."""

from __future__ import annotations

import pytest

from xraystudio.engine.client import EngineProcess

pytest.importorskip("diffusers")
torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def fullres_model(tmp_path_factory) -> str:
    from xraystudio.synthesis.tiny import make_tiny_fullres, make_tiny_pixel_model

    folder = make_tiny_pixel_model(tmp_path_factory.mktemp("models") / "tiny-fullres", prior=True)
    make_tiny_fullres(folder, steps=3)
    return str(folder)


def test_layout_at_full_resolution_shows_stages_and_the_coarse_preview(
        opened, fullres_model, qtbot, monkeypatch):
    w = opened
    engine = EngineProcess(threads=1)
    w.gen.engine = engine
    try:
        w.study.masks.fill_polygon("right_lung", [(30, 50), (90, 50), (90, 190), (30, 190)])
        w.study.masks.fill_polygon("left_lung", [(110, 50), (170, 50), (170, 190), (110, 190)])
        w.gen.add_model_folder(fullres_model)
        g = w.generator
        g.mode.setCurrentIndex(g.mode.findData("layout"))
        assert [g.resolution.itemData(i) for i in range(g.resolution.count())] == [128, 32]
        assert g.resolution.isEnabled() and "full resolution" in g.resolution.currentText()
        assert g.params()["resolution"] == 128
        seen = []
        original = g.show_progress

        def spy(progress, preview):
            original(progress, preview)
            seen.append((g.status.text(), preview))

        monkeypatch.setattr(g, "show_progress", spy)  # connected when generation starts
        g.random_seed.setChecked(False)
        g.seed.setValue(3)
        g.steps.setValue(2)
        with qtbot.waitSignal(w.strip.model().rowsInserted, timeout=120_000):
            g.generate.click()
        qtbot.waitUntil(lambda: w.gen.generation is None, timeout=10_000)
        result = w.strip.results[-1]
        assert result.image.shape == w.study.shape
        assert result.provenance["model"]["drawn_resolution"] == 128
        assert result.provenance["parameters"]["resolution"] == 128
        stages = [text for text, _ in seen]
        assert any("(coarse)" in t for t in stages) and "(full resolution)" in stages[-1]
        first_fine = next(p for t, p in seen if "(full resolution)" in t)
        assert first_fine is not None and first_fine.shape == (32, 32)  # the coarse picture
        # Edit mode draws at the source's resolution: the choice greys out there.
        if g.mode_enabled("edit"):
            g.mode.setCurrentIndex(g.mode.findData("edit"))
            assert not g.resolution.isEnabled() and "resolution" not in g.params()
        g.mode.setCurrentIndex(g.mode.findData("guided"))
        g.resolution.setCurrentIndex(g.resolution.findData(32))
        assert g.params()["resolution"] == 32
    finally:
        engine.close()


def test_detail_gain_is_offered_only_where_the_full_resolution_stage_draws(opened, fullres_model):
    """The Detail setting starts at the stage's tuned gain, acts (and is sent) only for layout
    and guided films at full resolution, and is remembered between runs."""
    from xraystudio.synthesis.fullres import FULLRES_FOLDER, FullresSpec

    w = opened
    w.gen.add_model_folder(fullres_model)
    g = w.generator
    g.mode.setCurrentIndex(g.mode.findData("layout"))
    g.resolution.setCurrentIndex(g.resolution.findData(128))
    tuned = FullresSpec.read(f"{fullres_model}/{FULLRES_FOLDER}").detail_gain
    assert not g.detail.isHidden() and g.detail.isEnabled()
    assert g.detail.value() == tuned and g.params()["detail_gain"] == tuned
    g.detail.setValue(2.5)
    assert g.params()["detail_gain"] == 2.5
    state = g.saved_state()
    g.resolution.setCurrentIndex(g.resolution.findData(32))
    assert not g.detail.isEnabled() and "detail_gain" not in g.params()
    g.restore(state)
    assert g.detail.isEnabled() and g.params()["detail_gain"] == 2.5
    if g.mode_enabled("edit"):
        g.mode.setCurrentIndex(g.mode.findData("edit"))
        assert not g.detail.isEnabled() and "detail_gain" not in g.params()

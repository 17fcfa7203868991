"""Layout mode's Variation in the window: offered for a prior that has one, sent with layout
requests over the prior, greyed where it does not act, remembered."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("diffusers")
pytest.importorskip("torch")


@pytest.fixture(scope="module")
def varied_model(tmp_path_factory) -> str:
    import numpy as np
    import torch

    from xraystudio.synthesis.model import PRIOR_FOLDER
    from xraystudio.synthesis.prior import LayoutPrior
    from xraystudio.synthesis.tiny import make_tiny_pixel_model

    folder = make_tiny_pixel_model(tmp_path_factory.mktemp("models") / "tiny-varied", prior=True)
    # A variation of the tiny prior's size, as fit-variation would write it.
    old = LayoutPrior.from_pretrained(folder / PRIOR_FOLDER)
    prior = LayoutPrior(**{**{k: v for k, v in old.config.items() if not k.startswith("_")},
                           "variation_size": 4, "variation_components": 2})
    prior.load_state_dict(old.state_dict(), strict=False)
    with torch.no_grad():
        prior.variation_basis.copy_(torch.from_numpy(np.full((2, 4, 4), 0.05, np.float32)))
    prior.save_pretrained(folder / PRIOR_FOLDER, safe_serialization=True)
    spec = json.loads((folder / "xraystudio.json").read_text())
    spec["defaults"]["variation"] = 0.75
    (folder / "xraystudio.json").write_text(json.dumps(spec))
    return str(folder)


def test_variation_is_offered_for_layout_mode_over_the_prior(opened, varied_model):
    w = opened
    w.gen.add_model_folder(varied_model)
    g = w.generator
    g.mode.setCurrentIndex(g.mode.findData("layout"))
    assert not g.variation.isHidden() and g.variation.isEnabled()
    assert g.variation.value() == 0.75 and g.params()["variation"] == 0.75
    g.variation.setValue(1.5)
    assert g.params()["variation"] == 1.5
    state = g.saved_state()
    g.prior.setChecked(False)
    assert not g.variation.isEnabled() and "variation" not in g.params()
    g.prior.setChecked(True)
    g.mode.setCurrentIndex(g.mode.findData("guided"))
    assert not g.variation.isEnabled() and "variation" not in g.params()
    g.mode.setCurrentIndex(g.mode.findData("layout"))
    g.variation.setValue(0.0)
    g.restore(state)
    assert g.params()["variation"] == 1.5


def test_variation_is_hidden_for_a_prior_without_one(opened, tmp_path):
    from xraystudio.synthesis.tiny import make_tiny_pixel_model

    w = opened
    w.gen.add_model_folder(str(make_tiny_pixel_model(tmp_path / "plain", prior=True)))
    g = w.generator
    g.mode.setCurrentIndex(g.mode.findData("layout"))
    assert g.variation.isHidden() and "variation" not in g.params()


def test_a_sweep_from_the_window_draws_with_its_variation(opened, varied_model):
    """The Sweep tab's cells take the Generation panel's Variation, except cells an axis takes
    out of layout mode."""
    w = opened
    w.gen.add_model_folder(varied_model)
    g = w.generator
    g.mode.setCurrentIndex(g.mode.findData("layout"))
    g.variation.setValue(1.25)
    w.sweeps.panel.set_axis_texts(["mode=layout,guided"])
    sweep = w.sweeps.build()
    masks = w.sweeps.study().masks
    got = {c.values["mode"]: sweep.request(c, masks, None)[1].variation for c in sweep.cells()}
    assert got == {"layout": 1.25, "guided": None}

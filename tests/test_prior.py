"""The layout prior: built from its config, saved as safetensors, used by layout mode."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from xraystudio.errors import GenerationError, ModelError
from xraystudio.image import XRayImage
from xraystudio.masks import MaskStack
from xraystudio.synthesis.condition import Letterbox
from xraystudio.synthesis.engine import Engine, GenerationRequest
from xraystudio.synthesis.model import PRIOR_FOLDER, load_model
from xraystudio.synthesis.tiny import make_tiny_pixel_model


@pytest.fixture(scope="module")
def prior_dir(tmp_path_factory) -> Path:
    return make_tiny_pixel_model(tmp_path_factory.mktemp("p") / "tiny", prior=True)


@pytest.fixture(scope="module")
def engine(prior_dir: Path) -> Engine:
    return Engine.load(str(prior_dir), device="cpu", precision="fp32")


def _masks(shape=(80, 60)) -> MaskStack:
    masks = MaskStack(shape, (0.5, 0.5))
    masks.paint("right_lung", [(14, 18), (18, 55)], 7)
    masks.paint("left_lung", [(44, 18), (46, 55)], 7)
    masks.paint("heart", [(35, 50)], 9)
    masks.add_nodule(44, 30, 5)
    return masks


def test_prior_is_saved_as_safetensors_and_reloads_identically(prior_dir: Path) -> None:
    import torch

    files = sorted(p.name for p in (prior_dir / PRIOR_FOLDER).iterdir())
    assert files == ["config.json", "diffusion_pytorch_model.safetensors"]
    a, b = load_model(str(prior_dir)), load_model(str(prior_dir))
    x = torch.rand(1, 5, 8, 8)
    assert torch.equal(a.prior(x), b.prior(x))
    assert a.prior(x).shape == (1, 1, 4, 4)


def test_layout_mode_uses_the_prior_as_guide(engine: Engine) -> None:
    from xraystudio.synthesis.prior import predict_guide

    masks = _masks()
    result = engine.generate(GenerationRequest(masks, mode="layout", seed=1))[0]
    n = len(engine.spec.layers)
    cond = result.condition
    assert result.provenance["parameters"]["prior"] is True
    assert np.all(cond[n + 1] == 0.5)  # the guide is flagged as the prior's (a real one is 1)
    box = Letterbox(masks.shape, engine.spec.resolution)
    expected = box.crop(predict_guide(engine.model.prior, cond[:5], engine.spec.guide_factor))
    np.testing.assert_allclose(box.crop(cond[n]), expected, atol=1e-6)
    # Outside the letterboxed source the guide is black, like a real radiograph's guide.
    (oy, ox), (ih, iw) = box.offset, box.inner
    outside = np.ones(cond[n].shape, bool)
    outside[oy:oy + ih, ox:ox + iw] = False
    assert outside.any() and np.all(cond[n][outside] == 0)


def test_prior_follows_the_anatomy_not_the_nodule(engine: Engine) -> None:
    masks = _masks()
    moved = masks.copy()
    moved.remove_nodule(moved.nodules[0].id)
    moved.add_nodule(15, 40, 8)
    a = engine.condition(GenerationRequest(masks), "layout", prior=True)
    b = engine.condition(GenerationRequest(moved), "layout", prior=True)
    n = len(engine.spec.layers)
    np.testing.assert_array_equal(a[n], b[n])
    bigger = masks.copy()
    bigger.paint("heart", [(30, 60)], 14)
    c = engine.condition(GenerationRequest(bigger), "layout", prior=True)
    assert np.abs(c[n] - a[n]).max() > 0


def test_nodules_enter_the_guide_with_the_models_contrast(prior_dir: Path,
                                                         tmp_path: Path) -> None:
    """Layout mode: painted nodules are added to the prior's picture. Guided mode: the source's
    own nodule is filled in and every nodule of the mask added with the same contrast."""
    bright = tmp_path / "bright"
    shutil.copytree(prior_dir, bright)
    spec = bright / "xraystudio.json"
    spec.write_text(json.dumps({**json.loads(spec.read_text()), "guide_nodule_contrast": 0.2}))
    plain = Engine.load(str(prior_dir), device="cpu")
    with_contrast = Engine.load(str(bright), device="cpu")
    masks = _masks((64, 64))
    n = len(plain.spec.layers)
    a = plain.condition(GenerationRequest(masks), "layout", prior=True)
    b = with_contrast.condition(GenerationRequest(masks), "layout", prior=True)
    added = b[n] - a[n]
    disc = a[plain.spec.layers.index("nodule")] >= 0.5
    assert added.min() >= -1e-6 and added[disc].mean() > 0.01  # 1/8 of a 32 px model: diluted
    assert np.abs(added[~disc]).mean() < added[disc].mean() / 3
    # Guided: a source with a bright blob where the mask has its nodule, and the same source
    # without it, give the same guide: the mask alone decides how the nodule shows.
    yy, xx = np.mgrid[0:64, 0:64]
    plain_source = (0.4 + 0.2 * np.sin(xx / 9)).astype(np.float32)
    nodule = masks.nodules[0]
    blob = ((xx - nodule.x) ** 2 + (yy - nodule.y) ** 2 <= 16).astype(np.float32)
    g = [with_contrast.condition(GenerationRequest(masks, XRayImage.from_display(src)), "guided")
         for src in (plain_source, plain_source + 0.5 * blob)]
    np.testing.assert_allclose(g[0][n], g[1][n], atol=0.02)
    without = plain.condition(GenerationRequest(masks, XRayImage.from_display(plain_source)),
                              "guided")
    assert (g[0][n] - without[n])[disc].mean() > 0.01


def test_layout_mode_has_its_own_nodule_contrast(prior_dir: Path, tmp_path: Path) -> None:
    """``layout_nodule_contrast`` sets the smudge in the prior's picture only: layout mode's disc
    grows with it, guided mode's guide is the one ``guide_nodule_contrast`` makes."""
    def engine_with(**fields) -> Engine:
        folder = tmp_path / "_".join(f"{k}{v}" for k, v in fields.items())
        shutil.copytree(prior_dir, folder)
        spec = folder / "xraystudio.json"
        spec.write_text(json.dumps({**json.loads(spec.read_text()), **fields}))
        return Engine.load(str(folder), device="cpu")

    shared = engine_with(guide_nodule_contrast=0.1)
    apart = engine_with(guide_nodule_contrast=0.1, layout_nodule_contrast=0.3)
    masks = _masks((64, 64))
    n = len(shared.spec.layers)
    disc = shared.condition(GenerationRequest(masks), "layout", prior=True)[
        shared.spec.layers.index("nodule")] >= 0.5
    a = shared.condition(GenerationRequest(masks), "layout", prior=True)[n]
    b = apart.condition(GenerationRequest(masks), "layout", prior=True)[n]
    assert (b - a)[disc].mean() > 0.01
    source = XRayImage.from_display(np.full((64, 64), 0.4, np.float32))
    np.testing.assert_allclose(shared.condition(GenerationRequest(masks, source), "guided")[n],
                               apart.condition(GenerationRequest(masks, source), "guided")[n])
    with pytest.raises(ModelError):
        engine_with(guide_nodule_contrast=0.1, layout_nodule_contrast=-1.0)


def test_prior_can_be_switched_off_and_changes_the_image(engine: Engine) -> None:
    masks = _masks()
    on = engine.generate(GenerationRequest(masks, mode="layout", seed=3))[0]
    off = engine.generate(GenerationRequest(masks, mode="layout", seed=3, prior=False))[0]
    n = len(engine.spec.layers)
    assert off.provenance["parameters"]["prior"] is False
    assert np.all(off.condition[n:] == 0)
    assert np.abs(on.image - off.image).max() > 1e-3


def test_guided_mode_ignores_the_prior(engine: Engine) -> None:
    masks = _masks()
    image = XRayImage.from_display(np.linspace(0, 1, 80 * 60, dtype=np.float32).reshape(80, 60))
    r = engine.generate(GenerationRequest(masks, image, mode="guided", seed=0))[0]
    assert r.provenance["parameters"]["prior"] is False


def test_asking_for_a_prior_the_model_lacks_is_a_clear_error(tmp_path: Path) -> None:
    plain = Engine.load(str(make_tiny_pixel_model(tmp_path / "plain")), device="cpu")
    assert plain.generate(GenerationRequest(_masks(), mode="layout", seed=0, steps=1))[0] \
        .provenance["parameters"]["prior"] is False
    with pytest.raises(GenerationError, match="no layout prior"):
        plain.generate(GenerationRequest(_masks(), mode="layout", prior=True))


def test_prior_reading_unknown_layers_is_refused(prior_dir: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    shutil.copytree(prior_dir, bad)
    config = bad / PRIOR_FOLDER / "config.json"
    data = json.loads(config.read_text())
    data["layers"] = ["right_lung", "left_lung", "heart", "right_clavicle", "spleen"]
    config.write_text(json.dumps(data))
    with pytest.raises(ModelError, match="spleen"):
        load_model(str(bad))


def test_prior_without_guide_support_is_refused(prior_dir: Path, tmp_path: Path) -> None:
    bad = tmp_path / "noguide"
    shutil.copytree(prior_dir, bad)
    spec = json.loads((bad / "xraystudio.json").read_text())
    spec["guide_factor"] = None
    (bad / "xraystudio.json").write_text(json.dumps(spec))
    with pytest.raises(ModelError, match="structure guide"):
        load_model(str(bad))


def test_shipped_model_loads_and_generates_in_both_modes() -> None:
    """The built-in model (resources/) with its prior: a small study, two steps per mode."""
    shipped = Engine.load(None, device="cpu", precision="fp32")
    assert shipped.model.prior is not None and shipped.spec.guide_nodule_contrast > 0
    masks = _masks((120, 100))
    image = XRayImage.from_display(np.linspace(0.2, 0.8, 120 * 100, dtype=np.float32)
                                   .reshape(120, 100))
    for mode, prior in (("layout", True), ("guided", False)):
        r = shipped.generate(GenerationRequest(masks, image, mode=mode, seed=0, steps=2))[0]
        assert r.image.shape == (120, 100) and np.isfinite(r.image).all()
        assert r.provenance["parameters"]["prior"] is prior
        assert r.provenance["model"]["name"] == "xraystudio-cxr"

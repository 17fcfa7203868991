"""Layout mode's variation: each seed's patient drawn around the prior's typical picture."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from synthetic_data import write_dataset

from xraystudio.cli import main
from xraystudio.errors import GenerationError
from xraystudio.io.datasets import JsrtDataset
from xraystudio.masks import MaskStack
from xraystudio.synthesis.engine import Engine, GenerationRequest
from xraystudio.synthesis.model import PRIOR_FOLDER, prior_has_variation
from xraystudio.synthesis.prior import PRIOR_FLAG, LayoutPrior
from xraystudio.synthesis.spec import ModelSpec
from xraystudio.synthesis.tiny import make_tiny_pixel_model
from xraystudio.training.data import load_samples
from xraystudio.training.prior import fit_variation


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return write_dataset(tmp_path_factory.mktemp("d") / "data", n=6)


@pytest.fixture(scope="module")
def fitted_dir(tmp_path_factory, data: Path) -> Path:
    """A tiny model whose prior has a variation, fitted by the CLI, default variation 1."""
    folder = make_tiny_pixel_model(tmp_path_factory.mktemp("v") / "tiny", prior=True)
    assert main(["fit-variation", str(data), "--model", str(folder)]) == 0
    spec = json.loads((folder / "xraystudio.json").read_text())
    spec["defaults"]["variation"] = 1.0
    (folder / "xraystudio.json").write_text(json.dumps(spec))
    return folder


@pytest.fixture(scope="module")
def engine(fitted_dir: Path) -> Engine:
    return Engine.load(str(fitted_dir), device="cpu", precision="fp32")


def _masks(shape=(80, 60)) -> MaskStack:
    masks = MaskStack(shape, (0.5, 0.5))
    masks.paint("right_lung", [(14, 18), (18, 55)], 7)
    masks.paint("left_lung", [(44, 18), (46, 55)], 7)
    masks.paint("heart", [(35, 50)], 9)
    return masks


def test_fitted_draws_have_the_residuals_mean_and_spread(data: Path, tmp_path: Path) -> None:
    """Many draws average to the training residuals' mean, spread as much as they do, and
    survive a save and reload unchanged."""
    from xraystudio.synthesis.condition import resize, without_nodule
    from xraystudio.synthesis.prior import predict_small

    folder = make_tiny_pixel_model(tmp_path / "m", prior=True)
    spec = ModelSpec.read(folder)
    prior = LayoutPrior.from_pretrained(folder / PRIOR_FOLDER)
    dataset = JsrtDataset(data)
    samples = load_samples(dataset, dataset.ids, spec)
    fitted = fit_variation(prior, samples, spec)
    g = spec.resolution // spec.guide_factor
    assert fitted.has_variation and fitted.config.variation_size == g
    residuals = np.stack([
        resize(without_nodule(s.image, s.layers, spec), (g, g))
        - np.clip(predict_small(prior, s.layers[:5], spec.guide_factor), 0, 1) for s in samples])
    draws = np.stack([fitted.variation(seed, g) for seed in range(3000)])
    np.testing.assert_allclose(draws.mean(0), residuals.mean(0), atol=0.15 * residuals.std())
    assert draws.var(0).sum() == pytest.approx(residuals.var(0, ddof=1).sum(), rel=0.1)
    # The network's weights are the prior's own.
    x = np.random.default_rng(0).random((1, 5, 2 * g, 2 * g), np.float32)
    import torch

    with torch.no_grad():
        assert torch.equal(fitted(torch.from_numpy(x)), prior(torch.from_numpy(x)))
    fitted.save_pretrained(tmp_path / "saved", safe_serialization=True)
    again = LayoutPrior.from_pretrained(tmp_path / "saved")
    np.testing.assert_array_equal(again.variation(7, g), fitted.variation(7, g))
    assert not (np.array_equal(fitted.variation(7, g), fitted.variation(8, g)))
    with pytest.raises(ValueError, match="32|4"):
        fitted.variation(0, g * 2)
    with pytest.raises(ValueError, match="no variation"):
        prior.variation(0, g)


def test_each_seed_draws_its_own_patient(engine: Engine) -> None:
    """With a variation each seed's guide differs, is flagged as a real guide, and is the same
    for the same seed; variation 0 gives the prior's own guide, flagged as the prior's."""
    masks = _masks()
    n = len(engine.spec.layers)
    a, b = engine.generate(GenerationRequest(masks, mode="layout", seed=4, n_images=2, steps=2))
    again = engine.generate(GenerationRequest(masks, mode="layout", seed=5, steps=2))[0]
    assert a.provenance["parameters"]["variation"] == 1.0
    assert np.all(a.condition[n + 1] == 1.0)
    assert not np.allclose(a.condition[n], b.condition[n])
    np.testing.assert_array_equal(b.condition, again.condition)
    np.testing.assert_allclose(b.image, again.image, atol=1e-5)  # the same drawn alone
    typical = engine.generate(GenerationRequest(masks, mode="layout", seed=4, steps=2, variation=0))[0]
    assert np.all(typical.condition[n + 1] == PRIOR_FLAG)
    assert typical.provenance["parameters"]["variation"] == 0.0
    # Halfway: the guide moves about half as far from the typical one (less the 0-1 clip).
    half = engine.condition(GenerationRequest(masks), "layout", True, None, 0.5, 4)[n]
    far = np.linalg.norm(a.condition[n] - typical.condition[n])
    assert far / a.condition[n].size ** 0.5 > 0.005  # rms departure of the guide
    assert np.linalg.norm(half - typical.condition[n]) / far == pytest.approx(0.5, abs=0.1)


def test_batches_draw_the_same_patients(engine: Engine) -> None:
    masks = _masks()
    alone = [engine.generate(GenerationRequest(masks, mode="layout", seed=s, steps=2))[0]
             for s in (1, 2)]
    batch = engine.generate_batch([GenerationRequest(masks, mode="layout", seed=s, steps=2)
                                   for s in (1, 2)])
    for x, y in zip(alone, batch):
        np.testing.assert_array_equal(x.condition, y.condition)


@pytest.mark.parametrize("kw, match", [
    (dict(mode="layout", variation=2.5), "between 0 and 2"),
    (dict(mode="layout", variation=-0.1), "between 0 and 2"),
    (dict(mode="layout", prior=False, variation=1.0), "layout mode over the layout prior"),
])
def test_bad_variations_are_refused(engine: Engine, kw: dict, match: str) -> None:
    with pytest.raises(GenerationError, match=match):
        engine.generate(GenerationRequest(_masks(), **kw))


def test_a_prior_without_variation_keeps_the_typical_look(tmp_path: Path) -> None:
    folder = make_tiny_pixel_model(tmp_path / "old", prior=True)
    assert not prior_has_variation(folder)
    engine = Engine.load(str(folder), device="cpu", precision="fp32")
    r = engine.generate(GenerationRequest(_masks(), mode="layout", seed=1, steps=2))[0]
    assert "variation" not in r.provenance["parameters"]
    with pytest.raises(GenerationError, match="fit-variation"):
        engine.generate(GenerationRequest(_masks(), mode="layout", variation=1.0))


def test_cli_fit_and_generate(fitted_dir: Path, data: Path, tmp_path: Path, capsys) -> None:
    assert prior_has_variation(fitted_dir)
    files = sorted(p.name for p in (fitted_dir / PRIOR_FOLDER).iterdir())
    assert files == ["config.json", "diffusion_pytorch_model.safetensors"]
    out = tmp_path / "gen"
    common = ["generate", str(data / "images" / "CASE000.png"), "--out", str(out), "--model",
              str(fitted_dir), "--mode", "layout", "--no-segment", "--nodule", "30,30,6",
              "--seed", "1", "--steps", "2", "--device", "cpu"]
    assert main([*common, "--variation", "0.5"]) == 0
    (prov,) = [json.loads(p.read_text()) for p in out.glob("*.json")]
    assert prov["parameters"]["variation"] == 0.5
    capsys.readouterr()
    assert main([*common, "--variation", "3"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "variation" in err[0]
    bare = tmp_path / "bare"
    shutil.copytree(fitted_dir, bare)
    shutil.rmtree(bare / PRIOR_FOLDER)
    assert main(["fit-variation", str(data), "--model", str(bare)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "no layout prior" in err[0]


def test_sweep_axis_is_refused_outside_layout_mode() -> None:
    from xraystudio.errors import SweepError
    from xraystudio.explore.axes import known_axes, parse_axes
    from xraystudio.explore.sweep import Sweep

    assert "variation" in known_axes()
    masks = _masks()
    with pytest.raises(SweepError, match="variation applies to layout mode, not guided"):
        Sweep(parse_axes(["variation=0,1"]), base={"mode": "guided"}).check(masks)
    with pytest.raises(SweepError):
        parse_axes(["variation=0,3"])
    with pytest.raises(SweepError, match="turns off"):
        Sweep(parse_axes(["variation=0,1", "prior=on,off"]), base={"mode": "layout"}).check(masks)
    sweep = Sweep(parse_axes(["variation=0:1:3"]), base={"mode": "layout"})
    assert [sweep.request(c, masks, None)[1].variation for c in sweep.cells()] == [0, 0.5, 1]
    # The window's layout settings as the base: a cell taken out of layout mode or off the
    # prior draws without the variation instead of being refused.
    base = {"mode": "layout", "prior": True, "variation": 0.75}
    for axis, other in (("mode=layout,guided", "guided"), ("prior=on,off", False)):
        sweep = Sweep(parse_axes([axis]), base=base)
        sweep.check(masks)
        got = {c.values[axis.split("=")[0]]: sweep.request(c, masks, None)[1].variation
               for c in sweep.cells()}
        assert got[other] is None and 0.75 in got.values()


def test_a_varied_guide_has_its_own_nodule_smudge(fitted_dir: Path, tmp_path: Path) -> None:
    """``varied_nodule_contrast`` sets the smudge of a guide drawn with a variation, and only
    there; the typical guide keeps ``layout_nodule_contrast``."""
    folder = tmp_path / "own"
    shutil.copytree(fitted_dir, folder)
    spec = json.loads((folder / "xraystudio.json").read_text())
    spec.update(guide_nodule_contrast=0.01, layout_nodule_contrast=0.02, varied_nodule_contrast=0.04)
    (folder / "xraystudio.json").write_text(json.dumps(spec))
    engine = Engine.load(str(folder), device="cpu", precision="fp32")
    n = len(engine.spec.layers)
    plain, painted = _masks(), _masks()
    painted.add_nodule(44, 30, 5)

    def smudge(variation: float) -> float:
        a, b = (engine.condition(GenerationRequest(m), "layout", True, None, variation, 3)[n]
                for m in (painted, plain))
        return float((a - b).max())

    assert smudge(0.0) > 0
    assert smudge(1.0) == pytest.approx(2 * smudge(0.0), rel=1e-4)

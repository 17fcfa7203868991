"""Training runs a few steps on tiny data, resumes, exports a model the engine runs; evaluation
produces a complete report and contact sheet."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from synthetic_data import write_dataset

from xraystudio.cli import main
from xraystudio.evaluation.evaluate import EngineFilms, EvalConfig, Evaluator
from xraystudio.io.datasets import JsrtDataset
from xraystudio.synthesis.engine import Engine, GenerationRequest
from xraystudio.training.config import TrainConfig
from xraystudio.training.controlnet import Trainer


def _config(data: Path, out: Path, **kw) -> TrainConfig:
    base = dict(resolution=32, patch=2, channels=(8, 16), crop=16, batch=2, base_steps=2,
                prior_steps=2, prior_channels=(8, 8), nodule_weight=5.0,
                controlnet_steps=2, checkpoint_every=1, validate_every=2, val_cases=1,
                sample_steps=2, warmup=1, val_fraction=0.34)
    base.update(kw)
    return TrainConfig(str(data), str(out), **base)


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("train")
    data = write_dataset(root / "data")
    model = Trainer(_config(data, root / "run")).run(progress=False)
    return data, model


def test_training_exports_a_working_model(trained) -> None:
    data, model = trained
    run = model.parent
    assert (model / "xraystudio.json").is_file()
    assert list(model.rglob("*.safetensors")) and not list(run.rglob("*.bin"))
    state = json.loads((sorted(run.glob("checkpoints/step-controlnet-*"))[-1] / "state.json").read_text())
    assert state["stage"] == "controlnet" and state["step"] == 2
    assert list((run / "validation").glob("controlnet-*.png"))
    case = JsrtDataset(data).load("CASE000")
    engine = Engine.load(str(model), device="cpu", precision="fp32")
    r = engine.generate(GenerationRequest(case.masks, None, seed=0, steps=2))[0]
    assert r.image.shape == (64, 64)
    assert (model / "prior" / "diffusion_pytorch_model.safetensors").is_file()
    assert r.provenance["parameters"]["prior"] is True
    # Nodules enter guides at the contrast measured on the training cases (x the gain).
    from xraystudio.training.prior import nodule_contrast

    trainer = Trainer(_config(data, model.parent))
    expected = trainer.cfg.guide_nodule_gain * nodule_contrast(trainer.samples, trainer.spec)
    assert engine.spec.guide_nodule_contrast == pytest.approx(expected) and expected > 0


def test_prior_stage_learns_and_resumes(trained, tmp_path: Path) -> None:
    """The prior's L2 error on its training pairs falls; a resumed run continues its steps."""
    import torch

    from xraystudio.synthesis.prior import LayoutPrior
    from xraystudio.training.prior import prior_batch, prior_pairs, train_prior

    data, _ = trained
    out = tmp_path / "run"
    cfg = _config(data, out, prior_steps=40, base_steps=0, controlnet_steps=0, prior_lr=5e-3)
    trainer = Trainer(cfg)
    pairs = prior_pairs(trainer.samples, list(range(5)), 4)
    x, y = prior_batch(pairs, np.random.default_rng(1), 16)

    def error(prior) -> float:
        with torch.no_grad():
            return float(torch.nn.functional.mse_loss(prior(torch.from_numpy(x)), torch.from_numpy(y)))

    torch.manual_seed(cfg.seed)
    untrained = error(LayoutPrior(channels=(8, 8)))
    train_prior(trainer, 0, 20, None, progress=False)
    assert sorted(p.name for p in out.glob("checkpoints/step-prior-*")) == ["step-prior-19",
                                                                            "step-prior-20"]
    train_prior(trainer, 20, 40, out / "checkpoints" / "step-prior-20", progress=False)
    trained_prior = LayoutPrior.from_pretrained(out / "checkpoints" / "step-prior-40" / "prior")
    assert error(trained_prior) < 0.5 * untrained
    # Each checkpoint carries the spread of the training films around the prior's pictures
    # (refitted after resuming from a checkpoint that had one).
    assert trained_prior.has_variation and trained_prior.config.variation_size == 4
    # The drawn nodules are brighter than their surroundings; the prior records by how much.
    from xraystudio.training.prior import nodule_contrast

    measured = nodule_contrast(trainer.samples, trainer.spec)
    assert measured > 0.01


def test_training_resumes_where_it_stopped(trained, tmp_path: Path) -> None:
    data, model = trained
    out = tmp_path / "run"
    Trainer(_config(data, out, controlnet_steps=2)).run(progress=False)
    base_ckpts = sorted(p.name for p in out.glob("checkpoints/step-base-*"))
    trainer = Trainer(_config(data, out, controlnet_steps=3))
    trainer.run(resume=True, progress=False)
    steps = sorted(int(p.name.rsplit("-", 1)[1]) for p in out.glob("checkpoints/step-controlnet-*"))
    assert steps[-1] == 3
    # The base was not trained again.
    assert sorted(p.name for p in out.glob("checkpoints/step-base-*")) == base_ckpts


def test_training_continues_from_a_model_folder(trained, tmp_path: Path) -> None:
    """--init-from: a second run starts from the first run's weights, not from random ones."""
    import torch
    from diffusers import ControlNetModel, UNet2DConditionModel

    data, model = trained
    out = tmp_path / "run"
    trainer = Trainer(_config(data, out, base_steps=0, controlnet_steps=0, init_from=str(model)))
    unet, controlnet, _, _ = trainer._build("controlnet", None)
    first_unet = UNet2DConditionModel.from_pretrained(model / "unet")
    first_cn = ControlNetModel.from_pretrained(model / "controlnet")
    for mine, theirs in ((unet, first_unet), (controlnet, first_cn)):
        for (name, a), (_, b) in zip(mine.state_dict().items(), theirs.state_dict().items()):
            assert torch.equal(a, b), name
    continued = Trainer(_config(data, out, base_steps=1, controlnet_steps=1, init_from=str(model)))
    assert continued.run(progress=False) == out / "model"
    # A run that trains only a new prior exports the model it started from, with that prior.
    only = tmp_path / "prior-only"
    exported = Trainer(_config(data, only, base_steps=0, controlnet_steps=0, prior_steps=3,
                               init_from=str(model))).run(progress=False)
    for part in ("unet", "controlnet"):
        a = (exported / part / "diffusion_pytorch_model.safetensors").read_bytes()
        assert a == (model / part / "diffusion_pytorch_model.safetensors").read_bytes(), part
    assert (only / "checkpoints" / "step-prior-3").is_dir()
    assert (exported / "prior").is_dir()
    with pytest.raises(Exception, match="px, patch"):
        Trainer(_config(data, tmp_path / "other", resolution=64, init_from=str(model)))._build("base", None)


def test_min_snr_weighting_downweights_nearly_clean_steps(trained, tmp_path: Path) -> None:
    import torch

    data, _ = trained
    trainer = Trainer(_config(data, tmp_path / "run", snr_gamma=5.0))
    plain = Trainer(_config(data, tmp_path / "run", snr_gamma=0.0))
    pred, target = torch.zeros(2, 4, 4, 4), torch.ones(2, 4, 4, 4)
    alpha_bar = torch.tensor([0.999, 0.5])  # SNR 999 (almost clean) and SNR 1
    weighted = [float(trainer._loss(pred[i:i + 1], target[i:i + 1], alpha_bar[i:i + 1])) for i in range(2)]
    assert float(plain._loss(pred, target, alpha_bar)) == pytest.approx(1.0)
    assert weighted[0] == pytest.approx(5 / 1000, rel=1e-3) and weighted[1] == pytest.approx(0.5)


def test_controlnet_only_training_on_a_stable_diffusion_base(trained, tmp_path: Path, capsys) -> None:
    """The paper's setup: a ControlNet trained over a frozen SD base; checkpoints, resume, export."""
    import torch
    from diffusers import UNet2DConditionModel

    from xraystudio.synthesis.tiny import make_tiny_stable_diffusion
    from xraystudio.training.sd_controlnet import StableDiffusionControlNetTrainer

    data, _ = trained
    base = make_tiny_stable_diffusion(tmp_path / "tiny") / "sd"
    before = UNet2DConditionModel.from_pretrained(base / "unet").state_dict()
    out = tmp_path / "run"
    assert main(["train", str(data), "--out", str(out), "--sd-base", str(base), "--resolution", "32",
                 "--controlnet-steps", "2", "--batch", "2", "--checkpoint-every", "1",
                 "--validate-every", "2", "--val-cases", "1", "--sample-steps", "2",
                 "--warmup", "1", "--val-fraction", "0.34"]) == 0
    assert list((out / "validation").glob("controlnet-*.png"))
    trainer = StableDiffusionControlNetTrainer(_config(data, out, sd_base=str(base), controlnet_steps=3))
    model = trainer.run(resume=True, progress=False)
    steps = sorted(int(p.name.rsplit("-", 1)[1]) for p in out.glob("checkpoints/step-controlnet-*"))
    assert steps[-1] == 3
    assert not list(out.glob("checkpoints/*/unet"))  # the frozen base is never copied
    after = UNet2DConditionModel.from_pretrained(base / "unet").state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    engine = Engine.load(str(model), device="cpu", precision="fp32")
    assert engine.spec.kind == "stable-diffusion" and engine.spec.encoding == "rgb"
    case = JsrtDataset(data).load("CASE000")
    r = engine.generate(GenerationRequest(case.masks, None, seed=0, steps=2, guidance_scale=1.0))[0]
    assert r.image.shape == (64, 64) and np.isfinite(r.image).all()


def test_sd_base_must_be_a_diffusers_folder(trained, tmp_path: Path) -> None:
    from xraystudio.errors import XRayStudioError
    from xraystudio.training.sd_controlnet import StableDiffusionControlNetTrainer

    data, _ = trained
    with pytest.raises(XRayStudioError, match="not a diffusers Stable Diffusion folder"):
        StableDiffusionControlNetTrainer(_config(data, tmp_path / "run", sd_base=str(tmp_path)))


def test_evaluation_report_and_contact_sheet(trained, tmp_path: Path) -> None:
    data, model = trained
    engine = Engine.load(str(model), device="cpu", precision="fp32")
    cfg = EvalConfig(mode="guided", steps=2, limit=4, classifier_steps=5)
    ev = Evaluator(EngineFilms(engine, cfg), JsrtDataset(data), cfg)
    report = ev.run(tmp_path / "report.json")
    saved = json.loads((tmp_path / "report.json").read_text())
    assert saved["mean"] == report["mean"] and len(saved["cases"]) == 4
    mean = report["mean"]
    for key in ("psnr", "ssim", "psnr_lungs", "ssim_lungs", "hf_ratio", "diversity",
                "nodule_contrast", "insertion_contrast"):
        assert mean[key] is not None and np.isfinite(mean[key]), key
    assert -1 <= mean["ssim"] <= 1 and mean["diversity"] > 0
    assert {r["case"] for r in report["insertion"]} == {"CASE001", "CASE003"}
    with Image.open(tmp_path / "report.png") as sheet:
        assert sheet.size == (3 * 32, 4 * 32)


def test_evaluate_command(trained, tmp_path: Path, capsys) -> None:
    data, model = trained
    out = tmp_path / "r.json"
    assert main(["evaluate", str(data), "--out", str(out), "--model", str(model), "--limit", "2",
                 "--steps", "2", "--no-segmenter", "--no-diversity", "--device", "cpu"]) == 0
    assert "psnr" in capsys.readouterr().out and out.is_file()


def test_generate_command_writes_images_and_provenance(trained, tmp_path: Path, capsys) -> None:
    data, model = trained
    out = tmp_path / "gen"
    code = main(["generate", str(data / "images" / "CASE001.png"), "--out", str(out),
                 "--model", str(model), "--no-segment", "--nodule", "20,20,12", "--seed", "4",
                 "--n", "2", "--steps", "2", "--device", "cpu", "--mode", "guided"])
    assert code == 0
    pngs = sorted(out.glob("*.png"))
    assert [p.name for p in pngs] == ["CASE001_guided_seed4.png", "CASE001_guided_seed5.png"]
    meta = json.loads(pngs[0].with_suffix(".json").read_text())
    assert meta["parameters"]["seed"] == 4 and meta["nodules"][0]["diameter_mm"] == 12
    assert set(meta["metrics_vs_source"]) >= {"psnr", "ssim"}
    with Image.open(pngs[0]) as im:
        assert im.size == (64, 64) and np.asarray(im).dtype == np.uint16
    assert "psnr" in capsys.readouterr().out


def test_generate_without_masks_is_a_clear_error(trained, tmp_path: Path, capsys) -> None:
    data, model = trained
    code = main(["generate", str(data / "images" / "CASE001.png"), "--out", str(tmp_path),
                 "--model", str(model), "--no-segment"])
    assert code == 2 and "masks are empty" in capsys.readouterr().err


def test_training_batches_keep_masks_aligned_and_guides_nodule_free() -> None:
    """Augmentation moves image and masks together; the guide does not show the nodule, so the
    nodule mask is the model's only cue (what makes painted nodules appear on normals)."""
    import dataclasses

    from scipy import ndimage
    from synthetic_data import draw_case

    from xraystudio.synthesis.condition import Letterbox, build_condition, guide_from_display
    from xraystudio.synthesis.spec import ModelSpec
    from xraystudio.training.data import Sample, make_batch, without_nodule

    spec = ModelSpec(name="t", resolution=64, guide_factor=8, patch=2)
    image, masks = draw_case(64, np.random.default_rng(1), nodule=True)
    normal, _ = draw_case(64, np.random.default_rng(1), nodule=False)  # same case, no nodule
    layers = build_condition(dataclasses.replace(spec, guide_factor=None), masks)
    disc = layers[spec.layers.index("nodule")] >= 0.5
    clean = without_nodule(image, layers, spec)
    far = ndimage.distance_transform_edt(~disc) > 8
    np.testing.assert_allclose(clean[far], image[far], atol=1e-3)  # the rest is untouched
    box = Letterbox((64, 64), 64)
    guide = lambda im: guide_from_display(im, box, 8)[disc].mean()  # noqa: E731
    assert abs(guide(clean) - guide(normal)) < 0.25 * abs(guide(image) - guide(normal))
    x0, cond = make_batch([Sample(image, layers, None)], spec, np.random.default_rng(0), 8, 64,
                          guided_fraction=1.0)
    for x, c in zip(x0, cond):
        lungs = c[0] + c[1] > 0.5
        # Lungs are dark in the drawn cases: the augmented image still agrees with its masks.
        assert x[0][lungs].mean() < x[0][~lungs].mean() - 0.3
        assert c[-1].min() == 1.0  # the guide flag
    # With a layout prior, part of the guided samples take the prior's guide, computed from
    # the augmented masks (here a stand-in that returns the heart mask as the guide).
    seen = []

    def prior_guide(augmented: np.ndarray) -> np.ndarray:
        seen.append(augmented)
        return augmented[spec.layers.index("heart")]

    _, cond = make_batch([Sample(image, layers, None)], spec, np.random.default_rng(0), 16, 64,
                         guided_fraction=1.0, prior_guide=prior_guide, prior_fraction=0.5)
    from_prior = [c for c in cond if np.array_equal(c[-2], c[spec.layers.index("heart")])]
    assert 3 <= len(from_prior) <= 13 and len(seen) == len(from_prior)
    flags = sorted({float(c[-1].min()) for c in cond})
    assert flags == [0.5, 1.0] and all(c[-1].min() == 0.5 for c in from_prior)


def test_nodule_weighted_loss_counts_the_nodule_and_its_ring(trained, tmp_path: Path) -> None:
    import torch

    data, _ = trained
    trainer = Trainer(_config(data, tmp_path / "run", nodule_weight=10.0, snr_gamma=0.0))
    cond = torch.zeros(1, trainer.spec.condition_channels, 32, 32)
    cond[0, trainer.spec.layers.index("nodule"), 14:18, 14:18] = 1.0
    w = trainer._nodule_weights(cond)
    assert w.shape == (1, 4, 16, 16)
    full = torch.nn.functional.pixel_shuffle(w, 2)[0, 0]
    assert full[16, 16] == 10.0 and full[16, 21] == 10.0  # disc and the ring around it
    assert full[0, 0] == 1.0 and full[16, 25] == 1.0
    pred, target = torch.zeros(1, 4, 16, 16), torch.zeros(1, 4, 16, 16)
    target[..., 8, 8] = 1.0  # an error on the nodule costs ten times one elsewhere
    on = trainer._loss(pred, target, torch.tensor([0.5]), w)
    target.zero_()
    target[..., 0, 0] = 1.0
    assert float(on) == pytest.approx(10 * float(trainer._loss(pred, target, torch.tensor([0.5]), w)))
    assert Trainer(_config(data, tmp_path / "r2", nodule_weight=1.0))._nodule_weights(cond) is None


def test_insertion_summary_measures_what_painting_added() -> None:
    from xraystudio.evaluation.evaluate import insertion_summary

    rows = [{"contrast_generated": 0.01, "contrast_before": -0.02, "contrast_donor": 0.02},
            {"contrast_generated": -0.01, "contrast_before": -0.02, "contrast_donor": 0.02}]
    s = insertion_summary(rows)
    assert s["insertion_contrast"] == pytest.approx(0.0)
    assert s["insertion_added_contrast"] == pytest.approx(0.02 / 0.04)
    assert s["insertion_positive_fraction"] == 1.0
    assert insertion_summary([]) == {}

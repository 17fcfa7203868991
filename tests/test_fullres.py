"""The full-resolution stage: tiny components from configs, the engine's two stages, training."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pytest
from synthetic_data import write_dataset
from test_synthesis import _study

from xraystudio.errors import GenerationCancelled, GenerationError, ModelError
from xraystudio.synthesis.engine import Engine, GenerationRequest
from xraystudio.synthesis.fullres import FullresSpec, load_fullres_model
from xraystudio.synthesis.tiny import make_tiny_fullres, make_tiny_pixel_model


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    folder = make_tiny_pixel_model(tmp_path_factory.mktemp("m") / "tiny", prior=True)
    make_tiny_fullres(folder)
    return folder


@pytest.fixture(scope="module")
def engine(model_dir: Path) -> Engine:
    return Engine.load(str(model_dir), device="cpu", precision="fp32")


def test_layout_and_guided_draw_at_full_resolution_by_default(engine: Engine) -> None:
    masks, image = _study()
    assert engine.resolutions == (32, 128)
    for mode, img in (("layout", None), ("guided", image)):
        (r,) = engine.generate(GenerationRequest(masks, img, mode=mode, seed=3))
        assert r.working.shape == (128, 128) and r.image.shape == (90, 70)
        model = r.provenance["model"]
        assert model["drawn_resolution"] == 128 and model["resolution"] == 32
        assert len(model["fullres"]["weights_sha256"]) == 16
        assert model["fullres"]["settings"] == FullresSpec(steps=2).tuned()
    (small,) = engine.generate(GenerationRequest(masks, image, mode="guided", seed=3, resolution=32))
    assert small.working.shape == (32, 32) and "fullres" not in small.provenance["model"]
    assert small.provenance["model"]["drawn_resolution"] == 32


def test_the_second_stage_adds_a_residual_to_the_upsampled_coarse_picture(
        engine: Engine, monkeypatch) -> None:
    """The coarse picture, upsampled, is what the residual is added to: with the residual scaled
    to nothing the film is the bicubic upsampling of the coarse picture (its anatomy kept)."""
    import dataclasses

    import torch

    from xraystudio.synthesis.fullres import upsample

    masks, image = _study()
    (coarse,) = engine.generate(GenerationRequest(masks, image, mode="guided", seed=5, resolution=32))
    pipe = engine.fullres_pipe
    monkeypatch.setattr(pipe, "spec", dataclasses.replace(pipe.spec, residual_scale=1e-9))
    (fine,) = engine.generate(GenerationRequest(masks, image, mode="guided", seed=5))
    up = upsample(torch.from_numpy(coarse.working * 2 - 1)[None, None], 4)[0, 0].numpy()
    np.testing.assert_allclose(fine.working, ((up + 1) / 2).clip(0, 1), atol=1e-5)


def test_bad_resolutions_are_refused(engine: Engine) -> None:
    masks, image = _study()
    with pytest.raises(GenerationError, match="32 or 128"):
        engine.generate(GenerationRequest(masks, image, mode="layout", resolution=64))
    with pytest.raises(GenerationError, match="edit mode"):
        engine.generate(GenerationRequest(masks, image, mode="edit", resolution=128))


def test_progress_names_the_stages_and_previews_the_coarse_picture(engine: Engine) -> None:
    masks, _ = _study()
    seen = []
    engine.generate(GenerationRequest(masks, mode="layout", seed=1, steps=3, preview_every=1),
                    progress=seen.append)
    stages = [p.stage for p in seen]
    assert stages[:3] == ["coarse"] * 3 and stages[-1] == "full resolution"
    assert [p.step for p in seen] == list(range(1, 3 + 2 + 1))[:3] + [3, 4, 5]
    first_fine = seen[3]
    assert first_fine.preview is not None and first_fine.preview.shape == (32, 32)
    assert seen[-1].step == seen[-1].total == 5


def test_cancel_during_the_second_stage_keeps_nothing(engine: Engine) -> None:
    masks, _ = _study()
    cancel = threading.Event()

    def progress(p) -> None:
        if p.stage == "full resolution":
            cancel.set()

    with pytest.raises(GenerationCancelled):
        engine.generate(GenerationRequest(masks, mode="layout", seed=1, steps=2), progress, cancel)


def test_a_batch_gives_the_pixels_of_one_at_a_time(engine: Engine) -> None:
    masks, image = _study()
    reqs = [GenerationRequest(masks, image, mode="guided", seed=s) for s in (11, 12)]
    batch = engine.generate_batch(reqs)
    for req, got in zip(reqs, batch):
        (alone,) = engine.generate(req)
        assert got.working.shape == (128, 128)
        np.testing.assert_allclose(got.working, alone.working, atol=1e-5)


def test_the_stage_is_whole_image_and_refuses_bad_input(model_dir: Path) -> None:
    pipe = load_fullres_model(model_dir)
    low = np.zeros((1, 16, 16), np.float32)
    assert pipe(low, [0]).shape == (1, 64, 64)
    with pytest.raises(ModelError, match="multiples"):
        pipe(np.zeros((1, 10, 10), np.float32), [0])
    with pytest.raises(ModelError, match="noise"):
        pipe(low, [0], noise=1.0)


def test_bad_spec_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelError):
        FullresSpec(noise=1.0)
    (tmp_path / "fullres.json").write_text("{not json")
    with pytest.raises(ModelError, match="cannot be read"):
        FullresSpec.read(tmp_path)


def test_fullres_training_runs_resumes_and_exports(tmp_path: Path) -> None:
    from xraystudio.training.config import TrainConfig
    from xraystudio.training.fullres import FullresTrainer

    data = write_dataset(tmp_path / "data", n=6, size=96)
    cfg = TrainConfig(str(data), str(tmp_path / "run"), fullres=True, fullres_steps=2,
                      fullres_batch=2, fullres_crop=64, fullres_channels=(8, 16),
                      checkpoint_every=1, warmup=1, edit_tune_cases=1, val_fraction=0.34)
    trainer = FullresTrainer(cfg)
    assert trainer.tune_ids and not set(trainer.tune_ids) & set(trainer.train_ids)
    folder = trainer.run(progress=False)
    assert (folder / "unet" / "diffusion_pytorch_model.safetensors").is_file()
    state = json.loads((tmp_path / "run/checkpoints/step-fullres-2/state.json").read_text())
    assert state["step"] == 2
    import dataclasses

    FullresTrainer(dataclasses.replace(cfg, fullres_steps=3)).run(resume=True, progress=False)
    assert json.loads((tmp_path / "run/checkpoints/step-fullres-3/state.json").read_text())["step"] == 3
    assert not (tmp_path / "run/checkpoints/step-fullres-1").exists()  # pruned to two
    pipe = load_fullres_model(tmp_path / "run" / "model")
    assert pipe(np.zeros((1, 16, 16), np.float32), [0], steps=2).shape == (1, 64, 64)


def test_training_blur_range_is_kept_when_continuing_and_can_be_widened(tmp_path: Path) -> None:
    """A continued stage trains on the augmentation range it was trained for (its fullres.json),
    unless ``--fullres-max-blur`` widens it; the exported spec records the range."""
    import dataclasses

    from xraystudio.errors import XRayStudioError
    from xraystudio.training.config import TrainConfig
    from xraystudio.training.fullres import FullresTrainer

    data = write_dataset(tmp_path / "data", n=6, size=96)
    cfg = TrainConfig(str(data), str(tmp_path / "run"), fullres=True, fullres_steps=1,
                      fullres_batch=2, fullres_crop=64, fullres_channels=(8, 16),
                      checkpoint_every=1, warmup=1, edit_tune_cases=1, val_fraction=0.34)
    assert FullresTrainer(cfg).spec.max_blur == FullresSpec().max_blur
    widened = FullresTrainer(dataclasses.replace(cfg, fullres_max_blur=2.4))
    assert widened.spec.max_blur == 2.4
    widened.run(progress=False)
    assert FullresSpec.read(tmp_path / "run" / "model" / "fullres").max_blur == 2.4
    more = dataclasses.replace(cfg, out=str(tmp_path / "run2"), init_from=str(tmp_path / "run" / "model"))
    assert FullresTrainer(more).spec.max_blur == 2.4
    with pytest.raises(XRayStudioError, match="positive"):
        FullresTrainer(dataclasses.replace(cfg, fullres_max_blur=0.0))


def test_fullres_training_learns_from_the_first_stage_redraws(tmp_path: Path, model_dir: Path) -> None:
    """``--fullres-redraw-fraction``: every training film is redrawn once per strength by the
    first stage of ``--init-from`` (kept in RUN/redraws, not redrawn on resume); films that do
    not line up with the working grid, or a run without a first stage, are refused."""
    import dataclasses

    from xraystudio.errors import XRayStudioError
    from xraystudio.training.config import TrainConfig
    from xraystudio.training.fullres import FullresTrainer
    from xraystudio.training.fullres_redraws import STRENGTHS

    data = write_dataset(tmp_path / "data", n=6, size=128)  # the tiny model's 32 px x 4
    cfg = TrainConfig(str(data), str(tmp_path / "run"), fullres=True, fullres_steps=1,
                      fullres_batch=2, fullres_crop=64, checkpoint_every=1, warmup=1,
                      edit_tune_cases=1, val_fraction=0.34, init_from=str(model_dir),
                      fullres_redraw_fraction=0.5)
    trainer = FullresTrainer(cfg)
    files = sorted((tmp_path / "run" / "redraws").glob("*.npy"))
    assert len(files) == len(trainer.train_ids) * len(STRENGTHS)
    assert all(len(r) == len(STRENGTHS) and r[0].shape == (32, 32) for r in trainer.redraws)
    assert all(-1 <= float(r[0].min()) and float(r[0].max()) <= 1 for r in trainer.redraws)
    stamps = [f.stat().st_mtime_ns for f in files]
    trainer.run(progress=False)
    FullresTrainer(dataclasses.replace(cfg, fullres_steps=2)).run(resume=True, progress=False)
    assert [f.stat().st_mtime_ns for f in files] == stamps
    assert json.loads((tmp_path / "run/checkpoints/step-fullres-2/state.json").read_text())["step"] == 2
    with pytest.raises(XRayStudioError, match="init-from"):
        FullresTrainer(dataclasses.replace(cfg, init_from=None, out=str(tmp_path / "r2")))
    odd = write_dataset(tmp_path / "odd", n=6, size=96)
    with pytest.raises(XRayStudioError, match="128 x 128"):
        FullresTrainer(dataclasses.replace(cfg, data=str(odd), out=str(tmp_path / "r3")))


def test_redraw_crops_replace_the_area_average_with_the_same_augmentation() -> None:
    """With fraction 1 every crop's low-resolution copy is the crop of a redraw (here constant),
    gamma-corrected like the film; with no redraws the batch is the one the stage always had."""
    from xraystudio.training.fullres_data import fullres_batch

    spec = FullresSpec(max_noise=0.0, max_blur=0.0)
    films = [np.random.default_rng(k).integers(0, 255, (128, 128), dtype=np.uint8) for k in range(2)]
    plain = fullres_batch(films, np.random.default_rng(3), spec, 4, 64)
    again = fullres_batch(films, np.random.default_rng(3), spec, 4, 64, None, 1.0)
    assert all(np.array_equal(a.numpy(), b.numpy()) for a, b in zip(plain, again))
    redraws = [[np.full((32, 32), -0.5, np.float16)] for _ in films]
    _, cond = fullres_batch(films, np.random.default_rng(3), spec, 4, 64, redraws, 1.0)
    up = cond[:, 0].numpy()
    lo, hi = (0.25 ** np.exp(0.15)) * 2 - 1, (0.25 ** np.exp(-0.15)) * 2 - 1
    assert (up.min(axis=(1, 2)) > lo - 1e-4).all() and (up.max(axis=(1, 2)) < hi + 1e-4).all()
    assert np.ptp(up, axis=(1, 2)).max() < 1e-4  # each crop is flat: no film in it


@pytest.fixture(scope="module")
def shipped():
    from xraystudio.synthesis.fullres import has_fullres
    from xraystudio.synthesis.model import builtin_model_dir

    folder = builtin_model_dir()
    if not has_fullres(folder):
        pytest.skip("the built-in model has no full-resolution stage")
    return load_fullres_model(folder)


def _phase_means(residual: np.ndarray, period: int = 4) -> np.ndarray:
    h, w = residual.shape
    return residual.reshape(h // period, period, w // period, period).mean(axis=(0, 2))


def test_shipped_stage_keeps_smooth_and_flat_pictures_whole(shipped) -> None:
    """No seams, no drift, no block pattern: on a flat and a smooth picture the film, boxed back
    to the input's grid, is the input, and the added detail has no 4-pixel period (the network
    draws 4 x 4 blocks)."""
    import torch

    from xraystudio.synthesis.fullres import upsample

    yy, xx = np.mgrid[0:64, 0:64] / 63.0
    pictures = {"flat": np.full((64, 64), -0.2, np.float32),
                "smooth": (0.6 * xx - 0.3 * yy - 0.1).astype(np.float32)}
    for name, low in pictures.items():
        film = shipped(low[None], [0])[0]
        assert film.shape == (256, 256)
        back = film.reshape(64, 4, 64, 4).mean(axis=(1, 3))
        assert np.abs(back - low).mean() < 0.02, name
        residual = film - upsample(torch.from_numpy(low)[None, None], 4)[0, 0].numpy()
        phases = _phase_means(residual)
        assert phases.std() < 0.25 * residual.std() + 1e-4, name
        # Block borders are not steps: differences across them match those within blocks.
        across = np.abs(np.diff(residual, axis=1))[:, 3::4].mean()
        within = np.abs(np.diff(residual, axis=1))[:, 0::4].mean()
        assert 0.75 < across / within < 1.33, name
        # Nothing at a large scale: no brightness steps or drift across the picture (a 1024 px
        # film runs through the network whole, so there are no tiles to disagree).
        from scipy import ndimage

        assert np.abs(ndimage.gaussian_filter(residual, 8)).max() < 0.02, name


def test_shipped_stage_draws_detail_a_bicubic_upsampling_lacks(shipped) -> None:
    """On a smooth picture with an edge, the film has fine texture (grain) everywhere, while
    the edge stays where it was."""
    low = np.where(np.arange(64)[None, :] < 32, -0.4, 0.2).repeat(64, axis=0).astype(np.float32)
    film = shipped(low[None], [1])[0]
    from scipy import ndimage

    fine = film - ndimage.gaussian_filter(film, 2)
    assert fine[:, :100].std() > 0.002 and fine[:, 156:].std() > 0.002
    profile = film.mean(axis=0)
    assert profile[:120].mean() < -0.3 and profile[136:].mean() > 0.1


def test_the_stage_splits_large_cpu_batches_without_changing_pixels(engine: Engine, monkeypatch) -> None:
    """On the CPU the second stage draws a few films per call (memory); the films and the
    progress of the whole batch are those of one call."""
    import xraystudio.synthesis.engine as engine_module

    masks, image = _study()
    reqs = [GenerationRequest(masks, image, mode="guided", seed=s) for s in (21, 22, 23)]
    whole = engine.generate_batch(reqs)
    monkeypatch.setattr(engine_module, "FINE_CPU_BATCH", 1)
    seen = []
    split = engine.generate_batch(reqs, progress=seen.append)
    for a, b in zip(whole, split):
        np.testing.assert_allclose(a.working, b.working, atol=1e-5)
    fine = [p.step for p in seen if p.stage == "full resolution"]
    assert fine == sorted(fine) and fine[-1] == seen[-1].total


def _band_power(image: np.ndarray, lo: float, hi: float) -> float:
    spectrum = np.abs(np.fft.fft2(image - image.mean())) ** 2
    fy, fx = np.meshgrid(np.fft.fftfreq(image.shape[0]), np.fft.fftfreq(image.shape[1]), indexing="ij")
    radius = np.hypot(fy, fx)
    return float(spectrum[(radius >= lo) & (radius < hi)].mean())


def test_detail_gain_raises_the_coarse_band_and_nothing_else() -> None:
    """The gain lifts rib-and-vessel scales (0.03-0.06 cycles/px at 4x) and leaves the grain,
    flat pictures and shading, even shading running into the film's border, as they were."""
    from xraystudio.synthesis.fullres import restore_detail

    noise = np.random.default_rng(0).standard_normal((1, 256, 256)).astype(np.float32) * 0.1
    lifted = restore_detail(noise, 2.0, 4)
    assert _band_power(lifted[0], 0.03, 0.06) > 2.0 * _band_power(noise[0], 0.03, 0.06)
    assert 0.95 < _band_power(lifted[0], 0.3, 0.5) / _band_power(noise[0], 0.3, 0.5) < 1.05
    np.testing.assert_array_equal(restore_detail(noise, 1.0, 4), noise)
    yy, xx = np.mgrid[0:256, 0:256] / 255.0
    for picture in (np.full((256, 256), -0.2), 0.6 * xx - 0.3 * yy - 0.1):
        picture = picture.astype(np.float32)[None]
        np.testing.assert_allclose(restore_detail(picture, 3.0, 4), picture, atol=1e-4)


def test_the_stage_applies_its_detail_gain_and_refuses_a_bad_one(model_dir: Path, tmp_path: Path) -> None:
    import shutil

    from xraystudio.synthesis.fullres import FULLRES_FOLDER, restore_detail

    with pytest.raises(ModelError, match="detail_gain"):
        FullresSpec(detail_gain=0.0)
    with pytest.raises(ModelError, match="detail_gain"):
        FullresSpec(detail_gain=10.0)
    folder = tmp_path / "model"
    shutil.copytree(model_dir, folder)
    spec = FullresSpec.read(folder / FULLRES_FOLDER)
    spec.detail_gain = 2.0
    spec.write(folder / FULLRES_FOLDER)
    pipe = load_fullres_model(folder)
    low = np.random.default_rng(1).uniform(-0.5, 0.5, (1, 16, 16)).astype(np.float32)
    plain = pipe(low, [3], detail_gain=1.0)
    np.testing.assert_allclose(pipe(low, [3]), restore_detail(plain, 2.0, spec.scale).clip(-1, 1),
                               atol=1e-6)
    with pytest.raises(ModelError, match="detail gain"):
        pipe(low, [3], detail_gain=9.0)


def test_films_drawn_at_full_resolution_take_the_stage_s_nodule_smudges(model_dir: Path,
                                                                         tmp_path: Path) -> None:
    """The stage's detail gain sharpens nodules, so it carries its own (fainter) smudges: used
    when it draws, the model's at the working size, both recorded in the provenance."""
    import shutil

    from xraystudio.synthesis.fullres import FULLRES_FOLDER

    folder = tmp_path / "model"
    shutil.copytree(model_dir, folder)
    spec = FullresSpec.read(folder / FULLRES_FOLDER)
    spec.guide_nodule_contrast, spec.layout_nodule_contrast = 0.02, 0.03
    spec.write(folder / FULLRES_FOLDER)
    model_spec = folder / "xraystudio.json"
    model_spec.write_text(json.dumps({**json.loads(model_spec.read_text()),
                                      "guide_nodule_contrast": 0.1, "layout_nodule_contrast": 0.2}))
    engine = Engine.load(str(folder), device="cpu", precision="fp32")
    masks, image = _study()
    n, k = len(engine.spec.layers), engine.spec.layers.index("nodule")
    for mode, img, prior in (("guided", image, False), ("layout", None, True)):
        req = GenerationRequest(masks, img, mode=mode)
        working = engine.condition(req, mode, prior, resolution=32)
        full = engine.condition(req, mode, prior, resolution=128)
        disc = working[k] >= 0.5
        assert disc.any()
        # Only the smudge differs: fainter at full resolution, by the difference of contrasts.
        assert (full[n] - working[n])[disc].mean() < -0.01, mode
        np.testing.assert_array_equal(full[:n], working[:n])
        np.testing.assert_array_equal(engine.condition(req, mode, prior), working)
    (r,) = engine.generate(GenerationRequest(masks, image, mode="guided", seed=1))
    settings = r.provenance["model"]["fullres"]["settings"]
    assert settings["guide_nodule_contrast"] == 0.02 and settings["layout_nodule_contrast"] == 0.03
    with pytest.raises(ModelError, match="nodule"):
        FullresSpec(guide_nodule_contrast=-0.1)


def test_a_request_can_set_the_detail_gain_at_full_resolution_only(engine: Engine) -> None:
    """``detail_gain`` replaces the stage's tuned gain for one request (1: the stage's film as
    drawn), is recorded in the provenance, and is refused where the stage does not draw."""
    masks, image = _study()
    req = dict(masks=masks, image=image, mode="guided", seed=5)
    (plain,) = engine.generate(GenerationRequest(**req, detail_gain=1.0))
    (lifted,) = engine.generate(GenerationRequest(**req, detail_gain=3.0))
    assert plain.provenance["model"]["fullres"]["settings"]["detail_gain"] == 1.0
    assert lifted.provenance["model"]["fullres"]["settings"]["detail_gain"] == 3.0
    # The same film with its 6-11 mm band lifted (films saturate in places, so not exactly).
    assert _band_power(lifted.working, 0.03, 0.06) > 1.5 * _band_power(plain.working, 0.03, 0.06)
    assert abs(lifted.working.mean() - plain.working.mean()) < 0.02
    for bad, says in (({"resolution": 32, "detail_gain": 2.0}, "full resolution"),
                      ({"detail_gain": 0.0}, "above 0"), ({"detail_gain": 9.0}, "at most")):
        with pytest.raises(GenerationError, match=says):
            engine.generate(GenerationRequest(**{**req, **bad}))


def test_generate_command_takes_a_detail_gain(model_dir: Path, tmp_path: Path, capsys) -> None:
    from xraystudio.cli import main
    from xraystudio.io.images import write_png16

    _, image = _study()
    src = tmp_path / "chest.png"
    write_png16(src, image.display())
    out = tmp_path / "out"
    common = ["generate", str(src), "--out", str(out), "--model", str(model_dir), "--mode", "guided",
              "--no-segment", "--nodule", "40,40,6", "--seed", "1", "--device", "cpu"]
    assert main([*common, "--detail-gain", "1.5"]) == 0
    (prov,) = [json.loads(p.read_text()) for p in out.glob("*.json")]
    assert prov["model"]["fullres"]["settings"]["detail_gain"] == 1.5
    capsys.readouterr()
    assert main([*common, "--resolution", "32", "--detail-gain", "2"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "full resolution" in err and len(err.strip().splitlines()) == 1

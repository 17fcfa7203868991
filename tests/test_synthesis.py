"""The synthesis engine with tiny models built from configs: both model kinds, no downloads."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from xraystudio.errors import GenerationCancelled, GenerationError, ModelError
from xraystudio.image import XRayImage
from xraystudio.masks import MaskStack
from xraystudio.synthesis.condition import Letterbox, build_condition
from xraystudio.synthesis.engine import Engine, GenerationRequest, compare_with_source
from xraystudio.synthesis.model import load_model
from xraystudio.synthesis.spec import ModelSpec
from xraystudio.synthesis.tiny import make_tiny_pixel_model, make_tiny_stable_diffusion


@pytest.fixture(scope="module")
def pixel_dir(tmp_path_factory) -> Path:
    return make_tiny_pixel_model(tmp_path_factory.mktemp("m") / "tiny")


@pytest.fixture(scope="module")
def engine(pixel_dir: Path) -> Engine:
    return Engine.load(str(pixel_dir), device="cpu", precision="fp32")


def _study(shape=(90, 70)) -> tuple[MaskStack, XRayImage]:
    masks = MaskStack(shape, (0.5, 0.5))
    masks.paint("right_lung", [(15, 20), (20, 60)], 8)
    masks.paint("left_lung", [(50, 20), (55, 60)], 8)
    masks.add_nodule(52, 40, 6)
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]]
    image = XRayImage.from_display((0.5 + 0.3 * np.sin(xx / 7) * np.cos(yy / 9)).astype(np.float32))
    return masks, image


def test_round_trip_keeps_weights(pixel_dir: Path) -> None:
    import torch

    a = load_model(str(pixel_dir))
    b = load_model(str(pixel_dir))
    for (na, pa), (_, pb) in zip(a.pipe.controlnet.state_dict().items(),
                                 b.pipe.controlnet.state_dict().items()):
        assert torch.equal(pa, pb), na
    assert a.weights_hash == b.weights_hash and len(a.weights_hash) == 16
    assert a.spec.name == "tiny-pixel" and a.spec.patch == 2


def test_generates_at_source_size_deterministically(engine: Engine) -> None:
    masks, image = _study()
    first = engine.generate(GenerationRequest(masks, image, seed=7, n_images=2))
    again = engine.generate(GenerationRequest(masks, image, seed=7))
    assert [r.seed for r in first] == [7, 8]
    for r in first:
        assert r.image.shape == (90, 70) and r.image.dtype == np.float32
        assert 0 <= r.image.min() and r.image.max() <= 1
    # the two were drawn in one batch: the same pixels as alone, but for float rounding
    np.testing.assert_allclose(first[0].image, again[0].image, atol=1e-5)
    np.testing.assert_array_equal(again[0].image,
                                  engine.generate(GenerationRequest(masks, image, seed=7))[0].image)
    assert not np.array_equal(first[0].image, first[1].image)


def test_random_seed_is_recorded(engine: Engine) -> None:
    masks, image = _study()
    r = engine.generate(GenerationRequest(masks, image))[0]
    again = engine.generate(GenerationRequest(masks, image, seed=r.seed))[0]
    np.testing.assert_array_equal(r.image, again.image)
    assert r.provenance["parameters"]["seed"] == r.seed


def test_condition_changes_the_output(engine: Engine) -> None:
    masks, image = _study()
    other = masks.copy()
    other.add_nodule(20, 70, 12)
    a = engine.generate(GenerationRequest(masks, image, seed=1, mode="layout"))[0]
    b = engine.generate(GenerationRequest(other, image, seed=1, mode="layout"))[0]
    assert np.abs(a.image - b.image).max() > 1e-3


def test_provenance_is_complete(engine: Engine) -> None:
    masks, image = _study()
    p = engine.generate(GenerationRequest(masks, image, seed=3, steps=2, scheduler="unipc"))[0].provenance
    assert p["synthetic"] is True and p["software"].startswith("xraystudio")
    assert p["model"]["name"] == "tiny-pixel" and p["model"]["weights_sha256"]
    assert p["parameters"]["steps"] == 2 and p["parameters"]["scheduler"] == "unipc"
    assert p["parameters"]["mode"] == "guided"  # the tiny model's default with a source image
    assert p["device"].startswith("cpu") and p["mask_hash"] == masks.content_hash()
    assert p["source_image"]["pixel_hash"] == image.pixel_hash()
    assert p["nodules"][0]["diameter_mm"] == 6


@pytest.mark.parametrize("scheduler", ["dpm++", "ddim", "unipc", "euler", "ddpm"])
def test_every_scheduler_runs(engine: Engine, scheduler: str) -> None:
    masks, image = _study()
    r = engine.generate(GenerationRequest(masks, image, seed=0, steps=3, scheduler=scheduler))
    assert np.isfinite(r[0].image).all()


def test_img2img_keeps_more_of_the_picture_the_less_it_is_noised(engine: Engine) -> None:
    """With ``image`` and ``strength`` the pipeline noises the picture to that part of the
    schedule and runs only the remaining steps: from 5 % it stays near the picture, from pure
    noise it does not; the same seed gives the same pixels."""
    import torch

    masks, image = _study()
    cond = torch.from_numpy(engine.condition(GenerationRequest(masks, image, mode="guided"), "guided"))[None]
    picture = torch.linspace(-0.8, 0.8, 32)[None, None, None, :].expand(1, 1, 32, 32).contiguous()
    pipe = engine.model.pipe

    def draw(strength: float) -> torch.Tensor:
        return pipe(cond, num_inference_steps=20, generator=torch.Generator().manual_seed(1),
                    image=picture, strength=strength)

    near, far = draw(0.05), draw(1.0)
    assert (near - picture).abs().mean() < 0.5 * (far - picture).abs().mean()
    assert torch.equal(near, draw(0.05))
    with pytest.raises(ValueError, match="strength"):
        draw(0.0)


def test_progress_after_every_step_with_preview(engine: Engine) -> None:
    masks, image = _study()
    seen = []
    engine.generate(GenerationRequest(masks, image, seed=0, steps=4, n_images=3, preview_every=2),
                    progress=seen.append)
    # the three images are drawn together: one report per step for all of them
    assert [(p.image_index, p.step, p.batch) for p in seen] == [(0, k, 3) for k in (1, 2, 3, 4)]
    assert seen[-1].eta_s == 0 and seen[0].eta_s >= 0
    assert [p.fraction for p in seen] == [0.25, 0.5, 0.75, 1.0]
    previews = [p.preview for p in seen if p.preview is not None]
    assert len(previews) == 2 and previews[0].shape == (32, 32)


def test_progress_of_batches_of_max_batch(pixel_dir: Path) -> None:
    masks, image = _study()
    seen = []
    small = Engine.load(str(pixel_dir), device="cpu", precision="fp32", max_batch=2)
    small.generate(GenerationRequest(masks, image, seed=0, steps=2, n_images=3),
                   progress=seen.append)
    assert [(p.image_index, p.step, p.batch) for p in seen] == [(0, 1, 2), (0, 2, 2),
                                                                (2, 1, 1), (2, 2, 1)]
    assert [round(p.fraction, 3) for p in seen] == [0.333, 0.667, 0.833, 1.0]


def test_cancel_from_another_thread_returns_no_image(engine: Engine) -> None:
    masks, image = _study()
    cancel = threading.Event()
    steps_seen = []

    def progress(p) -> None:
        steps_seen.append(p.step)
        if p.step == 2:
            threading.Thread(target=cancel.set).start()
            threading.Event().wait(0.05)

    with pytest.raises(GenerationCancelled):
        engine.generate(GenerationRequest(masks, image, seed=0, steps=20), progress, cancel)
    assert max(steps_seen) <= 3  # stops within one step
    # The engine stays usable after a cancel.
    assert engine.generate(GenerationRequest(masks, image, seed=0, steps=2))


def test_out_of_memory_is_a_clear_error(engine: Engine, monkeypatch) -> None:
    import torch

    masks, image = _study()

    def boom(*a, **k):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB")

    monkeypatch.setattr(engine, "_run", boom)
    with pytest.raises(GenerationError, match="out of memory"):
        engine.generate(GenerationRequest(masks, image, seed=0))


def test_bad_requests(engine: Engine) -> None:
    masks, image = _study()
    with pytest.raises(GenerationError, match="guided mode needs"):
        engine.generate(GenerationRequest(masks, None, mode="guided"))
    with pytest.raises(GenerationError, match="steps"):
        engine.generate(GenerationRequest(masks, image, steps=0, seed=1))
    with pytest.raises(GenerationError, match="scheduler"):
        engine.generate(GenerationRequest(masks, image, scheduler="nope", seed=1))


def test_metrics_against_source(engine: Engine) -> None:
    masks, image = _study()
    r = engine.generate(GenerationRequest(masks, image, seed=0))[0]
    m = compare_with_source(r, image, masks)
    assert set(m) == {"psnr", "ssim", "psnr_lungs", "ssim_lungs"}
    assert np.isfinite(list(m.values())).all()


# ----------------------------------------------------------------- condition
def test_letterbox_keeps_geometry() -> None:
    masks = MaskStack((300, 150), (0.5, 0.5))
    masks.add_nodule(x=100, y=60, diameter_mm=10)
    spec = ModelSpec(name="t", resolution=64, guide_factor=8)
    cond = build_condition(spec, masks)
    nodule = cond[spec.layers.index("nodule")]
    ys, xs = np.nonzero(nodule > 0.5)
    box = Letterbox((300, 150), 64)
    scale = 64 / 300
    assert box.offset == (0, 16)
    assert abs(xs.mean() - (16 + (100 + 0.5) * scale - 0.5)) < 0.7
    assert abs(ys.mean() - ((60 + 0.5) * scale - 0.5)) < 0.7
    # Guide channels are empty in layout mode and flagged in guided mode.
    assert cond[-1].max() == 0 and cond[-2].max() == 0
    guided = build_condition(spec, masks, np.full((300, 150), 0.4, np.float32))
    assert guided[-1].min() == 1 and abs(guided[-2][:, 20:40].mean() - 0.4) < 1e-3


def test_guide_cannot_carry_a_nodule() -> None:
    from xraystudio.synthesis.condition import guide_from_display

    img = np.zeros((256, 256), np.float32)
    yy, xx = np.mgrid[0:256, 0:256]
    img[(xx - 100) ** 2 + (yy - 100) ** 2 <= 2.5 ** 2] = 1.0  # a 7 mm nodule at 1.4 mm/px
    guide = guide_from_display(img, Letterbox((256, 256), 256), 8)
    assert guide.max() < 0.4  # a faint smudge: the nodules come from the nodule mask


def test_round_trip_through_working_size() -> None:
    yy, xx = np.mgrid[0:120, 0:80]
    smooth = (0.5 + 0.4 * np.sin(xx / 15.0)).astype(np.float32)
    box = Letterbox((120, 80), 96)
    back = box.from_working(box.to_working(smooth))
    assert back.shape == (120, 80) and np.abs(back - smooth).mean() < 0.01


# ------------------------------------------------------------- model safety
def test_pickles_are_refused(tmp_path: Path) -> None:
    (tmp_path / "model.ckpt").write_bytes(b"\x80\x04not really")
    with pytest.raises(ModelError, match="arbitrary code"):
        load_model(str(tmp_path / "model.ckpt"))
    folder = tmp_path / "bin_model"
    (folder / "unet").mkdir(parents=True)
    (folder / "unet" / "diffusion_pytorch_model.bin").write_bytes(b"x")
    ModelSpec(name="pickled").write(folder)
    with pytest.raises(ModelError, match="pickled"):
        load_model(str(folder))


def test_hub_id_needs_permission() -> None:
    with pytest.raises(ModelError, match="--allow-download"):
        load_model("someone/some-controlnet")


def test_missing_model_and_builtin(tmp_path: Path, monkeypatch) -> None:
    with pytest.raises(ModelError, match="no such model"):
        load_model(str(tmp_path / "nothing" / "here"))
    monkeypatch.setenv("XRAYSTUDIO_RESOURCES", str(tmp_path))
    with pytest.raises(ModelError, match="built-in model is missing"):
        load_model(None)
    (tmp_path / "plain").mkdir()
    with pytest.raises(ModelError, match="xraystudio.json"):
        load_model(str(tmp_path / "plain"))


def test_bad_spec_is_refused(tmp_path: Path) -> None:
    (tmp_path / "xraystudio.json").write_text('{"name": "x", "resolutoin": 256}')
    with pytest.raises(ModelError, match="unknown keys"):
        ModelSpec.read(tmp_path)


def test_sd_hub_base_needs_permission(tmp_path: Path) -> None:
    ModelSpec(name="sd", kind="stable-diffusion", encoding="rgb", base="org/sd-base",
              controlnet="org/cn").write(tmp_path)
    with pytest.raises(ModelError, match="downloading is off"):
        load_model(str(tmp_path))


# -------------------------------------------------------- stable diffusion
def test_stable_diffusion_controlnet_with_text(tmp_path: Path) -> None:
    folder = make_tiny_stable_diffusion(tmp_path / "sd")
    engine = Engine.load(str(folder), device="cpu", precision="fp32")
    assert engine.spec.takes_text and engine.spec.condition_channels == 3
    masks, image = _study((64, 60))
    seen = []
    a = engine.generate(GenerationRequest(masks, image, seed=5, prompt="a chest x ray"), seen.append)
    b = engine.generate(GenerationRequest(masks, image, seed=5, prompt="a chest x ray"))
    assert a[0].image.shape == (64, 60)
    np.testing.assert_array_equal(a[0].image, b[0].image)
    assert len(seen) == 3 and a[0].provenance["parameters"]["guidance_scale"] == 2.0
    with pytest.raises(GenerationError, match="no guided mode"):
        engine.generate(GenerationRequest(masks, image, mode="guided"))
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(GenerationCancelled):
        engine.generate(GenerationRequest(masks, image, seed=5), cancel=cancel)


def test_ldm_layout_helper_inverts_diffusers_converter(tmp_path: Path) -> None:
    """The test helper that writes single files must be the exact inverse of diffusers' loader."""
    from diffusers import StableDiffusionControlNetPipeline
    from diffusers.loaders.single_file_utils import (
        convert_controlnet_checkpoint,
        convert_ldm_unet_checkpoint,
        convert_ldm_vae_checkpoint,
    )
    from ldm_format import controlnet_to_ldm, unet_to_ldm, vae_to_ldm

    folder = make_tiny_stable_diffusion(tmp_path / "sd")
    pipe = StableDiffusionControlNetPipeline.from_pretrained(folder / "sd", safety_checker=None)
    for module, to_ldm, back in ((pipe.unet, unet_to_ldm, convert_ldm_unet_checkpoint),
                                 (pipe.vae, vae_to_ldm, convert_ldm_vae_checkpoint),
                                 (pipe.controlnet, controlnet_to_ldm, convert_controlnet_checkpoint)):
        state = module.state_dict()
        round_trip = back(to_ldm(module), dict(module.config))
        assert set(round_trip) == set(state)
        for key, value in state.items():
            assert round_trip[key].shape == value.shape and bool((round_trip[key] == value).all()), key


def _single_file_copy(folder: Path, controlnet_layout: str) -> Path:
    """The tiny SD model re-shipped as users download them: one file each, plus a config folder."""
    import shutil

    from diffusers import StableDiffusionControlNetPipeline
    from ldm_format import controlnet_to_ldm, stable_diffusion_to_ldm
    from safetensors.torch import save_file

    pipe = StableDiffusionControlNetPipeline.from_pretrained(folder / "sd", safety_checker=None)
    out = folder.parent / f"single-{controlnet_layout}"
    out.mkdir()
    save_file(stable_diffusion_to_ldm(pipe), str(out / "sd15-tiny.safetensors"))
    if controlnet_layout == "original":
        cn = {k: v.contiguous() for k, v in controlnet_to_ldm(pipe.controlnet).items()}
        save_file(cn, str(out / "control_masks.safetensors"))
    else:
        shutil.copy(folder / "sd" / "controlnet" / "diffusion_pytorch_model.safetensors",
                    out / "control_masks.safetensors")
    shutil.copytree(folder / "sd", out / "sd-config",
                    ignore=shutil.ignore_patterns("*.safetensors", "controlnet"))
    spec = ModelSpec.read(folder)
    spec = ModelSpec.from_dict({**spec.to_dict(), "base": "sd15-tiny.safetensors",
                                "controlnet": "control_masks.safetensors", "base_config": "sd-config"})
    spec.write(out)
    return out


@pytest.mark.parametrize("controlnet_layout", ["original", "diffusers"])
def test_single_file_safetensors_load_and_match_the_folder(tmp_path: Path, controlnet_layout: str) -> None:
    folder = make_tiny_stable_diffusion(tmp_path / "sd")
    single = _single_file_copy(folder, controlnet_layout)
    assert not list((single / "sd-config").rglob("*.safetensors"))  # weights only in the files
    masks, image = _study((64, 60))
    request = GenerationRequest(masks, image, seed=3, prompt="a chest x ray")
    expected = Engine.load(str(folder), device="cpu", precision="fp32").generate(request)[0]
    got = Engine.load(str(single), device="cpu", precision="fp32").generate(request)[0]
    np.testing.assert_allclose(got.image, expected.image, atol=1e-5)
    assert got.provenance["model"]["weights_sha256"] != expected.provenance["model"]["weights_sha256"]


def test_single_file_base_without_config_is_a_clear_error(tmp_path: Path) -> None:
    folder = make_tiny_stable_diffusion(tmp_path / "sd")
    single = _single_file_copy(folder, "original")
    spec = ModelSpec.read(single)
    ModelSpec.from_dict({**spec.to_dict(), "base_config": None}).write(single)
    with pytest.raises(ModelError, match="base_config"):
        load_model(str(single))


def test_single_file_controlnet_of_another_base_is_refused(tmp_path: Path) -> None:
    from safetensors.torch import load_file, save_file

    folder = make_tiny_stable_diffusion(tmp_path / "sd")
    single = _single_file_copy(folder, "original")
    state = load_file(str(single / "control_masks.safetensors"))
    state.pop(next(k for k in state if "zero_convs.0" in k))
    save_file(state, str(single / "control_masks.safetensors"))
    with pytest.raises(ModelError, match="does not match"):
        load_model(str(single))


# ---------------------------------------------------------------- devices
@pytest.mark.parametrize("cuda, mps, name, precision, expected", [
    (True, False, "auto", "auto", ("cuda", "float16", None)),
    (True, True, "auto", "bf16", ("cuda", "bfloat16", None)),
    (True, False, "cuda:1", "fp32", ("cuda:1", "float32", None)),
    (False, True, "auto", "auto", ("mps", "float32", None)),
    (False, True, "mps", "fp16", ("mps", "float16", None)),
    (False, False, "auto", "fp32", ("cpu", "float32", None)),
    (False, False, "cpu", "bf16", ("cpu", "float32", "bfloat16")),
])
def test_device_choice_follows_the_hardware(monkeypatch, cuda, mps, name, precision, expected) -> None:
    """Auto picks CUDA (fp16), then MPS, then the CPU; explicit choices override. The GPU
    branches are exercised here by pretending the hardware exists (none is on CI)."""
    import torch

    from xraystudio.synthesis.device import pick_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)
    choice = pick_device(name, precision)
    assert (choice.device, choice.dtype, choice.autocast) == expected
    assert choice.device in choice.label


def test_missing_gpu_is_a_clear_error(monkeypatch) -> None:
    import torch

    from xraystudio.synthesis.device import pick_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    with pytest.raises(GenerationError, match="no CUDA GPU"):
        pick_device("cuda")
    with pytest.raises(GenerationError, match="MPS"):
        pick_device("mps")
    with pytest.raises(GenerationError, match="unknown device"):
        pick_device("tpu")

"""How busy the product keeps a GPU: one command, a few minutes, one JSON file.

Measured in one process, each figure with the engine's GPU measures on (``--optimize auto``:
fp16, channels-last, torch.compile) and off (fp32, eager), so the two can be compared:

- ``modes``: images/s by batch size for layout and guided generation (``generate --n``: one
  condition, n images per pipeline call) and for edit mode (two nodules on a 1024 px, 0.35 mm
  12-bit film), the full-resolution stage alone (256 -> 1024 px), the seconds per image at
  batch 1, the first call per shape apart (compilation), peak GPU memory, and the PSNR of the
  optimised pixels against the fp32 ones (same seeds);
- ``synthesize``: edit-mode ``synthesize`` end to end (inputs read, images drawn, files
  written) on 1024 px inputs, images/s of the whole run and after its first unit (model
  loading and compilation left out);
- ``stable_diffusion``: an SD-1.5-size UNet + ControlNet (random weights, built from the
  published configs below; no download), 512 px, 20 steps, guidance 7.5, through the product's
  engine and through diffusers' own ``StableDiffusionControlNetPipeline`` on the same weights.

The built-in model is used; where it has no full-resolution stage yet, a random one of the
shipped architecture stands in (speed does not depend on the weights). ``--data`` takes a
JSRT-style dataset for ``synthesize`` (default: 16 drawn 1024 px cases). ``--smoke`` runs
everything with tiny random models at tiny sizes on the CPU in seconds, to check the script.
A section that would run past ``--budget`` seconds is skipped and says so.

Usage: python benchmarks/gpu.py [--device cuda] [--out benchmarks/results/gpu.json]
[--data DIR] [--smoke]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from machine import cpu_model

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the drawn JSRT-style cases of the tests

# Published configs: runwayml/stable-diffusion-v1-5 (unet/, vae/, text_encoder/ config.json)
# and lllyasviel/sd-controlnet-canny (config.json), as diffusers and transformers name them.
SD15_UNET = dict(
    sample_size=64, in_channels=4, out_channels=4, layers_per_block=2,
    block_out_channels=(320, 640, 1280, 1280), attention_head_dim=8, cross_attention_dim=768,
    down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D",
                      "DownBlock2D"),
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D",
                    "CrossAttnUpBlock2D"),
    norm_num_groups=32, norm_eps=1e-5, act_fn="silu", downsample_padding=1,
    flip_sin_to_cos=True, freq_shift=0, mid_block_scale_factor=1,
)
SD15_CONTROLNET_EXTRA = dict(conditioning_embedding_out_channels=(16, 32, 96, 256),
                             controlnet_conditioning_channel_order="rgb")
SD15_VAE = dict(
    in_channels=3, out_channels=3, latent_channels=4, sample_size=512, layers_per_block=2,
    block_out_channels=(128, 256, 512, 512), norm_num_groups=32, act_fn="silu",
    down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
)
CLIP_VIT_L14_TEXT = dict(
    vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
    num_attention_heads=12, max_position_embeddings=77, hidden_act="quick_gelu",
    projection_dim=768, layer_norm_eps=1e-5, bos_token_id=0, eos_token_id=2, pad_token_id=1,
)
# The same shapes, tiny, for --smoke.
TINY_UNET = dict(
    sample_size=8, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(8, 16),
    attention_head_dim=2, cross_attention_dim=16, norm_num_groups=4,
    down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
)
TINY_CONTROLNET_EXTRA = dict(conditioning_embedding_out_channels=(8, 16))
TINY_VAE = dict(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(8, 16),
                norm_num_groups=4, down_block_types=("DownEncoderBlock2D",) * 2,
                up_block_types=("UpDecoderBlock2D",) * 2)
TINY_TEXT = dict(vocab_size=1000, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                 num_attention_heads=2, max_position_embeddings=77, bos_token_id=0,
                 eos_token_id=2, pad_token_id=1)


class Clock:
    """Wall time with the device's queue drained, and the run's time budget."""

    def __init__(self, device: str, budget_s: float) -> None:
        self.device = device
        self.started = time.perf_counter()
        self.budget_s = budget_s

    def sync(self) -> None:
        import torch

        if self.device.startswith("cuda"):
            torch.cuda.synchronize()

    def time(self, fn) -> tuple[float, object]:
        self.sync()
        t = time.perf_counter()
        out = fn()
        self.sync()
        return time.perf_counter() - t, out

    def left(self) -> float:
        return self.budget_s - (time.perf_counter() - self.started)

    def reset_memory(self) -> None:
        import torch

        if self.device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()

    def peak_mb(self) -> float | None:
        import torch

        if not self.device.startswith("cuda"):
            return None
        return round(torch.cuda.max_memory_allocated() / 2**20, 1)


def rate(clock: Clock, fn, images: int, min_s: float, max_reps: int = 10) -> dict:
    """images/s of ``fn`` (which makes ``images``), after its first call (timed apart)."""
    first, _ = clock.time(fn)
    times: list[float] = []
    while len(times) < max_reps and (len(times) < 2 or sum(times) < min_s):
        times.append(clock.time(fn)[0])
    best = min(times)
    return {"batch": images, "images_per_second": round(images / best, 2),
            "seconds_per_call_min": round(best, 4),
            "seconds_per_call_median": round(statistics.median(times), 4),
            "calls": len(times), "first_call_seconds": round(first, 3)}


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    from xraystudio.metrics import psnr as _psnr

    value = _psnr(a.astype(np.float32), b.astype(np.float32))
    return value if math.isfinite(value) else 999.0


# ------------------------------------------------------------------------------ models
def product_model(args, tmp: Path) -> tuple[Path, str]:
    """The model folder to measure, and what its full-resolution stage is."""
    from xraystudio.synthesis.fullres import (
        FULLRES_FOLDER,
        FullresSpec,
        fullres_scheduler,
        fullres_unet,
        has_fullres,
        save_fullres_model,
    )
    from xraystudio.synthesis.model import builtin_model_dir

    if args.smoke:
        from synthetic_data import write_dataset

        from xraystudio.io.datasets import JsrtDataset
        from xraystudio.synthesis.layout_sampler import LAYOUT_SAMPLER_FILE, LayoutSampler
        from xraystudio.synthesis.tiny import (
            make_tiny_edit_model,
            make_tiny_fullres,
            make_tiny_pixel_model,
        )

        folder = make_tiny_pixel_model(tmp / "tiny", resolution=32, prior=True)
        make_tiny_edit_model(folder)
        make_tiny_fullres(folder)
        data = write_dataset(tmp / "fit", n=6, size=128)
        LayoutSampler.fit(JsrtDataset(data)).save(folder / LAYOUT_SAMPLER_FILE)
        return folder, "tiny random (smoke)"
    source = Path(args.model) if args.model else builtin_model_dir()
    if has_fullres(source):
        return source, "the model's own"
    folder = tmp / "model"
    folder.mkdir()
    for entry in source.iterdir():
        (folder / entry.name).symlink_to(entry.resolve())
    import torch

    torch.manual_seed(0)
    spec = FullresSpec()
    save_fullres_model(folder / FULLRES_FOLDER, spec, fullres_unet(spec), fullres_scheduler())
    return folder, "random weights of the shipped architecture (the model has none yet)"


# ------------------------------------------------------------------------------ sections
def measure_modes(model: Path, args, clock: Clock, optimize: str, keep: dict) -> dict:
    """Images/s by batch size for layout, guided, edit and the full-resolution stage."""
    from edit import study as edit_study
    from generate import study as generate_study

    from xraystudio.synthesis.engine import Engine, GenerationRequest

    batches = [int(b) for b in args.batches.split(",")]
    clock.reset_memory()
    t, engine = clock.time(lambda: Engine.load(str(model), device=args.device,
                                               optimize=optimize, max_batch=max(batches)))
    out: dict = {"device": engine.device.label, "load_seconds": round(t, 2), "modes": {}}
    size = 128 if args.smoke else 1024
    masks, image = generate_study(size)
    coarse = engine.spec.resolution
    for mode in ("layout", "guided"):
        if mode == "guided" and not engine.spec.supports_guide:
            continue
        rows = []
        for b in batches:
            if clock.left() < 30:
                rows.append({"batch": b, "skipped": "time budget"})
                continue
            req = GenerationRequest(masks, image, mode=mode, seed=0, n_images=b,
                                    resolution=coarse)
            rows.append(rate(clock, lambda req=req: engine.generate(req), b, args.min_seconds))
        first = engine.generate(GenerationRequest(masks, image, mode=mode, seed=0,
                                                  resolution=coarse))[0]
        keep.setdefault(mode, {})[optimize] = first.working
        out["modes"][mode] = rows
    # the full-resolution stage alone, on coarse pictures of the model's working size
    rows = []
    fine = engine.fullres_pipe
    for b in [b for b in batches if b <= args.max_fullres_batch]:
        if clock.left() < 30:
            rows.append({"batch": b, "skipped": "time budget"})
            continue
        low = np.random.default_rng(0).uniform(-1, 1, (b, coarse, coarse)).astype(np.float32)
        rows.append(rate(clock, lambda low=low, b=b: fine(low, list(range(b)),
                                                          autocast=engine.device.autocast),
                         b, args.min_seconds))
    low = np.random.default_rng(1).uniform(-0.5, 0.5, (1, coarse, coarse)).astype(np.float32)
    keep.setdefault("fullres", {})[optimize] = (fine(low, [0])[0] + 1) / 2
    out["modes"]["fullres"] = rows
    # edit mode: two nodules on a JSRT-size film
    emasks, eimage = edit_study(size=size, spacing=0.35 * 1024 / size)
    rows = []
    for b in [b for b in batches if b <= args.max_edit_batch]:
        if clock.left() < 30:
            rows.append({"batch": b, "skipped": "time budget"})
            continue
        req = GenerationRequest(emasks, eimage, mode="edit", seed=0, n_images=b)
        rows.append(rate(clock, lambda req=req: engine.generate(req), b, args.min_seconds))
    first = engine.generate(GenerationRequest(emasks, eimage, mode="edit", seed=0))[0]
    keep.setdefault("edit", {})[optimize] = first.image
    out["modes"]["edit"] = rows
    for rows in out["modes"].values():
        one = next((r for r in rows if r.get("batch") == 1 and "seconds_per_call_min" in r), None)
        if one:
            one["latency_seconds_per_image"] = one["seconds_per_call_min"]
    out["acceleration"] = engine.acceleration.record()
    out["compile_seconds"] = round(engine.acceleration.compile_seconds, 2)
    out["peak_gpu_mb"] = clock.peak_mb()
    return out


def measure_synthesize(model: Path, data: Path, args, clock: Clock, optimize: str,
                       tmp: Path) -> dict:
    """Edit-mode ``synthesize`` end to end, files written: the whole run (model loading and
    compilation included) and its steady rate after the first unit."""
    from xraystudio.factory.run import synthesize
    from xraystudio.factory.settings import SynthesisSettings

    settings = SynthesisSettings(input=data, out=tmp / f"synth_{optimize}", mode="edit",
                                 model=str(model), device=args.device, optimize=optimize,
                                 batch=args.synth_batch, per_input=args.synth_per_input)
    marks: list[tuple[float, int]] = []

    def progress(done: int, total: int) -> None:
        if done:
            marks.append((time.perf_counter(), done))

    seconds, summary = clock.time(lambda: synthesize(settings, progress=progress))
    out = {"images": summary.made, "batch": args.synth_batch, "seconds": round(seconds, 2),
           "images_per_second": round(summary.made / seconds, 2), "failed": summary.failed}
    if len(marks) > 1:
        (t0, n0), (t1, n1) = marks[0], marks[-1]
        out["steady_images_per_second"] = round((n1 - n0) / (t1 - t0), 2)
        out["steady_images"] = n1 - n0
    return out


def _sd_pipe(device: str, smoke: bool):
    """SD 1.5 + ControlNet of the published sizes (tiny with ``smoke``), random weights."""
    import torch
    from diffusers import (
        AutoencoderKL,
        ControlNetModel,
        DDIMScheduler,
        StableDiffusionControlNetPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    unet_cfg, cn_extra, vae_cfg, text_cfg = ((TINY_UNET, TINY_CONTROLNET_EXTRA, TINY_VAE, TINY_TEXT)
                                             if smoke else (SD15_UNET, SD15_CONTROLNET_EXTRA,
                                                            SD15_VAE, CLIP_VIT_L14_TEXT))
    dtype = torch.float16 if device.startswith("cuda") else torch.float32
    torch.manual_seed(0)
    with torch.device(device):
        unet = UNet2DConditionModel(**unet_cfg)
        cn_cfg = {k: v for k, v in unet_cfg.items()
                  if k not in ("sample_size", "out_channels", "up_block_types")}
        controlnet = ControlNetModel(**cn_cfg, **cn_extra)
        vae = AutoencoderKL(**vae_cfg)
        text = CLIPTextModel(CLIPTextConfig(**text_cfg))
    letters = [chr(c) for c in range(ord("a"), ord("z") + 1)]
    vocab = {t: i for i, t in enumerate(["<|startoftext|>", "<|pad|>", "<|endoftext|>"] + letters
                                        + [c + "</w>" for c in letters])}
    tokenizer = CLIPTokenizer(vocab=vocab, merges=[], model_max_length=77,
                              pad_token="<|pad|>")
    scheduler = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                              clip_sample=False, set_alpha_to_one=False, steps_offset=1)
    pipe = StableDiffusionControlNetPipeline(
        vae=vae, text_encoder=text, tokenizer=tokenizer, unet=unet, controlnet=controlnet,
        scheduler=scheduler, safety_checker=None, feature_extractor=None,
        requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device, dtype)


def measure_stable_diffusion(args, clock: Clock) -> dict:
    """The engine over an SD-size model beside diffusers' own pipeline, the same weights."""
    import torch
    from generate import study as generate_study

    from xraystudio.synthesis.condition import build_condition
    from xraystudio.synthesis.device import DeviceChoice
    from xraystudio.synthesis.engine import Engine, GenerationRequest
    from xraystudio.synthesis.model import LoadedModel
    from xraystudio.synthesis.spec import Defaults, ModelSpec

    size, steps = (64, 2) if args.smoke else (512, 20)
    clock.reset_memory()
    build_s, pipe = clock.time(lambda: _sd_pipe(args.device, args.smoke))
    spec = ModelSpec(name="sd15-size-random", kind="stable-diffusion", resolution=size,
                     encoding="rgb", base="random", prompt="a chest x ray",
                     defaults=Defaults(steps=steps, scheduler="ddim", guidance_scale=7.5))
    dtype = str(pipe.unet.dtype).replace("torch.", "")
    choice = DeviceChoice(args.device, dtype, None)

    def engine(optimize: str) -> Engine:
        return Engine(LoadedModel(spec, pipe, "benchmark", "random"), choice, optimize)

    masks, _ = generate_study(1024 if not args.smoke else 128)
    plain = engine("off")
    req = GenerationRequest(masks, mode="layout", seed=0)
    plain.generate(req)  # sets the model's scheduler on the pipeline; warms up
    cond = torch.from_numpy(build_condition(spec, masks, None))[None].to(args.device, pipe.unet.dtype)

    def diffusers_call():
        return pipe(prompt=[spec.prompt], image=cond, height=size, width=size,
                    num_inference_steps=steps, guidance_scale=7.5,
                    generator=[torch.Generator("cpu").manual_seed(0)], output_type="np").images

    diffusers_call()
    ours, theirs = [], []
    for _ in range(args.sd_runs):  # alternated, so drift of the machine hits both alike
        theirs.append(clock.time(diffusers_call)[0])
        ours.append(clock.time(lambda: plain.generate(req))[0])
    a = np.asarray(diffusers_call(), np.float32)[0].mean(-1)
    b = plain.generate(req)[0].working
    out = {
        "unet_parameters_m": round(sum(p.numel() for p in pipe.unet.parameters()) / 1e6, 1),
        "controlnet_parameters_m": round(sum(p.numel() for p in pipe.controlnet.parameters())
                                         / 1e6, 1),
        "resolution": size, "steps": steps, "guidance_scale": 7.5, "dtype": dtype,
        "build_seconds": round(build_s, 1),
        "diffusers_seconds_min": round(min(theirs), 3),
        "diffusers_seconds_median": round(statistics.median(theirs), 3),
        "engine_seconds_min": round(min(ours), 3),
        "engine_seconds_median": round(statistics.median(ours), 3),
        "engine_over_diffusers": round(min(ours) / min(theirs), 3),
        "psnr_engine_vs_diffusers_db": round(psnr(a, b), 2),
        "peak_gpu_mb": clock.peak_mb(),
    }
    # Last: the engine's measures change the pipeline's networks in place.
    if args.optimize_sd and clock.left() > args.sd_compile_reserve:
        fast = engine("on" if not args.device.startswith("cuda") else "auto")
        warm, _ = clock.time(lambda: fast.generate(req))
        runs = [clock.time(lambda: fast.generate(req))[0] for _ in range(args.sd_runs)]
        out["engine_optimized"] = {"seconds_min": round(min(runs), 3),
                                   "first_call_seconds": round(warm, 1),
                                   "acceleration": fast.acceleration.record(),
                                   "psnr_vs_plain_db": round(psnr(b, fast.generate(req)[0].working), 2)}
    else:
        out["engine_optimized"] = {"skipped": "time budget" if args.optimize_sd else "not asked"}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--model", help="model folder (default: the built-in model)")
    ap.add_argument("--data", help="JSRT-style dataset for synthesize (default: drawn cases)")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "gpu.json"))
    ap.add_argument("--batches", default="1,4,16,64")
    ap.add_argument("--max-fullres-batch", type=int, default=16)
    ap.add_argument("--max-edit-batch", type=int, default=16)
    ap.add_argument("--min-seconds", type=float, default=1.0, help="timed seconds per figure")
    ap.add_argument("--synth-batch", type=int, default=16)
    ap.add_argument("--synth-per-input", type=int, default=4)
    ap.add_argument("--synth-inputs", type=int, default=16)
    ap.add_argument("--sd-runs", type=int, default=3)
    ap.add_argument("--no-optimize-sd", dest="optimize_sd", action="store_false",
                    help="skip compiling the SD-size networks (the longest compilation)")
    ap.add_argument("--sd-compile-reserve", type=float, default=100.0,
                    help="seconds that must be left to compile the SD-size networks")
    ap.add_argument("--budget", type=float, default=280.0, help="seconds for the whole run")
    ap.add_argument("--threads", type=int, help="torch CPU threads")
    ap.add_argument("--smoke", action="store_true",
                    help="tiny models and sizes on the CPU: checks the script in seconds")
    ap.add_argument("--smoke-compile", action="store_true",
                    help="with --smoke, also compile the tiny SD networks on the CPU (minutes): "
                    "checks torch.compile through the engine end to end")
    args = ap.parse_args()
    if args.smoke:
        args.device = "cpu" if args.device == "cuda" else args.device
        args.batches, args.min_seconds, args.sd_runs = "1,2", 0.0, 1
        args.synth_batch, args.synth_per_input, args.synth_inputs = 2, 4, 2
        args.max_fullres_batch = args.max_edit_batch = 2
        args.optimize_sd = args.smoke_compile

    import diffusers
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    clock = Clock(args.device, args.budget)
    report: dict = {"device": args.device, "cpu": cpu_model(), "torch": torch.__version__,
                    "diffusers": diffusers.__version__, "smoke": args.smoke}
    if args.device.startswith("cuda"):
        report["gpu"] = torch.cuda.get_device_name(args.device)
    # on: the engine's default for the device (CUDA: everything); off: fp32, eager
    variants = ("auto", "off")
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        model, report["fullres_stage"] = product_model(args, tmp)
        keep: dict = {}
        report["modes"] = {v: measure_modes(model, args, clock, v, keep) for v in variants}
        report["psnr_optimized_vs_fp32_db"] = {
            mode: round(psnr(pair["off"], pair["auto"]), 2) for mode, pair in keep.items()}
        data = Path(args.data) if args.data else None
        if data is None:
            from synthetic_data import write_dataset

            data = write_dataset(tmp / "data", n=args.synth_inputs, size=128 if args.smoke else 1024)
        report["synthesize"] = {}
        for v in variants:
            if clock.left() < 40:
                report["synthesize"][v] = {"skipped": "time budget"}
                continue
            report["synthesize"][v] = measure_synthesize(model, data, args, clock, v, tmp)
        with contextlib.suppress(KeyError):
            report["synthesize"]["speedup"] = round(
                report["synthesize"]["auto"]["images_per_second"]
                / report["synthesize"]["off"]["images_per_second"], 2)
        report["stable_diffusion"] = (measure_stable_diffusion(args, clock) if clock.left() > 30
                                      else {"skipped": "time budget"})
    report["seconds"] = round(time.perf_counter() - clock.started, 1)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

"""The full-resolution stage: a diffusion super-resolution model from the working size to 4x.

A new patient is drawn in two stages, as the strongest whole-film generators do (Cheff: a 256 px
model, then a super-resolution diffusion model conditioned on the upsampled picture). The first
stage (layout or guided mode) draws the anatomy at 256 px; this stage draws what a 256 px
picture cannot hold: rib cortex, fine vessels and film grain. It learns from millions of local
patches of real films, so 160 radiographs are enough, and it cannot copy a training film.

- The network denoises the *residual* between the film and the bicubic upsampling of its
  low-resolution copy, scaled to unit size (``residual_scale``): what it must invent is small
  and local, and its output can never move the low-resolution picture's anatomy far.
- Conditioning augmentation (Ho et al. 2021): in training the low-resolution copy is blurred and
  noised by random amounts, and the network is told how much. At inference the amounts are
  settings (chosen on tuning cases): noise lets it tolerate the first stage's errors, blur tells
  it that the first stage's picture is softer than a real film's and has detail to restore.
- The first stage draws rib edges and vessels too faintly for any local stage to restore in
  full; a band gain on the output (``restore_detail``, a tuned setting) lifts what it drew.
- The whole image goes through the fully convolutional network at once (4 x 4 space-to-depth,
  so a 1024 px film is a 256 x 256 network input): no tiles, so no seams and no drift between
  tiles, and a few denoising steps fit the CPU budget.

The same ``degrade`` and ``upsample`` serve training and inference, so the network is trained
on exactly what it is later given.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from xraystudio.errors import ModelError
from xraystudio.io.atomic import write_text
from xraystudio.synthesis.model import UNetStage

if TYPE_CHECKING:
    import torch
    from diffusers import UNet2DModel

FULLRES_FOLDER = "fullres"
FULLRES_SPEC_FILE = "fullres.json"
#: Condition channels, in order: the upsampled low-resolution picture, its noise level, its blur.
CHANNELS = ("upsampled", "noise", "blur")
#: The detail band of ``restore_detail``: Gaussian blurs of these sigmas, in working pixels.
DETAIL_SIGMAS = (0.6, 2.0)
MAX_DETAIL_GAIN = 4.0


@dataclasses.dataclass
class FullresSpec:
    """``fullres/fullres.json`` of a model folder."""

    scale: int = 4  # output pixels per input pixel, per side
    patch: int = 4  # space-to-depth factor of the UNet (see pipelines.pack)
    residual_scale: float = 0.025  # the residual is divided by this for the network ([-1, 1] units)
    max_noise: float = 0.06  # training range of the low-resolution noise sigma ([-1, 1] units)
    max_blur: float = 1.2  # training range of the low-resolution blur sigma (input pixels)
    steps: int = 8
    scheduler: str = "dpm++"
    #: Inference conditioning: the noise and blur the network is told (and the noise added to)
    #: the first stage's picture. Chosen on tuning cases, not by training.
    noise: float = 0.0
    blur: float = 0.0
    #: Gain on the output's coarsest detail band (``restore_detail``); 1 leaves it as drawn.
    detail_gain: float = 1.0
    #: The nodule smudges of the model's guide (``ModelSpec`` fields of the same names) to use
    #: when this stage draws: its detail gain sharpens nodules too, so films drawn at full
    #: resolution need fainter ones than the working size (None: the model's).
    guide_nodule_contrast: float | None = None
    layout_nodule_contrast: float | None = None
    varied_nodule_contrast: float | None = None
    format_version: int = 1

    TUNED = ("noise", "blur", "detail_gain", "guide_nodule_contrast", "layout_nodule_contrast",
             "varied_nodule_contrast", "steps")
    SMUDGES = ("guide_nodule_contrast", "layout_nodule_contrast", "varied_nodule_contrast")

    def __post_init__(self) -> None:
        if self.scale < 2 or self.patch < 1:
            raise ModelError("fullres scale must be at least 2 and patch at least 1")
        if self.residual_scale <= 0 or self.max_noise < 0 or self.max_blur < 0:
            raise ModelError("fullres residual_scale must be positive and the ranges non-negative")
        if not 0 <= self.noise <= self.max_noise or not 0 <= self.blur <= self.max_blur:
            raise ModelError("fullres noise and blur must lie within the trained ranges")
        if not 1 <= self.steps <= 1000:
            raise ModelError("fullres steps must be between 1 and 1000")
        if not 0 < self.detail_gain <= MAX_DETAIL_GAIN:
            raise ModelError(f"fullres detail_gain must be in (0, {MAX_DETAIL_GAIN}]")
        if any(getattr(self, key) is not None and getattr(self, key) < 0 for key in self.SMUDGES):
            raise ModelError("fullres nodule contrasts must not be negative")

    def smudges(self) -> dict[str, float]:
        """The model fields this stage overrides when it draws."""
        return {key: getattr(self, key) for key in self.SMUDGES if getattr(self, key) is not None}

    def tuned(self) -> dict:
        return {key: getattr(self, key) for key in self.TUNED}

    @classmethod
    def read(cls, folder: str | os.PathLike) -> FullresSpec:
        path = Path(folder) / FULLRES_SPEC_FILE
        try:
            return cls(**json.loads(path.read_text(encoding="utf-8")))
        except FileNotFoundError:
            raise ModelError(f"{folder}: no {FULLRES_SPEC_FILE}; not a full-resolution stage") from None
        except (OSError, ValueError, TypeError) as exc:
            raise ModelError(f"{path}: cannot be read ({exc})") from exc

    def write(self, folder: str | os.PathLike) -> None:
        write_text(Path(folder) / FULLRES_SPEC_FILE,
                   json.dumps(dataclasses.asdict(self), indent=2) + "\n")


def fullres_unet(spec: FullresSpec, channels: tuple[int, ...] = (32, 64, 128),
                 layers_per_block: int = 1, norm_groups: int = 8) -> UNet2DModel:
    """The network, from a config; no attention, so any image size runs whole."""
    from diffusers import UNet2DModel

    p2 = spec.patch * spec.patch
    n = len(channels)
    return UNet2DModel(
        sample_size=64,
        in_channels=p2 * (1 + len(CHANNELS)),
        out_channels=p2,
        block_out_channels=channels,
        layers_per_block=layers_per_block,
        down_block_types=("DownBlock2D",) * n,
        up_block_types=("UpBlock2D",) * n,
        norm_num_groups=norm_groups,
        add_attention=False,
    )


def degrade(low: np.ndarray, noise: float, blur: float, rng: np.random.Generator | None) -> np.ndarray:
    """The low-resolution picture as the network is told it is: blurred by ``blur`` pixels and
    noised by ``noise`` (values in [-1, 1]; ``rng`` None adds no noise)."""
    from scipy import ndimage

    out = np.asarray(low, np.float32)
    if blur > 0:
        out = ndimage.gaussian_filter(out, blur, mode="reflect").astype(np.float32)
    if noise > 0 and rng is not None:
        out = out + rng.standard_normal(out.shape).astype(np.float32) * np.float32(noise)
    return out


def restore_detail(films: np.ndarray, gain: float, scale: int) -> np.ndarray:
    """(B, H, W) films with the band between ``DETAIL_SIGMAS`` (working pixels; x ``scale`` at
    the film's size) multiplied by ``gain``.

    The first stage draws rib edges and vessels (0.125-0.25 cycles per working pixel) at about a
    third of a real film's power (``benchmarks/coarse_band.py``): faint, not absent. A
    difference-of-Gaussians gain, the band equaliser of radiographic image processing, brings
    them back to a real film's contrast without touching the grain above the band or the
    shading below it (docs/fullres.md, rule 9). Whole-film filtering: no tiles, no seams.
    """
    from scipy import ndimage

    films = np.asarray(films, np.float32)
    if gain == 1:
        return films
    fine, coarse = (s * scale for s in DETAIL_SIGMAS)
    # Point-symmetric padding continues the film's slope past its border, so shading that runs
    # into the edge of the film is not taken for detail there (plain mirroring would be).
    pad = int(math.ceil(4 * coarse)) + 1
    out = np.empty_like(films)
    for k, film in enumerate(films):
        padded = np.pad(film, pad, mode="reflect", reflect_type="odd")
        band = (ndimage.gaussian_filter(padded, fine, mode="nearest")
                - ndimage.gaussian_filter(padded, coarse, mode="nearest"))
        out[k] = film + np.float32(gain - 1) * band[pad:-pad, pad:-pad]
    return out


def upsample(low: torch.Tensor, scale: int) -> torch.Tensor:
    """(B, 1, h, w) -> (B, 1, h·s, w·s), bicubic: the picture the residual is added to."""
    import torch.nn.functional as F

    return F.interpolate(low, scale_factor=scale, mode="bicubic", align_corners=False)


def condition(up: torch.Tensor, noise: float, blur: float, spec: FullresSpec) -> torch.Tensor:
    """(B, 3, H, W): the upsampled picture and the two levels as constant planes, scaled to
    about [0, 1] by their training ranges."""
    import torch

    b, _, h, w = up.shape
    levels = torch.tensor([noise / max(spec.max_noise, 1e-6), blur / max(spec.max_blur, 1e-6)],
                          dtype=up.dtype, device=up.device)
    return torch.cat([up, levels[None, :, None, None].expand(b, 2, h, w)], dim=1)


def fullres_scheduler():
    """The training noise schedule: the edit model's (v-prediction, cosine)."""
    from xraystudio.synthesis.edit_pipeline import edit_scheduler

    return edit_scheduler()


class FullresPipeline(UNetStage):
    """Draws films at ``scale`` x the size of the pictures it is given; values in [-1, 1]."""

    spec: FullresSpec

    def __call__(
        self,
        low: np.ndarray,
        seeds: list[int],
        steps: int | None = None,
        noise: float | None = None,
        blur: float | None = None,
        on_step: Callable[[int, int], bool] | None = None,
        autocast: str | None = None,
        detail_gain: float | None = None,
    ) -> np.ndarray | None:
        """(B, h, w) pictures in [-1, 1] -> (B, h·s, w·s) films in [-1, 1], film k drawn from
        seed k (the same pixels in a batch as alone); None when ``on_step`` (step, total)
        returns True: no half-drawn film is returned."""
        import contextlib

        import torch

        from xraystudio.synthesis.edit_pipeline import sampler
        from xraystudio.synthesis.pipelines import pack, unpack

        spec = self.spec
        steps = int(steps or spec.steps)
        noise = spec.noise if noise is None else float(noise)
        blur = spec.blur if blur is None else float(blur)
        gain = spec.detail_gain if detail_gain is None else float(detail_gain)
        if not 0 < gain <= MAX_DETAIL_GAIN:
            raise ModelError(f"full-resolution detail gain must be in (0, {MAX_DETAIL_GAIN}]")
        if not 0 <= noise <= spec.max_noise or not 0 <= blur <= spec.max_blur:
            raise ModelError(f"full-resolution noise must be in [0, {spec.max_noise}] and blur in "
                             f"[0, {spec.max_blur}]")
        low = np.asarray(low, np.float32)
        if low.ndim != 3 or len(seeds) != low.shape[0]:
            raise ModelError("the full-resolution stage takes (B, h, w) pictures and a seed each")
        if (low.shape[1] * spec.scale) % (8 * spec.patch) or (low.shape[2] * spec.scale) % (8 * spec.patch):
            raise ModelError(f"the full-resolution stage needs sides that are multiples of "
                             f"{8 * spec.patch // math.gcd(8 * spec.patch, spec.scale)}")
        rngs = [np.random.default_rng(seed) for seed in seeds]
        degraded = np.stack([degrade(im, noise, blur, rng) for im, rng in zip(low, rngs)])
        device = self.device
        up = upsample(torch.from_numpy(degraded)[:, None], spec.scale)
        cond = pack(condition(up, noise, blur, spec), spec.patch).to(device)
        sched = sampler(self.scheduler_config, spec.scheduler, "the full-resolution stage")
        sched.set_timesteps(steps, device=device)
        p2 = spec.patch * spec.patch
        h, w = cond.shape[-2:]
        sample = torch.cat([
            torch.randn((1, p2, h, w), generator=torch.Generator("cpu").manual_seed(seed + 1))
            for seed in seeds
        ]).to(device) * sched.init_noise_sigma
        amp = (torch.autocast("cpu", dtype=torch.bfloat16) if autocast == "bfloat16"
               else contextlib.nullcontext())
        with torch.inference_mode(), amp:
            for i, t in enumerate(sched.timesteps):
                model_in = torch.cat([sched.scale_model_input(sample, t), cond], dim=1)
                out = self.unet(model_in, t, return_dict=False)[0].float()
                sample = sched.step(out, t, sample, return_dict=False)[0]
                if on_step is not None and on_step(i + 1, steps):
                    return None
        film = (up + unpack(sample.float().cpu(), spec.patch) * spec.residual_scale)[:, 0]
        return restore_detail(film.numpy(), gain, spec.scale).clip(-1, 1).astype(np.float32)


def save_fullres_model(folder: str | os.PathLike, spec: FullresSpec, unet, scheduler) -> Path:
    """Write ``folder`` (usually ``<model>/fullres``): unet/ (safetensors), scheduler/, fullres.json."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    unet.save_pretrained(folder / "unet", safe_serialization=True)
    scheduler.save_pretrained(folder / "scheduler")
    spec.write(folder)
    return folder


def has_fullres(model_folder: str | os.PathLike) -> bool:
    return (Path(model_folder) / FULLRES_FOLDER / FULLRES_SPEC_FILE).is_file()


def model_resolutions(model_folder: str | os.PathLike, kind: str, resolution: int) -> tuple[int, ...]:
    """The sides layout and guided modes can draw with a model, smallest first: its working
    size and, for a pixel model with a full-resolution stage, that size times the stage's scale.
    The window offers exactly what the engine accepts."""
    if kind != "pixel" or not has_fullres(model_folder):
        return (resolution,)
    scale = FullresSpec.read(Path(model_folder) / FULLRES_FOLDER).scale
    return (resolution, resolution * scale)


def load_fullres_model(folder: str | os.PathLike, device: str = "cpu") -> FullresPipeline:
    """The full-resolution stage of ``folder`` (a model folder with ``fullres/``, or that folder)."""
    from xraystudio.synthesis.model import load_unet_stage

    folder = Path(folder)
    if (folder / FULLRES_FOLDER).is_dir():
        folder = folder / FULLRES_FOLDER
    spec = FullresSpec.read(folder)
    expected = spec.patch * spec.patch * (1 + len(CHANNELS))
    unet, config, digest = load_unet_stage(folder, "full-resolution stage", expected, device)
    return FullresPipeline(unet, config, spec, digest)

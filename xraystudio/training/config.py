"""The settings of a synthesis training run; light to import (the CLI builds its flags from it)."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from xraystudio.synthesis.spec import ModelSpec


@dataclasses.dataclass
class TrainConfig:
    data: str
    out: str
    name: str = "xraystudio-cxr"
    resolution: int = 256
    patch: int = 2
    guide_factor: int = 8
    channels: tuple[int, ...] = (32, 64, 128, 128)
    layers_per_block: int = 1
    crop: int = 128
    batch: int = 8
    prior_steps: int = 1500
    prior_lr: float = 2e-3
    prior_channels: tuple[int, ...] = (16, 32, 64, 64)
    guide_nodule_gain: float = 2.0
    base_steps: int = 2000
    controlnet_steps: int = 2000
    lr: float = 3e-4
    warmup: int = 100
    ema_decay: float = 0.999
    guided_fraction: float = 0.5
    prior_fraction: float = 0.5
    nodule_weight: float = 1.0
    val_fraction: float = 0.2
    split_seed: int = 0
    seed: int = 0
    checkpoint_every: int = 200
    validate_every: int = 500
    val_cases: int = 4
    sample_steps: int = 20
    limit_cases: int | None = None
    init_from: str | None = None
    snr_gamma: float | None = 5.0
    sd_base: str | None = None
    prompt: str = "a frontal chest x-ray"
    edit: bool = False
    edit_steps: int = 4000
    edit_lr: float = 4e-4
    edit_batch: int = 8
    edit_window: int = 128
    edit_channels: tuple[int, ...] = (32, 64, 128, 128)
    edit_tune_cases: int = 12
    #: Share of fill windows (nodule-free regions to redraw: what removal asks) in a batch.
    edit_fill_fraction: float = 0.5
    fullres: bool = False
    fullres_steps: int = 6000
    fullres_lr: float = 4e-4
    fullres_batch: int = 8
    fullres_crop: int = 384
    fullres_channels: tuple[int, ...] = (32, 64, 128)
    #: Widest blur (256 px pixels) of the conditioning augmentation; None keeps the continued
    #: stage's (or the default) range. Wider lets the stage restore coarser detail.
    fullres_max_blur: float | None = None
    #: Share of crops whose low-resolution copy is the first stage's own redraw of the film
    #: (``training.fullres_redraws``; needs ``init_from``, the model whose first stage draws).
    fullres_redraw_fraction: float = 0.0

    def spec(self) -> ModelSpec:
        from pathlib import Path

        from xraystudio.synthesis.spec import Defaults, ModelSpec

        if self.sd_base:
            # Only a ControlNet is trained; the model folder points at the user's base.
            return ModelSpec(
                name=self.name, kind="stable-diffusion", resolution=self.resolution,
                encoding="rgb", base=str(Path(self.sd_base).expanduser().resolve()),
                controlnet="controlnet", prompt=self.prompt,
                description="ControlNet on colour-coded masks over a Stable Diffusion base, "
                "trained with xraystudio",
                defaults=Defaults(steps=self.sample_steps, scheduler="dpm++", guidance_scale=5.0),
            )
        return ModelSpec(
            name=self.name, kind="pixel", resolution=self.resolution, patch=self.patch,
            guide_factor=self.guide_factor, spacing_mm=None,
            description="Pixel-space ControlNet for chest radiographs, trained with xraystudio",
            defaults=Defaults(steps=self.sample_steps, scheduler="dpm++", mode="guided"),
        )

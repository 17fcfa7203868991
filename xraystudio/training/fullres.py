"""Train the full-resolution stage on crops of a JSRT-style dataset's films; resumable.

The split is the one every model uses; the tuning cases of the edit model (``tune_split``) are
kept out too, so the inference settings (noise, blur, steps) are chosen on films the network
never saw and the validation split only reports. Checkpoints are safetensors folders renamed into
place, so a run killed at any moment resumes from its last checkpoint with ``--resume``.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import numpy as np

from xraystudio.errors import XRayStudioError
from xraystudio.synthesis.fullres import FULLRES_SPEC_FILE, FullresSpec
from xraystudio.training.config import TrainConfig
from xraystudio.training.fullres_data import fullres_batch, load_films
from xraystudio.training.unet_stage import UNetStageTrainer

log = logging.getLogger(__name__)

STAGE = "fullres"


class FullresTrainer(UNetStageTrainer):
    """Trains ``fullres/`` for a model folder: RUN/checkpoints, then RUN/model/fullres."""

    stage = STAGE
    salt = 23

    def __init__(self, cfg: TrainConfig, accelerator=None) -> None:
        from accelerate import Accelerator

        from xraystudio.synthesis.device import cpu_has_fast_bf16

        if cfg.fullres_crop % (8 * 4):
            raise XRayStudioError("--fullres-crop must be a multiple of 32")
        self.cfg = cfg
        self.out = Path(cfg.out)
        if accelerator is None:
            import torch

            fast = torch.cuda.is_available() or cpu_has_fast_bf16()
            accelerator = Accelerator(mixed_precision="bf16" if fast else "no")
        self.acc = accelerator
        # A continued stage keeps what its network was trained for (scale, residual scale,
        # augmentation range) and the settings chosen for it (retune after training).
        init = Path(cfg.init_from) / "fullres" if cfg.init_from else None
        spec = FullresSpec.read(init) if init is not None and (init / FULLRES_SPEC_FILE).is_file() else FullresSpec()
        if cfg.fullres_max_blur is not None:
            if cfg.fullres_max_blur <= 0:
                raise XRayStudioError("--fullres-max-blur must be positive")
            spec = dataclasses.replace(spec, max_blur=cfg.fullres_max_blur)
        self.spec = spec
        dataset = self.split("full-resolution stage")
        self.films = load_films(dataset, self.train_ids)
        if min(min(f.shape) for f in self.films) < cfg.fullres_crop:
            raise XRayStudioError(f"--fullres-crop {cfg.fullres_crop} is larger than a film")
        self.redraws = None
        if cfg.fullres_redraw_fraction:
            if not 0 < cfg.fullres_redraw_fraction <= 1:
                raise XRayStudioError("--fullres-redraw-fraction must be in (0, 1]")
            if not cfg.init_from:
                raise XRayStudioError("--fullres-redraw-fraction needs --init-from: the model "
                                      "folder whose first stage draws the redraws")
            from xraystudio.training.fullres_redraws import load_redraws

            self.redraws = load_redraws(dataset, self.train_ids, cfg.init_from,
                                        self.out / "redraws", spec.scale)

    def settings(self) -> tuple[int, float]:
        return self.cfg.fullres_steps, self.cfg.fullres_lr

    def fresh_unet(self):
        """A new network, or the stage of the model this run continues (``--init-from``)."""
        from diffusers import UNet2DModel

        from xraystudio.synthesis.fullres import fullres_unet

        init = Path(self.cfg.init_from) / "fullres" / "unet" if self.cfg.init_from else None
        if init is not None and init.is_dir():
            return UNet2DModel.from_pretrained(init, use_safetensors=True)
        return fullres_unet(self.spec, self.cfg.fullres_channels, self.cfg.layers_per_block)

    def fallback_ema(self) -> Path | None:
        """A committed checkpoint keeps only the raw weights; the EMA restarts from the shipped
        stage (``--init-from`` a model folder)."""
        return Path(self.cfg.init_from) / "fullres" / "unet" if self.cfg.init_from else None

    def batch(self, rng: np.random.Generator):
        target, cond = fullres_batch(self.films, rng, self.spec, self.cfg.fullres_batch,
                                     self.cfg.fullres_crop, self.redraws,
                                     self.cfg.fullres_redraw_fraction)
        return target, cond, None

    def save_model(self, unet) -> Path:
        from xraystudio.synthesis.fullres import FULLRES_FOLDER, fullres_scheduler, save_fullres_model

        return save_fullres_model(self.out / "model" / FULLRES_FOLDER, self.spec, unet,
                                  fullres_scheduler())

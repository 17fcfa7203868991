"""Train the edit model on native-resolution windows of a JSRT-style dataset; resumable.

The split is the one every model uses (``JsrtDataset.split``); the first ``tune_cases`` of the
training ids (by the same hash order) are kept out of training as the tuning part, on which edit
settings are chosen, so the validation split only reports. Checkpoints (weights, EMA weights,
optimizer, step) are safetensors folders renamed into place, so a run killed at any moment
resumes from its last checkpoint with ``--resume``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from xraystudio.errors import XRayStudioError
from xraystudio.synthesis.edit_window import EditSpec
from xraystudio.training.config import TrainConfig
from xraystudio.training.edit_data import edit_batch, load_sources
from xraystudio.training.unet_stage import UNetStageTrainer, tuned_settings

log = logging.getLogger(__name__)

STAGE = "edit"


class EditTrainer(UNetStageTrainer):
    """Trains ``edit/`` for a model folder: RUN/checkpoints, then RUN/model/edit."""

    stage = STAGE
    salt = 11

    def __init__(self, cfg: TrainConfig, accelerator=None) -> None:
        from accelerate import Accelerator

        if not 0 <= cfg.edit_fill_fraction <= 1:
            raise XRayStudioError("--edit-fill-fraction must be between 0 and 1")
        self.cfg = cfg
        self.out = Path(cfg.out)
        self.acc = accelerator or Accelerator()
        self.spec = EditSpec(window=cfg.edit_window, patch=cfg.patch, steps=cfg.sample_steps,
                             **tuned_settings(cfg.init_from, "edit", "edit.json", EditSpec))
        dataset = self.split("edit model")
        self.sources = load_sources(dataset, self.train_ids)

    def settings(self) -> tuple[int, float]:
        return self.cfg.edit_steps, self.cfg.edit_lr

    def fresh_unet(self):
        from xraystudio.synthesis.edit_pipeline import edit_unet

        return edit_unet(self.spec, self.cfg.edit_channels)

    def fallback_ema(self) -> Path | None:
        return Path(self.cfg.init_from) / "edit" / "unet" if self.cfg.init_from else None  # shipped EMA

    def batch(self, rng: np.random.Generator):
        import torch

        return tuple(torch.from_numpy(a) for a in edit_batch(
            self.sources, rng, self.spec, self.cfg.edit_batch, 1.0 - self.cfg.edit_fill_fraction))

    def save_model(self, unet) -> Path:
        from xraystudio.synthesis.edit_pipeline import EDIT_FOLDER, edit_scheduler, save_edit_model

        return save_edit_model(self.out / "model" / EDIT_FOLDER, self.spec, unet, edit_scheduler())

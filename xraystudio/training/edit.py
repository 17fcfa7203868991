"""Train the edit model on native-resolution windows of a JSRT-style dataset; resumable.

The split is the one every model uses (``JsrtDataset.split``); the first ``tune_cases`` of the
training ids (by the same hash order) are kept out of training as the tuning part, on which edit
settings are chosen, so the validation split only reports. Checkpoints (weights, EMA weights,
optimizer, step) are safetensors folders renamed into place, so a run killed at any moment
resumes from its last checkpoint with ``--resume``.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import numpy as np

from xraystudio.errors import XRayStudioError
from xraystudio.io.datasets import JsrtDataset
from xraystudio.synthesis.edit_window import EditSpec
from xraystudio.training.config import TrainConfig
from xraystudio.training.edit_data import edit_batch, load_sources
from xraystudio.training.unet_stage import UNetStageTrainer

log = logging.getLogger(__name__)

STAGE = "edit"


def tune_split(dataset: JsrtDataset, train_ids: list[str], n: int) -> tuple[list[str], list[str]]:
    """(ids to train on, tuning ids): ``n`` training cases, nodule and normal in proportion."""
    if n <= 0:
        return train_ids, []
    info = {c.id: c for c in dataset.cases}
    tune: list[str] = []
    left = n
    for stratum in (True, False):
        ids = sorted((i for i in train_ids if info[i].nodule == stratum),
                     key=lambda i: hashlib.sha256(f"tune:{i}".encode()).hexdigest())
        share = max(1, round(n * len(ids) / max(1, len(train_ids)))) if stratum else left
        share = min(share, left, max(0, len(ids) - 1))
        tune += ids[:share]
        left -= share
    return sorted(set(train_ids) - set(tune)), sorted(tune)


def _tuned_settings(init_from: str | None) -> dict:
    """The inference settings of the model this run continues, which were chosen on the tuning
    cases: a continued model exports with them (retune with benchmarks/tune_edit_detail.py and
    benchmarks/tune_nodule_scale.py)."""
    folder = Path(init_from) / "edit" if init_from else None
    if folder is None or not (folder / "edit.json").is_file():
        return {}
    return EditSpec.read(folder).tuned()


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
                             **_tuned_settings(cfg.init_from))
        dataset = JsrtDataset(cfg.data)
        train_ids, val_ids = dataset.split(cfg.val_fraction, cfg.split_seed)
        train_ids, tune_ids = tune_split(dataset, train_ids, cfg.edit_tune_cases)
        if cfg.limit_cases:
            train_ids = train_ids[: cfg.limit_cases]
        if not train_ids:
            raise XRayStudioError(f"{cfg.data}: no training cases after the validation split")
        log.info("edit model: %d training cases (%d kept for tuning, %d held out)",
                 len(train_ids), len(tune_ids), len(val_ids))
        self.train_ids, self.tune_ids, self.val_ids = train_ids, tune_ids, val_ids
        self.sources = load_sources(dataset, train_ids)

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

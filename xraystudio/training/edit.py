"""Train the edit model on native-resolution windows of a JSRT-style dataset; resumable.

The split is the one every model uses (``JsrtDataset.split``); the first ``tune_cases`` of the
training ids (by the same hash order) are kept out of training as the tuning part, on which edit
settings are chosen, so the validation split only reports. Checkpoints (weights, EMA weights,
optimizer, step) are safetensors folders renamed into place, so a run killed at any moment
resumes from its last checkpoint with ``--resume``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import time
from pathlib import Path

import numpy as np

from xraystudio.errors import XRayStudioError
from xraystudio.io.atomic import write_text
from xraystudio.io.datasets import JsrtDataset
from xraystudio.synthesis.edit_window import EditSpec
from xraystudio.training import checkpoint as ckpt
from xraystudio.training.config import TrainConfig
from xraystudio.training.controlnet import _lr_lambda, optimiser_step
from xraystudio.training.edit_data import edit_batch, load_sources

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


class EditTrainer:
    """Trains ``edit/`` for a model folder: RUN/checkpoints, then RUN/model/edit."""

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

    def _build(self, resume_dir: Path | None):
        from diffusers import UNet2DModel
        from diffusers.training_utils import EMAModel

        from xraystudio.synthesis.edit_pipeline import edit_unet

        if resume_dir is not None:
            unet = UNet2DModel.from_pretrained(resume_dir / "unet", use_safetensors=True)
            ema_dir = resume_dir / "unet_ema"
            if not ema_dir.is_dir() and self.cfg.init_from:
                ema_dir = Path(self.cfg.init_from) / "edit" / "unet"  # the shipped EMA weights
            ema_model = UNet2DModel.from_pretrained(ema_dir, use_safetensors=True)
            ema = EMAModel(ema_model.parameters(), decay=self.cfg.ema_decay)
        else:
            unet = edit_unet(self.spec, self.cfg.edit_channels)
            ema = EMAModel(unet.parameters(), decay=self.cfg.ema_decay)
        return unet, ema

    def run(self, resume: bool = False, progress: bool = True) -> Path:
        import torch
        from tqdm.auto import tqdm

        from xraystudio.synthesis.edit_pipeline import edit_scheduler
        from xraystudio.synthesis.pipelines import pack

        cfg, acc = self.cfg, self.acc
        total, step = cfg.edit_steps, 0
        resume_dir = ckpt.latest_of(self.out / "checkpoints", STAGE) if resume else None
        if resume_dir is not None:
            step = json.loads((resume_dir / "state.json").read_text())["step"]
            log.info("resuming the edit model at step %d from %s", step, resume_dir)
        unet, ema = self._build(resume_dir)
        opt = torch.optim.AdamW(unet.parameters(), lr=cfg.edit_lr, weight_decay=1e-4)
        if resume_dir is not None and (resume_dir / "optimizer.safetensors").is_file():
            # A checkpoint committed to the repository has no optimizer state (it would triple
            # its size): Adam then restarts its moments, the weights and schedule continue.
            ckpt.load_optimizer(opt, resume_dir / "optimizer")
        sched = torch.optim.lr_scheduler.LambdaLR(opt, _lr_lambda(cfg.warmup, total))
        for _ in range(step):
            sched.step()
        unet, opt = acc.prepare(unet, opt)
        ema.to(acc.device)
        alphas = edit_scheduler().alphas_cumprod.to(acc.device)
        rng = np.random.default_rng(cfg.seed * 100_003 + step + 11)
        torch.manual_seed(cfg.seed * 1_000_003 + step + 11)
        bar = tqdm(total=total, initial=step, desc="train edit", disable=not progress,
                   dynamic_ncols=True)
        losses: list[float] = []
        started = time.perf_counter()
        p = self.spec.patch
        while step < total:
            x0, cond, weight = (torch.from_numpy(a).to(acc.device) for a in
                                edit_batch(self.sources, rng, self.spec, cfg.edit_batch,
                                           1.0 - cfg.edit_fill_fraction))
            x0, cond, weight = pack(x0, p), pack(cond, p), pack(weight, p)
            noise = torch.randn_like(x0)
            t = torch.randint(0, 1000, (x0.shape[0],), device=acc.device)
            a = alphas[t].sqrt()[:, None, None, None]
            b = (1 - alphas[t]).sqrt()[:, None, None, None]
            target = a * noise - b * x0  # v-prediction
            with acc.autocast():
                pred = unet(torch.cat([a * x0 + b * noise, cond], dim=1), t).sample
            error = ((pred.float() - target) ** 2 * weight).mean(dim=(1, 2, 3))
            if cfg.snr_gamma:
                snr = alphas[t] / (1 - alphas[t])
                error = error * snr.clamp(max=cfg.snr_gamma) / (snr + 1)
            loss = error.mean()
            optimiser_step(acc, loss, unet, opt, sched)
            ema.step(unet.parameters())
            step += 1
            losses.append(float(loss.detach()))
            bar.update(1)
            bar.set_postfix(loss=f"{np.mean(losses[-50:]):.4f}")
            if acc.is_main_process and (step % cfg.checkpoint_every == 0 or step == total):
                self._checkpoint(step, acc.unwrap_model(unet), ema, opt,
                                 float(np.mean(losses[-50:])), time.perf_counter() - started)
        bar.close()
        return self.export()

    def _checkpoint(self, step: int, unet, ema, opt, loss: float, seconds: float) -> None:
        folder = self.out / "checkpoints" / f"step-{STAGE}-{step}"
        tmp = folder.with_name(folder.name + ".tmp")
        tmp.mkdir(parents=True, exist_ok=True)
        unet.save_pretrained(tmp / "unet", safe_serialization=True)
        ema.store(unet.parameters())
        ema.copy_to(unet.parameters())
        unet.save_pretrained(tmp / "unet_ema", safe_serialization=True)
        ema.restore(unet.parameters())
        ckpt.save_optimizer(opt, tmp / "optimizer")
        write_text(tmp / "state.json", json.dumps({
            "stage": STAGE, "step": step, "loss": loss, "seconds": round(seconds, 1),
            "config": dataclasses.asdict(self.cfg), "tune_ids": self.tune_ids,
        }, indent=2, default=str))
        ckpt.commit_folder(tmp, folder)
        ckpt.prune(self.out / "checkpoints", STAGE)

    def export(self) -> Path:
        """RUN/model/edit from the newest checkpoint's EMA weights."""
        from diffusers import UNet2DModel

        from xraystudio.synthesis.edit_pipeline import EDIT_FOLDER, edit_scheduler, save_edit_model

        final = ckpt.latest_of(self.out / "checkpoints", STAGE)
        if final is None:
            raise XRayStudioError("no edit checkpoint to export; train some steps first")
        unet = UNet2DModel.from_pretrained(final / "unet_ema", use_safetensors=True)
        return save_edit_model(self.out / "model" / EDIT_FOLDER, self.spec, unet, edit_scheduler())

"""The training loop shared by the single-network stages (edit model, full-resolution stage).

Both train one diffusers ``UNet2DModel`` by v-prediction on space-to-depth packed samples with
their condition stacked on as channels, keep an EMA of its weights and checkpoint it as
safetensors folders renamed into place, so a run killed at any moment resumes from its last
checkpoint with ``--resume``. A subclass says what a batch is and how the model folder is
written; the loop, the loss and the checkpoints are written once, here.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from pathlib import Path

import numpy as np

from xraystudio.errors import XRayStudioError
from xraystudio.io.atomic import write_text
from xraystudio.training import checkpoint as ckpt
from xraystudio.training.config import TrainConfig
from xraystudio.training.controlnet import _lr_lambda, optimiser_step

log = logging.getLogger(__name__)


def tuned_settings(init_from: str | None, folder: str, spec_file: str, spec_cls) -> dict:
    """The inference settings of the stage a run continues (``--init-from``), which were chosen
    on tuning cases after training: a continued stage exports with them (retune afterwards)."""
    if not init_from or not (Path(init_from) / folder / spec_file).is_file():
        return {}
    return spec_cls.read(Path(init_from) / folder).tuned()


class UNetStageTrainer:
    """Subclasses set ``stage``, ``cfg``, ``out``, ``acc``, ``spec`` (with ``patch``),
    ``tune_ids`` and implement the hooks below."""

    stage: str
    salt: int  # seeds this stage's random streams (kept per stage so reruns reproduce)
    cfg: TrainConfig
    out: Path
    spec: object
    tune_ids: list[str]

    def split(self, what: str):
        """(dataset, training ids, tuning ids, held-out ids) by the split every model uses; the
        tuning cases (``tune_split``) are kept out so settings are chosen on unseen films."""
        from xraystudio.io.datasets import JsrtDataset, tune_split

        cfg = self.cfg
        dataset = JsrtDataset(cfg.data)
        train_ids, val_ids = dataset.split(cfg.val_fraction, cfg.split_seed)
        train_ids, tune_ids = tune_split(dataset, train_ids, cfg.edit_tune_cases)
        if cfg.limit_cases:
            train_ids = train_ids[: cfg.limit_cases]
        if not train_ids:
            raise XRayStudioError(f"{cfg.data}: no training cases after the validation split")
        log.info("%s: %d training cases (%d kept for tuning, %d held out)",
                 what, len(train_ids), len(tune_ids), len(val_ids))
        self.train_ids, self.tune_ids, self.val_ids = train_ids, tune_ids, val_ids
        return dataset

    # Hooks -------------------------------------------------------------------------------
    def settings(self) -> tuple[int, float]:
        """(total steps, learning rate)."""
        raise NotImplementedError

    def fresh_unet(self):
        """The network a run without a checkpoint starts from."""
        raise NotImplementedError

    def batch(self, rng: np.random.Generator):
        """(x0, condition, loss weight or None), unpacked torch tensors."""
        raise NotImplementedError

    def save_model(self, unet) -> Path:
        """Write RUN/model/<stage folder> with ``unet`` (the EMA weights)."""
        raise NotImplementedError

    def fallback_ema(self) -> Path | None:
        """Where EMA weights come from when a resumed checkpoint has none (a committed one)."""
        return None

    # The loop ----------------------------------------------------------------------------
    def _build(self, resume_dir: Path | None):
        from diffusers import UNet2DModel
        from diffusers.training_utils import EMAModel

        if resume_dir is None:
            unet = self.fresh_unet()
            return unet, EMAModel(unet.parameters(), decay=self.cfg.ema_decay)
        unet = UNet2DModel.from_pretrained(resume_dir / "unet", use_safetensors=True)
        ema_dir = resume_dir / "unet_ema"
        if not ema_dir.is_dir():
            ema_dir = self.fallback_ema() or resume_dir / "unet"
        ema_model = UNet2DModel.from_pretrained(ema_dir, use_safetensors=True)
        return unet, EMAModel(ema_model.parameters(), decay=self.cfg.ema_decay)

    def run(self, resume: bool = False, progress: bool = True) -> Path:
        import torch
        from tqdm.auto import tqdm

        from xraystudio.synthesis.edit_pipeline import edit_scheduler
        from xraystudio.synthesis.pipelines import pack

        cfg, acc = self.cfg, self.acc
        total, lr = self.settings()
        step = 0
        resume_dir = ckpt.latest_of(self.out / "checkpoints", self.stage) if resume else None
        if resume_dir is not None:
            step = json.loads((resume_dir / "state.json").read_text())["step"]
            log.info("resuming %s at step %d from %s", self.stage, step, resume_dir)
        unet, ema = self._build(resume_dir)
        opt = torch.optim.AdamW(unet.parameters(), lr=lr, weight_decay=1e-4)
        if resume_dir is not None and (resume_dir / "optimizer.safetensors").is_file():
            # A checkpoint committed to the repository has no optimizer state (it would triple
            # its size): Adam then restarts its moments, the weights and schedule continue.
            ckpt.load_optimizer(opt, resume_dir / "optimizer")
        sched = torch.optim.lr_scheduler.LambdaLR(opt, _lr_lambda(cfg.warmup, total))
        for _ in range(step):
            sched.step()
        unet, opt = acc.prepare(unet, opt)
        ema.to(acc.device)
        # Every single-network stage shares the v-prediction cosine schedule of edit_scheduler.
        alphas = edit_scheduler().alphas_cumprod.to(acc.device)
        rng = np.random.default_rng(cfg.seed * 100_003 + step + self.salt)
        torch.manual_seed(cfg.seed * 1_000_003 + step + self.salt)
        bar = tqdm(total=total, initial=step, desc=f"train {self.stage}", disable=not progress,
                   dynamic_ncols=True)
        losses: list[float] = []
        started = time.perf_counter()
        p = self.spec.patch
        while step < total:
            x0, cond, weight = self.batch(rng)
            x0, cond = pack(x0.to(acc.device), p), pack(cond.to(acc.device), p)
            noise = torch.randn_like(x0)
            t = torch.randint(0, 1000, (x0.shape[0],), device=acc.device)
            a = alphas[t].sqrt()[:, None, None, None]
            b = (1 - alphas[t]).sqrt()[:, None, None, None]
            target = a * noise - b * x0  # v-prediction
            with acc.autocast():
                pred = unet(torch.cat([a * x0 + b * noise, cond], dim=1), t).sample
            error = (pred.float() - target) ** 2
            if weight is not None:
                error = error * pack(weight.to(acc.device), p)
            error = error.mean(dim=(1, 2, 3))
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
        folder = self.out / "checkpoints" / f"step-{self.stage}-{step}"
        tmp = folder.with_name(folder.name + ".tmp")
        tmp.mkdir(parents=True, exist_ok=True)
        unet.save_pretrained(tmp / "unet", safe_serialization=True)
        ema.store(unet.parameters())
        ema.copy_to(unet.parameters())
        unet.save_pretrained(tmp / "unet_ema", safe_serialization=True)
        ema.restore(unet.parameters())
        ckpt.save_optimizer(opt, tmp / "optimizer")
        write_text(tmp / "state.json", json.dumps({
            "stage": self.stage, "step": step, "loss": loss, "seconds": round(seconds, 1),
            "config": dataclasses.asdict(self.cfg), "tune_ids": self.tune_ids,
        }, indent=2, default=str))
        ckpt.commit_folder(tmp, folder)
        ckpt.prune(self.out / "checkpoints", self.stage)

    def export(self) -> Path:
        """RUN/model/<stage folder> from the newest checkpoint's EMA weights."""
        from diffusers import UNet2DModel

        final = ckpt.latest_of(self.out / "checkpoints", self.stage)
        if final is None:
            raise XRayStudioError(f"no {self.stage} checkpoint to export; train some steps first")
        return self.save_model(UNet2DModel.from_pretrained(final / "unet_ema", use_safetensors=True))

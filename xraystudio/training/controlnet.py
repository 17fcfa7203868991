"""Train the built-in model: a layout prior, a pixel diffusion base on radiographs, then a
ControlNet on masks.

This follows the paper's recipe (a base that has learnt chest radiographs; a ControlNet with
zero-initialised connections trained on top of the frozen base) at a size that trains on a CPU.
``accelerate`` places the work on one CPU, one GPU or several (``accelerate launch``); weights
are kept as an exponential moving average, which is what is saved as the model.
v-prediction with a cosine schedule keeps few-step DPM-Solver++ sampling sharp.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import time
from pathlib import Path

import numpy as np

from xraystudio.errors import XRayStudioError
from xraystudio.io.atomic import write_text
from xraystudio.io.datasets import JsrtDataset
from xraystudio.synthesis.condition import Letterbox
from xraystudio.training import checkpoint as ckpt
from xraystudio.training.config import TrainConfig
from xraystudio.training.data import Sample, load_samples, make_batch
from xraystudio.training.prior import train_prior

log = logging.getLogger(__name__)

STAGES = ckpt.STAGE_ORDER


def _schedule():
    from diffusers import DDPMScheduler

    return DDPMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2",
                         prediction_type="v_prediction")


def _lr_lambda(warmup: int, total: int):
    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warmup) / max(1, total - warmup))))
    return lambda s: max(f(s), 0.05)


def optimiser_step(acc, loss, trained, opt, sched) -> None:
    """One update of ``trained`` (gradients clipped to norm 1), then the learning-rate step."""
    acc.backward(loss)
    if acc.sync_gradients:
        acc.clip_grad_norm_(trained.parameters(), 1.0)
    opt.step()
    sched.step()
    opt.zero_grad(set_to_none=True)


class Trainer:
    """Runs the stages in order, checkpointing every ``checkpoint_every`` steps; resumable."""

    def __init__(self, cfg: TrainConfig, accelerator=None) -> None:
        from accelerate import Accelerator

        self.cfg = cfg
        self.out = Path(cfg.out)
        self.acc = accelerator or Accelerator()
        self.spec = cfg.spec()
        dataset = JsrtDataset(cfg.data)
        train_ids, val_ids = dataset.split(cfg.val_fraction, cfg.split_seed)
        if cfg.limit_cases:
            train_ids, val_ids = train_ids[: cfg.limit_cases], val_ids[: max(1, cfg.val_cases)]
        if not train_ids:
            raise XRayStudioError(f"{cfg.data}: no training cases after the validation split")
        log.info("training on %d cases, %d held out", len(train_ids), len(val_ids))
        self.train_ids, self.val_ids = train_ids, val_ids
        self.samples: list[Sample] = load_samples(dataset, train_ids, self.spec)
        self.dataset = dataset

    # ------------------------------------------------------------- modules
    def _build(self, stage: str, resume_dir: Path | None):
        from diffusers import ControlNetModel, UNet2DConditionModel
        from diffusers.training_utils import EMAModel

        from xraystudio.synthesis.architectures import controlnet_for, pixel_unet

        cfg = self.cfg
        init = self._init_dir()
        if resume_dir is not None and (resume_dir / "unet").is_dir():
            unet = UNet2DConditionModel.from_pretrained(resume_dir / "unet", use_safetensors=True)
        elif init is not None:
            unet = UNet2DConditionModel.from_pretrained(init / "unet", use_safetensors=True)
        else:
            unet = pixel_unet(cfg.resolution, cfg.channels, cfg.layers_per_block, patch=cfg.patch)
        controlnet = None
        if stage == "controlnet":
            if resume_dir is not None and (resume_dir / "controlnet").is_dir():
                controlnet = ControlNetModel.from_pretrained(resume_dir / "controlnet",
                                                             use_safetensors=True)
            elif init is not None and (init / "controlnet").is_dir():
                controlnet = ControlNetModel.from_pretrained(init / "controlnet", use_safetensors=True)
            else:
                # The ControlNet copies the (EMA) base encoder: the paper's initialisation.
                controlnet = controlnet_for(unet, self.spec.condition_channels, patch=cfg.patch)
        trained = controlnet if stage == "controlnet" else unet
        ema = EMAModel(trained.parameters(), decay=cfg.ema_decay)
        ema_dir = resume_dir / f"{'controlnet' if stage == 'controlnet' else 'unet'}_ema" if resume_dir else None
        if ema_dir is not None and ema_dir.is_dir():
            cls = type(trained)
            ema_model = cls.from_pretrained(ema_dir, use_safetensors=True)
            ema = EMAModel(ema_model.parameters(), decay=cfg.ema_decay)
        return unet, controlnet, trained, ema

    def _init_dir(self) -> Path | None:
        """The model folder a run continues from (``init_from``), checked against this run.

        Fine-tuning a shipped model on new data, or continuing it for more steps, needs the same
        working geometry; a mismatch would silently train a model the engine then mis-reads.
        """
        if not self.cfg.init_from:
            return None
        from xraystudio.synthesis.spec import ModelSpec

        folder = Path(self.cfg.init_from)
        if not (folder / "unet").is_dir():
            raise XRayStudioError(f"{folder}: not a model folder (no unet/); --init-from takes a "
                                  "folder written by `xraystudio train` (OUT/model)")
        spec = ModelSpec.read(folder)
        if spec.kind != "pixel" or (spec.resolution, spec.patch) != (self.cfg.resolution, self.cfg.patch):
            raise XRayStudioError(
                f"{folder}: a {spec.kind} model at {spec.resolution} px, patch {spec.patch}; this "
                f"run trains pixel models at {self.cfg.resolution} px, patch {self.cfg.patch}")
        return folder

    # ---------------------------------------------------------------- loop
    def run(self, resume: bool = False, progress: bool = True) -> Path:
        start_stage, start_step, resume_dir = STAGES[0], 0, None
        if resume:
            resume_dir = ckpt.latest(self.out / "checkpoints")
            if resume_dir is not None:
                state = json.loads((resume_dir / "state.json").read_text())
                start_stage, start_step = state["stage"], state["step"]
                log.info("resuming %s at step %d from %s", start_stage, start_step, resume_dir)
        for stage in STAGES[STAGES.index(start_stage):]:
            if stage != start_stage:
                start_step, resume_dir = 0, self._stage_start(stage)
            if stage == "prior":
                train_prior(self, start_step, self.cfg.prior_steps, resume_dir, progress)
                continue
            steps = self.cfg.base_steps if stage == "base" else self.cfg.controlnet_steps
            self._train_stage(stage, start_step, steps, resume_dir, progress)
        return self.export()

    def _stage_start(self, stage: str) -> Path | None:
        """The ControlNet stage starts from the finished base (EMA weights)."""
        return self.out / "base" if stage == "controlnet" else None

    def _train_stage(self, stage: str, step: int, total: int, resume_dir: Path | None,
                     progress: bool) -> None:
        import torch
        from tqdm.auto import tqdm

        from xraystudio.synthesis.pipelines import null_context, pack

        cfg, acc = self.cfg, self.acc
        if step >= total and (stage != "base" or (self.out / "base").is_dir()):
            return
        unet, controlnet, trained, ema = self._build(stage, resume_dir)
        if stage == "controlnet":
            unet.requires_grad_(False)
            unet.eval()
        opt = torch.optim.AdamW(trained.parameters(), lr=cfg.lr, weight_decay=1e-4)
        if resume_dir is not None and (resume_dir / "optimizer.safetensors").is_file():
            ckpt.load_optimizer(opt, resume_dir / "optimizer")
        sched = torch.optim.lr_scheduler.LambdaLR(opt, _lr_lambda(cfg.warmup, total), last_epoch=-1)
        for _ in range(step):
            sched.step()
        unet, opt = acc.prepare(unet, opt)
        if controlnet is not None:
            controlnet = acc.prepare(controlnet)
        ema.to(acc.device)
        noise_sched = _schedule()
        alphas = noise_sched.alphas_cumprod.to(acc.device)
        rng = np.random.default_rng(cfg.seed * 100_003 + step + (0 if stage == "base" else 7))
        torch.manual_seed(cfg.seed * 1_000_003 + step)
        bar = tqdm(total=total, initial=step, desc=f"train {stage}", disable=not progress,
                   dynamic_ncols=True)
        losses: list[float] = []
        started = time.perf_counter()
        prior_guide = self._prior_guide() if stage == "controlnet" else None
        while step < total:
            x0, cond = make_batch(self.samples, self.spec, rng, cfg.batch, cfg.crop,
                                  cfg.guided_fraction, prior_guide=prior_guide,
                                  prior_fraction=cfg.prior_fraction)
            x0 = pack(torch.from_numpy(x0).to(acc.device), cfg.patch)
            cond_t = torch.from_numpy(cond).to(acc.device)
            noise = torch.randn_like(x0)
            t = torch.randint(0, 1000, (x0.shape[0],), device=acc.device)
            a = alphas[t].sqrt()[:, None, None, None]
            b = (1 - alphas[t]).sqrt()[:, None, None, None]
            noisy = a * x0 + b * noise
            target = a * noise - b * x0  # v-prediction
            context = null_context(acc.unwrap_model(unet), x0.shape[0], acc.device, x0.dtype)
            with acc.autocast():
                if stage == "base":
                    pred = unet(noisy, t, encoder_hidden_states=context).sample
                else:
                    down, mid = controlnet(noisy, t, encoder_hidden_states=context,
                                           controlnet_cond=pack(cond_t, cfg.patch), return_dict=False)
                    pred = unet(noisy, t, encoder_hidden_states=context,
                                down_block_additional_residuals=down,
                                mid_block_additional_residual=mid).sample
                loss = self._loss(pred.float(), target.float(), alphas[t],
                                  self._nodule_weights(cond_t) if stage == "controlnet" else None)
            optimiser_step(acc, loss, trained, opt, sched)
            ema.step(trained.parameters())
            step += 1
            losses.append(float(loss.detach()))
            bar.update(1)
            bar.set_postfix(loss=f"{np.mean(losses[-50:]):.4f}", lr=f"{sched.get_last_lr()[0]:.1e}")
            if acc.is_main_process and (step % cfg.checkpoint_every == 0 or step == total):
                self._checkpoint(stage, step, acc.unwrap_model(unet), controlnet and acc.unwrap_model(controlnet),
                                 ema, opt, np.mean(losses[-50:]), time.perf_counter() - started)
            if acc.is_main_process and (step % cfg.validate_every == 0 or step == total):
                self.validate(stage, step, acc.unwrap_model(unet),
                              controlnet and acc.unwrap_model(controlnet), ema)
        bar.close()
        if stage == "base" and acc.is_main_process:
            base = acc.unwrap_model(unet)
            ema.store(base.parameters())
            ema.copy_to(base.parameters())
            base.save_pretrained(self.out / "base" / "unet", safe_serialization=True)
            ema.restore(base.parameters())

    def _prior_guide(self):
        """Augmented working-size layers -> the layout prior's guide, if this run has a prior.

        Without the painted-nodule discs ``with_prior_guide`` adds at inference: like the real
        training guides, these are nodule-free, so the ControlNet learns nodules from the mask.
        """
        if not self.spec.supports_guide or self.cfg.prior_fraction <= 0:
            return None
        prior = self._prior()
        if prior is None:
            return None
        from xraystudio.synthesis.prior import predict_guide

        anatomy = [self.spec.layers.index(name) for name in prior.config.layers]
        return lambda layers: predict_guide(prior, layers[anatomy], self.spec.guide_factor)

    def _nodule_weights(self, cond):
        """Per-pixel loss weights: ``nodule_weight`` on each nodule disc and the ring around it.

        A nodule covers a few hundred of a crop's 16 000 pixels, so under a plain mean the model
        can leave painted nodules faint at almost no cost; the ring is included because
        visibility is the disc's contrast against it.
        """
        import torch

        from xraystudio.synthesis.pipelines import pack

        if self.cfg.nodule_weight == 1.0 or "nodule" not in self.spec.layers:
            return None
        disc = cond[:, self.spec.layers.index("nodule")][:, None]
        near = torch.nn.functional.max_pool2d(disc, 9, stride=1, padding=4)
        return pack(1.0 + (self.cfg.nodule_weight - 1.0) * near, self.cfg.patch)

    def _loss(self, pred, target, alpha_bar, weights=None):
        """v-prediction MSE, with min-SNR-γ weighting (Hang et al. 2023) when ``snr_gamma`` is set.

        Plain v-loss weighs each step's clean-image error by SNR + 1, so nearly noise-free steps
        dominate the gradient while the mid-noise steps, which make the texture, learn slowly.
        ``weights`` (shaped like ``pred``) weigh pixels, e.g. more on nodules.
        """
        error = (pred - target) ** 2
        if weights is not None:
            error = error * weights
        per_sample = error.mean(dim=(1, 2, 3))
        if self.cfg.snr_gamma:
            snr = alpha_bar / (1 - alpha_bar)
            per_sample = per_sample * snr.clamp(max=self.cfg.snr_gamma) / (snr + 1)
        return per_sample.mean()

    def _checkpoint(self, stage, step, unet, controlnet, ema, opt, loss, seconds) -> None:
        folder = self.out / "checkpoints" / f"step-{stage}-{step}"
        tmp = folder.with_name(folder.name + ".tmp")
        tmp.mkdir(parents=True, exist_ok=True)
        trained = controlnet if stage == "controlnet" else unet
        name = "controlnet" if stage == "controlnet" else "unet"
        if stage == "controlnet":
            unet.save_pretrained(tmp / "unet", safe_serialization=True)
        trained.save_pretrained(tmp / name, safe_serialization=True)
        ema.store(trained.parameters())
        ema.copy_to(trained.parameters())
        trained.save_pretrained(tmp / f"{name}_ema", safe_serialization=True)
        ema.restore(trained.parameters())
        ckpt.save_optimizer(opt, tmp / "optimizer")
        write_text(tmp / "state.json", json.dumps({
            "stage": stage, "step": step, "loss": float(loss), "seconds": round(seconds, 1),
            "config": dataclasses.asdict(self.cfg),
        }, indent=2))
        ckpt.commit_folder(tmp, folder)
        ckpt.prune(self.out / "checkpoints", stage)

    # ----------------------------------------------------------- validation
    def validate(self, stage, step, unet, controlnet, ema) -> Path | None:
        """A grid of validation cases: condition | layout (over the prior) | guided | truth."""
        from diffusers import DPMSolverMultistepScheduler

        from xraystudio.synthesis.pipelines import XRayControlNetPipeline

        if stage == "base":
            return None
        ema.store(controlnet.parameters())
        ema.copy_to(controlnet.parameters())
        try:
            pipe = XRayControlNetPipeline(unet, controlnet, DPMSolverMultistepScheduler.from_config(
                _schedule().config), patch=self.cfg.patch)
            return self.validation_grid(pipe, ("layout", "guided"), f"{stage}-{step:06d}")
        finally:
            ema.restore(controlnet.parameters())

    def validation_grid(self, pipe, modes: tuple[str, ...], name: str) -> Path:
        """Held-out cases at fixed seeds, one row each: condition | one image per mode | truth.

        The paper's figure of validation images across training steps is these grids in order.
        """
        from xraystudio.image import XRayImage
        from xraystudio.io.images import write_png8
        from xraystudio.synthesis.device import DeviceChoice
        from xraystudio.synthesis.engine import Engine, GenerationRequest
        from xraystudio.synthesis.model import LoadedModel

        pipe.set_progress_bar_config(disable=True)
        prior = self._prior() if self.spec.supports_guide else None
        engine = Engine(LoadedModel(self.spec, pipe, "training", name,
                                    prior and prior.to(self.acc.device)),
                        DeviceChoice(str(self.acc.device), "float32", None))
        rows = []
        for case_id in self.val_ids[: self.cfg.val_cases]:
            case = self.dataset.load(case_id)
            image = XRayImage.from_display(case.image, case.masks.spacing_mm)
            out = []
            for mode in modes:
                r = engine.generate(GenerationRequest(case.masks, image, mode=mode, seed=0,
                                                      steps=self.cfg.sample_steps))
                out.append(r[0].working)
            cond = r[0].condition
            tint = (cond.mean(0) if self.spec.encoding == "rgb"
                    else np.clip(cond[:5].max(0) * 0.5 + cond[5] * 1.0, 0, 1))
            truth = Letterbox(case.image.shape, self.spec.resolution).to_working(case.image)
            rows.append(np.concatenate([tint, *out, truth], axis=1))
        path = self.out / "validation" / f"{name}.png"
        write_png8(path, np.concatenate(rows, axis=0))
        return path

    # --------------------------------------------------------------- export
    def export(self) -> Path:
        """Write the model folder (EMA weights) that the engine loads.

        A part this run did not train (zero steps for it) comes from ``init_from``, so a run
        that only adds a layout prior to a shipped model exports the whole model.
        """
        from diffusers import ControlNetModel, DPMSolverMultistepScheduler, UNet2DConditionModel

        from xraystudio.synthesis.model import save_pixel_model

        checkpoints, init = self.out / "checkpoints", self._init_dir()
        final = ckpt.latest_of(checkpoints, "controlnet")
        if final is not None:
            unet_dir, controlnet_dir = final / "unet", final / "controlnet_ema"
        elif init is not None and (init / "controlnet").is_dir():
            base = self.out / "base" / "unet"
            unet_dir = base if base.is_dir() else init / "unet"
            controlnet_dir = init / "controlnet"
        else:
            raise XRayStudioError("no ControlNet checkpoint to export; train the controlnet stage")
        unet = UNet2DConditionModel.from_pretrained(unet_dir, use_safetensors=True)
        controlnet = ControlNetModel.from_pretrained(controlnet_dir, use_safetensors=True)
        scheduler = DPMSolverMultistepScheduler.from_config(_schedule().config,
                                                            algorithm_type="dpmsolver++")
        spec = self.spec
        if spec.supports_guide:
            from xraystudio.training.prior import nodule_contrast

            spec = dataclasses.replace(spec, guide_nodule_contrast=self.cfg.guide_nodule_gain
                                       * nodule_contrast(self.samples, spec))
        return save_pixel_model(self.out / "model", spec, unet, controlnet, scheduler,
                                self._prior())

    def _prior(self):
        """The layout prior of this run (newest checkpoint), else of ``init_from``, else None."""
        from xraystudio.synthesis.model import PRIOR_FOLDER
        from xraystudio.synthesis.prior import LayoutPrior

        found = ckpt.latest_of(self.out / "checkpoints", "prior")
        init = self._init_dir()
        folder = (found / PRIOR_FOLDER if found is not None
                  else init / PRIOR_FOLDER if init is not None else None)
        if folder is None or not folder.is_dir():
            return None
        return LayoutPrior.from_pretrained(folder, use_safetensors=True).eval()

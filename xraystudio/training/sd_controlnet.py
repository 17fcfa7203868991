"""Train only a ControlNet on a user's Stable Diffusion base, as the paper did.

For users with a GPU and an SD 1.x/2.x base in diffusers format: the base (VAE, UNet, text
encoder) stays frozen, the ControlNet is copied from the base UNet's encoder (zero-initialised
connections) and learns the colour-coded masks. Radiographs enter the VAE as grey RGB, the text
is one fixed prompt. The model folder written at the end refers to the base by path, so the
shipped ControlNet stays small.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np

from xraystudio.errors import XRayStudioError
from xraystudio.io.atomic import write_text
from xraystudio.training import checkpoint as ckpt
from xraystudio.training.controlnet import Trainer, _lr_lambda, optimiser_step
from xraystudio.training.data import make_batch

log = logging.getLogger(__name__)


def _target(noise_sched, latents, noise, t):
    """What the base UNet predicts, per its scheduler (SD 1.x: noise; SD 2.x 768: velocity)."""
    kind = noise_sched.config.prediction_type
    if kind == "v_prediction":
        return noise_sched.get_velocity(latents, noise, t)
    if kind == "sample":
        return latents
    return noise


class StableDiffusionControlNetTrainer(Trainer):
    """The ControlNet stage alone, over a frozen diffusers Stable Diffusion folder."""

    def __init__(self, cfg, accelerator=None) -> None:
        base = Path(cfg.sd_base or "").expanduser()
        for part in ("unet", "vae", "text_encoder", "tokenizer", "scheduler"):
            if not (base / part).is_dir():
                raise XRayStudioError(
                    f"{base}: not a diffusers Stable Diffusion folder (no {part}/); download the "
                    "base first (e.g. `hf download ID --local-dir DIR`) and pass its folder")
        super().__init__(cfg, accelerator)
        self.base = base.resolve()

    def _components(self, resume_dir: Path | None):
        from diffusers import AutoencoderKL, ControlNetModel, DDPMScheduler, UNet2DConditionModel
        from transformers import CLIPTextModel, CLIPTokenizer

        kw = {"local_files_only": True}
        vae = AutoencoderKL.from_pretrained(self.base, subfolder="vae", use_safetensors=True, **kw)
        unet = UNet2DConditionModel.from_pretrained(self.base, subfolder="unet", use_safetensors=True, **kw)
        text = CLIPTextModel.from_pretrained(self.base, subfolder="text_encoder", use_safetensors=True, **kw)
        tokenizer = CLIPTokenizer.from_pretrained(self.base, subfolder="tokenizer", **kw)
        noise = DDPMScheduler.from_pretrained(self.base, subfolder="scheduler", **kw)
        if resume_dir is not None:
            controlnet = ControlNetModel.from_pretrained(resume_dir / "controlnet", use_safetensors=True)
        else:
            # The condition embedding must shrink the masks to latent size: SD's usual widths,
            # one stage per halving the VAE does (three for SD's factor 8).
            halvings = len(vae.config.block_out_channels) - 1
            controlnet = ControlNetModel.from_unet(
                unet, conditioning_channels=self.spec.condition_channels,
                conditioning_embedding_out_channels=(16, 32, 96, 256)[: halvings + 1])
        for frozen in (vae, unet, text):
            frozen.requires_grad_(False)
            frozen.eval()
        return vae, unet, text, tokenizer, noise, controlnet

    def run(self, resume: bool = False, progress: bool = True) -> Path:
        import torch
        from tqdm.auto import tqdm

        cfg, acc = self.cfg, self.acc
        step, resume_dir = 0, None
        if resume and (resume_dir := ckpt.latest_of(self.out / "checkpoints", "controlnet")):
            step = json.loads((resume_dir / "state.json").read_text())["step"]
            log.info("resuming the ControlNet at step %d from %s", step, resume_dir)
        vae, unet, text, tokenizer, noise_sched, controlnet = self._components(resume_dir)
        opt = torch.optim.AdamW(controlnet.parameters(), lr=cfg.lr, weight_decay=1e-4)
        if resume_dir is not None:
            ckpt.load_optimizer(opt, resume_dir / "optimizer")
        sched = torch.optim.lr_scheduler.LambdaLR(opt, _lr_lambda(cfg.warmup, cfg.controlnet_steps))
        for _ in range(step):
            sched.step()
        controlnet, opt = acc.prepare(controlnet, opt)
        for frozen in (vae, unet, text):
            frozen.to(acc.device)
        ids = tokenizer(cfg.prompt, padding="max_length", max_length=tokenizer.model_max_length,
                        truncation=True, return_tensors="pt").input_ids.to(acc.device)
        with torch.no_grad():
            context = text(ids)[0]
        rng = np.random.default_rng(cfg.seed * 100_003 + step)
        torch.manual_seed(cfg.seed * 1_000_003 + step)
        bar = tqdm(total=cfg.controlnet_steps, initial=step, desc="train controlnet",
                   disable=not progress, dynamic_ncols=True)
        losses: list[float] = []
        started = time.perf_counter()
        while step < cfg.controlnet_steps:
            x0, cond = make_batch(self.samples, self.spec, rng, cfg.batch, cfg.resolution, 0.0)
            images = torch.from_numpy(x0).to(acc.device).repeat(1, 3, 1, 1)
            with torch.no_grad():
                latents = vae.encode(images).latent_dist.sample() * vae.config.scaling_factor
            noise = torch.randn_like(latents)
            t = torch.randint(0, noise_sched.config.num_train_timesteps, (latents.shape[0],),
                              device=acc.device)
            noisy = noise_sched.add_noise(latents, noise, t)
            target = _target(noise_sched, latents, noise, t)
            hidden = context.expand(latents.shape[0], -1, -1)
            with acc.autocast():
                down, mid = controlnet(noisy, t, encoder_hidden_states=hidden,
                                       controlnet_cond=torch.from_numpy(cond).to(acc.device),
                                       return_dict=False)
                pred = unet(noisy, t, encoder_hidden_states=hidden,
                            down_block_additional_residuals=down,
                            mid_block_additional_residual=mid).sample
                loss = torch.nn.functional.mse_loss(pred.float(), target.float())
            optimiser_step(acc, loss, controlnet, opt, sched)
            step += 1
            losses.append(float(loss.detach()))
            bar.update(1)
            bar.set_postfix(loss=f"{np.mean(losses[-50:]):.4f}", lr=f"{sched.get_last_lr()[0]:.1e}")
            done = step == cfg.controlnet_steps
            if acc.is_main_process and (step % cfg.checkpoint_every == 0 or done):
                self._save(step, acc.unwrap_model(controlnet), opt, float(np.mean(losses[-50:])),
                           time.perf_counter() - started)
            if acc.is_main_process and (step % cfg.validate_every == 0 or done):
                self.validation_grid(self._pipeline(vae, unet, text, tokenizer,
                                                    acc.unwrap_model(controlnet)),
                                     ("layout",), f"controlnet-{step:06d}")
        bar.close()
        return self.export()

    def _pipeline(self, vae, unet, text, tokenizer, controlnet):
        from diffusers import DPMSolverMultistepScheduler, StableDiffusionControlNetPipeline

        scheduler = DPMSolverMultistepScheduler.from_pretrained(self.base, subfolder="scheduler")
        return StableDiffusionControlNetPipeline(
            vae=vae, text_encoder=text, tokenizer=tokenizer, unet=unet, controlnet=controlnet,
            scheduler=scheduler, safety_checker=None, feature_extractor=None,
            requires_safety_checker=False)

    def _save(self, step: int, controlnet, opt, loss: float, seconds: float) -> None:
        """A small checkpoint: the ControlNet and its optimizer; the frozen base is not copied."""
        import dataclasses

        folder = self.out / "checkpoints" / f"step-controlnet-{step}"
        tmp = folder.with_name(folder.name + ".tmp")
        tmp.mkdir(parents=True, exist_ok=True)
        controlnet.save_pretrained(tmp / "controlnet", safe_serialization=True)
        ckpt.save_optimizer(opt, tmp / "optimizer")
        write_text(tmp / "state.json", json.dumps({
            "stage": "controlnet", "step": step, "loss": loss, "seconds": round(seconds, 1),
            "base": str(self.base), "config": dataclasses.asdict(self.cfg)}, indent=2))
        ckpt.commit_folder(tmp, folder)
        ckpt.prune(self.out / "checkpoints", "controlnet")

    def export(self) -> Path:
        """OUT/model: the ControlNet and an xraystudio.json whose 'base' is the user's folder."""
        import shutil

        final = ckpt.latest_of(self.out / "checkpoints", "controlnet")
        if final is None:
            raise XRayStudioError("no ControlNet checkpoint to export")
        model = self.out / "model"
        tmp = model.with_name("model.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(final / "controlnet", tmp / "controlnet")
        self.spec.write(tmp)
        ckpt.commit_folder(tmp, model)
        return model

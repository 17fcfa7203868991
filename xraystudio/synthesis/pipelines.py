"""The built-in pixel-space ControlNet pipeline.

diffusers ships ControlNet pipelines only for latent models with text encoders. The built-in
model denoises the radiograph itself (one grey channel, no VAE, no text), which is what makes a
few-second generation on a laptop CPU possible. With ``patch`` p > 1 the image is denoised
space-to-depth (p x p pixel blocks as p² channels), so the network runs at 1/p of the size:
every pixel is still generated, at a quarter of the cost for p = 2. It is a regular ``DiffusionPipeline``: a
``UNet2DConditionModel`` base (frozen during ControlNet training), a ``ControlNetModel`` and any
diffusers scheduler, with the same ``callback_on_step_end`` / ``_interrupt`` protocol and control
start/end semantics as ``StableDiffusionControlNetPipeline``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from diffusers import ControlNetModel, DiffusionPipeline, UNet2DConditionModel
from diffusers.utils.torch_utils import randn_tensor


def pack(x: torch.Tensor, patch: int) -> torch.Tensor:
    """(B, C, H, W) -> (B, C·p², H/p, W/p): the space-to-depth view the network works on."""
    return x if patch == 1 else torch.nn.functional.pixel_unshuffle(x, patch)


def unpack(x: torch.Tensor, patch: int) -> torch.Tensor:
    return x if patch == 1 else torch.nn.functional.pixel_shuffle(x, patch)


def null_context(unet: UNet2DConditionModel, batch: int, device, dtype) -> torch.Tensor:
    """The cross-attention input of a text-free model: zeros (the blocks carry no attention)."""
    return torch.zeros(batch, 1, unet.config.cross_attention_dim, device=device, dtype=dtype)


class XRayControlNetPipeline(DiffusionPipeline):
    """Mask-conditioned generation of grey radiographs in pixel space, values in [-1, 1]."""

    model_cpu_offload_seq = "controlnet->unet"

    def __init__(
        self, unet: UNet2DConditionModel, controlnet: ControlNetModel, scheduler, patch: int = 1
    ) -> None:
        super().__init__()
        self.register_modules(unet=unet, controlnet=controlnet, scheduler=scheduler)
        self.patch = patch
        self._interrupt = False

    @property
    def interrupt(self) -> bool:
        return self._interrupt

    @torch.no_grad()
    def __call__(
        self,
        condition: torch.Tensor,
        num_inference_steps: int = 20,
        generator: torch.Generator | list[torch.Generator] | None = None,
        controlnet_conditioning_scale: float = 1.0,
        control_guidance_start: float = 0.0,
        control_guidance_end: float = 1.0,
        callback_on_step_end: Callable | None = None,
        image: torch.Tensor | None = None,
        strength: float = 1.0,
    ) -> torch.Tensor | None:
        """Denoise from noise under ``condition`` (B, C, S, S); returns (B, 1, S, S) or None.

        With ``image`` (B, 1, S, S in [-1, 1]) and ``strength`` < 1 the image is noised to that
        fraction of the schedule and only the remaining steps run (img2img, as diffusers'
        ControlNet img2img pipeline does): the model keeps what it can of a given picture.
        None means the run was interrupted: a half-denoised image is never returned.
        """
        if not 0 < strength <= 1:
            raise ValueError(f"strength must be in (0, 1], got {strength}")
        self._interrupt = False
        device = self._execution_device
        dtype = self.unet.dtype
        condition = pack(condition.to(device=device, dtype=dtype), self.patch)
        batch, _, height, width = condition.shape
        context = null_context(self.unet, batch, device, dtype)
        self.scheduler.set_timesteps(num_inference_steps, device=device)
        timesteps = self.scheduler.timesteps
        n = len(timesteps)
        noise = randn_tensor(
            (batch, self.unet.config.in_channels, height, width),
            generator=generator, device=device, dtype=dtype,
        )
        first = 0
        if image is None or strength >= 1:
            sample = noise * self.scheduler.init_noise_sigma
        else:
            first = min(n - 1, int(round(n * (1 - strength))))
            if hasattr(self.scheduler, "set_begin_index"):
                self.scheduler.set_begin_index(first)
            start = pack(image.to(device=device, dtype=dtype), self.patch)
            sample = self.scheduler.add_noise(start, noise, timesteps[first:first + 1])
        for i, t in enumerate(timesteps):
            if i < first:
                continue
            if self._interrupt:
                return None
            model_in = self.scheduler.scale_model_input(sample, t)
            active = control_guidance_start <= i / n and (i + 1) / n <= control_guidance_end + 1e-9
            down, mid = None, None
            if active and controlnet_conditioning_scale > 0:
                down, mid = self.controlnet(
                    model_in, t, encoder_hidden_states=context, controlnet_cond=condition,
                    conditioning_scale=controlnet_conditioning_scale, return_dict=False,
                )
            noise = self.unet(
                model_in, t, encoder_hidden_states=context,
                down_block_additional_residuals=down, mid_block_additional_residual=mid,
                return_dict=False,
            )[0]
            sample = self.scheduler.step(noise, t, sample, return_dict=False)[0]
            if callback_on_step_end is not None:
                callback_on_step_end(self, i, t, {"latents": sample})
        if self._interrupt:
            return None
        return unpack(sample, self.patch).clamp(-1, 1)

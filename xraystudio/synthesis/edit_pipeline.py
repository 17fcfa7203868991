"""The edit model: an inpainting UNet that redraws one window of a radiograph.

It is a diffusers ``UNet2DModel`` whose input is the noisy window with the condition of
``edit_window.condition`` stacked on as extra channels (known pixels, region, nodule, lungs,
scale), the way Stable Diffusion's inpainting UNet takes its masked image. A ControlNet over a
separately trained native-resolution base was the first choice of the issue; on a 2-core CPU it
doubles the training (a base first, then the ControlNet) for a network that sees the same
inputs, so the single inpainting network was trained instead (see the model card). Windows are
denoised space-to-depth (``patch``) as the built-in generator is. Several windows go through one
call as a batch, each with its own generator, so a batch gives the same pixels as one by one.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from xraystudio.synthesis.edit_window import EditSpec
from xraystudio.synthesis.model import UNetStage

if TYPE_CHECKING:
    import torch
    from diffusers import UNet2DModel

EDIT_FOLDER = "edit"


def edit_unet(spec: EditSpec, channels: tuple[int, ...] = (32, 64, 128, 128),
              layers_per_block: int = 1, norm_groups: int = 8) -> UNet2DModel:
    """The edit network, built from a config (attention only in the small middle block)."""
    from diffusers import UNet2DModel

    p2 = spec.patch * spec.patch
    n = len(channels)
    return UNet2DModel(
        sample_size=spec.window // spec.patch,
        in_channels=p2 * (1 + spec.condition_channels),
        out_channels=p2,
        block_out_channels=channels,
        layers_per_block=layers_per_block,
        down_block_types=("DownBlock2D",) * n,
        up_block_types=("UpBlock2D",) * n,
        norm_num_groups=norm_groups,
        add_attention=True,
    )


def edit_scheduler():
    """The training noise schedule (v-prediction, cosine), as the generator's."""
    from diffusers import DDPMScheduler

    return DDPMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2",
                         prediction_type="v_prediction")


#: The samplers the edit and full-resolution networks were checked with at their few steps.
SAMPLERS = ("dpm++", "ddim", "unipc")


def sampler(scheduler_config: dict, name: str, what: str = "the edit model"):
    """A sampling scheduler of ``name`` over the model's noise schedule."""
    from xraystudio.synthesis.schedulers import make_scheduler

    return make_scheduler(scheduler_config, name, SAMPLERS, what)


class EditPipeline(UNetStage):
    """Denoises windows under their conditions; values in the model's normalised range."""

    spec: EditSpec

    def __init__(self, unet: UNet2DModel, scheduler_config: dict, spec: EditSpec,
                 weights_hash: str = "") -> None:
        super().__init__(unet, scheduler_config, spec, weights_hash)
        self.interrupted = False

    def __call__(
        self,
        condition: torch.Tensor,
        generators: list[torch.Generator],
        steps: int | None = None,
        scheduler: str | None = None,
        on_step: Callable[[int, int], bool] | None = None,
    ) -> torch.Tensor | None:
        """(B, C, W, W) conditions -> (B, 1, W, W) windows in [-1, 1]; None when ``on_step``
        (called with step and total) returns True to stop: no half-denoised window is returned."""
        import torch

        from xraystudio.synthesis.pipelines import pack, unpack

        steps = steps or self.spec.steps
        sched = sampler(self.scheduler_config, scheduler or self.spec.scheduler)
        sched.set_timesteps(steps, device=self.device)
        p = self.spec.patch
        cond = pack(condition.to(self.device, torch.float32), p)
        batch, _, h, w = cond.shape
        sample = torch.cat([
            torch.randn((1, p * p, h, w), generator=g, device="cpu") for g in generators
        ]).to(self.device) * sched.init_noise_sigma
        with torch.inference_mode():
            for i, t in enumerate(sched.timesteps):
                model_in = torch.cat([sched.scale_model_input(sample, t), cond], dim=1)
                out = self.unet(model_in, t, return_dict=False)[0]
                sample = sched.step(out, t, sample, return_dict=False)[0]
                if on_step is not None and on_step(i + 1, steps):
                    return None
        return unpack(sample, p).clamp(-1, 1)


def save_edit_model(folder: str | os.PathLike, spec: EditSpec, unet, scheduler) -> Path:
    """Write ``folder`` (usually ``<model>/edit``): unet/ (safetensors), scheduler/, edit.json."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    unet.save_pretrained(folder / "unet", safe_serialization=True)
    scheduler.save_pretrained(folder / "scheduler")
    spec.write(folder)
    return folder


def load_edit_model(folder: str | os.PathLike, device: str = "cpu") -> EditPipeline:
    """The edit model of ``folder`` (a model folder with ``edit/``, or the ``edit/`` folder)."""
    from xraystudio.synthesis.model import load_unet_stage

    folder = Path(folder)
    if (folder / EDIT_FOLDER).is_dir():
        folder = folder / EDIT_FOLDER
    spec = EditSpec.read(folder)
    expected = spec.patch * spec.patch * (1 + spec.condition_channels)
    unet, config, digest = load_unet_stage(folder, "edit model", expected, device)
    return EditPipeline(unet, config, spec, digest)

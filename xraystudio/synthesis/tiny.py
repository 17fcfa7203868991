"""Tiny random models built from configs, for tests and demos: no download, seconds on a CPU."""

from __future__ import annotations

import os
from pathlib import Path

from xraystudio.synthesis.spec import Defaults, ModelSpec


def make_tiny_pixel_model(folder: str | os.PathLike, resolution: int = 32,
                          guide_factor: int | None = 8, patch: int = 2, seed: int = 0,
                          prior: bool = False) -> Path:
    """A random pixel-space model of the built-in architecture, a few hundred kB.

    With ``prior`` it has a (random) layout prior too, as the built-in model does.
    """
    import torch
    from diffusers import DDPMScheduler

    from xraystudio.synthesis.architectures import controlnet_for, pixel_unet
    from xraystudio.synthesis.model import save_pixel_model

    torch.manual_seed(seed)
    spec = ModelSpec(name="tiny-pixel", resolution=resolution, guide_factor=guide_factor, patch=patch,
                     defaults=Defaults(steps=4, scheduler="ddim", mode="guided" if guide_factor else "layout"))
    unet = pixel_unet(resolution, channels=(8, 16), layers_per_block=1, norm_groups=4, patch=patch)
    controlnet = controlnet_for(unet, spec.condition_channels, embedding=(8,), patch=patch)
    # ControlNet outputs start at zero; randomise them so tests can see the condition act.
    with torch.no_grad():
        for block in list(controlnet.controlnet_down_blocks) + [controlnet.controlnet_mid_block]:
            block.weight.normal_(0, 0.5)
        controlnet.controlnet_cond_embedding.conv_out.weight.normal_(0, 0.5)
    layout_prior = None
    if prior:
        from xraystudio.synthesis.prior import LayoutPrior

        layout_prior = LayoutPrior(channels=(8, 8), norm_groups=4)
    return save_pixel_model(folder, spec, unet, controlnet,
                            DDPMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2"),
                            layout_prior)


def make_tiny_stable_diffusion(folder: str | os.PathLike, resolution: int = 32, seed: int = 0) -> Path:
    """A random Stable Diffusion + ControlNet folder with the paper's kind of layout.

    The same components diffusers' own ControlNet tests build, saved as safetensors, with an
    xraystudio.json that colour-codes the masks (3-channel ControlNet) and carries a prompt.
    """
    import torch
    from diffusers import (
        AutoencoderKL,
        ControlNetModel,
        DDIMScheduler,
        StableDiffusionControlNetPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    folder = Path(folder)
    torch.manual_seed(seed)
    blocks = dict(block_out_channels=(4, 8), layers_per_block=2, norm_num_groups=1,
                  cross_attention_dim=32, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"))
    unet = UNet2DConditionModel(sample_size=resolution // 2, in_channels=4, out_channels=4,
                                up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), **blocks)
    controlnet = ControlNetModel(in_channels=4, conditioning_embedding_out_channels=(16, 32),
                                 **blocks)
    with torch.no_grad():
        for block in list(controlnet.controlnet_down_blocks) + [controlnet.controlnet_mid_block]:
            block.weight.normal_(0, 0.5)
    vae = AutoencoderKL(block_out_channels=(4, 8), in_channels=3, out_channels=3,
                        down_block_types=("DownEncoderBlock2D",) * 2,
                        up_block_types=("UpDecoderBlock2D",) * 2, latent_channels=4,
                        norm_num_groups=2)
    text = CLIPTextModel(CLIPTextConfig(bos_token_id=0, eos_token_id=2, hidden_size=32,
                                        intermediate_size=37, layer_norm_eps=1e-5,
                                        num_attention_heads=4, num_hidden_layers=2,
                                        pad_token_id=1, vocab_size=1000))
    letters = [chr(c) for c in range(ord("a"), ord("z") + 1)]
    vocab = {t: i for i, t in enumerate(["<|startoftext|>", "<|endoftext|>"] + letters
                                        + [c + "</w>" for c in letters])}
    tokenizer = CLIPTokenizer(vocab=vocab, merges=[], model_max_length=16)
    scheduler = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                              clip_sample=False, set_alpha_to_one=False)
    pipe = StableDiffusionControlNetPipeline(
        vae=vae, text_encoder=text, tokenizer=tokenizer, unet=unet, controlnet=controlnet,
        scheduler=scheduler, safety_checker=None, feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.save_pretrained(folder / "sd", safe_serialization=True)
    ModelSpec(name="tiny-sd", kind="stable-diffusion", resolution=resolution, encoding="rgb",
              base="sd", prompt="a chest x ray", negative_prompt="blurry",
              defaults=Defaults(steps=3, scheduler="ddim", guidance_scale=2.0)).write(folder)
    return folder


def make_tiny_edit_model(folder: str | os.PathLike, window: int = 32, seed: int = 0) -> Path:
    """A random edit model (``edit/`` of a model folder) of the shipped architecture, ~100 kB."""
    import torch

    from xraystudio.synthesis.edit_pipeline import EDIT_FOLDER, edit_scheduler, edit_unet, save_edit_model
    from xraystudio.synthesis.edit_window import EditSpec

    torch.manual_seed(seed)
    spec = EditSpec(window=window, patch=2, steps=3, scheduler="ddim")
    unet = edit_unet(spec, channels=(8, 16), norm_groups=4)
    return save_edit_model(Path(folder) / EDIT_FOLDER, spec, unet, edit_scheduler())


def make_tiny_fullres(folder: str | os.PathLike, seed: int = 0, steps: int = 2) -> Path:
    """A random full-resolution stage (``fullres/`` of a model folder) of the shipped
    architecture, ~100 kB."""
    import torch

    from xraystudio.synthesis.fullres import (
        FULLRES_FOLDER,
        FullresSpec,
        fullres_scheduler,
        fullres_unet,
        save_fullres_model,
    )

    torch.manual_seed(seed)
    spec = FullresSpec(steps=steps)
    unet = fullres_unet(spec, channels=(8, 16), norm_groups=4)
    return save_fullres_model(Path(folder) / FULLRES_FOLDER, spec, unet, fullres_scheduler())

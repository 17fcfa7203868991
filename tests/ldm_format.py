"""Write diffusers models in the original single-file (LDM / ControlNet-v1.1) key layout.

Community Stable Diffusion and ControlNet weights are mostly shared as one ``.safetensors`` file
in the original repositories' key names; diffusers converts them on load. To test that loading
path without downloading a multi-GB checkpoint, the tests turn tiny diffusers models into that
layout. The mapping is the inverse of diffusers' own converter (``single_file_utils``), and
``test_synthesis`` checks the round trip reproduces every weight exactly.
"""

from __future__ import annotations

import re

import torch
from diffusers.loaders.single_file_utils import DIFFUSERS_TO_LDM_MAPPING

_RESNET = (("norm1", "in_layers.0"), ("conv1", "in_layers.2"), ("norm2", "out_layers.0"),
           ("conv2", "out_layers.3"), ("time_emb_proj", "emb_layers.1"),
           ("conv_shortcut", "skip_connection"))
_VAE_ATTN = (("group_norm", "norm"), ("to_q", "q"), ("to_k", "k"), ("to_v", "v"),
             ("to_out.0", "proj_out"))


def _resnet(rest: str) -> str:
    for new, old in _RESNET:
        if rest.startswith(new + "."):
            return old + rest[len(new):]
    return rest


def _unet_blocks(key: str, layers: int, has_attention: dict[int, bool]) -> str | None:
    """The LDM name of a UNet/ControlNet encoder, mid or decoder key (None: not a block key)."""
    if m := re.match(r"down_blocks\.(\d+)\.resnets\.(\d+)\.(.+)", key):
        b, j, rest = int(m[1]), int(m[2]), m[3]
        return f"input_blocks.{1 + b * (layers + 1) + j}.0.{_resnet(rest)}"
    if m := re.match(r"down_blocks\.(\d+)\.attentions\.(\d+)\.(.+)", key):
        b, j, rest = int(m[1]), int(m[2]), m[3]
        return f"input_blocks.{1 + b * (layers + 1) + j}.1.{rest}"
    if m := re.match(r"down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.+)", key):
        return f"input_blocks.{(int(m[1]) + 1) * (layers + 1)}.0.op.{m[2]}"
    if m := re.match(r"mid_block\.resnets\.(\d+)\.(.+)", key):
        return f"middle_block.{2 * int(m[1])}.{_resnet(m[2])}"
    if m := re.match(r"mid_block\.attentions\.0\.(.+)", key):
        return f"middle_block.1.{m[1]}"
    if m := re.match(r"up_blocks\.(\d+)\.resnets\.(\d+)\.(.+)", key):
        b, j, rest = int(m[1]), int(m[2]), m[3]
        return f"output_blocks.{b * (layers + 1) + j}.0.{_resnet(rest)}"
    if m := re.match(r"up_blocks\.(\d+)\.attentions\.(\d+)\.(.+)", key):
        b, j, rest = int(m[1]), int(m[2]), m[3]
        return f"output_blocks.{b * (layers + 1) + j}.1.{rest}"
    if m := re.match(r"up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.+)", key):
        b = int(m[1])
        slot = 2 if has_attention.get(b) else 1
        return f"output_blocks.{b * (layers + 1) + layers}.{slot}.conv.{m[2]}"
    return None


def unet_to_ldm(unet) -> dict[str, torch.Tensor]:
    """A diffusers SD UNet as ``model.diffusion_model.*`` keys."""
    layers = unet.config.layers_per_block
    up_attention = {i: "CrossAttn" in t for i, t in enumerate(unet.config.up_block_types)}
    table = DIFFUSERS_TO_LDM_MAPPING["unet"]["layers"]
    out = {}
    for key, value in unet.state_dict().items():
        name = table.get(key) or _unet_blocks(key, layers, up_attention)
        if name is None:
            raise KeyError(f"no LDM name for UNet key {key}")
        out["model.diffusion_model." + name] = value
    return out


def controlnet_to_ldm(controlnet) -> dict[str, torch.Tensor]:
    """A diffusers ControlNet as the ControlNet-v1.1 file layout (``control_model.*``)."""
    layers = controlnet.config.layers_per_block
    table = DIFFUSERS_TO_LDM_MAPPING["controlnet"]["layers"]
    out = {}
    for key, value in controlnet.state_dict().items():
        if key in table:
            name = table[key]
        elif m := re.match(r"controlnet_down_blocks\.(\d+)\.(.+)", key):
            name = f"zero_convs.{m[1]}.0.{m[2]}"
        elif m := re.match(r"controlnet_mid_block\.(.+)", key):
            name = f"middle_block_out.0.{m[1]}"
        elif m := re.match(r"controlnet_cond_embedding\.blocks\.(\d+)\.(.+)", key):
            name = f"input_hint_block.{2 * (int(m[1]) + 1)}.{m[2]}"
        else:
            name = _unet_blocks(key, layers, {})
        if name is None:
            raise KeyError(f"no LDM name for ControlNet key {key}")
        out["control_model." + name] = value
    return out


def vae_to_ldm(vae) -> dict[str, torch.Tensor]:
    """A diffusers AutoencoderKL as ``first_stage_model.*`` keys (attention as 1x1 convs)."""
    table = DIFFUSERS_TO_LDM_MAPPING["vae"]
    n_up = len(vae.config.up_block_types)
    out = {}
    for key, value in vae.state_dict().items():
        name = table.get(key)
        if name is None and (m := re.match(r"(encoder|decoder)\.mid_block\.resnets\.(\d+)\.(.+)", key)):
            name = f"{m[1]}.mid.block_{int(m[2]) + 1}.{m[3].replace('conv_shortcut', 'nin_shortcut')}"
        elif name is None and (m := re.match(r"(encoder|decoder)\.mid_block\.attentions\.0\.(.+)", key)):
            rest = m[2]
            for new, old in _VAE_ATTN:
                rest = rest.replace(new + ".", old + ".")
            name = f"{m[1]}.mid.attn_1.{rest}"
            if value.ndim == 2:
                value = value[:, :, None, None]
        elif name is None and (m := re.match(r"encoder\.down_blocks\.(\d+)\.resnets\.(.+)", key)):
            name = f"encoder.down.{m[1]}.block.{m[2].replace('conv_shortcut', 'nin_shortcut')}"
        elif name is None and (m := re.match(r"encoder\.down_blocks\.(\d+)\.downsamplers\.0\.(.+)", key)):
            name = f"encoder.down.{m[1]}.downsample.{m[2]}"
        elif name is None and (m := re.match(r"decoder\.up_blocks\.(\d+)\.resnets\.(.+)", key)):
            name = f"decoder.up.{n_up - 1 - int(m[1])}.block.{m[2].replace('conv_shortcut', 'nin_shortcut')}"
        elif name is None and (m := re.match(r"decoder\.up_blocks\.(\d+)\.upsamplers\.0\.(.+)", key)):
            name = f"decoder.up.{n_up - 1 - int(m[1])}.upsample.{m[2]}"
        if name is None:
            raise KeyError(f"no LDM name for VAE key {key}")
        out["first_stage_model." + name] = value
    return out


def text_encoder_to_ldm(text_encoder) -> dict[str, torch.Tensor]:
    """A CLIP text encoder (SD 1.x) as ``cond_stage_model.transformer.text_model.*`` keys.

    transformers >= 5.6 flattened ``CLIPTextModel`` (no ``text_model.`` level); the files keep it.
    """
    state = text_encoder.state_dict()
    prefix = "cond_stage_model.transformer." + ("" if hasattr(text_encoder, "text_model") else "text_model.")
    return {prefix + k: v for k, v in state.items()}


def stable_diffusion_to_ldm(pipe) -> dict[str, torch.Tensor]:
    """One state dict with UNet, VAE and text encoder: an SD 1.x single-file checkpoint."""
    state = {**unet_to_ldm(pipe.unet), **vae_to_ldm(pipe.vae), **text_encoder_to_ldm(pipe.text_encoder)}
    return {k: v.detach().contiguous().clone() for k, v in state.items()}

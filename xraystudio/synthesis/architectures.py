"""Network shapes of pixel-space models, built from configs as diffusers does.

The built-in model and the tiny models of the tests come from the same function, so what the
tests exercise is the architecture that ships. No attention blocks: on a CPU, attention at
pixel resolution costs 2-4x and helps little for radiograph texture (PITFALLS.md).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from diffusers import ControlNetModel, UNet2DConditionModel


def pixel_unet(
    resolution: int,
    channels: tuple[int, ...] = (32, 64, 128, 256),
    layers_per_block: int = 2,
    norm_groups: int = 8,
    patch: int = 1,
) -> UNet2DConditionModel:
    """A text-free grey-image UNet; the cross-attention dim is a placeholder no block reads.

    With ``patch`` p the UNet sees p x p pixel blocks as p² channels (see pipelines.pack).
    """
    from diffusers import UNet2DConditionModel

    n = len(channels)
    return UNet2DConditionModel(
        sample_size=resolution // patch,
        in_channels=patch * patch,
        out_channels=patch * patch,
        block_out_channels=channels,
        layers_per_block=layers_per_block,
        down_block_types=("DownBlock2D",) * n,
        up_block_types=("UpBlock2D",) * n,
        mid_block_type="UNetMidBlock2D",
        cross_attention_dim=8,
        attention_head_dim=8,
        norm_num_groups=norm_groups,
    )


def controlnet_for(
    unet: UNet2DConditionModel, condition_channels: int, embedding: tuple[int, ...] = (32,),
    patch: int = 1,
) -> ControlNetModel:
    """A ControlNet copied from the base's encoder, with zero-initialised connections.

    The condition is at the sample's own resolution (pixel space), so the conditioning
    embedding must not downsample: one stage (``len(embedding) == 1``) keeps full resolution.
    The condition is packed like the sample, so it has ``condition_channels`` x p² channels.
    """
    from diffusers import ControlNetModel

    return ControlNetModel.from_unet(
        unet,
        conditioning_channels=condition_channels * patch * patch,
        conditioning_embedding_out_channels=embedding,
    )

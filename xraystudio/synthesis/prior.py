"""The layout prior: the typical coarse look of a radiograph with a given anatomy.

In layout mode the masks say nothing about the body around the lungs, the exposure or the film
edges, and a diffusion sample draws all of these at random: two samples of the same masks can
differ more from each other than from any real film, which is what PSNR punishes. The prior
predicts that coarse picture as its expectation given the anatomy (a small CNN regressed with
L2 at the structure guide's resolution), and layout mode hands it to the ControlNet as the
guide, so the ControlNet draws texture, fine anatomy and nodules over a typical body. The
network never sees the nodule layer; painted nodules are added to its picture as faint discs of a
contrast measured on the training images (``condition.nodule_smudge``), as in guided mode.

A diffusers ``ModelMixin``: built from its config, saved and loaded as safetensors.
"""

from __future__ import annotations

import numpy as np
import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn
from torch.nn import functional as F

from xraystudio.masks import ANATOMY
from xraystudio.synthesis.condition import Letterbox, nodule_smudge, resize
from xraystudio.synthesis.spec import ModelSpec

#: The guide flag of a prior's guide. A real guide (flag 1) holds this patient's exposure, which
#: the ControlNet should keep; a prior's guide is only typical, and its target image differs from
#: it. A flag of its own lets one ControlNet learn both without blurring the two.
PRIOR_FLAG = 0.5


class _Residual(nn.Module):
    def __init__(self, channels: int, groups: int) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, channels)
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.norm2 = nn.GroupNorm(groups, channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.silu(self.norm2(self.conv1(F.silu(self.norm1(x))))))


class LayoutPrior(ModelMixin, ConfigMixin):
    """Anatomy masks at twice the guide's size in, the guide-sized picture in [0, 1] out.

    A small U-Net; two coordinate channels let it place what depends on where in the film a
    pixel is (the surround, the labels), which convolutions alone cannot know.
    """

    @register_to_config
    def __init__(self, layers: tuple[str, ...] = ANATOMY, channels: tuple[int, ...] = (16, 32, 64, 64),
                 norm_groups: int = 8) -> None:
        super().__init__()
        if len(channels) < 2:
            raise ValueError("a layout prior needs at least two levels")
        self.inp = nn.Conv2d(len(layers) + 2, channels[0], 3, padding=1)
        self.first = _Residual(channels[0], norm_groups)
        self.down = nn.ModuleList(nn.Conv2d(a, b, 3, stride=2, padding=1)
                                  for a, b in zip(channels[:-1], channels[1:]))
        self.down_blocks = nn.ModuleList(_Residual(c, norm_groups) for c in channels[1:])
        # Back up to level 1 (the guide's size), joining the skip of each level.
        self.up = nn.ModuleList(nn.Conv2d(channels[i + 1] + channels[i], channels[i], 3, padding=1)
                                for i in range(len(channels) - 2, 0, -1))
        self.up_blocks = nn.ModuleList(_Residual(channels[i], norm_groups)
                                       for i in range(len(channels) - 2, 0, -1))
        self.out = nn.Conv2d(channels[1], 1, 3, padding=1)

    def forward(self, layers: torch.Tensor) -> torch.Tensor:
        """(B, L, 2g, 2g) soft masks -> (B, 1, g, g) expected coarse image."""
        b, _, h, w = layers.shape
        yy = torch.linspace(-1, 1, h, device=layers.device, dtype=layers.dtype)
        xx = torch.linspace(-1, 1, w, device=layers.device, dtype=layers.dtype)
        grid = torch.stack(torch.meshgrid(yy, xx, indexing="ij")).expand(b, 2, h, w)
        x = self.first(self.inp(torch.cat([layers, grid], dim=1)))
        skips = []
        for down, block in zip(self.down, self.down_blocks):
            skips.append(x)
            x = block(down(x))
        for up, block in zip(self.up, self.up_blocks):
            x = F.interpolate(x, scale_factor=2, mode="nearest")
            x = block(up(torch.cat([x, skips.pop()], dim=1)))
        return self.out(F.silu(x))


def prior_input(layers: np.ndarray, guide_size: int) -> np.ndarray:
    """Working-size soft anatomy masks (L, S, S) -> the prior's input (L, 2g, 2g)."""
    return np.stack([resize(ch, (2 * guide_size, 2 * guide_size)) for ch in layers])


@torch.no_grad()
def predict_guide(prior: LayoutPrior, layers: np.ndarray, factor: int) -> np.ndarray:
    """The structure guide layout mode uses: the prior's picture scaled up to the working size.

    ``layers`` are the working-size masks in the prior's layer order; the result is what
    ``guide_from_display`` makes of a real radiograph, so the ControlNet reads it the same way.
    """
    size = layers.shape[-1]
    x = torch.from_numpy(prior_input(layers, size // factor))[None]
    x = x.to(device=prior.device, dtype=prior.dtype)
    small = prior(x)[0, 0].float().clamp(0, 1).cpu().numpy()
    return resize(small, (size, size))


def with_prior_guide(cond: np.ndarray, spec: ModelSpec, prior: LayoutPrior,
                     box: Letterbox) -> np.ndarray:
    """A layout-mode ``cond`` with the prior's picture as its guide, flagged as a prior's.

    Painted nodules are added to the picture as ``nodule_smudge`` discs, as in guided mode.
    Outside the letterboxed source the guide stays black, as a real radiograph's guide does.
    """
    layers = cond[[spec.layers.index(name) for name in prior.config.layers]]
    picture = predict_guide(prior, layers, spec.guide_factor)
    contrast = spec.guide_nodule_contrast if spec.layout_nodule_contrast is None else spec.layout_nodule_contrast
    if contrast and "nodule" in spec.layers:
        picture = picture + nodule_smudge(spec, cond[spec.layers.index("nodule")], contrast)
    guide = np.zeros_like(cond[0])
    (oy, ox), (ih, iw) = box.offset, box.inner
    guide[oy:oy + ih, ox:ox + iw] = box.crop(picture)
    out = cond.copy()
    out[len(spec.layers)] = guide
    out[len(spec.layers) + 1] = PRIOR_FLAG
    return out


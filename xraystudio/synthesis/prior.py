"""The layout prior: the typical coarse look of a radiograph with a given anatomy.

In layout mode the masks say nothing about the body around the lungs, the exposure or the film
edges, and a diffusion sample draws all of these at random: two samples of the same masks can
differ more from each other than from any real film, which is what PSNR punishes. The prior
predicts that coarse picture as its expectation given the anatomy (a small CNN regressed with
L2 at the structure guide's resolution), and layout mode hands it to the ControlNet as the
guide, so the ControlNet draws texture, fine anatomy and nodules over a typical body. The
network never sees the nodule layer; painted nodules are added to its picture as faint discs of a
contrast measured on the training images (``condition.nodule_smudge``), as in guided mode.

The expectation is the same smooth body for every seed, and the ControlNet drawing over it makes
films a classifier tells from real ones (a real film's guide is not given away: guided mode). So
the prior also keeps how real films spread around its picture: the principal components of
``real guide - prior's picture`` over the training films (``training.prior.fit_variation``).
Layout mode draws a residual from that Gaussian with the request's seed (``variation``), a new
combination of components rather than any one training film, and hands the sum to the ControlNet
flagged as a real guide (docs/fullres.md, rule 13).

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
                 norm_groups: int = 8, variation_size: int = 0, variation_components: int = 0) -> None:
        super().__init__()
        if len(channels) < 2:
            raise ValueError("a layout prior needs at least two levels")
        if (variation_size > 0) != (variation_components > 0):
            raise ValueError("a prior's variation needs both its size and its component count")
        if variation_size:
            # Saved with the weights; a prior without them (v0.7 and before) has no buffers.
            self.register_buffer("variation_mean", torch.zeros(variation_size, variation_size))
            self.register_buffer("variation_basis", torch.zeros(
                variation_components, variation_size, variation_size))
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

    @property
    def has_variation(self) -> bool:
        return self.config.variation_components > 0

    def variation(self, seed: int, size: int) -> np.ndarray:
        """One draw of how a real film departs from the prior's picture, at ``size``²: the mean
        residual plus the components with standard normal weights from ``seed``."""
        if not self.has_variation:
            raise ValueError("this layout prior has no variation (fit it with fit-variation)")
        if size != self.config.variation_size:
            raise ValueError(f"the prior's variation is {self.config.variation_size} px; "
                             f"the guide is {size} px")
        z = np.random.default_rng(seed).standard_normal(self.config.variation_components)
        basis = self.variation_basis.float().cpu().numpy()
        return (self.variation_mean.float().cpu().numpy() + np.tensordot(z, basis, axes=1)).astype(np.float32)


def prior_input(layers: np.ndarray, guide_size: int) -> np.ndarray:
    """Working-size soft anatomy masks (L, S, S) -> the prior's input (L, 2g, 2g)."""
    return np.stack([resize(ch, (2 * guide_size, 2 * guide_size)) for ch in layers])


@torch.no_grad()
def predict_small(prior: LayoutPrior, layers: np.ndarray, factor: int) -> np.ndarray:
    """The prior's picture at the guide's size, unclamped."""
    x = torch.from_numpy(prior_input(layers, layers.shape[-1] // factor))[None]
    x = x.to(device=prior.device, dtype=prior.dtype)
    return prior(x)[0, 0].float().cpu().numpy()


def predict_guide(prior: LayoutPrior, layers: np.ndarray, factor: int,
                  variation: float = 0.0, seed: int = 0) -> np.ndarray:
    """The structure guide layout mode uses: the prior's picture (plus ``variation`` times one
    draw of its residual, by ``seed``) scaled up to the working size.

    ``layers`` are the working-size masks in the prior's layer order; the result is what
    ``guide_from_display`` makes of a real radiograph, so the ControlNet reads it the same way.
    """
    size = layers.shape[-1]
    small = predict_small(prior, layers, factor)
    if variation:
        small = small + np.float32(variation) * prior.variation(seed, small.shape[-1])
    return resize(np.clip(small, 0, 1), (size, size))


def with_prior_guide(cond: np.ndarray, spec: ModelSpec, prior: LayoutPrior,
                     box: Letterbox, variation: float = 0.0, seed: int = 0) -> np.ndarray:
    """A layout-mode ``cond`` with the prior's picture as its guide.

    Without ``variation`` the guide is the expectation, flagged as a prior's. With it, the guide
    is one patient drawn around it (``seed``), flagged as a real guide is: the ControlNet then
    draws over it as it draws over a real film in guided mode. Painted nodules are added as
    ``nodule_smudge`` discs, each kind of guide with its own contrast (``layout_`` and
    ``varied_nodule_contrast``). Outside the letterboxed source the guide stays black, as a real
    radiograph's guide does.
    """
    layers = cond[[spec.layers.index(name) for name in prior.config.layers]]
    picture = predict_guide(prior, layers, spec.guide_factor, variation, seed)
    own = spec.varied_nodule_contrast if variation else spec.layout_nodule_contrast
    contrast = spec.guide_nodule_contrast if own is None else own
    if contrast and "nodule" in spec.layers:
        picture = picture + nodule_smudge(spec, cond[spec.layers.index("nodule")], contrast)
    guide = np.zeros_like(cond[0])
    (oy, ox), (ih, iw) = box.offset, box.inner
    guide[oy:oy + ih, ox:ox + iw] = box.crop(picture)
    out = cond.copy()
    out[len(spec.layers)] = guide
    out[len(spec.layers) + 1] = 1.0 if variation else PRIOR_FLAG
    return out


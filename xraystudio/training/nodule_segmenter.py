"""A small nodule segmenter trained on patches, for comparing training sets at equal compute.

The network is the anatomy segmenter's U-Net with one output; the augmentation and the
learning-rate schedule are the anatomy segmenter's too (:mod:`xraystudio.training.segmenter`),
the loss a cross-entropy with nodule pixels weighted up. Training draws square patches from
images at the working size (256 px: a 5 mm JSRT nodule is 3.6 px, the median 15 mm one 11 px;
512 px learnt too slowly for this CPU's budget on the tuning cases) because a 64 px patch costs
a sixteenth of the whole image and nodules are local. Half of every batch's patches hold a
nodule; with an ``extra`` pool (blob or synthetic images) a fixed share of every batch comes
from it. Every setting that costs compute (steps, batch, patch, widths, lr) is the same whatever
the pools hold, so two training sets are compared on their data alone.

Inference runs on the whole image at the working size; images are standardised by their own
mean and standard deviation there, in training and at inference alike.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch

    from xraystudio.segmentation.model import UNet


@dataclasses.dataclass
class Pool:
    """Images of one kind at the working size, with their nodule masks and nodule centres.

    ``images`` (N, S, S) uint8; ``masks`` (N, S, S) bool; ``centres[i]`` (k, 2) rows of (y, x)
    at the working size; ``mean``/``std`` per image of ``images / 255``; ``spacing_mm`` per image
    at the working size; ``ids`` say where each image came from.
    """

    name: str
    ids: list[str]
    images: np.ndarray
    masks: np.ndarray
    centres: list[np.ndarray]
    mean: np.ndarray
    std: np.ndarray
    spacing_mm: np.ndarray

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def nodule_count(self) -> int:
        return int(sum(len(c) for c in self.centres))


@dataclasses.dataclass(frozen=True)
class NoduleTraining:
    """Settings of one training run; the same for every arm of a comparison."""

    size: int = 256
    patch: int = 64
    batch: int = 32
    #: 3000 steps with three quarters of each mixed-arm batch from the added images: the best
    #: tuning-case CPM of every setting tried (1500 / 0.5, 1500 / 0.75, 3000 / 0.75; see the
    #: README's *Downstream benchmark*).
    steps: int = 3000
    lr: float = 2e-3
    weight_decay: float = 1e-4
    warmup: int = 50
    channels: tuple[int, ...] = (8, 16, 32, 64, 128)
    positive_fraction: float = 0.5
    extra_fraction: float = 0.75
    #: Weight of nodule pixels in the cross-entropy. Nodules are about 1 % of a batch's pixels;
    #: unweighted, a short run settles on "no nodule anywhere" (or, with a soft Dice term, on a
    #: flat grey map). Chosen on the tuning cases of the training split.
    pos_weight: float = 10.0

    @property
    def margin(self) -> int:
        """Context cut around a patch before the affine augmentation, so no border shows."""
        return self.patch // 4

    def check(self) -> None:
        from xraystudio.errors import XRayStudioError

        multiple = 2 ** (len(self.channels) - 1)
        if self.patch % multiple or self.size % multiple:
            raise XRayStudioError(f"size and patch must be multiples of {multiple} for this U-Net")
        if self.patch + 2 * self.margin > self.size:
            raise XRayStudioError(f"a {self.patch} px patch with context does not fit {self.size} px")
        if self.steps < 1 or self.batch < 1:
            raise XRayStudioError("steps and batch must be at least 1")
        if not 0.0 <= self.positive_fraction <= 1.0 or not 0.0 <= self.extra_fraction <= 1.0:
            raise XRayStudioError("the nodule and added-image fractions must lie in 0-1")

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "channels": list(self.channels)}


def sample_batch(
    cfg: NoduleTraining, real: Pool, extra: Pool | None, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Crops (B, C, C) with context, their masks, and each crop's image mean and std.

    The first ``round(batch * extra_fraction)`` samples come from ``extra`` when given. A
    positive sample centres on a random nodule of a random nodule image, shifted so the nodule
    may lie anywhere in the inner 70 % of the patch; a negative one is anywhere in the image.
    """
    crop = cfg.patch + 2 * cfg.margin
    n_extra = round(cfg.batch * cfg.extra_fraction) if extra is not None else 0
    x = np.empty((cfg.batch, crop, crop), np.uint8)
    y = np.empty((cfg.batch, crop, crop), bool)
    mean = np.empty(cfg.batch, np.float32)
    std = np.empty(cfg.batch, np.float32)
    for b in range(cfg.batch):
        pool = extra if b < n_extra else real
        with_nodules = [i for i, c in enumerate(pool.centres) if len(c)] if pool is not None else []
        if with_nodules and rng.random() < cfg.positive_fraction:
            i = with_nodules[int(rng.integers(len(with_nodules)))]
            cy, cx = pool.centres[i][int(rng.integers(len(pool.centres[i])))]
            cy, cx = cy + rng.uniform(-0.35, 0.35) * cfg.patch, cx + rng.uniform(-0.35, 0.35) * cfg.patch
        else:
            i = int(rng.integers(len(pool)))
            cy, cx = rng.uniform(0, cfg.size, 2)
        y0 = int(np.clip(round(cy) - crop // 2, 0, cfg.size - crop))
        x0 = int(np.clip(round(cx) - crop // 2, 0, cfg.size - crop))
        x[b] = pool.images[i, y0:y0 + crop, x0:x0 + crop]
        y[b] = pool.masks[i, y0:y0 + crop, x0:x0 + crop]
        mean[b], std[b] = pool.mean[i], pool.std[i]
    return x, y, mean, std


def _standardise(x: torch.Tensor, mean: np.ndarray, std: np.ndarray) -> torch.Tensor:
    import torch

    return (x - torch.from_numpy(mean)[:, None, None, None]) / torch.from_numpy(std)[:, None, None, None]


def train_nodule_segmenter(
    cfg: NoduleTraining, real: Pool, extra: Pool | None, seed: int,
    on_step: Callable[[int, float], None] | None = None,
) -> UNet:
    """Train from scratch with ``seed`` (weights, patches, augmentation) and return the model.

    ``on_step(step, loss)`` is called after each optimizer step (progress bars, timing).
    """
    import torch
    from torch.nn import functional as F

    from xraystudio.segmentation.model import UNet, UNetConfig
    from xraystudio.training.segmenter import augment, lr_at

    cfg.check()
    torch.manual_seed(seed)
    model = UNet(UNetConfig(in_channels=1, out_channels=1, channels=tuple(cfg.channels)))
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    rng = np.random.default_rng([seed, 0x6E6F64])
    gen = torch.Generator().manual_seed(seed)
    inner = slice(cfg.margin, cfg.margin + cfg.patch)
    pos_weight = torch.tensor(cfg.pos_weight)
    model.train()
    for step in range(cfg.steps):
        pixels, masks, mean, std = sample_batch(cfg, real, extra, rng)
        x = torch.from_numpy(pixels)[:, None].float() / 255
        y = torch.from_numpy(masks)[:, None].float()
        x, y = augment(x, y, gen)
        x = _standardise(x[..., inner, inner], mean, std)
        y = (y[..., inner, inner] > 0.5).float()
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, cfg)  # type: ignore[arg-type]  # reads only lr, warmup, steps
        loss = F.binary_cross_entropy_with_logits(model(x), y, pos_weight=pos_weight)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if on_step:
            on_step(step + 1, float(loss.item()))
    model.eval()
    return model


def predict(model: UNet, pool: Pool, batch: int = 4) -> np.ndarray:
    """Nodule probability (N, S, S) float32 of every image of ``pool``, whole images at once."""
    import torch

    out = np.empty(pool.images.shape, np.float32)
    model.eval()
    with torch.inference_mode():
        for start in range(0, len(pool), batch):
            part = slice(start, start + batch)
            x = torch.from_numpy(pool.images[part])[:, None].float() / 255
            x = _standardise(x, pool.mean[part], pool.std[part])
            out[part] = torch.sigmoid(model(x))[:, 0].numpy()
    return out

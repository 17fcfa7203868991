"""Training pairs for the full-resolution stage: crops of real films and their degraded copies.

A crop's low-resolution copy is its area average (what the first stage draws at its working
size), blurred and noised by random amounts that the network is told (conditioning
augmentation); the target is the crop minus the bicubic upsampling of that copy. Crops sit on
the low-resolution grid, so pixel blocks line up as they do at inference.
"""

from __future__ import annotations

import numpy as np

from xraystudio.io.datasets import JsrtDataset
from xraystudio.synthesis.fullres import FullresSpec, degrade


def load_films(dataset: JsrtDataset, ids: list[str]) -> list[np.ndarray]:
    """The films as uint8 (a training split in ~150 MB)."""
    return [np.round(dataset.load(case_id).image * 255).astype(np.uint8) for case_id in ids]


def levels(rng: np.random.Generator, spec: FullresSpec) -> tuple[float, float]:
    """Random (noise, blur): clean half the time each, so the network also learns the plain
    task, else uniform over the trained range."""
    noise = 0.0 if rng.random() < 0.5 else float(rng.uniform(0, spec.max_noise))
    blur = 0.0 if rng.random() < 0.4 else float(rng.uniform(0, spec.max_blur))
    return noise, blur


def fullres_batch(films: list[np.ndarray], rng: np.random.Generator, spec: FullresSpec,
                  batch: int, crop: int, redraws: list[list[np.ndarray]] | None = None,
                  redraw_fraction: float = 0.0):
    """(target residual, condition), torch (B, 1, crop, crop) and (B, 3, crop, crop).

    With ``redraws`` (per film, the first stage's pictures of it: ``fullres_redraws``) a share
    ``redraw_fraction`` of the crops take the same crop of a redraw as their low-resolution
    copy instead of the area average, with the same flip, gamma, blur and noise.
    """
    import torch

    from xraystudio.synthesis.fullres import condition, upsample

    s = spec.scale
    highs, lows, conds = [], [], []
    for _ in range(batch):
        index = int(rng.integers(len(films)))
        film = films[index]
        h, w = film.shape
        y0 = int(rng.integers(0, (h - crop) // s + 1)) * s
        x0 = int(rng.integers(0, (w - crop) // s + 1)) * s
        high = film[y0:y0 + crop, x0:x0 + crop].astype(np.float32) / 255.0
        flip = rng.random() < 0.5
        if flip:
            high = high[:, ::-1]
        gamma = np.float32(np.exp(rng.uniform(-0.15, 0.15)))
        high = np.clip(high, 0, 1) ** gamma
        high = high * 2.0 - 1.0
        if redraws is not None and redraws[index] and rng.random() < redraw_fraction:
            pictures = redraws[index]
            picture = pictures[int(rng.integers(len(pictures)))]
            low = picture[y0 // s:(y0 + crop) // s, x0 // s:(x0 + crop) // s].astype(np.float32)
            if flip:
                low = low[:, ::-1]
            low = (np.clip((low + 1.0) / 2.0, 0, 1) ** gamma) * 2.0 - 1.0
        else:
            low = high.reshape(crop // s, s, crop // s, s).mean(axis=(1, 3))
        noise, blur = levels(rng, spec)
        highs.append(high)
        lows.append(degrade(low, noise, blur, rng))
        conds.append((noise, blur))
    high_t = torch.from_numpy(np.ascontiguousarray(np.stack(highs)))[:, None]
    up = upsample(torch.from_numpy(np.stack(lows))[:, None], s)
    target = (high_t - up) / spec.residual_scale
    cond = torch.cat([condition(up[i:i + 1], n, b, spec) for i, (n, b) in enumerate(conds)])
    return target.float(), cond.float()

"""Training windows for the edit model, cut from full-resolution radiographs.

Two kinds, mixed in each batch:
- insertion: a window around a real nodule, the region around it hidden, its disc given as the
  nodule channel: the model learns to draw a real nodule, with the lung behind it, from the disc;
- fill: a nodule-free window with a random region hidden (discs, or a few discs run together,
  like a painted removal) and an empty nodule channel: the model learns to fill normal lung,
  which is what removal asks of it.
Windows are placed and resampled by ``edit_window`` exactly as at inference; the spacing is the
one inference would choose for the region, jittered coarser, with left-right flips and a gamma.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy import ndimage

from xraystudio.io.datasets import JsrtDataset
from xraystudio.masks import LUNGS
from xraystudio.synthesis.edit_window import (
    EditSpec,
    WindowBox,
    condition,
    feather,
    normalise,
    region_radii_mm,
    soft_disc,
    to_model,
    value_range,
)


@dataclasses.dataclass
class WindowSource:
    """One radiograph kept for window cutting (8-bit, to hold a dataset in little memory)."""

    image: np.ndarray  # uint8 (H, W)
    lungs: np.ndarray  # bool (H, W)
    spacing_mm: float
    nodule: tuple[float, float, float] | None  # (x, y, diameter mm)


def load_sources(dataset: JsrtDataset, ids: list[str]) -> list[WindowSource]:
    out = []
    for case_id in ids:
        case = dataset.load(case_id)
        n = case.masks.nodules[0] if case.masks.nodules else None
        out.append(WindowSource(
            np.round(case.image * 255).astype(np.uint8), case.masks.union(LUNGS),
            float(case.spacing_mm[0]), None if n is None else (n.x, n.y, n.diameter_mm)))
    return out


@dataclasses.dataclass
class WindowSample:
    target: np.ndarray  # (W, W) normalised window, clipped to [-1, 1]
    condition: np.ndarray  # (C, W, W)
    weight: np.ndarray  # (W, W) loss weight: 1 in the region and a ring around it, low outside


def edit_sample(
    src: WindowSource, rng: np.random.Generator, spec: EditSpec, insertion: bool,
    lung_dropout: float = 0.15,
) -> WindowSample:
    """One training window of ``src`` (``insertion`` needs a nodule case)."""
    h, w = src.image.shape
    if insertion:
        nx, ny, diameter = src.nodule
        r = diameter / 2
        cores = [(0.0, 0.0, r)]
    else:
        r = float(np.exp(rng.uniform(np.log(1.5), np.log(17.0))))
        cores = [(0.0, 0.0, r)]
        for _ in range(rng.integers(0, 3) if rng.random() < 0.3 else 0):
            angle = rng.uniform(0, 2 * np.pi)
            cores.append((np.cos(angle) * r, np.sin(angle) * r, r * rng.uniform(0.5, 1.0)))
        ny, nx = _fill_centre(src, rng, r)
    core_r, band = region_radii_mm(r)
    extent = max(abs(dx) + region_radii_mm(cr)[0] for dx, dy, cr in cores) + band
    spacing = spec.window_spacing(2 * extent) * rng.uniform(1.0, 1.3)
    jitter = rng.uniform(-0.12, 0.12, size=2) * spec.window * spacing / src.spacing_mm
    box = WindowBox.around(ny + jitter[0], nx + jitter[1], spacing, src.spacing_mm, spec, (h, w))
    s = box.spacing_mm  # mm per model pixel
    cy = (ny - box.y0 + 0.5) * spec.window / box.size - 0.5
    cx = (nx - box.x0 + 0.5) * spec.window / box.size - 0.5
    grid = (spec.window, spec.window)
    core = np.zeros(grid, bool)
    for dx, dy, cr in cores:
        core |= soft_disc(grid, cy + dy / s, cx + dx / s, region_radii_mm(cr)[0] / s) >= 0.5
    region = feather(core, band / s) > 0
    nodule = soft_disc(grid, cy, cx, r / s) if insertion else np.zeros(grid, np.float32)
    image = to_model(box.cut(src.image.astype(np.float32) / 255.0), spec)
    lungs = to_model(box.cut(src.lungs.astype(np.float32)), spec)
    if rng.random() < 0.5:
        image, lungs, region, nodule = (a[:, ::-1] for a in (image, lungs, region, nodule))
    image = np.clip(image, 0, 1) ** np.exp(rng.uniform(-0.2, 0.2))
    lo, hi = value_range(image, ~region)
    x = normalise(image, lo, hi)
    cond = condition(x, region, nodule, None if rng.random() < lung_dropout else lungs, s, spec)
    near = ndimage.binary_dilation(region, iterations=max(2, spec.window // 32))
    weight = np.where(near, 1.0, 0.1).astype(np.float32)
    return WindowSample(np.clip(x, -1, 1), cond, weight)


def _fill_centre(src: WindowSource, rng: np.random.Generator, r_mm: float) -> tuple[float, float]:
    """A place for a fill region: mostly in the lungs, clear of the case's own nodule."""
    h, w = src.image.shape
    lung_px = np.flatnonzero(src.lungs[::4, ::4])
    for _ in range(50):
        if lung_px.size and rng.random() < 0.85:
            k = lung_px[rng.integers(lung_px.size)]
            y, x = divmod(int(k), src.lungs[::4, ::4].shape[1])
            y, x = y * 4 + rng.uniform(0, 4), x * 4 + rng.uniform(0, 4)
        else:
            y, x = rng.uniform(0.1, 0.9) * h, rng.uniform(0.1, 0.9) * w
        if src.nodule is None:
            return y, x
        nx, ny, d = src.nodule
        clear = (sum(region_radii_mm(r_mm)) * 2.2 + d) / src.spacing_mm
        if np.hypot(x - nx, y - ny) > clear:
            return y, x
    return y, x


def edit_batch(sources: list[WindowSource], rng: np.random.Generator, spec: EditSpec, batch: int,
               insertion_fraction: float = 0.5) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(targets (B, 1, W, W), conditions (B, C, W, W), weights (B, 1, W, W))."""
    with_nodule = [s for s in sources if s.nodule is not None]
    samples = []
    for _ in range(batch):
        insertion = bool(with_nodule) and rng.random() < insertion_fraction
        pool = with_nodule if insertion else sources
        samples.append(edit_sample(pool[rng.integers(len(pool))], rng, spec, insertion))
    return (np.stack([s.target for s in samples])[:, None],
            np.stack([s.condition for s in samples]),
            np.stack([s.weight for s in samples])[:, None])

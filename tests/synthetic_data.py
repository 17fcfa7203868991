"""A tiny JSRT-style dataset drawn in the tests: ellipse lungs, a heart, clavicles, nodules."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from xraystudio.io.datasets import write_case
from xraystudio.masks import MaskStack


def draw_case(size: int, rng: np.random.Generator, nodule: bool) -> tuple[np.ndarray, MaskStack]:
    yy, xx = np.mgrid[0:size, 0:size] / size
    masks = MaskStack((size, size), (0.35 * 1024 / size,) * 2)
    shift = rng.uniform(-0.03, 0.03)
    right = ((xx - 0.3 - shift) / 0.14) ** 2 + ((yy - 0.5) / 0.3) ** 2 < 1
    left = ((xx - 0.7 - shift) / 0.14) ** 2 + ((yy - 0.5) / 0.3) ** 2 < 1
    heart = ((xx - 0.58) / 0.12) ** 2 + ((yy - 0.65) / 0.1) ** 2 < 1
    for name, layer in (("right_lung", right), ("left_lung", left), ("heart", heart & ~right)):
        masks.set_layer(name, layer)
    masks.set_layer("right_clavicle", (np.abs(yy - 0.2 - 0.1 * xx) < 0.02) & (xx < 0.45))
    masks.set_layer("left_clavicle", (np.abs(yy - 0.3 + 0.1 * xx) < 0.02) & (xx > 0.55))
    image = 0.75 - 0.4 * (right | left) + 0.15 * heart + 0.03 * rng.standard_normal((size, size))
    if nodule:
        x, y = size * (0.3 + rng.uniform(-0.05, 0.05)), size * 0.45
        n = masks.add_nodule(x, y, 15.0)
        r = masks.mm_to_px(n.diameter_mm) / 2
        image += 0.25 * (((xx * size - x) ** 2 + (yy * size - y) ** 2) <= r * r)
    return np.clip(image, 0, 1).astype(np.float32), masks


def write_dataset(root: Path, n: int = 6, size: int = 64, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    for i in range(n):
        image, masks = draw_case(size, rng, nodule=i % 2 == 0)
        write_case(root, f"CASE{i:03d}", image, masks)
    return root

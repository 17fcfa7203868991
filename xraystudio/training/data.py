"""Training pairs for the synthesis model: (radiograph, condition) with aligned augmentation.

Conditions are built by the same ``build_condition`` the engine uses at inference (masks area-
averaged from full resolution, the guide from the image), so the model trains on exactly what it
will see. Each sample is augmented (small affine, gamma) before the guide is derived from the
augmented image, so image, masks and guide always stay aligned. No left-right flips: anatomy
is not symmetric (the heart lies on the patient's left).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
from scipy import ndimage

from xraystudio.io.datasets import JsrtDataset
from xraystudio.synthesis.condition import (
    Letterbox,
    build_condition,
    guide_from_display,
    without_nodule,
)
from xraystudio.synthesis.prior import PRIOR_FLAG
from xraystudio.synthesis.spec import ModelSpec


@dataclasses.dataclass
class Sample:
    image: np.ndarray  # (S, S) float32 [0, 1]
    layers: np.ndarray  # (L, S, S) float32 soft masks in working geometry
    nodule: tuple[float, float] | None  # centre in working pixels


def load_samples(dataset: JsrtDataset, ids: list[str], spec: ModelSpec) -> list[Sample]:
    """Cases at the working size; masks go through the inference code path."""
    layout = dataclasses.replace(spec, guide_factor=None)
    out = []
    for case_id in ids:
        case = dataset.load(case_id)
        box = Letterbox(case.image.shape, spec.resolution)
        scale = box.inner[0] / case.image.shape[0]
        nod = None
        if case.masks.nodules:
            n = case.masks.nodules[0]
            nod = ((n.x + 0.5) * scale - 0.5 + box.offset[1], (n.y + 0.5) * scale - 0.5 + box.offset[0])
        out.append(Sample(box.to_working(case.image), build_condition(layout, case.masks), nod))
    return out


@dataclasses.dataclass
class Augment:
    rotate_deg: float = 4.0
    scale: float = 0.06
    shift: float = 0.04
    gamma: float = 0.15


def affine(sample: Sample, rng: np.random.Generator, aug: Augment) -> tuple[np.ndarray, np.ndarray, tuple | None]:
    s = sample.image.shape[0]
    angle = np.deg2rad(rng.uniform(-aug.rotate_deg, aug.rotate_deg))
    zoom = 1.0 + rng.uniform(-aug.scale, aug.scale)
    shift = rng.uniform(-aug.shift, aug.shift, size=2) * s
    c, si = np.cos(angle), np.sin(angle)
    # Output pixel o maps to input pixel M @ (o - centre) + centre - shift.
    m = np.array([[c, -si], [si, c]]) / zoom
    centre = np.array([s / 2 - 0.5, s / 2 - 0.5])
    offset = centre - m @ centre - m @ shift
    image = ndimage.affine_transform(sample.image, m, offset, order=1, mode="nearest")
    layers = np.stack([ndimage.affine_transform(ch, m, offset, order=1, mode="constant")
                       for ch in sample.layers])
    nod = None
    if sample.nodule is not None:
        inv = np.linalg.inv(m)
        yx = inv @ (np.array(sample.nodule[::-1]) - offset)
        nod = (float(yx[1]), float(yx[0]))
    return image.astype(np.float32), layers.astype(np.float32), nod


def make_batch(
    samples: list[Sample], spec: ModelSpec, rng: np.random.Generator, batch: int, crop: int,
    guided_fraction: float = 0.5, nodule_fraction: float = 0.5, aug: Augment | None = None,
    prior_guide: Callable[[np.ndarray], np.ndarray] | None = None, prior_fraction: float = 0.5,
) -> tuple[np.ndarray, np.ndarray]:
    """A batch of (x0 in [-1, 1], shape (B, 1, crop, crop)) and conditions (B, C, crop, crop).

    With ``prior_guide`` (augmented working-size layers -> guide), ``prior_fraction`` of the
    guided samples get the layout prior's guide instead of their own image's, flagged
    ``PRIOR_FLAG``: the ControlNet then learns what layout mode asks of it, drawing a real
    patient's texture and nodules over a typical, smooth coarse picture that does not match the
    target exactly, while real guides (flag 1) stay ones to keep.
    """
    aug = aug or Augment()
    s = spec.resolution
    box = Letterbox((s, s), s)
    xs, cs = [], []
    for _ in range(batch):
        sample = samples[rng.integers(len(samples))]
        image, layers, nod = affine(sample, rng, aug)
        image = np.clip(image, 0, 1) ** np.exp(rng.uniform(-aug.gamma, aug.gamma))
        channels = [layers]
        if spec.supports_guide:
            flag = 1.0 if rng.random() < guided_fraction else 0.0
            if not flag:
                guide = np.zeros_like(image)
            elif prior_guide is not None and rng.random() < prior_fraction:
                guide, flag = prior_guide(layers), PRIOR_FLAG
            else:
                guide = guide_from_display(without_nodule(image, layers, spec), box,
                                           spec.guide_factor)
            channels.append(np.stack([guide, np.full_like(image, flag)]))
        cond = np.concatenate(channels)
        y0, x0 = _crop_origin(s, crop, nod, rng, nodule_fraction, spec.patch)
        xs.append(image[None, y0:y0 + crop, x0:x0 + crop] * 2 - 1)
        cs.append(cond[:, y0:y0 + crop, x0:x0 + crop])
    return np.stack(xs).astype(np.float32), np.stack(cs).astype(np.float32)


def _crop_origin(size: int, crop: int, nodule, rng, nodule_fraction: float, align: int):
    """A random crop; with a nodule, often one that contains it (nodules are rare and small)."""
    if crop >= size:
        return 0, 0
    hi = size - crop
    if nodule is not None and rng.random() < nodule_fraction:
        x, y = nodule
        y0 = int(np.clip(y - rng.uniform(0.2, 0.8) * crop, 0, hi))
        x0 = int(np.clip(x - rng.uniform(0.2, 0.8) * crop, 0, hi))
    else:
        y0, x0 = int(rng.integers(hi + 1)), int(rng.integers(hi + 1))
    return y0 - y0 % align, x0 - x0 % align

"""How conspicuous a nodule is, as a number: its contrast against the lung around it.

JSRT grades conspicuity 1-5 (subtlety) by eye; what a detector learns from is the measured
contrast (``metrics.nodule_contrast``: disc mean minus a ring around it). To make a synthetic
nodule as conspicuous as a real one of the same grade, the layout sampler keeps the measured
contrasts of the real nodules it was fitted on, draws one for each nodule it proposes (same
subtlety where there are enough, similar size), and the edit scales its inserted opacity to it.
Contrasts are in units of the radiograph's own value range (max minus min), dense positive, so a
target learned on 8-bit JSRT means the same on a 12-bit DICOM.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from xraystudio import metrics

#: Real nodules whose size is nearest a new one, among which its contrast is drawn.
CONTRAST_NEIGHBOURS = 5
#: At least this many real nodules of a subtlety before contrasts are matched by subtlety.
MIN_SAME_SUBTLETY = 3


@dataclasses.dataclass(frozen=True)
class RealNodule:
    """A real nodule's size, subtlety and measured contrast (see :func:`relative_contrast`)."""

    size_mm: float
    subtlety: int | None
    contrast: float


def value_span(values: np.ndarray) -> float:
    """The radiograph's value range, the unit of every contrast here (1 for a flat image)."""
    span = float(np.max(values) - np.min(values))
    return span if span > 0 else 1.0


def relative_contrast(values: np.ndarray, x: float, y: float, radius_px: float,
                      span: float | None = None) -> float:
    """``metrics.nodule_contrast`` in units of the image's value range (``span``; measured on
    ``values`` when not given, which a window cut from a larger image must not do)."""
    scale = value_span(values) if span is None else span
    return metrics.nodule_contrast(np.asarray(values, np.float64) / scale, x, y, radius_px)


def draw_contrast(
    real: list[RealNodule], diameter_mm: float, subtlety: int | None, rng: np.random.Generator
) -> float:
    """A real nodule's contrast, of the same subtlety (when enough) and similar size."""
    if not real:
        raise ValueError("no real nodule contrasts to draw from")
    pool = [r for r in real if r.subtlety == subtlety] if subtlety is not None else []
    if len(pool) < MIN_SAME_SUBTLETY:
        pool = real
    nearest = sorted(pool, key=lambda r: abs(r.size_mm - diameter_mm))[:CONTRAST_NEIGHBOURS]
    return nearest[int(rng.integers(len(nearest)))].contrast


def positive_contrasts(real: list[RealNodule]) -> list[RealNodule]:
    """Nodules whose measured contrast is positive: a new nodule must stand out to be one.

    Very subtle real nodules can measure at or below zero against their ring (a rib beside
    them); a target of zero or less would ask for a nodule that cannot be seen, and teach a
    segmenter to label plain lung.
    """
    return [r for r in real if r.contrast > 0]


@dataclasses.dataclass(frozen=True)
class AddedNodule:
    """What an edit added at a stamped nodule: its contrast and how far its centre lies from
    the stamp."""

    contrast: float  # ``relative_contrast`` of edited minus source, in the source's value range
    offset_mm: float  # centre of the added opacity to the stamped centre


def added_nodule(source: np.ndarray, edited: np.ndarray, x: float, y: float, diameter_mm: float,
                 spacing_mm: float, dense_positive: bool = True) -> AddedNodule:
    """Measure a nodule an edit inserted at (x, y): the contrast the edit added there (edited
    minus source, so the film's own background cancels) and the offset of the added opacity's
    centre of mass (its positive part within two radii) from the stamp.

    ``dense_positive`` is False for a film whose values fall with density (MONOCHROME1).
    """
    sign = 1.0 if dense_positive else -1.0
    source = np.asarray(source, np.float64)
    delta = sign * (np.asarray(edited, np.float64) - source)
    r = diameter_mm / spacing_mm / 2
    contrast = relative_contrast(delta, x, y, r, value_span(source))
    h, w = delta.shape
    y0, y1 = max(0, int(y - 2 * r)), min(h, int(y + 2 * r) + 1)
    x0, x1 = max(0, int(x - 2 * r)), min(w, int(x + 2 * r) + 1)
    yy, xx = np.mgrid[y0:y1, x0:x1]
    weight = np.clip(delta[y0:y1, x0:x1], 0, None) * ((xx - x) ** 2 + (yy - y) ** 2 <= (2 * r) ** 2)
    total = weight.sum()
    if total <= 0:
        return AddedNodule(contrast, float("inf"))
    cx, cy = (weight * xx).sum() / total, (weight * yy).sum() / total
    return AddedNodule(contrast, float(np.hypot(cx - x, cy - y) * spacing_mm))

"""numpy arrays as QImages without copies, and back.

A QImage made from a numpy buffer does not own its pixels: whoever holds the QImage must also
hold the array, or Qt reads freed memory. ``ArrayImage`` keeps the two together so nobody can
drop one without the other.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from PySide6.QtGui import QImage

OPAQUE = np.uint32(0xFF000000)
_GREY_TO_RGB = np.uint32(0x010101)


@dataclasses.dataclass(eq=False)
class ArrayImage:
    """A QImage whose pixels live in ``array`` (uint32 H x W, one ARGB word per pixel)."""

    array: np.ndarray
    image: QImage

    @classmethod
    def wrap(cls, array: np.ndarray, fmt: QImage.Format) -> ArrayImage:
        array = np.ascontiguousarray(array, dtype=np.uint32)
        h, w = array.shape
        return cls(array, QImage(array.data, w, h, 4 * w, fmt))

    @classmethod
    def blank(cls, shape: tuple[int, int], fmt: QImage.Format) -> ArrayImage:
        return cls.wrap(np.zeros(shape, np.uint32), fmt)


def grey_to_rgb32(display: np.ndarray) -> np.ndarray:
    """Display intensities in [0, 1] as opaque grey RGB32 words (the fast path for QPainter)."""
    u8 = to_uint8(display)
    out = u8.astype(np.uint32)
    out *= _GREY_TO_RGB
    out |= OPAQUE
    return out


def to_uint8(display: np.ndarray) -> np.ndarray:
    """[0, 1] floats to 0-255 bytes, rounding (NaN becomes 0)."""
    x = np.nan_to_num(np.asarray(display, np.float32), nan=0.0)
    return (np.clip(x, 0.0, 1.0) * np.float32(255.0) + np.float32(0.5)).astype(np.uint8)


def grey_image(display: np.ndarray) -> ArrayImage:
    """A display image in [0, 1] as an RGB32 QImage."""
    return ArrayImage.wrap(grey_to_rgb32(display), QImage.Format.Format_RGB32)


def rgba_word(r: int, g: int, b: int, a: int = 255) -> np.uint32:
    """One premultiplied ARGB32 word."""
    f = a / 255.0
    return np.uint32((a << 24) | (round(r * f) << 16) | (round(g * f) << 8) | round(b * f))

"""Display arrays as 8-bit and RGB32 words (the engine process makes previews with them too)."""

from __future__ import annotations

import numpy as np

OPAQUE = np.uint32(0xFF000000)
_GREY_TO_RGB = np.uint32(0x010101)


def to_uint8(display: np.ndarray) -> np.ndarray:
    """[0, 1] floats to 0-255 bytes, rounding (NaN becomes 0)."""
    x = np.nan_to_num(np.asarray(display, np.float32), nan=0.0)
    return (np.clip(x, 0.0, 1.0) * np.float32(255.0) + np.float32(0.5)).astype(np.uint8)


def grey_to_rgb32(display: np.ndarray) -> np.ndarray:
    """Display intensities in [0, 1] as opaque grey RGB32 words (the fast path for QPainter)."""
    out = to_uint8(display).astype(np.uint32)
    out *= _GREY_TO_RGB
    out |= OPAQUE
    return out


def rgba_word(r: int, g: int, b: int, a: int = 255) -> np.uint32:
    """One premultiplied ARGB32 word."""
    f = a / 255.0
    return np.uint32((a << 24) | (round(r * f) << 16) | (round(g * f) << 8) | round(b * f))

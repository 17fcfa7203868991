"""numpy arrays as QImages without copies.

A QImage made from a numpy buffer does not own its pixels: whoever holds the QImage must also
hold the array, or Qt reads freed memory. ``ArrayImage`` keeps the two together so nobody can
drop one without the other.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from PySide6.QtGui import QImage


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


"""Clean-up users expect from an anatomy mask: one piece per structure, no holes.

A network's stray blobs (a lung-like patch in the abdomen, a clavicle fragment in the neck) and
pin-holes (a nodule or a rib crossing read as "not lung") are obvious errors to a radiologist and
tedious to erase by hand, so each structure keeps only its largest connected component, filled.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def largest_component_filled(mask: np.ndarray) -> np.ndarray:
    """The largest 8-connected component of ``mask`` with its holes filled (empty stays empty)."""
    mask = np.asarray(mask, dtype=bool)
    labels, count = ndimage.label(mask, structure=np.ones((3, 3), bool))
    if count == 0:
        return mask.copy()
    if count > 1:
        sizes = np.bincount(labels.ravel())
        sizes[0] = 0
        mask = labels == int(np.argmax(sizes))
    return ndimage.binary_fill_holes(mask)

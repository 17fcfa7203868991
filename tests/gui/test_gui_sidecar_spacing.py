"""A plain image without pixel spacing takes the spacing of the masks saved beside it."""

from __future__ import annotations

import numpy as np
from PIL import Image

from xraystudio.gui.workers import open_study
from xraystudio.io.masks_io import save_masks
from xraystudio.masks import MaskStack


def test_image_without_spacing_takes_the_masks_spacing(tmp_path) -> None:
    Image.fromarray(np.full((40, 30), 120, np.uint8)).save(tmp_path / "chest.png")
    masks = MaskStack((40, 30), (0.35, 0.35))
    masks.add_nodule(10, 10, 3.5)
    save_masks(masks, tmp_path / "chest_masks.npz")
    opened = open_study(tmp_path / "chest.png")
    assert opened.study.spacing_mm == (0.35, 0.35)
    assert opened.study.image.spacing_mm == (0.35, 0.35)
    assert opened.study.masks.nodules[0].diameter_mm == 3.5

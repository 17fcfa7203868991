"""``xraystudio segment INPUT --out DIR``: anatomy masks of a radiograph, one PNG per structure."""

from __future__ import annotations

import argparse
from pathlib import Path

from xraystudio import chest_check
from xraystudio.io.masks_io import save_masks
from xraystudio.io.radiograph import load_radiograph
from xraystudio.masks import MaskStack


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("segment", help="segment lungs, heart and clavicles of a radiograph",
                       description="Write <structure>.png (0/255, at the input's size) and "
                       "nodules.json to DIR.")
    p.add_argument("input", help="DICOM, PNG, JPEG or TIFF radiograph")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--model", help="segmentation model folder (default: the shipped model)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from xraystudio.segmentation import Segmenter

    image = load_radiograph(args.input)
    segmenter = Segmenter.load(args.model)
    display = image.display()
    masks = segmenter.segment(display)
    chest_check.warn(image, masks)  # labels, then the masks' anatomy: "warning: ..." on stderr
    stack = MaskStack.from_arrays(display.shape, masks, image.spacing_mm, layers=())
    save_masks(stack, Path(args.out))
    print(f"wrote {', '.join(segmenter.structures)} to {args.out}")
    return 0

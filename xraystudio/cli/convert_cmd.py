"""``xraystudio convert FILE OUT.png [--size N]``: the display-ready grey image as a 16-bit PNG."""

from __future__ import annotations

import argparse

import numpy as np

from xraystudio.errors import XRayStudioError
from xraystudio.io.images import write_png16
from xraystudio.io.radiograph import load_radiograph


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("convert", help="write the display-ready image as a 16-bit grey PNG")
    p.add_argument("file", help="DICOM, PNG, JPEG or TIFF radiograph")
    p.add_argument("out", help="output .png")
    p.add_argument("--size", type=int, help="scale so that the longer side has N pixels")
    p.add_argument("--window", type=int, default=0,
                   help="index of the display window (see `xraystudio inspect`); default 0")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    image = load_radiograph(args.file)
    if not 0 <= args.window < len(image.windows):
        raise XRayStudioError(f"--window must be 0..{len(image.windows) - 1} for this file")
    display = image.display(image.windows[args.window])
    if args.size:
        if args.size < 8:
            raise XRayStudioError("--size must be at least 8 pixels")
        from skimage.transform import resize

        h, w = display.shape
        scale = args.size / max(h, w)
        shape = (max(1, round(h * scale)), max(1, round(w * scale)))
        display = resize(display, shape, order=1, anti_aliasing=scale < 1, preserve_range=True)
    write_png16(args.out, np.asarray(display, np.float32))
    print(f"wrote {args.out} ({display.shape[1]} x {display.shape[0]}, 16 bit)")
    return 0

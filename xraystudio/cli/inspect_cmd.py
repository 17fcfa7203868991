"""``xraystudio inspect FILE [--json]``: the metadata of a radiograph that matters for this app."""

from __future__ import annotations

import argparse
import json

from xraystudio import chest_check
from xraystudio.image import XRayImage
from xraystudio.io.radiograph import load_radiograph


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("inspect", help="show size, bits, photometric, spacing, windows of a file")
    p.add_argument("file", help="DICOM, PNG, JPEG or TIFF radiograph")
    p.add_argument("--json", action="store_true", help="print machine-readable JSON")
    p.set_defaults(func=run)


def describe(image: XRayImage) -> dict:
    """Everything ``inspect`` reports, as plain JSON-ready values."""
    lo, hi = float(image.values.min()), float(image.values.max())
    return {
        "file": str(image.source) if image.source else None,
        "format": image.format,
        "size": {"width": image.shape[1], "height": image.shape[0]},
        **image.metadata,
        "value_range": [lo, hi],
        "display_inverted": image.invert,
        "spacing_mm": list(image.spacing_mm) if image.spacing_mm else None,
        "spacing_source": image.spacing_source,
        "windows": [
            {"name": w.name, "center": w.center, "width": w.width, "function": w.function}
            if w.lut is None
            else {"name": w.name, "lut_entries": int(len(w.lut)), "lut_first": w.lut_first}
            for w in image.windows
        ],
        "notes": image.notes,
    }


def run(args: argparse.Namespace) -> int:
    image = load_radiograph(args.file)
    info = describe(image)
    verdict = chest_check.warn(image)  # "warning: ..." on stderr for a non-chest or lateral view
    info["chest_check"] = {"kind": verdict.kind, "warning": verdict.warning}
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    for key, value in info.items():
        if key == "windows":
            print("windows:")
            for w in value:
                print("  - " + ", ".join(f"{k} {v}" for k, v in w.items()))
        elif key == "size":
            print(f"size: {value['width']} x {value['height']}")
        else:
            print(f"{key}: {value}")
    return 0

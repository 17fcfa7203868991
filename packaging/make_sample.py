"""Make the bundled sample study (resources/sample/): a radiograph the built-in model generated.

The app opens it on first start so a new user sees the workflow at once. The image is
synthetic (layout mode, from the anatomy of a held-out JSRT case) and its masks are the shipped
segmenter's output on that synthetic image plus one painted nodule: no JSRT pixel or mask is
shipped. Usage: python packaging/make_sample.py DATA_DIR [--case ID] [--seed S]
"""

from __future__ import annotations

import argparse
import json

from xraystudio.io.atomic import write_text
from xraystudio.io.datasets import JsrtDataset
from xraystudio.io.images import write_png8
from xraystudio.io.masks_io import save_masks
from xraystudio.masks import MaskStack
from xraystudio.segmentation.segmenter import Segmenter
from xraystudio.synthesis.engine import Engine, GenerationRequest
from xraystudio.synthesis.model import resources_dir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("data")
    parser.add_argument("--case", help="a held-out case id (default: the first normal one)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--size", type=int, default=1024)
    args = parser.parse_args()

    dataset = JsrtDataset(args.data)
    _, val = dataset.split()
    case_id = args.case or next(i for i in val if not dataset.load(i).masks.nodules)
    case = dataset.load(case_id, size=args.size)
    engine = Engine.load(None, device="cpu")
    result = engine.generate(GenerationRequest(case.masks, None, mode="layout", seed=args.seed))[0]
    masks = MaskStack(result.image.shape, case.masks.spacing_mm)
    Segmenter.load().fill_stack(masks, result.image)
    right = masks["right_lung"].nonzero()
    masks.add_nodule(float(right[1].mean()), float(right[0].mean()) - 0.1 * args.size, 14.0)
    out = resources_dir() / "sample"
    write_png8(out / "synthetic_chest.png", result.image)
    save_masks(masks, out / "synthetic_chest_masks.npz")
    provenance = {**result.provenance,
                  "note": "Synthetic image (layout mode, held-out anatomy); masks from the "
                          "shipped segmenter on this image plus one painted nodule. Not for diagnosis."}
    write_text(out / "synthetic_chest.json", json.dumps(provenance, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()

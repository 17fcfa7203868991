"""Seconds for an edit of two nodules on a 3000 x 3000, 12-bit radiograph, and peak memory.

Runs the engine the way the CLI and the app do (``Engine.generate`` in edit mode, the built-in
model at its defaults) on a drawn 3000 x 3000 study at 0.14 mm with lungs and two painted
nodules of 8 and 20 mm, after one warm-up edit; the time covers planning, both windows through
the model, compositing and quantising to the 12-bit stored values. Prints and writes JSON to
benchmarks/results/edit.json. Usage: python benchmarks/edit.py [--model DIR] [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import time
from pathlib import Path

import numpy as np


def study(size: int = 3000, spacing: float = 0.14):
    from xraystudio.image import XRayImage
    from xraystudio.masks import MaskStack

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:size, 0:size] / size
    masks = MaskStack((size, size), (spacing, spacing))
    right = ((xx - 0.3) / 0.14) ** 2 + ((yy - 0.48) / 0.3) ** 2 < 1
    left = ((xx - 0.7) / 0.14) ** 2 + ((yy - 0.48) / 0.3) ** 2 < 1
    masks.set_layer("right_lung", right)
    masks.set_layer("left_lung", left)
    values = 2600 - 1400 * (right | left) + rng.normal(0, 40, (size, size))
    image = XRayImage(np.rint(values.clip(0, 4095)).astype(np.float32), [],
                      spacing_mm=(spacing, spacing), format="DICOM",
                      metadata={"bits_stored": 12, "rescale": [1.0, 0.0],
                                "pixel_representation": "unsigned"})
    masks.add_nodule(0.3 * size, 0.4 * size, 8.0)
    masks.add_nodule(0.7 * size, 0.55 * size, 20.0)
    return masks, image


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", help="model folder (default: built-in)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: all cores)")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "edit.json"))
    args = parser.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from xraystudio.synthesis.engine import Engine, GenerationRequest

    engine = Engine.load(args.model, device=args.device)
    masks, image = study()
    req = GenerationRequest(masks, image, mode="edit", seed=0)
    engine.generate(req)  # warm-up (loads the edit model)
    times = []
    for k in range(args.runs):
        t0 = time.perf_counter()
        result = engine.generate(GenerationRequest(masks, image, mode="edit", seed=k))[0]
        times.append(time.perf_counter() - t0)
    unchanged = bool((result.values[~result.changed] == image.values[~result.changed]).all())
    figures = {
        "image": "3000 x 3000, 12 bit, 0.14 mm, two nodules (8 and 20 mm)",
        "seconds_min": round(min(times), 3),
        "seconds_median": round(statistics.median(times), 3),
        "steps": result.provenance["parameters"]["steps"],
        "windows": [e["window"][2] for e in result.provenance["edits"]],
        "changed_pixels": int(result.changed.sum()),
        "unchanged_outside_edits": unchanged,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "device": engine.device.label,
        "threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
        "budget_seconds": 5.0,
    }
    print(json.dumps(figures, indent=2))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()

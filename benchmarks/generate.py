"""Seconds per image and peak memory of generation with the built-in model at its defaults.

Runs the real engine the way the CLI and the app do (layout and guided mode at each resolution
the model draws: its working size and, with a full-resolution stage, 1024 px; a 2000 x 2000
study with anatomy and a nodule), after one warm-up image. Prints and writes JSON to
benchmarks/results/generate.json. Usage: python benchmarks/generate.py [--model DIR]
[--device cpu|cuda] [--runs 5] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import time
from pathlib import Path

import numpy as np
from machine import cpu_model


def study(size: int = 2000):
    from xraystudio.image import XRayImage
    from xraystudio.masks import MaskStack

    yy, xx = np.mgrid[0:size, 0:size] / size
    masks = MaskStack((size, size), (0.175, 0.175))
    masks.set_layer("right_lung", ((xx - 0.3) / 0.14) ** 2 + ((yy - 0.48) / 0.3) ** 2 < 1)
    masks.set_layer("left_lung", ((xx - 0.7) / 0.14) ** 2 + ((yy - 0.48) / 0.3) ** 2 < 1)
    masks.set_layer("heart", ((xx - 0.57) / 0.13) ** 2 + ((yy - 0.65) / 0.11) ** 2 < 1)
    masks.add_nodule(0.3 * size, 0.4 * size, 15.0)
    image = XRayImage.from_display((0.7 - 0.3 * masks.union(["right_lung", "left_lung"])).astype(np.float32))
    return masks, image


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", help="model folder (default: built-in)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: all cores)")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "generate.json"))
    args = parser.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from xraystudio.synthesis.engine import Engine, GenerationRequest

    t0 = time.perf_counter()
    engine = Engine.load(args.model, device=args.device)
    load_s = time.perf_counter() - t0
    masks, image = study()
    figures: dict = {}
    for mode in ("layout", "guided"):
        if mode == "guided" and not engine.spec.supports_guide:
            continue
        for size in engine.resolutions:
            req = {"mode": mode, "resolution": size}
            engine.generate(GenerationRequest(masks, image, seed=0, **req))  # warm-up
            times = []
            for run in range(args.runs):
                t = time.perf_counter()
                engine.generate(GenerationRequest(masks, image, seed=run, **req))
                times.append(time.perf_counter() - t)
            figures[f"{mode}_{size}"] = {
                "seconds_min": round(min(times), 3), "seconds_median": round(statistics.median(times), 3),
                "runs": args.runs, "budget_seconds": 5.0 if size <= 256 else 15.0}
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result = {
        "model": engine.spec.name, "resolutions": list(engine.resolutions),
        "steps": engine.spec.defaults.steps, "scheduler": engine.spec.defaults.scheduler,
        "device": engine.device.label, "torch_threads": torch.get_num_threads(),
        "cpu": cpu_model(), "study_size": [2000, 2000],
        "load_seconds": round(load_s, 3), "per_image": figures,
        "peak_rss_mb": round(peak_mb, 1),
        "budget": {"seconds_per_image": {"256": 5.0, "1024": 15.0}, "peak_rss_mb": 3072},
    }
    if torch.cuda.is_available() and args.device.startswith("cuda"):
        result["gpu"] = torch.cuda.get_device_name()
        result["cuda_peak_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

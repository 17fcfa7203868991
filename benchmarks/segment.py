"""Time anatomy segmentation of a 2000 x 2000 radiograph on the CPU (the issue's 1 s bar).

Times the whole of ``Segmenter.segment`` (resize down, network, clean-up, resize back to 2000²),
minimum of several runs after a warm-up, with 2 torch threads as on the project's reference
machine. Writes ``benchmarks/results/segment.json`` and prints it.

    python benchmarks/segment.py [--image FILE] [--model DIR] [--runs 7] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results" / "segment.json"
SIDE = 2000


def test_image(path: str | None) -> np.ndarray:
    """A radiograph resized to 2000², or a smooth synthetic chest-like image without one."""
    from skimage.transform import resize

    if path:
        from xraystudio.io.radiograph import load_radiograph

        display = load_radiograph(path).display()
        return resize(display, (SIDE, SIDE), order=1, preserve_range=True).astype(np.float32)
    yy, xx = np.mgrid[0:SIDE, 0:SIDE] / SIDE
    lungs = (((xx - 0.3) / 0.15) ** 2 + ((yy - 0.5) / 0.3) ** 2 < 1) | (
        ((xx - 0.7) / 0.15) ** 2 + ((yy - 0.5) / 0.3) ** 2 < 1
    )
    image = np.where(lungs, 0.25, 0.7) + 0.05 * np.sin(40 * yy)
    return image.astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", help="radiograph to resize to 2000²")
    parser.add_argument("--model", help="model folder (default: the shipped model)")
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    import torch

    from xraystudio.io.atomic import write_text
    from xraystudio.segmentation import Segmenter

    torch.set_num_threads(args.threads)
    image = test_image(args.image)
    start = time.perf_counter()
    segmenter = Segmenter.load(args.model)
    load_s = time.perf_counter() - start
    segmenter.segment(image)  # warm-up: first-call allocations and kernel selection
    times = []
    for _ in range(args.runs):
        start = time.perf_counter()
        segmenter.segment(image)
        times.append(time.perf_counter() - start)
    result = {
        "benchmark": "segment",
        "input": f"{SIDE}x{SIDE}" + (f" resized from {Path(args.image).name}" if args.image else " synthetic"),
        "working_size": segmenter.size,
        "model": str(args.model or "shipped"),
        "threads": args.threads,
        "runs": args.runs,
        "min_s": round(min(times), 4),
        "median_s": round(statistics.median(times), 4),
        "load_s": round(load_s, 4),
        "torch": torch.__version__,
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        # Other work on the machine slows every figure here: keep the load with the numbers.
        "load_average_1min": round(os.getloadavg()[0], 2),
        "bar_s": 1.0,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    write_text(RESULTS, json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

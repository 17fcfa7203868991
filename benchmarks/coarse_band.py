"""Where the first stage loses the scale of rib edges and vessels: a diagnostic, not a bar.

The coarsest NPS band of a 1024 px new patient (0.03-0.06 cycles/px: 6-11 mm, rib edges and
vessels) is the 256 px picture's 0.125-0.25 band, and it stays at about a third of real whatever
the full-resolution stage or the sampler does (docs/fullres.md, rules 2 and 4). This script asks
the 256 px model itself. Each tuning case's real film (training split, ``tune_split``), at the
working size, is noised to a fraction ``s`` of the schedule and denoised by the model under the
guided-mode condition of its own masks (SDEdit: the model keeps what it can of a real picture);
``s`` = 1 draws from pure noise. The lungs' NPS bands at 256 px (32 px regions) are compared with
the real film's. A model that keeps real detail gives ratios near 1 at small ``s``; one whose
denoising smooths it away loses the band even at ``s`` = 0.1. Shipped v0.5 keeps 0.31 of the
band at 0.1 (docs/fullres.md, *What the coarse band needs*). Writes JSON. Usage:
python benchmarks/coarse_band.py DATA_DIR [--model DIR] [--cases 6] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from film_score import tuning_cases
from machine import cpu_model

STRENGTHS = (0.1, 0.3, 0.5, 1.0)
SIDE = 32


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("data")
    parser.add_argument("--model", default=None, help="model folder (default: built-in)")
    parser.add_argument("--cases", type=int, default=6)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "coarse_band.json"))
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from xraystudio.evaluation.texture import NPS_BANDS, compare_nps, lung_nps
    from xraystudio.synthesis.condition import Letterbox
    from xraystudio.synthesis.engine import Engine, GenerationRequest
    from xraystudio.training.fullres_redraws import redraw

    engine = Engine.load(args.model, device="cpu")
    size = engine.spec.resolution
    real: list = []
    redrawn: dict[float, list] = {s: [] for s in STRENGTHS}
    freqs = None
    started = time.perf_counter()
    cases = tuning_cases(args.data, args.cases)
    for case in cases:
        box = Letterbox(case.real.shape, size)
        film = box.to_working(case.real).astype(np.float32)
        lungs = box.working_mask(case.lungs) > 0.5
        cond = engine.condition(GenerationRequest(case.masks, case.image, mode="guided"), "guided")
        freqs, curve, n = lung_nps(film, lungs, SIDE)
        real.append((curve, n))
        for s in STRENGTHS:
            picture = redraw(engine.model.pipe, film, cond, s, engine.spec.defaults.steps, 0)
            redrawn[s].append(lung_nps(picture, lungs, SIDE)[1:])
    table = {str(s): compare_nps(real, redrawn[s], freqs, NPS_BANDS)["ratio"] for s in STRENGTHS}
    report = {"what": "lung NPS band ratios (redrawn / real) at the working size, guided condition",
              "model": args.model or "built-in", "cases": [c.id for c in cases], "seed": 0,
              "bands_cycles_per_px": [list(b) for b in NPS_BANDS], "region_px": SIDE,
              "by_strength": table, "cpu": cpu_model(), "threads": args.threads,
              "seconds": round(time.perf_counter() - started, 1)}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    for s, ratios in table.items():
        print(f"s={s}: " + "  ".join(f"{r:.2f}" for r in ratios))


if __name__ == "__main__":
    main()

"""Choose layout mode's nodule contrast in the prior's guide on training cases (docs/fullres.md,
rule 3).

Layout mode draws painted nodules fainter than real ones (0.55 of real on the validation split)
because the ControlNet reads the prior's guide apart from a real film's. For every candidate
``layout_nodule_contrast`` (a multiple of the real mean brightening, ``guide_nodule_contrast`` / 2)
the built-in model draws each tuning case's masks in layout mode at its working size, seeds 0 and
1; each film is written as the product writes it (16-bit PNG at the source's size), read back and
its nodule contrast measured against the real film's (disc minus ring, as ``xraystudio evaluate``
does). The candidate whose ratio of mean contrasts is nearest 1 (in |ln|) is chosen.
Writes benchmarks/results/tune_layout_nodules.json. Usage:
python benchmarks/tune_layout_nodules.py DATA_DIR [--cases 24] [--threads 1]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import tempfile
import time
from pathlib import Path

import numpy as np
from machine import cpu_model

#: Candidates, in units of the real mean brightening of a nodule's disc (the shipped guided
#: contrast is 2 of them).
GAINS = (2.0, 3.0, 4.0, 5.0, 6.0)
SEEDS = (0, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("data")
    parser.add_argument("--cases", type=int, default=24, help="nodule cases of the training split")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "tune_layout_nodules.json"))
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from xraystudio import metrics
    from xraystudio.evaluation.evaluate import _nodules_px, save_and_read
    from xraystudio.image import XRayImage
    from xraystudio.io.datasets import JsrtDataset
    from xraystudio.synthesis.engine import Engine, GenerationRequest

    dataset = JsrtDataset(args.data)
    train, _ = dataset.split()  # the validation split is not looked at
    nodule_ids = [i for i in train if dataset.load(i).masks.nodules]
    pick = np.random.default_rng(0).choice(len(nodule_ids), min(args.cases, len(nodule_ids)), replace=False)
    ids = [nodule_ids[i] for i in sorted(pick)]
    engine = Engine.load(None, device="cpu")
    shipped = engine.model.spec
    unit = shipped.guide_nodule_contrast / 2
    rows: dict[str, dict] = {}
    real: list[float] = []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        cases = [dataset.load(i) for i in ids]
        for case in cases:
            real += [metrics.nodule_contrast(case.image, x, y, r) for x, y, r in _nodules_px(case.masks)]
        for gain in GAINS:
            engine.model.spec = dataclasses.replace(shipped, layout_nodule_contrast=gain * unit)
            generated = []
            for case in cases:
                image = XRayImage.from_display(case.image, case.masks.spacing_mm)
                for seed in SEEDS:
                    (result,) = engine.generate(GenerationRequest(
                        case.masks, image, mode="layout", seed=seed, resolution=shipped.resolution))
                    film = save_and_read(result.image, Path(tmp), f"{case.id}_{gain}_{seed}")
                    generated += [metrics.nodule_contrast(film, x, y, r)
                                  for x, y, r in _nodules_px(case.masks)]
            ratio = float(np.mean(generated)) / float(np.mean(real))
            rows[f"gain={gain}"] = {"layout_nodule_contrast": gain * unit, "ratio": ratio,
                                    "score": abs(math.log(ratio)) if ratio > 0 else math.inf,
                                    "generated_mean": float(np.mean(generated))}
            print(f"gain {gain}: ratio {ratio:.3f} ({time.perf_counter() - started:.0f} s)", flush=True)
    best = min(rows, key=lambda k: rows[k]["score"])
    report = {"rule": "docs/fullres.md, rule 3", "cases": ids, "seeds": list(SEEDS),
              "real_mean": float(np.mean(real)), "resolution": shipped.resolution,
              "measured_on": "the saved 16-bit PNG at the source's size",
              "cpu": cpu_model(), "threads": args.threads,
              "seconds": round(time.perf_counter() - started, 1), "candidates": rows, "chosen": best,
              "layout_nodule_contrast": rows[best]["layout_nodule_contrast"]}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"chosen: {best} -> layout_nodule_contrast {rows[best]['layout_nodule_contrast']:.4f}")


if __name__ == "__main__":
    main()

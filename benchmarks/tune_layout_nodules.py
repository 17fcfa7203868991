"""Choose layout mode's nodule contrast in the prior's guide on training cases (docs/fullres.md,
rule 3).

Layout mode draws painted nodules fainter than real ones (0.55 of real on the validation split)
because the ControlNet reads the prior's guide apart from a real film's. For every candidate
``layout_nodule_contrast`` (a multiple of the real mean brightening of a nodule's disc in the
training images, ``training.prior.nodule_contrast``: 0.0148) the built-in model draws each
tuning case's masks in layout mode at its working size, seeds 0 and 1; each film is written as
the product writes it (16-bit PNG at the source's size), read back and its nodule contrast
measured against the real film's (disc minus ring, as ``xraystudio evaluate`` does). Drawn at
full resolution, the candidate is the full-resolution stage's own smudge (``FullresSpec``), which
overrides the model's there. The candidate whose ratio of mean contrasts is nearest 1 (in |ln|) is chosen.

Layout mode over a prior with a variation (the built-in model since v0.8) tunes
``varied_nodule_contrast`` instead (rule 14).

With ``--mode guided`` (rule 12) the candidates are guided mode's ``guide_nodule_contrast``
and each film is redrawn in guided mode from its own radiograph (same unit: the model's export
sets guided mode's smudge to ``guide_nodule_gain`` of it).

With ``--moved`` (rule 6) every nodule is first moved, at its size, to a new place in its lung
(``moved_layout``): the ControlNet learned these films with their nodules where they are, so
their own layouts flatter it. The generated contrast at the new place is compared with the real
contrast of the same nodule at its real place.
Writes benchmarks/results/tune_MODE_nodules.json (``--moved``: ..._moved.json). Usage:
python benchmarks/tune_layout_nodules.py DATA_DIR [--cases 24] [--threads 1] [--moved]
    [--mode layout|guided]
    [--resolution PX] [--gains 3,4,5,6] [--seeds 0,1] [--rule TEXT] [--out FILE]
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


def moved_layout(masks, rng: np.random.Generator):
    """(a copy of ``masks`` whose nodules each sit at a new place in their lung, the ids of the
    nodules that found one): uniform over the places where the disc and a margin of one radius
    fit inside the lung, at least two diameters from where it was and clear of the other nodules
    (new places and old). A nodule with no such place stays and is left out of the count."""
    import dataclasses as dc

    from scipy.ndimage import distance_transform_edt

    from xraystudio.masks import LUNGS, NODULE, MaskStack

    lungs = {name: masks[name] for name in LUNGS if name in masks}
    inside = {name: distance_transform_edt(m) for name, m in lungs.items()}
    yy, xx = np.mgrid[0:masks.shape[0], 0:masks.shape[1]]
    radius = {n.id: masks.mm_to_px(n.diameter_mm) / 2 for n in masks.nodules}
    kept = [(n.x, n.y, radius[n.id]) for n in masks.nodules]
    moved, ids = [], []
    for n in masks.nodules:
        r = radius[n.id]
        yi, xi = int(round(n.y)), int(round(n.x))
        lung = next((k for k, m in lungs.items() if m[yi, xi]), None)
        if lung is None:
            moved.append(n)
            continue
        ok = (inside[lung] >= 2 * r) & (np.hypot(xx - n.x, yy - n.y) >= 4 * r)
        for x, y, rr in kept:
            ok &= np.hypot(xx - x, yy - y) >= r + rr + r
        ys, xs = np.nonzero(ok)
        if len(ys) == 0:
            moved.append(n)
            continue
        k = int(rng.integers(len(ys)))
        new = dc.replace(n, x=float(xs[k]), y=float(ys[k]))
        moved.append(new)
        ids.append(n.id)
        kept.append((new.x, new.y, r))
    arrays = {name: masks[name] for name in masks.names if name != NODULE}
    return MaskStack.from_arrays(masks.shape, arrays, masks.spacing_mm, moved,
                                 stamp_nodules=True), ids


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("data")
    parser.add_argument("--cases", type=int, default=24, help="nodule cases of the training split")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--moved", action="store_true", help="move every nodule first (rule 6)")
    parser.add_argument("--mode", choices=("layout", "guided"), default="layout",
                        help="the mode whose smudge is tuned (guided: rule 12)")
    parser.add_argument("--resolution", type=int, default=None,
                        help="drawn size (default: the model's working size, as rule 3)")
    parser.add_argument("--gains", default=",".join(str(g) for g in GAINS))
    parser.add_argument("--seeds", default=",".join(str(s) for s in SEEDS))
    parser.add_argument("--rule", default=None, help="the rule this run follows (default: 3, or 6 "
                        "with --moved)")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    gains = tuple(float(g) for g in args.gains.split(","))
    seeds = tuple(int(v) for v in args.seeds.split(","))
    name = f"tune_{args.mode}_nodules{'_moved' if args.moved else ''}.json"
    out = Path(args.out or Path(__file__).parent / "results" / name)

    import torch

    torch.set_num_threads(args.threads)
    from xraystudio import metrics
    from xraystudio.evaluation.evaluate import _nodules_px, save_and_read
    from xraystudio.image import XRayImage
    from xraystudio.io.datasets import JsrtDataset
    from xraystudio.synthesis.engine import Engine, GenerationRequest
    from xraystudio.training.data import load_samples
    from xraystudio.training.prior import nodule_contrast

    dataset = JsrtDataset(args.data)
    train, _ = dataset.split()  # the validation split is not looked at
    nodule_ids = [i for i in train if dataset.load(i).masks.nodules]
    pick = np.random.default_rng(0).choice(len(nodule_ids), min(args.cases, len(nodule_ids)), replace=False)
    ids = [nodule_ids[i] for i in sorted(pick)]
    engine = Engine.load(None, device="cpu")
    shipped = engine.model.spec
    unit = nodule_contrast(load_samples(dataset, nodule_ids, shipped), shipped)
    # Layout mode over a prior with a variation draws from a guide flagged as real, with its own
    # smudge (rule 14); without one, from the prior's picture (rules 3, 6, 11).
    varied = (args.mode == "layout" and shipped.defaults.variation > 0
              and engine.model.prior is not None and engine.model.prior.has_variation)
    field = ("guide" if args.mode == "guided" else "varied" if varied else "layout") + "_nodule_contrast"
    size = args.resolution or shipped.resolution
    stage = engine.fullres_pipe.spec if size > shipped.resolution else None
    rows: dict[str, dict] = {}
    real: list[float] = []
    started = time.perf_counter()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        cases = [dataset.load(i) for i in ids]
        layouts = []  # (case, the masks drawn, the nodules measured: ids)
        for case in cases:
            drawn, counted = moved_layout(case.masks, rng) if args.moved else (
                case.masks, [n.id for n in case.masks.nodules])
            layouts.append((case, drawn, counted))
            real += [metrics.nodule_contrast(case.image, x, y, r) for (x, y, r), n
                     in zip(_nodules_px(case.masks), case.masks.nodules) if n.id in counted]
        for gain in gains:
            if size > shipped.resolution:  # the full-resolution stage's own smudges apply
                engine.fullres_pipe.spec = dataclasses.replace(stage, **{field: gain * unit})
            else:
                engine.model.spec = dataclasses.replace(shipped, **{field: gain * unit})
            generated = []
            for case, drawn, counted in layouts:
                image = XRayImage.from_display(case.image, case.masks.spacing_mm)
                for seed in seeds:
                    (result,) = engine.generate(GenerationRequest(
                        drawn, image, mode=args.mode, seed=seed, resolution=size))
                    film = save_and_read(result.image, Path(tmp), f"{case.id}_{gain}_{seed}")
                    generated += [metrics.nodule_contrast(film, x, y, r) for (x, y, r), n
                                  in zip(_nodules_px(drawn), drawn.nodules) if n.id in counted]
            ratio = float(np.mean(generated)) / float(np.mean(real))
            rows[f"gain={gain}"] = {field: gain * unit, "ratio": ratio,
                                    "score": abs(math.log(ratio)) if ratio > 0 else math.inf,
                                    "generated_mean": float(np.mean(generated))}
            print(f"gain {gain}: ratio {ratio:.3f} ({time.perf_counter() - started:.0f} s)", flush=True)
    best = min(rows, key=lambda k: rows[k]["score"])
    rule = args.rule or f"docs/fullres.md, rule {6 if args.moved else 3}"
    report = {"rule": rule, "mode": args.mode, "unit": unit, "cases": ids,
              "seeds": list(seeds), "moved": args.moved, "nodules": len(real),
              "real_mean": float(np.mean(real)), "resolution": size,
              "measured_on": "the saved 16-bit PNG at the source's size",
              "cpu": cpu_model(), "threads": args.threads,
              "seconds": round(time.perf_counter() - started, 1), "candidates": rows, "chosen": best,
              field: rows[best][field]}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"chosen: {best} -> {field} {rows[best][field]:.4f}")


if __name__ == "__main__":
    main()

"""Choose the full-resolution stage's inference noise, blur and detail gain on tuning cases
(docs/fullres.md).

For each tuning case the built-in coarse model draws a new patient from the case's masks once
(layout mode, 256 px); the stage then draws it at 1024 px under every candidate setting. Each
film is written as the product writes it (16-bit PNG at the source's size) and read back, and
compared with the real film of the same masks: texture at 256 and 1024 px and the lung noise
power spectrum by band. Writes benchmarks/results/tune_fullres.json. Usage:
python benchmarks/tune_fullres.py DATA_DIR --fullres DIR [--cases 8] [--threads 1]
    [--noises 0,0.03] [--blurs 0,0.4,0.8,1.2] [--gains 1] [--rule "docs/fullres.md, rule 1"]
"""

from __future__ import annotations

import argparse
import itertools
import json
import tempfile
import time
from pathlib import Path

from film_score import FilmScore, tuning_cases
from machine import cpu_model


def _floats(text: str) -> tuple[float, ...]:
    return tuple(float(v) for v in text.split(","))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("data")
    parser.add_argument("--fullres", required=True, help="a fullres/ folder to tune")
    parser.add_argument("--cases", type=int, default=8)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--noises", type=_floats, default=(0.0, 0.03), help="candidate noise levels")
    parser.add_argument("--blurs", type=_floats, default=(0.0, 0.4, 0.8, 1.2), help="candidate blurs")
    parser.add_argument("--gains", type=_floats, default=(1.0,), help="candidate detail gains")
    parser.add_argument("--rule", default="docs/fullres.md, rule 1")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "tune_fullres.json"))
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from xraystudio.evaluation.evaluate import save_and_read
    from xraystudio.synthesis.condition import Letterbox
    from xraystudio.synthesis.engine import Engine, GenerationRequest
    from xraystudio.synthesis.fullres import load_fullres_model, restore_detail

    cases = tuning_cases(args.data, args.cases)
    engine = Engine.load(None, device="cpu")
    stage = load_fullres_model(args.fullres)
    grid = list(itertools.product(args.noises, args.blurs, args.gains))
    rows = {f"noise={n},blur={b},gain={g}": FilmScore() for n, b, g in grid}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for case in cases:
            (coarse,) = engine.generate(GenerationRequest(case.masks, case.image, mode="layout", seed=0,
                                                          resolution=engine.spec.resolution))
            for noise, blur in itertools.product(args.noises, args.blurs):
                drawn = stage(coarse.working[None] * 2 - 1, [0], steps=args.steps, noise=noise,
                              blur=blur, autocast=engine.device.autocast, detail_gain=1.0)
                for gain in args.gains:  # the gain filters the drawn film: one draw serves all
                    key = f"noise={noise},blur={blur},gain={gain}"
                    work = restore_detail(drawn, gain, stage.spec.scale)[0]
                    work = ((work.clip(-1, 1) + 1) / 2).clip(0, 1)
                    film = Letterbox(case.real.shape, work.shape[0]).from_working(work).clip(0, 1)
                    saved = save_and_read(film, Path(tmp), f"{case.id}_{key}")
                    rows[key].add(case.real, saved, case.lungs)
            print(f"{case.id} done ({time.perf_counter() - started:.0f} s)", flush=True)
    table = {key: r.result() for key, r in rows.items()}
    best = min(table, key=lambda k: table[k]["score"])
    report = {"rule": args.rule, "cases": [c.id for c in cases], "steps": args.steps,
              "fullres": str(args.fullres), "cpu": cpu_model(), "threads": args.threads,
              "seconds": round(time.perf_counter() - started, 1), "candidates": table,
              "chosen": best}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    for key, v in sorted(table.items(), key=lambda kv: kv[1]["score"]):
        print(f"{key:32s} score {v['score']:.3f}  tex256 {v['texture_256']:.2f}  "
              f"tex1024 {v['texture_1024']:.2f}  nps {[round(x, 2) for x in v['nps_ratio']]}")
    print(f"chosen: {best}")


if __name__ == "__main__":
    main()

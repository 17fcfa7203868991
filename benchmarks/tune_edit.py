"""Choose one of the edit model's inference settings on the tuning cases of the training split.

Each candidate value is scored on the 12 training cases the edit model was held out from
(``EditEvalConfig(split="tune")``), never on the validation split, which only reports:

- ``detail_mm`` (how much of the source's fine texture an edit keeps inside its region): the
  summed squared log errors of texture against the source in the window (``hf_ratio``), of the
  seam across the feather, and of the contrast of inserted and re-inserted nodules against real
  ones of the same size (1 is right for each);
- ``removal_scale`` (how far past a listed nodule a removal hides): the gap between the mean
  contrast left at removed nodules and that of normal lung at nodule-like places, in units of
  the normal lung's 95 % spread (0 is right).

The lowest score wins (the first on a tie). Writes benchmarks/results/tune_edit_<setting>.json.
Usage: python benchmarks/tune_edit.py {detail_mm,removal_scale} DATA --values V1,V2,...
[--model DIR] [--threads 1]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import time
from pathlib import Path

INSERTION_KEYS = ("insertion_hf_ratio", "insertion_seam_ratio", "insertion_contrast_ratio",
                  "reinsertion_contrast_ratio")


def detail_score(summary: dict) -> float:
    return sum(math.log(summary[k]) ** 2 for k in INSERTION_KEYS if summary.get(k) and summary[k] > 0)


def removal_score(summary: dict) -> float:
    lo, hi = summary["normal_lung_contrast_95"]
    return abs(summary["removal_contrast_mean"] - summary["normal_lung_contrast_mean"]) / (hi - lo)


SCORES = {"detail_mm": detail_score, "removal_scale": removal_score}
REPORTED = (*INSERTION_KEYS, "removal_contrast_mean", "removal_seam_ratio",
            "normal_lung_contrast_mean", "normal_lung_contrast_95", "removal_within_normal_95",
            "n_insertion", "n_removal")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("setting", choices=sorted(SCORES))
    ap.add_argument("data")
    ap.add_argument("--values", required=True)
    ap.add_argument("--model", default=None)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()

    import torch

    from xraystudio.evaluation.edit_eval import EditEvalConfig, EditEvaluator
    from xraystudio.io.datasets import JsrtDataset
    from xraystudio.synthesis.edit_pipeline import load_edit_model
    from xraystudio.synthesis.model import builtin_model_dir

    torch.set_num_threads(args.threads)
    folder = Path(args.model) if args.model else builtin_model_dir()
    pipe = load_edit_model(folder)
    base = pipe.spec
    dataset = JsrtDataset(args.data)
    rows = []
    for value in (float(v) for v in args.values.split(",")):
        pipe.spec = dataclasses.replace(base, **{args.setting: value})
        started = time.perf_counter()
        ev = EditEvaluator(pipe, dataset, EditEvalConfig(split="tune", classifier_seeds=0))
        summary = ev.run()["summary"]
        rows.append({args.setting: value, "score": SCORES[args.setting](summary),
                     "seconds": time.perf_counter() - started,
                     **{k: summary[k] for k in REPORTED}})
        print(json.dumps(rows[-1]))
    best = min(rows, key=lambda r: r["score"])
    out = {"model": str(folder), "cases": "tuning cases of the training split",
           "spec": dataclasses.asdict(base), "rows": rows, f"best_{args.setting}": best[args.setting]}
    path = Path(args.out or Path(__file__).parent / "results" / f"tune_edit_{args.setting}.json")
    path.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    print(f"best {args.setting}:", best[args.setting])


if __name__ == "__main__":
    main()

"""Choose the edit model's ``detail_mm`` on the tuning cases of the training split.

``detail_mm`` decides how much of the source's fine texture an edit keeps inside its region (see
``EditSpec.detail_mm``). Each candidate is scored on the 12 training cases the edit model was
held out from (``EditEvalConfig(split="tune")``), never on the validation split: texture against
the source in the window (``hf_ratio``, 1 is right), the seam across the feather (1 is right),
and the contrast of inserted and re-inserted nodules against real ones of the same size (1 is
right). The pick minimises the summed squared log errors of the three; removal is reported.
Writes benchmarks/results/tune_edit_detail.json. Usage:
python benchmarks/tune_edit_detail.py DATA [--model DIR] [--values 0,0.35,0.7,1.05] [--threads 1]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import time
from pathlib import Path

KEYS = ("insertion_hf_ratio", "insertion_seam_ratio", "insertion_contrast_ratio",
        "reinsertion_contrast_ratio")


def score(summary: dict) -> float:
    return sum(math.log(summary[k]) ** 2 for k in KEYS if summary.get(k) and summary[k] > 0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data")
    ap.add_argument("--model", default=None)
    ap.add_argument("--values", default="0,0.35,0.7,1.05")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "tune_edit_detail.json"))
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
        pipe.spec = dataclasses.replace(base, detail_mm=value)
        started = time.perf_counter()
        ev = EditEvaluator(pipe, dataset, EditEvalConfig(split="tune", classifier_seeds=0))
        summary = ev.run()["summary"]
        rows.append({"detail_mm": value, "score": score(summary), "seconds": time.perf_counter() - started,
                     **{k: summary[k] for k in (*KEYS, "removal_within_normal_95",
                                                "n_insertion", "n_reinsertion")}})
        print(json.dumps(rows[-1]))
    best = min(rows, key=lambda r: r["score"])
    out = {"model": str(folder), "cases": "tuning cases of the training split", "rows": rows,
           "best_detail_mm": best["detail_mm"]}
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    print("best detail_mm:", best["detail_mm"])


if __name__ == "__main__":
    main()

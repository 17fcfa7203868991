"""How conspicuous a stamped nodule comes out at each conspicuity grade, on held-out radiographs.

For each JSRT validation case (``JsrtDataset.split(0.2, seed=0)``) one nodule is placed where
and as large as the built-in model's layout sampler proposes (clear of the case's own nodule),
then inserted with the built-in edit model once per grade the window offers: the typical
contrast of its size (the default), JSRT subtlety grades 1-5, and "model" (no target, as the
window did before). Measured on the edited image as the app saves it (the source's own value
format): the contrast the edit added (edited minus source, ``conspicuity.added_nodule``) against
the target, and the distance from the stamp to the centre of the added opacity. Prints and
writes JSON to benchmarks/results/stamp_conspicuity.json. Usage:
python benchmarks/stamp_conspicuity.py [DATA] [--limit 8] [--threads 1]
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import time
from pathlib import Path

import numpy as np

GRADES = ("typical", "g1", "g2", "g3", "g4", "g5", "model")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def summary(values: list[float]) -> dict[str, float]:
    q = np.quantile(values, [0.25, 0.5, 0.75])
    return {"median": round(float(q[1]), 5), "q1": round(float(q[0]), 5),
            "q3": round(float(q[2]), 5), "min": round(min(values), 5),
            "max": round(max(values), 5)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", nargs="?", default=str(Path(__file__).resolve().parents[1] / ".."
                                                    / "shared" / "data" / "jsrt"))
    ap.add_argument("--limit", type=int, default=8, help="validation cases")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results"
                                         / "stamp_conspicuity.json"))
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from xraystudio.io.datasets import JsrtDataset
    from xraystudio.io.images import read_image
    from xraystudio.synthesis.conspicuity import added_nodule
    from xraystudio.synthesis.edit import plan_from_masks, run_edit
    from xraystudio.synthesis.edit_pipeline import load_edit_model
    from xraystudio.synthesis.layout_sampler import default_sampler, stamp_contrast
    from xraystudio.synthesis.model import builtin_model_dir

    data = JsrtDataset(args.data)
    _, val = data.split(0.2, seed=0)
    # Nodule and normal cases alternately, so a short run sees both.
    has_nodule = {c.id: c.nodule for c in data.cases}
    nodule = [c for c in val if has_nodule[c]]
    normal = [c for c in val if not has_nodule[c]]
    cases = [c for pair in zip(nodule, normal) for c in pair][: args.limit]
    model = builtin_model_dir()
    sampler = default_sampler(model)
    pipe = load_edit_model(model / "edit")
    rows = []
    started = time.perf_counter()
    for k, case in enumerate(cases):
        image = read_image(Path(args.data) / "images" / f"{case}.png")
        masks = data.masks(case, image.shape)
        masks.source_nodules = copy.deepcopy(masks.nodules)  # the case's own: kept as they are
        image = image.with_spacing(masks.spacing_mm)
        spacing = float(masks.spacing_mm[0])
        existing = [(n.x, n.y, n.diameter_mm) for n in masks.nodules]
        place = sampler.sample(masks, spacing, np.random.default_rng(k), n=1,
                               existing=existing)[0]
        for grade in GRADES:
            target = stamp_contrast(grade, sampler, place.diameter_mm)
            stamped = masks.copy()
            stamped.add_nodule(place.x, place.y, place.diameter_mm, target)
            out = run_edit(pipe, image, stamped, plan_from_masks(stamped), seed=k)
            added = added_nodule(image.values, out.values, place.x, place.y, place.diameter_mm,
                                 spacing, not image.invert)
            rows.append({"case": case, "grade": grade, "diameter_mm": round(place.diameter_mm, 2),
                         "target": None if target is None else round(target, 5),
                         "contrast": round(added.contrast, 5),
                         "offset_mm": round(added.offset_mm, 3)})
            print(json.dumps(rows[-1]), flush=True)
    per_grade = {}
    for grade in GRADES:
        mine = [r for r in rows if r["grade"] == grade]
        entry = {"contrast": summary([r["contrast"] for r in mine]),
                 "offset_mm": summary([r["offset_mm"] for r in mine]),
                 "within_1mm": sum(r["offset_mm"] <= 1.0 for r in mine) / len(mine)}
        if mine[0]["target"] is not None:
            entry["target"] = summary([r["target"] for r in mine])
            entry["reached"] = sum(r["contrast"] >= 0.995 * r["target"] for r in mine) / len(mine)
        per_grade[grade] = entry
    report = {
        "model": str(model), "data": str(Path(args.data).resolve()),
        "cases": f"{len(cases)} validation cases of JsrtDataset.split(0.2, seed=0)",
        "unit": "contrast in units of the radiograph's value range (edited minus source, "
                "disc mean minus ring mean); offset: stamp to the added opacity's centre",
        "per_grade": per_grade, "rows": rows,
        "seconds": round(time.perf_counter() - started, 1),
        "threads": args.threads, "cpu": cpu_model(),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({g: {"contrast_median": e["contrast"]["median"],
                          "target_median": e.get("target", {}).get("median"),
                          "offset_median_mm": e["offset_mm"]["median"],
                          "within_1mm": e["within_1mm"]} for g, e in per_grade.items()},
                     indent=1))


if __name__ == "__main__":
    main()

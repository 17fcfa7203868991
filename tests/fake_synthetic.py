"""A stand-in for ``xraystudio synthesize`` output: edit-mode (or, by name, layout-mode) images in
the nnU-Net v2 layout.

Each image is a training case with one bright Gaussian nodule drawn into a lung, its label map
(``curation.export.label_map``) and a ``metadata.jsonl`` line as ``synthesize`` writes them. Used
by the downstream benchmark's tests, and to try the benchmark before a real folder exists.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from xraystudio.io.datasets import JsrtDataset
from xraystudio.io.nnunet import LABELS, label_map
from xraystudio.masks import LUNGS


def write_fake_synthetic(
    data: Path, out: Path, cases: list[str], per_case: int = 1, seed: int = 0,
    contrast: float = 0.2, mode: str = "edit",
) -> Path:
    dataset = JsrtDataset(data)
    rng = np.random.default_rng(seed)
    (out / "imagesTr").mkdir(parents=True, exist_ok=True)
    (out / "labelsTr").mkdir(parents=True, exist_ok=True)
    lines = []
    for case_id in cases:
        for k in range(per_case):
            case = dataset.load(case_id)
            masks, image = case.masks, case.image.astype(np.float64)
            source = [{"x": n.x, "y": n.y, "diameter_mm": n.diameter_mm} for n in masks.nodules]
            ys, xs = np.nonzero(masks.union(LUNGS))
            j = int(rng.integers(len(ys)))
            diameter_mm = float(rng.uniform(8, 20))
            x, y = float(xs[j]), float(ys[j])
            masks.add_nodule(x, y, diameter_mm)
            r = masks.mm_to_px(diameter_mm) / 2
            yy, xx = np.mgrid[: image.shape[0], : image.shape[1]]
            image += contrast * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * (0.6 * r) ** 2))
            item = f"SYN_{case_id}_{k}"
            Image.fromarray(np.round(np.clip(image, 0, 1) * 255).astype(np.uint8)).save(
                out / "imagesTr" / f"{item}_0000.png")
            Image.fromarray(label_map(masks)).save(out / "labelsTr" / f"{item}.png")
            lines.append({
                "id": item, "image": f"imagesTr/{item}_0000.png", "label": f"labelsTr/{item}.png",
                "synthetic": True, "mode": mode,
                "source": {"dataset": str(data), "case": case_id,
                           "file": str(data / "images" / f"{case_id}.png")},
                "nodules": [{"x": x, "y": y, "diameter_mm": diameter_mm, "subtlety": 3}],
                "source_nodules": source, "seed": seed * 1000 + k, "provenance": {"fake": True},
            })
    dataset_json = {
        "channel_names": {"0": "xray"},
        "labels": LABELS,
        "numTraining": len(lines), "file_ending": ".png",
    }
    (out / "dataset.json").write_text(json.dumps(dataset_json, indent=1))
    (out / "metadata.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    return out

"""Evaluate a synthesis model on a dataset the way the paper did, and the ways it did not.

Every metric is computed at the model's working resolution (256 px for the built-in model), on
grey images in [0, 1], with the functions of ``xraystudio.metrics``. PSNR and SSIM reward blur,
so the report also measures texture (``hf_ratio``), whether the anatomy follows the masks
(``faithfulness_dice``, with the anatomy segmenter), whether painted nodules show
(``nodule_contrast``), and how much two seeds differ (``diversity``). In guided mode nodules are
also painted onto the normal radiographs (sizes and positions borrowed from real nodule cases)
and their contrast compared with real nodules of similar size (``insertion_contrast``).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np

from xraystudio import metrics
from xraystudio.image import XRayImage
from xraystudio.io.atomic import write_text
from xraystudio.io.datasets import Case, JsrtDataset
from xraystudio.io.images import write_png8
from xraystudio.masks import LUNGS, NODULE, MaskStack
from xraystudio.synthesis.condition import Letterbox
from xraystudio.synthesis.engine import Engine, GenerationRequest

log = logging.getLogger(__name__)


@dataclasses.dataclass
class EvalConfig:
    mode: str = "layout"
    seed: int = 0
    steps: int | None = None
    scheduler: str | None = None
    prior: bool | None = None  # layout mode over the layout prior (None: when the model has one)
    limit: int | None = None
    split: str = "all"  # all, val or train (the project's split, JsrtDataset.split)
    diversity: bool = True
    sheet_cases: int = 12


def _nodule_px(masks: MaskStack, box: Letterbox) -> list[tuple[float, float, float]]:
    """Nodule centres and radii in working pixels."""
    scale = box.inner[0] / masks.shape[0]
    oy, ox = box.offset
    return [((n.x + 0.5) * scale - 0.5 + ox, (n.y + 0.5) * scale - 0.5 + oy,
             masks.mm_to_px(n.diameter_mm) * scale / 2) for n in masks.nodules]


def _mean(values: list[float]) -> float | None:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.mean(finite)) if finite else None


class Evaluator:
    def __init__(self, engine: Engine, dataset: JsrtDataset, cfg: EvalConfig,
                 segmenter=None) -> None:
        self.engine, self.dataset, self.cfg, self.segmenter = engine, dataset, cfg, segmenter

    def case_ids(self) -> list[str]:
        if self.cfg.split == "all":
            ids = self.dataset.ids
        else:
            train, val = self.dataset.split()
            ids = val if self.cfg.split == "val" else train
        return ids[: self.cfg.limit] if self.cfg.limit else ids

    def _generate(self, masks: MaskStack, image: XRayImage, seed: int) -> np.ndarray:
        req = GenerationRequest(masks, image, mode=self.cfg.mode, seed=seed, steps=self.cfg.steps,
                                scheduler=self.cfg.scheduler, prior=self.cfg.prior)
        return self.engine.generate(req)[0].working

    def evaluate_case(self, case: Case) -> tuple[dict, list[np.ndarray]]:
        res = self.engine.spec.resolution
        box = Letterbox(case.image.shape, res)
        real = box.to_working(case.image)
        lungs = box.working_mask(case.masks.union(LUNGS))
        image = XRayImage.from_display(case.image, case.masks.spacing_mm)
        gen = self._generate(case.masks, image, self.cfg.seed)
        row: dict = {"case": case.id, "nodule": bool(case.masks.nodules)}
        row.update(metrics.compare(real, gen, lungs if lungs.any() else None))
        if lungs.any():
            row["hf_ratio"] = metrics.hf_ratio(real, gen, lungs)
        if self.cfg.diversity and lungs.any():
            other = self._generate(case.masks, image, self.cfg.seed + 1)
            row["diversity"] = metrics.diversity(gen, other, lungs)
        if self.segmenter is not None:
            seg = self.segmenter.segment(gen)
            truth_lungs = lungs
            pred_lungs = seg["right_lung"] | seg["left_lung"]
            row["faithfulness_dice_lungs"] = metrics.dice(pred_lungs, truth_lungs)
            row["faithfulness_dice_heart"] = metrics.dice(seg["heart"], box.working_mask(case.masks["heart"]))
        for x, y, r in _nodule_px(case.masks, box):
            row["nodule_radius_px"] = r
            row["nodule_contrast_real"] = metrics.nodule_contrast(real, x, y, r)
            row["nodule_contrast_generated"] = metrics.nodule_contrast(gen, x, y, r)
        cond = self.engine.condition(GenerationRequest(case.masks, image), "layout")
        return row, [real, gen, _condition_picture(cond, self.engine.spec.layers)]

    def insertion(self, normals: list[Case], donors: list[Case]) -> list[dict]:
        """Paint real nodules (size, position) onto normal radiographs in guided mode."""
        rows = []
        for i, case in enumerate(normals):
            donor = donors[i % len(donors)]
            n = donor.masks.nodules[0]
            masks = case.masks.copy()
            sx = case.image.shape[1] / donor.image.shape[1]
            sy = case.image.shape[0] / donor.image.shape[0]
            masks.add_nodule(n.x * sx, n.y * sy, n.diameter_mm)
            image = XRayImage.from_display(case.image, case.masks.spacing_mm)
            box = Letterbox(case.image.shape, self.engine.spec.resolution)
            gen = self._generate(masks, image, self.cfg.seed)
            real = box.to_working(case.image)
            x, y, r = _nodule_px(masks, box)[-1]
            donor_box = Letterbox(donor.image.shape, self.engine.spec.resolution)
            dx, dy, dr = _nodule_px(donor.masks, donor_box)[0]
            rows.append({"case": case.id, "donor": donor.id, "size_mm": n.diameter_mm,
                         "contrast_generated": metrics.nodule_contrast(gen, x, y, r),
                         "contrast_before": metrics.nodule_contrast(real, x, y, r),
                         "contrast_donor": metrics.nodule_contrast(
                             donor_box.to_working(donor.image), dx, dy, dr)})
        return rows

    def run(self, out: Path, progress: Callable[[int, int], None] | None = None) -> dict:
        ids = self.case_ids()
        rows, sheet = [], []
        cases: list[Case] = []
        for i, case_id in enumerate(ids):
            case = self.dataset.load(case_id)
            cases.append(case)
            row, pictures = self.evaluate_case(case)
            rows.append(row)
            if len(sheet) < self.cfg.sheet_cases:
                sheet.append(np.concatenate(pictures, axis=1))
            if progress:
                progress(i + 1, len(ids))
        report = {
            "model": self.engine.spec.name,
            "weights_sha256": self.engine.model.weights_hash,
            "mode": self.cfg.mode, "seed": self.cfg.seed,
            "prior": self.cfg.mode == "layout" and self.engine.model.prior is not None
            and self.cfg.prior is not False,
            "steps": self.cfg.steps or self.engine.spec.defaults.steps,
            "scheduler": self.cfg.scheduler or self.engine.spec.defaults.scheduler,
            "resolution": self.engine.spec.resolution, "device": self.engine.device.label,
            "split": self.cfg.split, "cases": rows,
        }
        report["mean"] = summarise(rows)
        if self.cfg.mode == "guided":
            normals = [c for c in cases if not c.masks.nodules]
            donors = [c for c in cases if c.masks.nodules]
            if normals and donors:
                ins = self.insertion(normals, donors)
                report["insertion"] = ins
                report["mean"].update(insertion_summary(ins))
        out.parent.mkdir(parents=True, exist_ok=True)
        write_text(out, json.dumps(report, indent=2) + "\n")
        if sheet:
            write_png8(out.with_suffix(".png"), np.concatenate(sheet, axis=0))
        return report


def insertion_summary(rows: list[dict]) -> dict:
    """How visible nodules painted onto normal radiographs are, against the same real nodules.

    ``insertion_contrast``: contrast at the painted sites over the donors' real nodule contrast
    (the same nodules, so the same sizes). A site's ring often holds brighter structures (ribs,
    hilum), so the contrast there is negative before painting; ``insertion_added_contrast``
    compares what painting added with what the real nodules stand above such sites, estimated
    as the donors' contrast minus the sites' mean contrast before painting.
    """
    gen = _mean([r["contrast_generated"] for r in rows])
    before = _mean([r["contrast_before"] for r in rows])
    donor = _mean([r["contrast_donor"] for r in rows])
    if gen is None or before is None or not donor:
        return {}
    out = {"insertion_contrast": gen / donor, "insertion_sites_before": before,
           "insertion_generated_mean": gen, "insertion_donor_mean": donor,
           "insertion_positive_fraction": float(np.mean(
               [r["contrast_generated"] > r["contrast_before"] for r in rows]))}
    if donor - before > 0:
        out["insertion_added_contrast"] = (gen - before) / (donor - before)
    return out


def summarise(rows: list[dict]) -> dict:
    """Means of every per-case value; nodule contrast as generated over real (ratio of means)."""
    keys = sorted({k for r in rows for k, v in r.items() if isinstance(v, float)})
    mean = {k: _mean([r.get(k) for r in rows]) for k in keys}
    gen = mean.pop("nodule_contrast_generated", None)
    real = mean.pop("nodule_contrast_real", None)
    mean.pop("nodule_radius_px", None)
    mean["nodule_contrast"] = gen / real if gen is not None and real else None
    mean["nodule_contrast_real_mean"] = real
    mean["nodule_contrast_generated_mean"] = gen
    mean["n_cases"] = len(rows)
    return mean


def _condition_picture(cond: np.ndarray, layers: list[str]) -> np.ndarray:
    """A grey picture of the mask condition: anatomy grey, nodules white."""
    anatomy = [cond[i] for i, name in enumerate(layers) if name != NODULE]
    pic = 0.45 * np.max(anatomy, axis=0) if anatomy else np.zeros(cond.shape[1:], np.float32)
    if NODULE in layers:
        pic = np.maximum(pic, cond[layers.index(NODULE)])
    return pic.astype(np.float32)

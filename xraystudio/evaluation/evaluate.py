"""Evaluate new patients (layout and guided modes) the way the paper did, and the ways it did not.

Everything is measured on the saved file, what a user gets: each generated film is written as the
product writes it (a 16-bit PNG at the source's size, as ``xraystudio generate`` does) and read
back. Films are compared at two sizes: the model's coarse size (256 px for the built-in model, the
size of the README's table) and the full resolution the model draws (1024 px), both boxed down
from the saved file. PSNR and SSIM reward blur, so the report also measures:

- texture (``hf_ratio``: lung Laplacian energy over the real film's) at both sizes, and grain:
  the noise power spectrum in flat lung against the real films', by frequency band (``nps``);
- whether the anatomy follows the masks (``faithfulness_dice_*``, the shipped segmenter on the
  generated film against the condition masks), whether painted nodules show
  (``nodule_contrast``, at the saved film's own resolution), how much two seeds differ
  (``diversity``);
- whether a small CNN trained from scratch can tell generated films from real ones
  (``two_sample``: whole films at the coarse size, and full-resolution lung patches);
- whether the films copy the training set (``memorisation``: each film's distance to its
  nearest training film next to that of the held-out real films).

In guided mode nodules are also painted onto the normal radiographs (sizes and positions borrowed
from real nodule cases) and their contrast compared with the real ones (``insertion_contrast``).
What makes the films is a ``Films`` source, so references (the real films of other patients, the
bicubic upsampling of a coarse film: ``benchmarks/realism_baselines.py``) are measured by the
same code as the model.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import numpy as np

from xraystudio import metrics
from xraystudio.evaluation import memorisation, texture
from xraystudio.evaluation.realism import two_sample_auc, zscore
from xraystudio.image import XRayImage
from xraystudio.io.atomic import write_text
from xraystudio.io.datasets import Case, JsrtDataset
from xraystudio.io.images import read_image, write_png8, write_png16
from xraystudio.masks import LUNGS, NODULE, MaskStack
from xraystudio.synthesis.condition import Letterbox

log = logging.getLogger(__name__)


@dataclasses.dataclass
class EvalConfig:
    mode: str = "layout"
    seed: int = 0
    steps: int | None = None
    scheduler: str | None = None
    prior: bool | None = None  # layout mode over the layout prior (None: when the model has one)
    variation: float | None = None  # layout mode over the prior (None: the model's default)
    resolution: int | None = None  # the side the model draws (None: its largest)
    limit: int | None = None
    split: str = "all"  # all, val or train (the project's split, JsrtDataset.split)
    cases: tuple[str, ...] | None = None  # these cases instead of the split's
    diversity: bool = True
    sheet_cases: int = 12
    #: Classifier two-sample test: training steps per fold, seeds (AUCs averaged), and the
    #: full-resolution patches per film (side: 1/8 of the film, 128 px at 1024 px).
    classifier_steps: int = 300
    classifier_seeds: int = 1
    patches_per_film: int = 8
    memorisation: bool = True


class Films(Protocol):
    """What the evaluation measures: saved films for cases, and what made them."""

    coarse: int  # the model's working size: PSNR/SSIM there are the paper's table
    full: int  # the resolution the films are drawn at

    def draw(self, case: Case, masks: MaskStack, seed: int) -> np.ndarray:
        """The saved film for ``masks`` (the case's, or changed), read back: [0, 1] at the
        case's size."""

    def describe(self) -> dict:
        """Report fields naming the source of the films."""


def save_and_read(film: np.ndarray, folder: Path, stem: str) -> np.ndarray:
    """Write ``film`` as the product saves a new patient (16-bit PNG) and read it back."""
    saved = read_image(write_png16(folder / f"{stem}.png", film))
    return saved.values / float(np.iinfo(np.dtype(saved.metadata["dtype"])).max)


class EngineFilms:
    """Films from a synthesis engine in layout or guided mode, saved and read back."""

    def __init__(self, engine, cfg: EvalConfig) -> None:
        self.engine, self.cfg = engine, cfg
        self.coarse = engine.spec.resolution
        self.full = cfg.resolution or engine.resolutions[-1]
        self._tmp = tempfile.TemporaryDirectory(prefix="xraystudio-eval-")
        self.drawn: set[int] = set()
        self.variation: float | None = None

    def draw(self, case: Case, masks: MaskStack, seed: int) -> np.ndarray:
        from xraystudio.synthesis.engine import GenerationRequest

        image = XRayImage.from_display(case.image, case.masks.spacing_mm)
        req = GenerationRequest(masks, image, mode=self.cfg.mode, seed=seed, steps=self.cfg.steps,
                                scheduler=self.cfg.scheduler, prior=self.cfg.prior,
                                resolution=self.cfg.resolution, variation=self.cfg.variation)
        result = self.engine.generate(req)[0]
        self.variation = result.provenance["parameters"].get("variation")
        self.drawn.add(int(result.provenance["model"].get("drawn_resolution",
                                                          result.working.shape[0])))
        return save_and_read(result.image, Path(self._tmp.name), f"{case.id}_seed{seed}")

    def describe(self) -> dict:
        e, cfg = self.engine, self.cfg
        return {
            "model": e.spec.name, "weights_sha256": e.model.weights_hash,
            "prior": cfg.mode == "layout" and e.model.prior is not None and cfg.prior is not False,
            "steps": cfg.steps or e.spec.defaults.steps,
            "scheduler": cfg.scheduler or e.spec.defaults.scheduler,
            "variation": self.variation,
            "resolution": e.spec.resolution, "drawn_resolution": sorted(self.drawn),
            "device": e.device.label,
        }


def _mean(values: list[float]) -> float | None:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.mean(finite)) if finite else None


def _nodules_px(masks: MaskStack) -> list[tuple[float, float, float]]:
    """Nodule centres and radii in the film's own pixels."""
    return [(n.x, n.y, masks.mm_to_px(n.diameter_mm) / 2) for n in masks.nodules]


def _patches(film: np.ndarray, lungs: np.ndarray, side: int, count: int) -> np.ndarray:
    """``count`` squares of ``side`` px of the film, spread over the lungs (whole squares inside
    them where they fit, else squares centred in them), each z-scored.

    Each patch on its own scale: with the film's scale, the grain is a tiny part of what the
    classifier sees beside ribs and shading, and it failed to tell the bicubic upsampling of a
    256 px film from the real one in one of three seeds (AUC 0.76); per patch it told it (1.0).
    """
    corners = texture.flat_rois(lungs, side)
    if not corners:
        ys, xs = np.nonzero(lungs[side // 2:lungs.shape[0] - side // 2 + 1,
                                  side // 2:lungs.shape[1] - side // 2 + 1])
        corners = list(zip(ys.tolist(), xs.tolist())) or [((film.shape[0] - side) // 2,
                                                           (film.shape[1] - side) // 2)]
    pick = np.unique(np.linspace(0, len(corners) - 1, count).round().astype(int))
    return np.stack([zscore(film[y:y + side, x:x + side]) for y, x in (corners[i] for i in pick)])


class Evaluator:
    def __init__(self, films: Films, dataset: JsrtDataset, cfg: EvalConfig,
                 segmenter=None) -> None:
        self.films, self.dataset, self.cfg, self.segmenter = films, dataset, cfg, segmenter
        self._nps: dict[str, list] = {"real": [], "generated": []}
        self._views: dict[str, list] = {k: [] for k in ("film_real", "film_generated",
                                                         "patch_real", "patch_generated",
                                                         "groups")}
        self._thumbs: dict[str, list] = {"real": [], "generated": []}

    def case_ids(self) -> list[str]:
        if self.cfg.cases is not None:
            ids = list(self.cfg.cases)
        elif self.cfg.split == "all":
            ids = self.dataset.ids
        else:
            train, val = self.dataset.split()
            ids = val if self.cfg.split == "val" else train
        return ids[: self.cfg.limit] if self.cfg.limit else ids

    @property
    def nps_side(self) -> int:
        """Side of the flat lung squares: 64 px at 1024 px."""
        return max(8, self.films.full // 16)

    def evaluate_case(self, case: Case) -> tuple[dict, list[np.ndarray]]:
        real = case.image
        gen = self.films.draw(case, case.masks, self.cfg.seed)
        lungs = case.masks.union(LUNGS)
        cbox = Letterbox(real.shape, self.films.coarse)
        fbox = Letterbox(real.shape, self.films.full)
        real_c, gen_c, lungs_c = cbox.to_working(real), cbox.to_working(gen), cbox.working_mask(lungs)
        real_f, gen_f, lungs_f = fbox.to_working(real), fbox.to_working(gen), fbox.working_mask(lungs)
        row: dict = {"case": case.id, "nodule": bool(case.masks.nodules)}
        row.update(metrics.compare(real_c, gen_c, lungs_c if lungs_c.any() else None))
        row.update({f"{k}_full": v for k, v in metrics.compare(
            real_f, gen_f, lungs_f if lungs_f.any() else None).items()})
        if lungs.any():
            row["hf_ratio"] = texture.texture_ratio(real, gen, lungs, self.films.coarse)
            row["hf_ratio_full"] = texture.texture_ratio(real, gen, lungs, self.films.full)
            for name, film in (("real", real_f), ("generated", gen_f)):
                freqs, nps, n = texture.lung_nps(film, lungs_f, self.nps_side)
                self._nps[name].append((nps, n))
            self._freqs = freqs
            row["nps_rois"] = n
            side = max(8, self.films.full // 8)
            self._views["patch_real"].append(_patches(real_f, lungs_f, side, self.cfg.patches_per_film))
            self._views["patch_generated"].append(
                _patches(gen_f, lungs_f, side, self.cfg.patches_per_film))
        if self.cfg.diversity and lungs.any():
            other = self.films.draw(case, case.masks, self.cfg.seed + 1)
            row["diversity"] = metrics.diversity(gen_c, cbox.to_working(other), lungs_c)
        if self.segmenter is not None:
            seg = self.segmenter.segment(gen_c)
            row["faithfulness_dice_lungs"] = metrics.dice(seg["right_lung"] | seg["left_lung"], lungs_c)
            row["faithfulness_dice_heart"] = metrics.dice(seg["heart"],
                                                          cbox.working_mask(case.masks["heart"]))
        for x, y, r in _nodules_px(case.masks):
            row["nodule_radius_px"] = r
            row["nodule_contrast_real"] = metrics.nodule_contrast(real, x, y, r)
            row["nodule_contrast_generated"] = metrics.nodule_contrast(gen, x, y, r)
        self._views["film_real"].append(zscore(real_c))
        self._views["film_generated"].append(zscore(gen_c))
        self._views["groups"].append(case.id)
        self._thumbs["real"].append(memorisation.thumbnail(real))
        self._thumbs["generated"].append(memorisation.thumbnail(gen))
        return row, [real_c, gen_c, _mask_picture(case.masks, cbox)]

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
            gen = self.films.draw(case, masks, self.cfg.seed)
            x, y, r = _nodules_px(masks)[-1]
            dx, dy, dr = _nodules_px(donor.masks)[0]
            rows.append({"case": case.id, "donor": donor.id, "size_mm": n.diameter_mm,
                         "contrast_generated": metrics.nodule_contrast(gen, x, y, r),
                         "contrast_before": metrics.nodule_contrast(case.image, x, y, r),
                         "contrast_donor": metrics.nodule_contrast(donor.image, dx, dy, dr)})
        return rows

    def two_sample(self) -> dict:
        """Held-out AUC of the classifier test on both views (mean over seeds)."""
        v, cfg = self._views, self.cfg
        groups = v["groups"]
        out: dict = {"steps": cfg.classifier_steps, "seeds": cfg.classifier_seeds,
                     "film_px": self.films.coarse, "n_real": len(groups), "n_generated": len(groups)}
        if len(groups) < 4 or not cfg.classifier_seeds:
            return out
        film = [two_sample_auc(v["film_real"], groups, v["film_generated"], groups, seed=s,
                               steps=cfg.classifier_steps, batch=16)
                for s in range(cfg.classifier_seeds)]
        out.update(film_auc=float(np.mean(film)), film_auc_seeds=film)
        if len(v["patch_real"]) == len(groups):
            patch = [two_sample_auc(v["patch_real"], groups, v["patch_generated"], groups,
                                    seed=s, steps=cfg.classifier_steps, batch=32)
                     for s in range(cfg.classifier_seeds)]
            out.update(patch_auc=float(np.mean(patch)), patch_auc_seeds=patch,
                       patch_px=int(v["patch_real"][0].shape[-1]),
                       patches_per_film=int(v["patch_real"][0].shape[0]))
        return out

    def memorisation(self, ids: list[str]) -> dict | None:
        """Nearest training film of each generated and each held-out real film; None when the
        evaluated cases include training cases (their real films would be in the library)."""
        train = self.dataset.split()[0]
        if not self.cfg.memorisation or set(ids) & set(train) or not train:
            return None
        library = np.stack([memorisation.thumbnail(self.dataset.load(i).image) for i in train])
        gen = memorisation.nearest_distances(np.stack(self._thumbs["generated"]), library)
        real = memorisation.nearest_distances(np.stack(self._thumbs["real"]), library)
        return {**memorisation.summary(gen, real), "n_training_films": len(train),
                "generated": gen.tolist(), "real": real.tolist()}

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
            **self.films.describe(), "mode": self.cfg.mode, "seed": self.cfg.seed,
            "split": self.cfg.split, "measured_on": "the saved 16-bit PNG at the source's size",
            "sizes": {"coarse": self.films.coarse, "full": self.films.full},
            "cases": rows,
        }
        report["mean"] = mean = summarise(rows)
        if self._nps["real"]:
            report["nps"] = {"roi_px": self.nps_side, "film_px": self.films.full,
                             **texture.compare_nps(self._nps["real"], self._nps["generated"],
                                                   self._freqs)}
            mean["nps_ratio"] = report["nps"]["ratio"]
            mean["nps_within_factor"] = report["nps"]["within_factor"]
        report["two_sample"] = self.two_sample()
        mean["two_sample_auc_film"] = report["two_sample"].get("film_auc")
        mean["two_sample_auc_patches"] = report["two_sample"].get("patch_auc")
        report["memorisation"] = memo = self.memorisation(ids)
        if memo:
            mean["memorisation_generated_median"] = memo["generated_median"]
            mean["memorisation_real_median"] = memo["real_median"]
            mean["memorisation_not_below_real"] = memo["not_below_real"]
        if self.cfg.mode == "guided":
            normals = [c for c in cases if not c.masks.nodules]
            donors = [c for c in cases if c.masks.nodules]
            if normals and donors:
                ins = self.insertion(normals, donors)
                report["insertion"] = ins
                mean.update(insertion_summary(ins))
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


def _mask_picture(masks: MaskStack, box: Letterbox) -> np.ndarray:
    """A grey picture of the condition masks in the working square: anatomy grey, nodules white."""
    pic = np.zeros((box.size, box.size), np.float32)
    for name in masks.names:
        layer = box.to_working(masks[name].astype(np.float32))
        pic = np.maximum(pic, layer if name == NODULE else 0.45 * layer)
    return pic

"""Evaluate edit mode on held-out radiographs, on the files a user gets.

Every edited radiograph is saved in its source's format (the JSRT cases are 8-bit PNGs, so the
edit is an 8-bit PNG) and read back before anything is measured. Four questions:

- re-insertion: with the region around each real nodule hidden, the model redraws a nodule from
  its disc. Contrast and size against the real nodule, PSNR/SSIM in the window against the truth;
- insertion into normal radiographs, at positions and sizes of real nodules: realism by a
  classifier two-sample test (a small CNN trained from scratch to tell real nodule windows from
  inserted ones, scored by cross-validated AUC over cases; 0.5 = indistinguishable, with the
  same test on simple pasted blobs to show it can tell), texture in the window (``hf_ratio``
  against the source there), a seam measure (gradient energy across the feather against the same
  ring of the source) and contrast against real nodules of the same size;
- removal of real nodules: the contrast left at the site against that of normal lung;
- fill of normal lung, the one edit with a truth: the same places of the normal radiographs
  hidden and redrawn as a removal would; the shift of their contrast and level against the
  source shows what a removal adds of its own;
- unchanged pixels outside the edits, counted exactly.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import tempfile
from collections.abc import Callable

import numpy as np
from scipy import ndimage

from xraystudio import metrics
from xraystudio.evaluation.realism import two_sample_auc
from xraystudio.io.datasets import Case, JsrtDataset
from xraystudio.io.images import read_image
from xraystudio.masks import LUNGS
from xraystudio.synthesis.condition import resize
from xraystudio.synthesis.edit import EditPlan, run_edit, save_edit
from xraystudio.synthesis.edit_window import feather

log = logging.getLogger(__name__)

#: Side of the windows the realism classifier sees, in pixels, and in nodule diameters.
CLASSIFIER_PX = 48
CLASSIFIER_DIAMETERS = 3.0


@dataclasses.dataclass
class EditEvalConfig:
    split: str = "val"
    seed: int = 0
    steps: int | None = None
    insertions_per_normal: int = 6
    limit: int | None = None
    classifier_seeds: int = 3
    #: Training steps of the realism classifier. At 150 it could not tell even pasted blobs from
    #: real nodules (AUC 0.52-0.54 for both); at 1500 it separates edits (0.65) from blobs (0.55),
    #: so the test has the power to fail.
    classifier_steps: int = 1500
    tune_cases: int = 12  # as the edit model's training held out (TrainConfig.edit_tune_cases)
    #: The realism test's real class also takes the training split's real nodules: more real
    #: windows give the classifier the power to tell blobs from nodules (only real pixels are
    #: added; folds still split by case, and nothing edited comes from the training split).
    real_from_train: bool = True


def blob_insert(values: np.ndarray, x: float, y: float, radius_px: float, contrast: float) -> np.ndarray:
    """The simple baseline: a Gaussian-edged disc of ``contrast`` added to the image."""
    yy, xx = np.ogrid[: values.shape[0], : values.shape[1]]
    r = np.sqrt((xx - x) ** 2 + (yy - y) ** 2)
    profile = np.clip(1 - (r / radius_px) ** 2, 0, 1) ** 0.5
    return values + contrast * ndimage.gaussian_filter(profile, radius_px * 0.15)


def effective_diameter(img: np.ndarray, x: float, y: float, radius_px: float) -> float:
    """Diameter (px) where the radial contrast profile falls to half its central value."""
    ring = metrics.nodule_contrast(img, x, y, radius_px)
    r_max = int(2.5 * radius_px) + 2
    y0, x0 = max(0, int(y) - r_max), max(0, int(x) - r_max)
    crop = img[y0:int(y) + r_max + 1, x0:int(x) + r_max + 1]
    yy, xx = np.mgrid[y0:y0 + crop.shape[0], x0:x0 + crop.shape[1]]
    r = np.sqrt((xx - x) ** 2 + (yy - y) ** 2)
    background = crop[(r >= 1.5 * radius_px) & (r <= 2.5 * radius_px)].mean()
    centre = crop[r <= max(1.0, 0.3 * radius_px)].mean() - background
    if ring <= 0 or centre <= 0:
        return math.nan
    for k in np.arange(0.2, 2.5, 0.05) * radius_px:
        shell = (r >= k - 0.7) & (r < k + 0.7)
        if shell.any() and crop[shell].mean() - background <= centre / 2:
            return float(2 * k)
    return math.nan


def seam_ratio(edited: np.ndarray, source: np.ndarray, weight: np.ndarray) -> float:
    """Gradient energy in the feather band (0 < weight < 1) of the edit over the source's."""
    band = (weight > 0) & (weight < 1)
    if not band.any():
        return math.nan
    def energy(a: np.ndarray) -> float:
        gy, gx = np.gradient(ndimage.gaussian_filter(a, 0.7))
        return float(np.sqrt(np.mean(gx[band] ** 2 + gy[band] ** 2)))
    e = energy(source)
    return math.nan if e == 0 else energy(edited) / e


def classifier_window(img: np.ndarray, x: float, y: float, diameter_px: float) -> np.ndarray:
    """The square around a nodule at a fixed size in nodule diameters, z-scored."""
    side = max(8, int(round(CLASSIFIER_DIAMETERS * diameter_px)))
    y0, x0 = int(round(y - side / 2)), int(round(x - side / 2))
    pad = np.pad(img, side, mode="reflect")
    crop = pad[y0 + side:y0 + 2 * side, x0 + side:x0 + 2 * side]
    win = resize(crop, (CLASSIFIER_PX, CLASSIFIER_PX))
    return ((win - win.mean()) / (win.std() + 1e-6)).astype(np.float32)


class EditEvaluator:
    def __init__(self, pipe, dataset: JsrtDataset, cfg: EditEvalConfig) -> None:
        self.pipe, self.dataset, self.cfg = pipe, dataset, cfg
        self._tmp = tempfile.TemporaryDirectory(prefix="xraystudio-eval-")
        #: (source, edit, blob) crops of the first insertions, for the contact sheet.
        self.sheet: list[list[np.ndarray]] = []
        #: (source, removed) crops of the first removals of real nodules.
        self.removal_sheet: list[list[np.ndarray]] = []

    def case_ids(self) -> list[str]:
        if self.cfg.split == "all":
            ids = self.dataset.ids
        elif self.cfg.split == "tune":  # the training split's tuning cases the model never saw
            from xraystudio.io.datasets import tune_split

            ids = tune_split(self.dataset, self.dataset.split()[0], self.cfg.tune_cases)[1]
        else:
            train, val = self.dataset.split()
            ids = val if self.cfg.split == "val" else train
        if not self.cfg.limit:
            return ids
        # At most ``limit`` of each kind, so a short run still measures every question.
        info = {c.id: c for c in self.dataset.cases}
        nodular = [i for i in ids if info[i].nodule][: self.cfg.limit]
        return nodular + [i for i in ids if not info[i].nodule][: self.cfg.limit]

    def _edit(self, case: Case, plan: EditPlan, seed: int) -> tuple[np.ndarray, np.ndarray, dict]:
        """Edit the case's own file and read back what was saved: (edited, source, info), both
        display images in [0, 1], plus the unchanged-pixel check."""
        path = self.dataset.root / "images" / f"{case.id}.png"
        image = read_image(path)
        image = image.with_spacing(case.spacing_mm)
        out = run_edit(self.pipe, image, case.masks, plan, seed, self.cfg.steps)
        [saved] = save_edit(out.values, image, {}, self._tmp.name, f"{case.id}_{seed}")
        back = read_image(saved).values
        outside = int(((back != image.values) & ~out.changed).sum())
        scale = float(np.iinfo(np.dtype(image.metadata["dtype"])).max)
        return back / scale, image.values / scale, {"changed_outside": outside, "sites": out.sites}

    def run(self, progress: Callable[[int, int], None] | None = None) -> dict:
        ids = self.case_ids()
        cases = [self.dataset.load(i) for i in ids]
        nodular = [c for c in cases if c.masks.nodules]
        normals = [c for c in cases if not c.masks.nodules]
        total, done = len(nodular) * 2 + len(normals) * 2, 0
        rows: dict[str, list[dict]] = {"reinsertion": [], "removal": [], "insertion": [],
                                      "normal_lung": [], "fill": []}
        windows = {"real": [], "real_groups": [], "edit": [], "edit_groups": [],
                   "blob": [], "blob_groups": []}
        outside_total = 0
        for case in nodular:
            n = case.masks.nodules[0]
            r_px = case.masks.mm_to_px(n.diameter_mm) / 2
            real_c = metrics.nodule_contrast(case.image, n.x, n.y, r_px)
            windows["real"].append(classifier_window(case.image, n.x, n.y, 2 * r_px))
            windows["real_groups"].append(case.id)
            edited, source, info = self._edit(case, EditPlan([(n.x, n.y, n.diameter_mm)], []),
                                              self.cfg.seed)
            outside_total += info["changed_outside"]
            site = info["sites"][0]
            sl = site.box.inside(source.shape)[:2]
            rows["reinsertion"].append({
                "case": case.id, "diameter_mm": n.diameter_mm, "real_contrast": real_c,
                "contrast": metrics.nodule_contrast(edited, n.x, n.y, r_px),
                "real_diameter_px": effective_diameter(case.image, n.x, n.y, r_px),
                "diameter_px": effective_diameter(edited, n.x, n.y, r_px),
                "psnr_window": metrics.psnr(source[sl], edited[sl]),
                "ssim_window": metrics.ssim(source[sl], edited[sl]),
            })
            done += 1
            if progress:
                progress(done, total)
            edited, source, info = self._edit(case, EditPlan([], [(n.x, n.y, n.diameter_mm)]),
                                              self.cfg.seed + 1)
            outside_total += info["changed_outside"]
            rows["removal"].append({"case": case.id, "diameter_mm": n.diameter_mm,
                                    "real_contrast": real_c,
                                    "contrast": metrics.nodule_contrast(edited, n.x, n.y, r_px),
                                    "seam_ratio": seam_ratio(edited, source,
                                                             _site_weight(info["sites"][0],
                                                                          source.shape))})
            if len(self.removal_sheet) < 12:
                self.removal_sheet.append([_crop(a, n.x, n.y, 6 * r_px) for a in (source, edited)])
            done += 1
            if progress:
                progress(done, total)
        if self.cfg.real_from_train and self.cfg.split == "val":
            for cid in self.dataset.split()[0]:
                info = next(c for c in self.dataset.cases if c.id == cid)
                if not info.nodule:
                    continue
                image = self.dataset.load(cid).image
                windows["real"].append(classifier_window(image, info.x_px, info.y_px,
                                                         info.size_mm / info.spacing_mm))
                windows["real_groups"].append(cid)
        donors = self._donors()
        real_by_size = [(r["diameter_mm"], r["real_contrast"]) for r in rows["reinsertion"]]
        rng = np.random.default_rng(self.cfg.seed)
        for case in normals:
            lungs = case.masks.union(LUNGS)
            placed = self._place(case, lungs, donors, rng)
            for x, y, d in placed:  # normal-lung contrast at the same places, before editing
                rows["normal_lung"].append({"case": case.id, "diameter_mm": d, "contrast":
                                            metrics.nodule_contrast(case.image, x, y,
                                                                    case.masks.mm_to_px(d) / 2)})
            if not placed:
                continue
            filled, source, info = self._edit(case, EditPlan([], placed), self.cfg.seed + 3)
            outside_total += info["changed_outside"]
            for x, y, d in placed:
                r_px = case.masks.mm_to_px(d) / 2
                disc = _disc_mean(filled, x, y, r_px) - _disc_mean(source, x, y, r_px)
                rows["fill"].append({
                    "case": case.id, "diameter_mm": d, "level_shift": disc,
                    "contrast_shift": metrics.nodule_contrast(filled, x, y, r_px)
                    - metrics.nodule_contrast(source, x, y, r_px)})
            done += 1
            if progress:
                progress(done, total)
            edited, source, info = self._edit(case, EditPlan(placed, []), self.cfg.seed + 2)
            outside_total += info["changed_outside"]
            for site in info["sites"]:
                x, y, d = site.nodule
                r_px = case.masks.mm_to_px(d) / 2
                weight = _site_weight(site, source.shape)
                region = weight > 0
                contrast = metrics.nodule_contrast(edited, x, y, r_px)
                blob = blob_insert(source, x, y, r_px, _matched(real_by_size, d))
                windows["edit"].append(classifier_window(edited, x, y, 2 * r_px))
                windows["edit_groups"].append(case.id)
                windows["blob"].append(classifier_window(blob, x, y, 2 * r_px))
                windows["blob_groups"].append(case.id)
                if len(self.sheet) < 12:
                    self.sheet.append([_crop(a, x, y, 6 * r_px) for a in (source, edited, blob)])
                rows["insertion"].append({
                    "case": case.id, "x": x, "y": y, "diameter_mm": d, "contrast": contrast,
                    "real_contrast_same_size": _matched(real_by_size, d),
                    "hf_ratio": metrics.hf_ratio(source, edited, region),
                    "seam_ratio": seam_ratio(edited, source, weight),
                })
            done += 1
            if progress:
                progress(done, total)
        return self._summary(rows, windows, outside_total)

    def _donors(self) -> list[tuple[float, float, float]]:
        """(x, y, diameter mm) of every real nodule of the dataset: positions and sizes only."""
        return [(c.x_px, c.y_px, c.size_mm) for c in self.dataset.cases if c.nodule]

    def _place(self, case: Case, lungs: np.ndarray, donors, rng) -> list[tuple[float, float, float]]:
        """Up to ``insertions_per_normal`` donor nodules that fall in this case's lungs and keep
        clear of each other (their edit windows may overlap; their regions do not)."""
        placed: list[tuple[float, float, float]] = []
        for k in rng.permutation(len(donors)):
            x, y, d = donors[k]
            xi, yi = int(round(x)), int(round(y))
            if not (0 <= yi < lungs.shape[0] and 0 <= xi < lungs.shape[1]) or not lungs[yi, xi]:
                continue
            gap = case.masks.mm_to_px(3.5 * max(d, 10.0))
            if any(math.hypot(x - px, y - py) < gap for px, py, _ in placed):
                continue
            placed.append((float(x), float(y), float(d)))
            if len(placed) >= self.cfg.insertions_per_normal:
                break
        return placed

    def _summary(self, rows: dict, windows: dict, outside_total: int) -> dict:
        def mean(key: str, table: str) -> float | None:
            vals = [r[key] for r in rows[table] if r[key] is not None and math.isfinite(r[key])]
            return float(np.mean(vals)) if vals else None

        re, ins, rem, normal = rows["reinsertion"], rows["insertion"], rows["removal"], rows["normal_lung"]
        normal_c = np.array([r["contrast"] for r in normal]) if normal else np.array([math.nan])
        lo, hi = (float(v) for v in np.percentile(normal_c, [2.5, 97.5]))
        removal_c = np.array([r["contrast"] for r in rem]) if rem else np.array([])
        summary = {
            "reinsertion_contrast_ratio": _ratio(re, "contrast", "real_contrast"),
            "reinsertion_diameter_ratio": _ratio(re, "diameter_px", "real_diameter_px"),
            "reinsertion_psnr_window": mean("psnr_window", "reinsertion"),
            "reinsertion_ssim_window": mean("ssim_window", "reinsertion"),
            "insertion_contrast_ratio": _ratio(ins, "contrast", "real_contrast_same_size"),
            "insertion_hf_ratio": mean("hf_ratio", "insertion"),
            "insertion_seam_ratio": mean("seam_ratio", "insertion"),
            "removal_contrast_mean": float(removal_c.mean()) if removal_c.size else None,
            "removal_real_contrast_mean": mean("real_contrast", "removal"),
            "removal_seam_ratio": mean("seam_ratio", "removal"),
            "fill_contrast_shift_mean": mean("contrast_shift", "fill"),
            "fill_level_shift_mean_abs": (float(np.mean([abs(r["level_shift"]) for r in rows["fill"]]))
                                          if rows["fill"] else None),
            "normal_lung_contrast_mean": float(normal_c.mean()),
            "normal_lung_contrast_95": [lo, hi],
            "removal_within_normal_95": float(np.mean((removal_c >= lo) & (removal_c <= hi)))
            if removal_c.size else None,
            "changed_pixels_outside_edits": outside_total,
            "n_reinsertion": len(re), "n_insertion": len(ins), "n_removal": len(rem),
            "n_fill": len(rows["fill"]),
            "n_real_windows": len(windows["real"]),
        }
        if windows["real"] and windows["edit"] and self.cfg.classifier_seeds:
            aucs = [two_sample_auc(windows["real"], windows["real_groups"], windows["edit"],
                                   windows["edit_groups"], seed=s, steps=self.cfg.classifier_steps)
                    for s in range(self.cfg.classifier_seeds)]
            blobs = [two_sample_auc(windows["real"], windows["real_groups"], windows["blob"],
                                    windows["blob_groups"], seed=s, steps=self.cfg.classifier_steps)
                     for s in range(self.cfg.classifier_seeds)]
            summary.update(realism_classifier_steps=self.cfg.classifier_steps,
                           realism_auc=float(np.mean(aucs)), realism_auc_seeds=aucs,
                           blob_auc=float(np.mean(blobs)), blob_auc_seeds=blobs)
        return {"summary": summary, "cases": rows}


def _disc_mean(img: np.ndarray, x: float, y: float, radius_px: float) -> float:
    yy, xx = np.ogrid[: img.shape[0], : img.shape[1]]
    return float(img[(yy - y) ** 2 + (xx - x) ** 2 <= radius_px**2].mean())


def _site_weight(site, shape: tuple[int, int]) -> np.ndarray:
    """The site's feather weight over the whole image (0 outside its window)."""
    weight = np.zeros(shape, np.float32)
    iy, ix, wy, wx = site.box.inside(shape)
    weight[iy, ix] = feather(site.core, site.band_px)[wy, wx]
    return weight


def _crop(img: np.ndarray, x: float, y: float, side_px: float, size: int = 128) -> np.ndarray:
    """A display crop around (x, y), at the file's own pixels resampled to ``size``."""
    side = max(16, int(round(side_px)))
    pad = np.pad(img, side, mode="reflect")
    y0, x0 = int(round(y - side / 2)) + side, int(round(x - side / 2)) + side
    return resize(pad[y0:y0 + side, x0:x0 + side], (size, size), smooth=True)


def contact_sheet(rows: list[list[np.ndarray]]) -> np.ndarray:
    """Rows of crops side by side (source | edit | blob, or source | removed), each row on one
    grey scale."""
    out = []
    for crops in rows:
        lo, hi = min(c.min() for c in crops), max(c.max() for c in crops)
        out.append(np.concatenate([(c - lo) / max(hi - lo, 1e-6) for c in crops], axis=1))
    return np.concatenate(out, axis=0) if out else np.zeros((1, 1), np.float32)


def _matched(real_by_size: list[tuple[float, float]], diameter_mm: float) -> float:
    """Mean contrast of the real nodules closest in size (the nearest third, at least three)."""
    if not real_by_size:
        return math.nan
    ordered = sorted(real_by_size, key=lambda r: abs(r[0] - diameter_mm))
    k = max(3, len(ordered) // 3)
    return float(np.mean([c for _, c in ordered[:k]]))


def _ratio(table: list[dict], key: str, ref: str) -> float | None:
    """Ratio of means over the rows where both are finite (robust to single tiny references)."""
    pairs = [(r[key], r[ref]) for r in table
             if r[key] is not None and r[ref] is not None and math.isfinite(r[key]) and math.isfinite(r[ref])]
    if not pairs:
        return None
    den = np.mean([p[1] for p in pairs])
    return None if den == 0 else float(np.mean([p[0] for p in pairs]) / den)

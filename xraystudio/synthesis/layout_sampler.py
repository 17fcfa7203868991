"""Nodule layouts like a dataset's: how many, how large, where in the lungs, how conspicuous.

Synthetic training data is only as useful as its layouts are realistic: nodules in the wrong
places or of the wrong sizes teach a detector the wrong prior. The sampler learns, from a
JSRT-style dataset, a few small summary statistics and keeps nothing of the images or masks:

- the number of nodules per nodule case (JSRT has exactly one per case);
- the diameter in mm, as a Gaussian kernel density in log-mm clipped to the observed range
  (stored as a density on a grid, so the file holds no per-case values; the contrasts below
  are kept as deciles for the same reason);
- which lung (right/left frequency);
- the position as a smoothed 12 x 12 histogram in lung-normalised coordinates: each lung's
  bounding box maps to [0, 1]², u running lateral → medial and v top → bottom, so the right and
  left lungs (mirror images) share one density;
- conspicuity (JSRT subtlety 1-5) conditional on the size bin, since large nodules are obvious;
- the measured contrast (``conspicuity.relative_contrast``) as deciles per size bin and
  subtlety, so each proposed nodule carries a contrast a real one of its grade has, which the
  edit then draws it to (old files without the deciles propose no contrast).

Sampling needs only the lung masks of the target study, at any size and spacing: every disc lies
whole inside the lungs (with an edge margin) and clear of existing nodules and of each other.
It uses numpy and scipy only (no Qt, no torch), so the GUI, the CLI and ``synthesize`` share it.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from xraystudio.errors import DatasetError, MaskError, ModelError
from xraystudio.io.atomic import write_text
from xraystudio.masks import LUNGS
from xraystudio.synthesis.conspicuity import MIN_SAME_SUBTLETY, relative_contrast

if TYPE_CHECKING:
    from xraystudio.io.datasets import JsrtDataset
    from xraystudio.masks import MaskStack

log = logging.getLogger(__name__)

LAYOUT_SAMPLER_FILE = "layout_sampler.json"
FORMAT = "xraystudio-layout-sampler"
VERSION = 1
GRID = 12  # spatial histogram bins per axis
SIZE_GRID = 128  # points of the stored size density
SIZE_BIN_EDGES_MM = (10.0, 15.0, 20.0)  # subtlety is conditioned on these size bins
SUBTLETIES = (1, 2, 3, 4, 5)
EDGE_MARGIN_MM = 2.0  # a sampled disc keeps this far inside the lung outline
GAP_MM = 3.0  # and this far from any other nodule's disc
TRIES_PER_SIZE = 100  # positions tried for one drawn size and lung
ROUNDS = 5  # sizes and lungs drawn per nodule before giving up
CONTRAST_QUANTILES = tuple(round(0.05 + 0.1 * k, 2) for k in range(10))  # 5 %, 15 %, ... 95 %
COARSE_PX = 768  # the inside-the-lungs test runs on a grid at most this large


@dataclasses.dataclass(frozen=True)
class SampledNodule:
    """A proposed nodule: centre in pixels of the target masks, diameter in mm, JSRT subtlety."""

    x: float
    y: float
    diameter_mm: float
    subtlety: int | None
    contrast: float | None = None  # in units of the radiograph's value range

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


class LayoutSampler:
    """Fitted layout statistics; :meth:`fit` learns them, :meth:`sample` draws layouts."""

    def __init__(self, stats: dict[str, Any], where: str = "layout sampler statistics") -> None:
        self.stats = _validate(stats, where)
        self._count_values = np.asarray(self.stats["count"]["values"], int)
        self._count_probs = _normalised(self.stats["count"]["probs"])
        self._lung_probs = {k: float(v) for k, v in self.stats["lung"].items()}
        self._log_grid = np.asarray(self.stats["size"]["log_mm_grid"], float)
        density = np.asarray(self.stats["size"]["density"], float)
        steps = np.diff(self._log_grid) * (density[1:] + density[:-1]) / 2
        cdf = np.concatenate([[0.0], np.cumsum(steps)])
        self._size_cdf = cdf / cdf[-1]
        self._spatial = _normalised(np.asarray(self.stats["spatial"]["density"], float).ravel())
        self._subtlety_edges = np.asarray(self.stats["subtlety"]["size_bin_edges_mm"], float)
        probs = self.stats["subtlety"]["probs"]
        self._subtlety_probs = None if probs is None else [_normalised(p) for p in probs]
        self._contrast = self.stats.get("contrast")

    # ------------------------------------------------------------------------------ fitting
    @classmethod
    def fit(cls, dataset: JsrtDataset, case_ids: list[str] | None = None) -> LayoutSampler:
        """Learn the statistics from the nodule cases among ``case_ids`` (all cases if None).

        Pass the training split (``dataset.split()[0]``) so that nothing of the validation
        cases leaks into a model folder that is evaluated on them.
        """
        wanted = set(dataset.ids if case_ids is None else case_ids)
        unknown = wanted - set(dataset.ids)
        if unknown:
            raise DatasetError(f"no case(s) {', '.join(sorted(unknown)[:5])} in {dataset.root}")
        infos = [c for c in dataset.cases if c.id in wanted and c.nodule]
        if not infos:
            raise DatasetError(f"{dataset.root}: none of the chosen cases has a nodule to learn from")
        sizes, uv, lungs, subtlety, contrast = [], [], [], [], []
        outside = 0
        for info in infos:
            case = dataset.load(info.id)
            where = _lung_coordinates(case.masks, info.x_px, info.y_px)
            if where is None:
                log.warning("case %s has no lung masks; its nodule is not used", info.id)
                continue
            lung, u, v, inside = where
            outside += not inside
            sizes.append(float(info.size_mm))
            uv.append((u, v))
            lungs.append(lung)
            subtlety.append(info.subtlety)
            contrast.append(relative_contrast(case.image, info.x_px, info.y_px,
                                              info.size_mm / case.spacing_mm[1] / 2))
        if not sizes:
            raise DatasetError(f"{dataset.root}: no nodule case has lung masks")
        if outside:
            log.info("%d of %d nodule centres lie outside the lung masks (behind the heart or "
                     "the diaphragm); they count for the nearest lung", outside, len(sizes))
        stats = {
            "format": FORMAT,
            "version": VERSION,
            "fitted_on": {"dataset": dataset.root.name, "cases": len(wanted),
                          "nodules": len(sizes), "centres_outside_lungs": outside},
            # The JSRT layout holds one nodule per nodule case, so counts are all 1 there.
            "count": {"values": [1], "probs": [1.0]},
            "lung": {name: lungs.count(name) / len(lungs) for name in LUNGS},
            "size": _fit_sizes(np.asarray(sizes)),
            "spatial": {"bins": GRID, "axes": ["v (top to bottom)", "u (lateral to medial)"],
                        "density": _fit_spatial(np.asarray(uv)).round(6).tolist()},
            "subtlety": _fit_subtlety(np.asarray(sizes), subtlety),
            "contrast": _fit_contrast(np.asarray(sizes), subtlety, np.asarray(contrast)),
            "edge_margin_mm": EDGE_MARGIN_MM,
            "gap_mm": GAP_MM,
        }
        return cls(stats)

    # ------------------------------------------------------------------------------ file I/O
    def save(self, path: str | os.PathLike) -> None:
        write_text(path, json.dumps(self.stats, indent=1) + "\n")

    @classmethod
    def load(cls, path: str | os.PathLike) -> LayoutSampler:
        path = Path(path)
        try:
            stats = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ModelError(f"cannot read the layout sampler {path}: {exc}") from exc
        return cls(stats, str(path))

    # ------------------------------------------------------------------------------ sampling
    def sample(
        self,
        masks: MaskStack,
        spacing_mm: float,
        rng: np.random.Generator,
        n: int | None = None,
        min_n: int = 1,
        existing: Sequence[tuple[float, float, float]] = (),
    ) -> list[SampledNodule]:
        """A layout of ``n`` nodules (drawn from the count distribution if None, at least
        ``min_n``) inside the lungs of ``masks``, whose pixels are ``spacing_mm`` apart.

        Each nodule keeps clear of ``existing`` (x, y, diameter_mm) and of those placed before
        it. Rejection sampling is bounded; if fewer than ``n`` fit, the rest are dropped with a
        warning, and fewer than ``min_n`` is a :class:`MaskError`. The result depends only on
        the state of ``rng``.
        """
        if spacing_mm <= 0:
            raise MaskError(f"pixel spacing must be positive, got {spacing_mm}")
        if n is None:
            n = max(int(rng.choice(self._count_values, p=self._count_probs)), min_n)
        boxes = {name: _bbox(masks[name]) for name in LUNGS if name in masks}
        boxes = {name: box for name, box in boxes.items() if box is not None}
        if not boxes:
            raise MaskError("the study has no lung masks: segment or paint the lungs first")
        clearance, f = _clearance(masks.union(boxes))
        lungs = list(boxes)
        lung_p = _normalised([self._lung_probs.get(name, 0.0) + 1e-6 for name in lungs])
        placed: list[tuple[float, float, float]] = [tuple(map(float, e)) for e in existing]
        out: list[SampledNodule] = []
        for _ in range(n):
            nodule = self._place(rng, clearance, f, boxes, lungs, lung_p, placed, spacing_mm)
            if nodule is None:
                break
            out.append(nodule)
            placed.append((nodule.x, nodule.y, nodule.diameter_mm))
        if len(out) < min_n:
            raise MaskError(
                f"only {len(out)} of {n} nodule(s) fit in the lungs clear of the other nodules; "
                "the lungs are too small or too crowded"
            )
        if len(out) < n:
            log.warning("only %d of %d nodules fit in the lungs; the layout has fewer",
                        len(out), n)
        return out

    def _place(self, rng: np.random.Generator, clearance: np.ndarray, f: int,
               boxes: dict[str, tuple[int, int, int, int]], lungs: list[str],
               lung_p: np.ndarray, placed: list[tuple[float, float, float]],
               spacing_mm: float) -> SampledNodule | None:
        margin_px = self.stats["edge_margin_mm"] / spacing_mm
        gap_px = self.stats["gap_mm"] / spacing_mm
        for _ in range(ROUNDS):
            diameter = self._draw_size(rng)
            lung = lungs[int(rng.choice(len(lungs), p=lung_p))]
            y0, x0, y1, x1 = boxes[lung]
            r = diameter / spacing_mm / 2
            for _ in range(TRIES_PER_SIZE):
                cell = int(rng.choice(self._spatial.size, p=self._spatial))
                v = (cell // GRID + rng.random()) / GRID
                u = (cell % GRID + rng.random()) / GRID
                across = u if lung == "right_lung" else 1.0 - u  # image x: right lung is on the left
                x = x0 + across * (x1 - x0)
                y = y0 + v * (y1 - y0)
                # (x, y) lies in the lung's box, so the nearest pixel is in the image. The disc's
                # pixels are within r of (x, y), hence within r + 0.71 of that pixel.
                yi, xi = int(round(y)), int(round(x))
                if clearance[yi // f, xi // f] < r + margin_px + 1.0:
                    continue
                if any(math.hypot(x - px, y - py) < r + pd / spacing_mm / 2 + gap_px
                       for px, py, pd in placed):
                    continue
                level = self._draw_subtlety(rng, diameter)
                return SampledNodule(float(x), float(y), float(diameter), level,
                                     self._draw_contrast(rng, diameter, level))
        return None

    def _draw_size(self, rng: np.random.Generator) -> float:
        return float(np.exp(np.interp(rng.random(), self._size_cdf, self._log_grid)))

    def _draw_subtlety(self, rng: np.random.Generator, diameter_mm: float) -> int | None:
        if self._subtlety_probs is None:
            return None
        probs = self._subtlety_probs[int(np.searchsorted(self._subtlety_edges, diameter_mm))]
        return int(rng.choice(SUBTLETIES, p=probs))

    def _draw_contrast(self, rng: np.random.Generator, diameter_mm: float,
                       subtlety: int | None) -> float | None:
        """A contrast from the deciles of the real nodules of this size bin and subtlety (of
        the size bin alone where that subtlety had too few, of all where the bin had none)."""
        table = self._contrast
        if table is None:
            return None
        b = int(np.searchsorted(table["size_bin_edges_mm"], diameter_mm))
        rows = [table["by_subtlety"][b][subtlety - 1] if subtlety in SUBTLETIES else None,
                table["by_size"][b], table["all"]]
        row = next(r for r in rows if r is not None)
        return float(np.interp(rng.random(), table["quantiles"], row))

    def typical_contrast(self, diameter_mm: float, subtlety: int | None = None) -> float | None:
        """The contrast a stamped nodule is drawn to unless the user types one: without a grade
        the median of the real nodules of its size; with a JSRT subtlety grade (1 extremely
        subtle ... 5 obvious) the middle of that grade's band among them. None for a sampler
        fitted without contrasts.

        Why the median of real ones: left to itself the edit model draws a faint haze, and a
        nodule no one can see teaches a detector nothing. Why bands and not each grade's own
        median: per size bin most grades have only a handful of JSRT nodules, and their medians
        do not rise with the grade (a reader's grade weighs more than contrast: place, ribs,
        edge); ranking the size's real contrasts and giving each grade its share of them, in
        the proportions JSRT has at that size, keeps the scale monotone and every value real.
        """
        table = self._contrast
        if table is None:
            return None
        b = int(np.searchsorted(table["size_bin_edges_mm"], diameter_mm))
        row = table["by_size"][b] if table["by_size"][b] is not None else table["all"]
        return float(np.interp(self.grade_quantile(diameter_mm, subtlety), table["quantiles"],
                               row))

    def grade_quantile(self, diameter_mm: float, subtlety: int | None) -> float:
        """Where a subtlety grade sits among the real contrasts of its size: the middle of its
        band when the size's nodules are ranked by contrast and shared out to the grades in
        their JSRT proportions (0.5 without a grade; equal shares without subtlety stats)."""
        if subtlety is None:
            return 0.5
        if subtlety not in SUBTLETIES:
            raise ValueError(f"a JSRT subtlety grade is 1 to 5, not {subtlety}")
        if self._subtlety_probs is None:
            probs = np.full(len(SUBTLETIES), 1 / len(SUBTLETIES))
        else:
            probs = self._subtlety_probs[int(np.searchsorted(self._subtlety_edges, diameter_mm))]
        below = float(np.sum(probs[:subtlety - 1]))
        return below + float(probs[subtlety - 1]) / 2

def _clearance(lungs: np.ndarray) -> tuple[np.ndarray, int]:
    """A lower bound of each pixel's distance (px) to the nearest pixel outside ``lungs``, on a
    grid ``f`` times coarser, and ``f``.

    The exact distance transform of a 3000 x 3000 study takes seconds, too long for a click.
    On the coarse grid a cell counts as lung only if all its f x f pixels are; a pixel and any
    outside pixel then lie within f/sqrt(2) of their cells' centres, so ``f * (d - sqrt(2))``
    never overestimates (f = 1 is exact).
    """
    from scipy import ndimage

    f = max(1, math.ceil(max(lungs.shape) / COARSE_PX))
    h, w = -(-lungs.shape[0] // f) * f, -(-lungs.shape[1] // f) * f
    padded = np.zeros((h, w), bool)
    padded[:lungs.shape[0], :lungs.shape[1]] = lungs
    cells = padded.reshape(h // f, f, w // f, f).all(axis=(1, 3))
    d = ndimage.distance_transform_edt(np.pad(cells, 1))[1:-1, 1:-1]
    return (d if f == 1 else f * np.maximum(d - math.sqrt(2), 0.0)), f


#: Words a stamped nodule's contrast may be given as, besides a percentage: the typical one of
#: its size, a JSRT subtlety grade at its size, or none (as the model draws it).
TYPICAL, MODEL_OWN = "typical", "model"
GRADE_WORDS = tuple(f"g{g}" for g in SUBTLETIES)


def parse_stamp_contrast(text: str) -> float | str:
    """A stamped nodule's contrast as typed (GUI list, CLI ``--nodule X,Y,MM,C``): a percentage
    of the value range (returned as a fraction), ``typical``, ``g1``-``g5`` or ``model``
    (returned as the word). ValueError for anything else."""
    word = text.strip().lower()
    if word in (TYPICAL, MODEL_OWN, *GRADE_WORDS):
        return word
    return float(word.rstrip("%").strip().replace(",", ".")) / 100


def stamp_contrast(value: float | str | None, sampler: LayoutSampler | None,
                   diameter_mm: float) -> float | None:
    """The target contrast of a stamped nodule of ``diameter_mm``: a fraction is kept; a word
    of :func:`parse_stamp_contrast` (None meaning ``typical``) is looked up in ``sampler``;
    ``model`` or a sampler without contrasts gives None (as the model draws it)."""
    if isinstance(value, float | int):
        return float(value)
    word = value or TYPICAL
    if word == MODEL_OWN or sampler is None:
        if word not in (MODEL_OWN, TYPICAL):
            raise ValueError(f"{word} needs the model's layout sampler (layout_sampler.json), "
                             "which it does not have")
        return None
    return sampler.typical_contrast(diameter_mm, None if word == TYPICAL else int(word[1:]))


def default_sampler(model_dir: str | os.PathLike) -> LayoutSampler | None:
    """The sampler shipped beside a model (``model_dir/layout_sampler.json``), None if none.

    A file that is there but broken raises :class:`ModelError` rather than passing for absent.
    """
    path = Path(model_dir) / LAYOUT_SAMPLER_FILE
    return LayoutSampler.load(path) if path.is_file() else None


# ---------------------------------------------------------------------------------- fitting
def _bbox(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """(y0, x0, y1, x1) of a mask's pixels, with y1/x1 the last pixel; None when empty."""
    ys = np.flatnonzero(mask.any(axis=1))
    xs = np.flatnonzero(mask.any(axis=0))
    if ys.size == 0:
        return None
    return int(ys[0]), int(xs[0]), int(ys[-1]), int(xs[-1])


def _lung_coordinates(masks: MaskStack, x: float, y: float) -> tuple[str, float, float, bool] | None:
    """(lung, u, v, inside): the lung a point belongs to and its lung-normalised position.

    A centre outside both masks (JSRT has a few behind the heart) goes to the lung whose
    outline is nearest; u, v are clipped to [0, 1].
    """
    best = None
    for name in LUNGS:
        if name not in masks:
            continue
        layer = np.asarray(masks[name])
        ys, xs = np.nonzero(layer)
        if ys.size == 0:
            continue
        yi = min(max(int(round(y)), 0), layer.shape[0] - 1)
        xi = min(max(int(round(x)), 0), layer.shape[1] - 1)
        inside = bool(layer[yi, xi])
        distance = 0.0 if inside else float(np.min((xs - x) ** 2 + (ys - y) ** 2))
        if best is None or distance < best[0]:
            best = (distance, name, inside, (int(ys.min()), int(xs.min()),
                                             int(ys.max()), int(xs.max())))
    if best is None:
        return None
    _, name, inside, (y0, x0, y1, x1) = best
    across = (x - x0) / max(x1 - x0, 1)
    u = across if name == "right_lung" else 1.0 - across
    v = (y - y0) / max(y1 - y0, 1)
    return name, float(np.clip(u, 0, 1)), float(np.clip(v, 0, 1)), inside


def _fit_sizes(sizes: np.ndarray) -> dict[str, Any]:
    """Gaussian KDE in log-mm (Silverman's bandwidth), on a grid over the observed range."""
    logs = np.log(sizes)
    lo, hi = float(logs.min()), float(logs.max())
    spread = min(float(np.std(logs)), float(np.subtract(*np.percentile(logs, [75, 25]))) / 1.34)
    bandwidth = 0.9 * (spread or float(np.std(logs)) or 0.1) * len(logs) ** -0.2
    if hi - lo < 1e-6:  # one size only: a narrow band around it
        lo, hi = lo - bandwidth, hi + bandwidth
    grid = np.linspace(lo, hi, SIZE_GRID)
    density = np.exp(-0.5 * ((grid[:, None] - logs[None, :]) / bandwidth) ** 2).sum(axis=1)
    density /= np.trapezoid(density, grid)
    return {"log_mm_grid": grid.round(6).tolist(), "density": density.round(6).tolist(),
            "bandwidth_log_mm": round(bandwidth, 6), "min_mm": float(sizes.min()),
            "max_mm": float(sizes.max()), "median_mm": float(np.median(sizes))}


def _fit_spatial(uv: np.ndarray) -> np.ndarray:
    """A 12 x 12 histogram of (v, u), smoothed by one bin, with a small floor so that no part
    of the lung is impossible; normalised to sum 1."""
    from scipy import ndimage

    cells = np.minimum((uv * GRID).astype(int), GRID - 1)
    hist = np.zeros((GRID, GRID))
    np.add.at(hist, (cells[:, 1], cells[:, 0]), 1.0)
    smooth = ndimage.gaussian_filter(hist, sigma=1.0, mode="nearest")
    smooth /= smooth.sum()
    smooth += 0.02 / smooth.size
    return smooth / smooth.sum()


def _fit_subtlety(sizes: np.ndarray, subtlety: list[int | None]) -> dict[str, Any]:
    """P(subtlety | size bin), with half a count added to every level of every bin."""
    known = [(s, t) for s, t in zip(sizes, subtlety) if t in SUBTLETIES]
    if not known:
        return {"size_bin_edges_mm": list(SIZE_BIN_EDGES_MM), "probs": None}
    counts = np.full((len(SIZE_BIN_EDGES_MM) + 1, len(SUBTLETIES)), 0.5)
    for size, level in known:
        counts[int(np.searchsorted(SIZE_BIN_EDGES_MM, size)), level - 1] += 1
    probs = counts / counts.sum(axis=1, keepdims=True)
    return {"size_bin_edges_mm": list(SIZE_BIN_EDGES_MM), "levels": list(SUBTLETIES),
            "probs": probs.round(6).tolist(), "counts": (counts - 0.5).astype(int).tolist()}


def _fit_contrast(sizes: np.ndarray, subtlety: list[int | None],
                  contrast: np.ndarray) -> dict[str, Any] | None:
    """Deciles of the positive contrasts per size bin and subtlety (None where fewer than
    ``MIN_SAME_SUBTLETY`` nodules), per size bin, and of all; None without a positive one."""
    keep = contrast > 0
    if not keep.any():
        return None
    bins = np.searchsorted(SIZE_BIN_EDGES_MM, sizes)
    levels = np.array([t if t in SUBTLETIES else 0 for t in subtlety])

    def deciles(sel: np.ndarray) -> list[float] | None:
        values = contrast[sel & keep]
        if values.size < MIN_SAME_SUBTLETY:
            return None
        return np.quantile(values, CONTRAST_QUANTILES).round(6).tolist()

    n_bins = len(SIZE_BIN_EDGES_MM) + 1
    return {
        "unit": "disc mean minus ring mean (1.5-2.5 r), over the radiograph's value range",
        "size_bin_edges_mm": list(SIZE_BIN_EDGES_MM),
        "quantiles": list(CONTRAST_QUANTILES),
        "by_subtlety": [[deciles((bins == b) & (levels == t)) for t in SUBTLETIES]
                        for b in range(n_bins)],
        "by_size": [deciles(bins == b) for b in range(n_bins)],
        "all": np.quantile(contrast[keep], CONTRAST_QUANTILES).round(6).tolist(),
    }


# ---------------------------------------------------------------------------------- checking
def _normalised(p: Sequence[float] | np.ndarray) -> np.ndarray:
    p = np.asarray(p, float)
    return p / p.sum()


def _validate(stats: Any, where: str) -> dict[str, Any]:
    """The statistics if well formed, else a ModelError saying what is wrong."""
    def fail(what: str) -> ModelError:
        return ModelError(f"{where} is not a usable layout sampler: {what}")

    if not isinstance(stats, dict) or stats.get("format") != FORMAT:
        raise fail(f"it has no \"format\": \"{FORMAT}\"")
    if stats.get("version") != VERSION:
        raise fail(f"version {stats.get('version')!r} is not {VERSION}")
    try:
        counts = stats["count"]
        _probabilities(counts["probs"], len(counts["values"]), "count.probs")
        if any(int(v) != v or v < 1 for v in counts["values"]):
            raise ValueError("count.values must be whole numbers of at least 1")
        if set(stats["lung"]) - set(LUNGS):
            raise ValueError(f"lung keys must be among {', '.join(LUNGS)}")
        _probabilities(list(stats["lung"].values()), len(stats["lung"]), "lung")
        grid = np.asarray(stats["size"]["log_mm_grid"], float)
        density = np.asarray(stats["size"]["density"], float)
        if grid.ndim != 1 or grid.size < 2 or density.shape != grid.shape \
                or not np.all(np.diff(grid) > 0):
            raise ValueError("size.log_mm_grid must increase and match size.density")
        _probabilities(density, grid.size, "size.density")
        spatial = np.asarray(stats["spatial"]["density"], float)
        if spatial.shape != (GRID, GRID):
            raise ValueError(f"spatial.density must be {GRID} x {GRID}")
        _probabilities(spatial.ravel(), GRID * GRID, "spatial.density")
        edges = stats["subtlety"]["size_bin_edges_mm"]
        if stats["subtlety"]["probs"] is not None:
            rows = stats["subtlety"]["probs"]
            if len(rows) != len(edges) + 1:
                raise ValueError("subtlety.probs needs one row per size bin")
            for row in rows:
                _probabilities(row, len(SUBTLETIES), "subtlety.probs")
        if stats.get("contrast") is not None:
            _check_contrast(stats["contrast"])
        for key in ("edge_margin_mm", "gap_mm"):
            if not (math.isfinite(stats[key]) and stats[key] >= 0):
                raise ValueError(f"{key} must be a non-negative number")
    except KeyError as exc:
        raise fail(f"it lacks {exc}") from None
    except (TypeError, ValueError) as exc:
        raise fail(str(exc)) from None
    return stats


def _check_contrast(table: dict[str, Any]) -> None:
    q = np.asarray(table["quantiles"], float)
    if q.ndim != 1 or q.size < 2 or not np.all(np.diff(q) > 0) or q[0] < 0 or q[-1] > 1:
        raise ValueError("contrast.quantiles must increase within [0, 1]")
    n_bins = len(table["size_bin_edges_mm"]) + 1
    if len(table["by_size"]) != n_bins or len(table["by_subtlety"]) != n_bins \
            or any(len(b) != len(SUBTLETIES) for b in table["by_subtlety"]) or table["all"] is None:
        raise ValueError("contrast needs a row per size bin (and per subtlety in each) and 'all'")
    rows = [table["all"], *table["by_size"], *(r for b in table["by_subtlety"] for r in b)]
    for row in rows:
        if row is not None and (len(row) != q.size or not np.all(np.isfinite(row))
                                or np.any(np.diff(row) < 0)):
            raise ValueError("each contrast row must hold one non-decreasing value per quantile")


def _probabilities(values: Any, length: int, name: str) -> None:
    p = np.asarray(values, float)
    if p.shape != (length,) or not np.all(np.isfinite(p)) or np.any(p < 0) or p.sum() <= 0:
        raise ValueError(f"{name} must be {length} non-negative numbers, not all zero")

"""A sweep: up to three axes over one study, every cell an ordinary generation, measured.

Cell order is x fastest, then y, then z (``index = (iz * ny + iy) * nx + ix``): a grid page is
read row by row. Every cell uses the sweep's one seed unless the seed itself is an axis, so two
cells differ only in what their axes say. A cell's request is the base settings with its axis
values put in; mask layer axes act on a copy of the study's masks (``off`` empties the layer,
``+N``/``-N`` dilates or erodes it by N mm with :meth:`MaskStack.grow`), so the condition the
model sees really changes and the study's masks never do.

Each finished cell is measured at the model's working size, the resolution the evaluation
reports: PSNR/SSIM against the source (global and lungs), nodule contrast (mean over the cell's
nodules), faithfulness Dice (the anatomy segmenter's lungs and heart on the generated image
against the cell's masks, when the segmenter is present) and the mean absolute difference to
the first cell. A cancelled sweep keeps its finished cells; a cell that fails (an invalid
combination the engine refuses) is recorded with its message and the sweep goes on.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import logging
import math
import secrets
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from xraystudio.errors import GenerationCancelled, SweepError, XRayStudioError
from xraystudio.explore.axes import MAX_AXES, Axis, layer_mm
from xraystudio.masks import LUNGS, NODULE, MaskStack

log = logging.getLogger(__name__)

FORMAT = "xraystudio-sweep"
VERSION = 1
MAX_CELLS = 400
#: Request keywords a sweep's base settings may carry (the rest are the engine's defaults).
BASE_KEYS = ("mode", "steps", "scheduler", "conditioning_scale", "control_start", "control_end",
             "guidance_scale", "prompt", "negative_prompt", "prior", "variation", "guide_strength")
#: Metrics a cell may have, in the order the CSV and the grid offer them.
METRICS = ("psnr", "ssim", "psnr_lungs", "ssim_lungs", "nodule_contrast", "faithfulness_dice",
           "faithfulness_dice_heart", "diff_to_first")
METRIC_TITLES = {
    "psnr": "PSNR (dB)", "ssim": "SSIM", "psnr_lungs": "PSNR lungs (dB)",
    "ssim_lungs": "SSIM lungs", "nodule_contrast": "Nodule contrast",
    "faithfulness_dice": "Faithfulness Dice (lungs)",
    "faithfulness_dice_heart": "Faithfulness Dice (heart)",
    "diff_to_first": "Difference to first cell",
}


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


@dataclasses.dataclass(frozen=True)
class Cell:
    index: int
    coords: tuple[int, int, int]  # ix, iy, iz
    values: dict[str, Any]  # axis name -> value
    labels: dict[str, str]  # axis name -> label

    @property
    def title(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.labels.items())


def _nothing_to_edit(masks: MaskStack) -> bool:
    from xraystudio.synthesis.edit import plan_from_masks

    return plan_from_masks(masks).empty


@dataclasses.dataclass
class Sweep:
    """What to sweep: the axes (x, y, z), the base settings, the model and the seed."""

    axes: list[Axis]
    base: dict[str, Any] = dataclasses.field(default_factory=dict)
    model: str | None = None  # model folder; None: the built-in model
    seed: int | None = None  # None: one random seed, chosen once and recorded

    def __post_init__(self) -> None:
        if not self.axes:
            raise SweepError("a sweep needs at least one axis")
        if len(self.axes) > MAX_AXES:
            raise SweepError(f"a sweep has at most {MAX_AXES} axes")
        unknown = set(self.base) - set(BASE_KEYS)
        if unknown:
            raise SweepError(f"unknown base settings {sorted(unknown)}")
        self.base = {k: v for k, v in self.base.items() if v is not None}
        if self.seed is None:
            self.seed = secrets.randbits(31)
        if self.n_cells > MAX_CELLS:
            raise SweepError(f"the sweep has {self.n_cells} cells; at most {MAX_CELLS}")

    @property
    def shape(self) -> tuple[int, int, int]:
        sizes = [len(a) for a in self.axes] + [1] * (3 - len(self.axes))
        return sizes[0], sizes[1], sizes[2]

    @property
    def n_cells(self) -> int:
        return math.prod(self.shape)

    def axis(self, name: str) -> Axis | None:
        return next((a for a in self.axes if a.name == name), None)

    def cells(self) -> list[Cell]:
        """Every cell, x fastest, then y, then z."""
        nx, ny, nz = self.shape
        out = []
        for iz, iy, ix in itertools.product(range(nz), range(ny), range(nx)):
            coords = (ix, iy, iz)
            values, labels = {}, {}
            for k, axis in enumerate(self.axes):
                values[axis.name] = axis.values[coords[k]]
                labels[axis.name] = axis.labels[coords[k]]
            out.append(Cell(len(out), coords, values, labels))
        return out

    # --------------------------------------------------------------- checking
    def prepare(self, masks: MaskStack, specs: dict) -> str:
        """Settle the base mode, then :meth:`check`; returns a note for the user ("" if none).

        Without a mode axis a sweep compares whole generations: with no mode given, or edit
        mode on a study with nothing to edit (edit mode would change nothing), the base mode is
        the first model's default. The window and the command line both prepare through here.
        """
        note = ""
        mode = self.base.get("mode")
        if self.axis("mode") is None and (mode is None
                                          or (mode == "edit" and _nothing_to_edit(masks))):
            ref = self.axis("model").values[0] if self.axis("model") else self.model
            self.base["mode"] = specs[ref].defaults.mode
            if mode == "edit":
                note = f"in {self.base['mode']} mode: edit mode has nothing to edit on this study"
        self.check(masks, specs)
        return note

    def check(self, masks: MaskStack, specs: dict | None = None) -> None:
        """Refuse sweeps that cannot work on this study (and, with ``specs`` — model ref to
        ModelSpec — with these models) before any cell runs."""
        for axis in self.axes:
            if axis.is_layer:
                if axis.layer not in masks:
                    raise SweepError(f"{axis.name}: the study has no mask layer {axis.layer!r}; "
                                     f"its layers are {', '.join(masks.names)}")
                if not masks[axis.layer].any() and any(v != "off" for v in axis.values):
                    raise SweepError(f"{axis.name}: the {axis.layer} layer is empty: paint it "
                                     "before sweeping it")
            if axis.name == "nodule_diameter" and not masks.nodules:
                raise SweepError("nodule_diameter: the study has no nodules; stamp one first")
        for cell in self.cells():
            params = self.params(cell)
            ref = cell.values.get("model", self.model)
            spec = (specs or {}).get(ref)
            d = spec.defaults if spec is not None else None
            start = params.get("control_start", d.control_start if d else 0.0)
            end = params.get("control_end", d.control_end if d else 1.0)
            if not start < end:
                raise SweepError(f"cell {cell.title or cell.index}: control start {start:g} "
                                 f"is not before control end {end:g}")
            mode = params.get("mode", d.mode if d else None)
            if "guide_strength" in params and mode not in (None, "guided"):
                raise SweepError(f"cell {cell.title}: guide strength applies to guided mode, "
                                 f"not {mode}")
            if "detail_gain" in params and mode == "edit":
                raise SweepError(f"cell {cell.title}: the detail gain applies to layout and "
                                 "guided modes at full resolution, not edit mode")
            if "variation" in params and mode not in (None, "layout"):
                raise SweepError(f"cell {cell.title}: the variation applies to layout mode, "
                                 f"not {mode}")
            if "variation" in params and params.get("prior") is False:
                raise SweepError(f"cell {cell.title}: the variation applies over the layout "
                                 "prior, which this cell turns off")
            if "prior" in cell.values and mode not in (None, "layout"):
                raise SweepError(f"cell {cell.title}: the layout prior applies to layout mode, "
                                 f"not {mode}")
            if spec is not None:
                for axis in self.axes:
                    if axis.is_layer and axis.layer not in spec.layers:
                        raise SweepError(f"{axis.name}: model {spec.name} does not take the "
                                         f"{axis.layer} layer (it takes {', '.join(spec.layers)})")

    # ---------------------------------------------------------------- requests
    def params(self, cell: Cell) -> dict[str, Any]:
        """The cell's request keywords besides masks and image (seed included)."""
        p = dict(self.base)
        p["seed"] = int(self.seed)
        for name, value in cell.values.items():
            if name in ("model", "nodule_diameter") or name.startswith("layer."):
                continue
            p[name] = value
        # The window's settings (the base) carry layout mode's variation; a cell an axis takes
        # out of layout mode, or off the prior, draws without it. Only an axis's own value is
        # refused there (``check``).
        if "variation" not in cell.values and (p.get("prior") is False
                                               or p.get("mode") not in (None, "layout")):
            p.pop("variation", None)
        return p

    def masks_for(self, cell: Cell, masks: MaskStack) -> MaskStack:
        """The study's masks as this cell gives them to the model (a copy when changed)."""
        changes = {k: v for k, v in cell.values.items()
                   if k.startswith("layer.") or k == "nodule_diameter"}
        if not changes:
            return masks
        out = masks.copy()
        for name, value in changes.items():
            if name == "nodule_diameter":
                for n in list(out.nodules):
                    out.update_nodule(n.id, diameter_mm=float(value))
                continue
            layer = name[len("layer."):]
            if value == "off":
                out.clear(layer)  # the nodule layer takes its objects with it
            elif value != "on":
                out.grow(layer, layer_mm(value))
        return out

    def request(self, cell: Cell, masks: MaskStack, image):
        """(model ref, GenerationRequest) of one cell."""
        from xraystudio.synthesis.engine import GenerationRequest

        ref = cell.values.get("model", self.model)
        return ref, GenerationRequest(masks=self.masks_for(cell, masks), image=image,
                                      n_images=1, **self.params(cell))

    # -------------------------------------------------------------- records
    def to_dict(self) -> dict:
        return {"axes": [a.to_dict() for a in self.axes], "base": dict(self.base),
                "model": self.model, "seed": self.seed}

    @classmethod
    def from_dict(cls, d: dict) -> Sweep:
        return cls([Axis.from_dict(a) for a in d["axes"]], dict(d.get("base") or {}),
                   d.get("model"), d.get("seed"))


# ---------------------------------------------------------------------- records
@dataclasses.dataclass
class CellRecord:
    """What is kept of one cell: its place, values, outcome, figures and where its image is."""

    index: int
    coords: tuple[int, int, int]
    labels: dict[str, str]
    status: str = "pending"  # pending, done, failed
    seed: int | None = None
    parameters: dict = dataclasses.field(default_factory=dict)  # as the engine used them
    metrics: dict = dataclasses.field(default_factory=dict)
    seconds: float | None = None
    error: str | None = None
    result: str | None = None  # project result id or the cell's file name

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["coords"] = list(self.coords)
        d["metrics"] = {k: _json_float(v) for k, v in self.metrics.items()}
        return d

    @classmethod
    def from_dict(cls, d: dict) -> CellRecord:
        fields = {f.name for f in dataclasses.fields(cls)}
        d = {k: v for k, v in d.items() if k in fields}
        d["coords"] = tuple(int(c) for c in d["coords"])
        d["metrics"] = {k: (math.nan if v is None else float(v))
                        for k, v in (d.get("metrics") or {}).items()}
        return cls(**d)


def _json_float(v: float) -> float | None:
    v = float(v)
    return None if math.isnan(v) else (1e9 if math.isinf(v) else v)


@dataclasses.dataclass
class SweepRecord:
    """A sweep and its cells as the project, the CLI's JSON and the grid export keep it."""

    sweep: Sweep
    cells: list[CellRecord]
    id: str = ""
    study: str | None = None  # the project's study id (or the input file's name)
    status: str = "pending"  # pending, running, done, cancelled, failed
    created: str = dataclasses.field(default_factory=_now)
    finished: str | None = None
    error: str | None = None

    @classmethod
    def new(cls, sweep: Sweep, study: str | None = None) -> SweepRecord:
        return cls(sweep, [CellRecord(c.index, c.coords, dict(c.labels)) for c in sweep.cells()],
                   study=study)

    @property
    def done(self) -> list[CellRecord]:
        return [c for c in self.cells if c.status == "done"]

    def to_dict(self) -> dict:
        return {"format": FORMAT, "version": VERSION, "id": self.id, "study": self.study,
                "status": self.status, "created": self.created, "finished": self.finished,
                "error": self.error, "shape": list(self.sweep.shape), **self.sweep.to_dict(),
                "cells": [c.to_dict() for c in self.cells]}

    @classmethod
    def from_dict(cls, d: dict) -> SweepRecord:
        if d.get("format") != FORMAT:
            raise SweepError("not an xraystudio sweep record")
        if int(d.get("version", 0)) > VERSION:
            raise SweepError(f"the sweep was saved by a newer xraystudio (version {d['version']})")
        try:
            return cls(Sweep.from_dict(d), [CellRecord.from_dict(c) for c in d["cells"]],
                       id=str(d.get("id") or ""), study=d.get("study"),
                       status=str(d.get("status") or "pending"),
                       created=str(d.get("created") or ""), finished=d.get("finished"),
                       error=d.get("error"))
        except (KeyError, TypeError, ValueError) as exc:
            raise SweepError(f"malformed sweep record: {exc}") from exc


# ---------------------------------------------------------------------- running
@dataclasses.dataclass(frozen=True)
class SweepProgress:
    """Where a sweep is: cell ``cell`` of ``n_cells``, step ``step`` of ``total`` in it."""

    cell: int
    n_cells: int
    step: int
    total: int
    elapsed_s: float
    eta_s: float

    @property
    def fraction(self) -> float:
        return (self.cell + self.step / max(1, self.total)) / max(1, self.n_cells)


@dataclasses.dataclass
class CellOutcome:
    """One finished (or failed) cell: its record, and the engine's result when it has one."""

    record: CellRecord
    result: Any = None  # synthesis.engine.Result
    working: np.ndarray | None = None  # the image at the working size, as measured


class Measure:
    """Per-cell metrics; the anatomy segmenter is loaded once, if it is there."""

    def __init__(self, image, faithfulness: bool = True) -> None:
        self.image = image
        self.first: np.ndarray | None = None
        self._reference: dict[int, np.ndarray] = {}
        self._segmenter: Any = None
        self.faithfulness = faithfulness

    def _segment(self, working: np.ndarray) -> dict | None:
        if not self.faithfulness:
            return None
        if self._segmenter is None:
            try:
                from xraystudio.segmentation.segmenter import Segmenter

                self._segmenter = Segmenter.load()
            except (XRayStudioError, OSError) as exc:
                log.info("no faithfulness Dice: %s", exc)
                self.faithfulness = False
                return None
        return self._segmenter.segment(working)

    def working(self, result, masks: MaskStack, size: int) -> np.ndarray:
        """The result as the model drew it: the working-size picture inside the letterbox."""
        from xraystudio.synthesis.condition import Letterbox

        box = Letterbox(masks.shape, size)
        if result.values is not None or result.working.shape != (size, size):
            return box.crop(box.to_working(result.image))  # edit mode: the full-size image
        return box.crop(result.working)

    def __call__(self, result, masks: MaskStack, size: int) -> tuple[dict, np.ndarray]:
        from xraystudio import metrics
        from xraystudio.synthesis.condition import Letterbox, resize

        box = Letterbox(masks.shape, size)
        gen = self.working(result, masks, size)
        out: dict[str, float] = {}
        lungs = box.crop(box.working_mask(masks.union(LUNGS)))
        if self.image is not None:
            if size not in self._reference:
                self._reference[size] = box.crop(box.to_working(self.image.display()))
            out.update(metrics.compare(self._reference[size], gen, lungs if lungs.any() else None))
        (ih, iw) = gen.shape
        sy, sx = ih / masks.shape[0], iw / masks.shape[1]
        contrasts = []
        for n in masks.nodules:
            r = masks.mm_to_px(n.diameter_mm) / 2 * (sx + sy) / 2
            try:
                contrasts.append(metrics.nodule_contrast(gen, n.x * sx, n.y * sy, max(r, 1.0)))
            except ValueError:
                continue
        if contrasts and NODULE in masks and masks[NODULE].any():
            out["nodule_contrast"] = float(np.mean(contrasts))
        seg = self._segment(gen)
        if seg is not None:
            out["faithfulness_dice"] = metrics.dice(seg["right_lung"] | seg["left_lung"], lungs)
            if "heart" in seg and "heart" in masks:
                out["faithfulness_dice_heart"] = metrics.dice(
                    seg["heart"], box.crop(box.working_mask(masks["heart"])))
        if self.first is None:
            self.first = gen
            out["diff_to_first"] = 0.0
        else:
            first = self.first if self.first.shape == gen.shape else resize(self.first, gen.shape)
            out["diff_to_first"] = float(np.abs(gen - first).mean())
        return out, gen


def run_sweep(
    record: SweepRecord,
    masks: MaskStack,
    image,
    engine_for: Callable[[str | None], Any],
    progress: Callable[[SweepProgress], None] | None = None,
    cancel: threading.Event | None = None,
    on_cell: Callable[[CellOutcome], None] | None = None,
    faithfulness: bool = True,
) -> SweepRecord:
    """Run the pending cells of ``record`` in order; ``on_cell`` gets each as it finishes.

    ``engine_for(model_ref)`` gives a loaded Engine. Returns the record with its status:
    done, or cancelled (finished cells kept). Cells already done are skipped (resuming).
    """
    from xraystudio.synthesis.engine import Progress

    sweep = record.sweep
    cells = sweep.cells()
    measure = Measure(image, faithfulness)
    record.status = "running"
    started = time.perf_counter()
    n = len(cells)
    finished_s: list[float] = []
    # (cell, its record, drawn alone): a batch that failed is tried again cell by cell
    pending = [(cell, rec, False) for cell, rec in zip(cells, record.cells, strict=True)
               if rec.status != "done"]
    try:
        while pending:
            if cancel is not None and cancel.is_set():
                raise GenerationCancelled("sweep cancelled")
            group, engine = _next_group(pending, sweep, masks, image, engine_for)
            del pending[:len(group)]
            group_started = time.perf_counter()
            first = group[0][0].index

            def on_progress(p: Progress, k: int = first, size: int = len(group),
                            group_started: float = group_started) -> None:
                if progress is None:
                    return
                now = time.perf_counter()
                frac = p.step / max(1, p.total)
                this = (now - group_started) / max(frac, 1e-6) / size  # per cell, projected
                per_cell = float(np.mean(finished_s)) if finished_s else this
                after = sum(1 for c in record.cells[k + size:] if c.status == "pending")
                eta = this * (1 - frac) * size + per_cell * after
                progress(SweepProgress(k, n, p.step, p.total, now - started, max(0.0, eta)))

            try:
                reqs = [req for _, _, req in group]
                results = (engine.generate_batch(reqs, on_progress, cancel) if len(group) > 1
                           else engine.generate(reqs[0], progress=on_progress, cancel=cancel))
            except GenerationCancelled:
                raise
            except XRayStudioError as exc:
                cell, rec, _ = group[0]
                if len(group) > 1:  # again one by one: the failure is one cell's
                    pending[:0] = [(c, r, True) for c, r, _ in group]
                    continue
                rec.status, rec.error = "failed", str(exc)
                rec.seconds = round(time.perf_counter() - group_started, 3)
                if on_cell is not None:
                    on_cell(CellOutcome(rec))
                continue
            seconds = (time.perf_counter() - group_started) / len(group)
            for (cell, rec, req), result in zip(group, results):
                if cancel is not None and cancel.is_set():
                    raise GenerationCancelled("sweep cancelled")
                rec.metrics, working = measure(result, req.masks, engine.spec.resolution)
                rec.status = "done"
                rec.seed = int(result.seed)
                rec.parameters = dict(result.provenance.get("parameters") or {})
                rec.parameters["model"] = engine.spec.name
                rec.seconds = round(seconds, 3)
                finished_s.append(rec.seconds)
                result.provenance["sweep"] = {"id": record.id, "cell": cell.index,
                                              "coords": list(cell.coords),
                                              "values": dict(cell.labels)}
                result.provenance["metrics"] = {k: _json_float(v) for k, v in rec.metrics.items()}
                if on_cell is not None:
                    on_cell(CellOutcome(rec, result, working))
    except GenerationCancelled:
        record.status = "cancelled"
    else:
        record.status = "done"
    record.finished = _now()
    return record


def _next_group(pending: list, sweep: Sweep, masks: MaskStack, image, engine_for):
    """The next cells that go through the model together: consecutive pending cells of one
    model whose requests differ only in their masks and seed (``Engine.batchable``), up to the
    engine's ``max_batch``; a cell marked to run alone is a group of its own."""
    cell, rec, alone = pending[0]
    ref, req = sweep.request(cell, masks, image)
    engine = engine_for(ref)
    group = [(cell, rec, req)]
    for cell, rec, alone_too in pending[1:]:
        if alone or alone_too or len(group) >= engine.max_batch:
            break
        other_ref, other = sweep.request(cell, masks, image)
        if other_ref != ref or not engine.batchable([g[2] for g in group] + [other]):
            break
        group.append((cell, rec, other))
    return group, engine


def metric_values(record: SweepRecord, metric: str) -> list[float]:
    """The metric of every cell in order (nan where a cell has none)."""
    return [float(c.metrics.get(metric, math.nan)) for c in record.cells]


def available_metrics(record: SweepRecord) -> list[str]:
    have = {k for c in record.cells for k in c.metrics}
    return [m for m in METRICS if m in have]

"""Edit mode: the patient's own radiograph, changed only where a nodule is added, moved or removed.

The study's edits (nodules painted that the source does not have; source nodules deleted or
moved; regions painted with the Remove tool) become sites. Each site gets a window around it
(``edit_window``), the edit model redraws the window's region from the known pixels around it,
and the new pixels are blended into the source with a feather that is exactly zero outside the
region, at the source's size and in its own values: the model's window is mapped back linearly
to modality values, the result quantised to the source's stored integers, and every pixel
outside the feathered regions is the source's, bit for bit.

Where the window is coarser than the source (a large edit, or a source finer than the model's
0.35 mm), the source keeps the detail finer than the window inside the region and the model
replaces the band it draws: X-ray images add up along the beam, so a nodule drawn over the
patient's fine texture is what a real one looks like. Sites whose windows overlap are done one
after the other, each seeing the last one's result; the others go through the model together.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable

import numpy as np
from scipy import ndimage

from xraystudio.errors import GenerationCancelled, GenerationError
from xraystudio.image import XRayImage
from xraystudio.masks import LUNGS, MaskStack, Nodule
from xraystudio.synthesis.condition import resize
from xraystudio.synthesis.conspicuity import relative_contrast, value_span
from xraystudio.synthesis.edit_window import (
    CHANNELS,
    EditSpec,
    WindowBox,
    condition,
    denormalise,
    disc,
    feather,
    normalise,
    region_radii_mm,
    soft_disc,
    to_model,
    value_range,
)

log = logging.getLogger(__name__)

#: The mask layer painted with the Remove tool.
REMOVE_LAYER = "remove"
#: The most an inserted nodule's own opacity is amplified to meet a target contrast: past it, the
#: model's differences between the two drawings (texture, not nodule) would be amplified too.
MAX_CONTRAST_GAIN = 3.0
#: The opacity is scaled within this many nodule radii (a soft disc), inside the contrast
#: measure's gap (1 to 1.5 r) so the ring it is measured against keeps the model's pixels.
GAIN_RADII = 1.25


@dataclasses.dataclass(frozen=True)
class Site:
    """One edited place: a nodule inserted (``insert``) or a region filled with normal lung.

    ``core`` is the region, in source pixels within ``box``; ``band_px`` the feather width.
    """

    kind: str  # "insert" | "remove"
    box: WindowBox
    core: np.ndarray
    band_px: float
    nodule: tuple[float, float, float] | None = None  # (x, y, diameter mm), for insertions
    contrast: float | None = None  # the inserted nodule's target contrast (see EditPlan)

    def describe(self) -> dict:
        out = {"kind": self.kind, "window": [self.box.x0, self.box.y0, self.box.size],
               "window_spacing_mm": round(self.box.spacing_mm, 4)}
        if self.nodule is not None:
            out["nodule"] = [round(v, 2) for v in self.nodule]
        if self.contrast is not None:
            out["target_contrast"] = round(self.contrast, 5)
        return out


@dataclasses.dataclass
class EditPlan:
    """What to change. ``contrast``, one entry per insertion (None: as the model draws it), asks
    for an inserted nodule that adds that contrast (``conspicuity.relative_contrast``) to its
    place: the model draws the window twice from the same noise, with the nodule and without,
    and the difference, the nodule's own opacity, is scaled in and around its disc until what it
    adds over the window without it is the target (within ``MAX_CONTRAST_GAIN``). Texture and the
    rest of the window stay the model's. The target is what the nodule adds, not the contrast
    the site ends with, so a place that is already bright around its centre still gets a
    visible nodule, as a pasted blob of that contrast would."""

    insert: list[tuple[float, float, float]]  # (x, y, diameter mm)
    remove: list[tuple[float, float, float]]
    remove_mask: np.ndarray | None = None
    contrast: list[float | None] | None = None

    def __post_init__(self) -> None:
        if self.contrast is not None and len(self.contrast) != len(self.insert):
            raise GenerationError("give one target contrast (or none) per inserted nodule")

    @property
    def empty(self) -> bool:
        return not self.insert and not self.remove and (
            self.remove_mask is None or not self.remove_mask.any())


def plan_from_masks(masks: MaskStack) -> EditPlan:
    """What the user changed: current nodules against the source's, plus the Remove layer.

    A source nodule that was deleted is removed; one moved or resized is removed where it was and
    inserted where it is; a nodule the source did not have is inserted.
    """
    def key(n: Nodule) -> tuple[float, float, float]:
        return (n.x, n.y, n.diameter_mm)

    current = {n.id: n for n in masks.nodules}
    source = {n.id: n for n in masks.source_nodules}
    insert, remove, contrast = [], [], []
    for nid, n in source.items():
        now = current.get(nid)
        if now is None or not np.allclose(key(now), key(n), atol=1e-3):
            remove.append(key(n))
    for nid, n in current.items():
        if nid not in source or not np.allclose(key(n), key(source[nid]), atol=1e-3):
            insert.append(key(n))
            contrast.append(n.contrast)
    mask = masks[REMOVE_LAYER] if REMOVE_LAYER in masks else None
    return EditPlan(insert, remove, mask if mask is not None and mask.any() else None,
                    contrast if any(c is not None for c in contrast) else None)


def _spacing(image: XRayImage, masks: MaskStack | None) -> float:
    sp = image.spacing_mm or (masks.spacing_mm if masks is not None else None)
    if sp is None:
        raise GenerationError("edit mode needs the pixel spacing: set it for this image first")
    return float(0.5 * (sp[0] + sp[1]))


def plan_sites(plan: EditPlan, shape: tuple[int, int], spacing_mm: float, spec: EditSpec) -> list[Site]:
    """A window and a region for every edit of ``plan``."""
    sites = []
    targets = {"remove": [None] * len(plan.remove),
               "insert": plan.contrast or [None] * len(plan.insert)}
    for kind, items in (("remove", plan.remove), ("insert", plan.insert)):
        for (x, y, diameter), target in zip(items, targets[kind]):
            if not (0 <= x < shape[1] and 0 <= y < shape[0]):
                raise GenerationError(f"the edit at ({x:.0f}, {y:.0f}) lies outside the image")
            if diameter <= 0:
                raise GenerationError("a nodule diameter must be positive")
            core_r, band = region_radii_mm(diameter / 2)
            box = WindowBox.around(y, x, spec.window_spacing(2 * (core_r + band)), spacing_mm,
                                   spec, shape)
            core = disc((box.size, box.size), y - box.y0, x - box.x0, core_r / spacing_mm)
            sites.append(Site(kind, box, core, band / spacing_mm,
                              (x, y, diameter) if kind == "insert" else None, target))
    if plan.remove_mask is not None:
        labels, n = ndimage.label(plan.remove_mask)
        for k, sl in enumerate(ndimage.find_objects(labels), start=1):
            extent_mm = max(sl[0].stop - sl[0].start, sl[1].stop - sl[1].start) * spacing_mm
            band = max(2.0, 0.15 * extent_mm)
            cy, cx = (sl[0].start + sl[0].stop - 1) / 2, (sl[1].start + sl[1].stop - 1) / 2
            box = WindowBox.around(cy, cx, spec.window_spacing(extent_mm + 2 * band), spacing_mm,
                                   spec, shape)
            core = box.cut((labels == k).astype(np.float32)) >= 0.5
            sites.append(Site("remove", box, core, band / spacing_mm))
    return sites


def rounds(sites: list[Site]) -> list[list[Site]]:
    """Sites grouped so that no two windows of a group overlap; groups run in order."""
    groups: list[list[Site]] = []
    for site in sites:
        for group in groups:
            if not any(site.box.overlaps(other.box) for other in group):
                group.append(site)
                break
        else:
            groups.append([site])
    return groups


@dataclasses.dataclass(frozen=True)
class PixelFormat:
    """How modality values are stored: ``stored = (value - intercept) / slope``, integers in
    [lo, hi]. The edit writes stored integers, so the file a user saves holds what was measured."""

    slope: float
    intercept: float
    lo: int
    hi: int

    @classmethod
    def of(cls, image: XRayImage) -> PixelFormat:
        meta = image.metadata
        if image.format == "DICOM":
            if meta.get("modality_lut_sequence"):
                raise GenerationError("this DICOM maps its pixels through a Modality LUT table; "
                                      "edit mode needs a linear rescale (or none)")
            bits = int(meta.get("bits_stored") or 16)
            slope, intercept = (float(v) for v in meta.get("rescale", (1.0, 0.0)))
            signed = meta.get("pixel_representation") == "signed"
            lo, hi = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)
            return cls(slope or 1.0, intercept, lo, hi)
        dtype = str(meta.get("dtype", "uint16"))
        if dtype.startswith(("float", "int32", "uint32")):
            return cls(1.0, 0.0, int(np.floor(image.values.min())), int(np.ceil(image.values.max())))
        info = np.iinfo(np.dtype(dtype))
        return cls(1.0, 0.0, int(info.min), int(info.max))

    def stored(self, values: np.ndarray) -> np.ndarray:
        return np.clip(np.rint((values - self.intercept) / self.slope), self.lo, self.hi)

    def quantise(self, values: np.ndarray) -> np.ndarray:
        """Values as the file will hold them (stored integers back through the rescale)."""
        return (self.stored(values) * self.slope + self.intercept).astype(np.float32)


@dataclasses.dataclass
class EditOutput:
    values: np.ndarray  # float32 modality values, source size; quantised to the stored format
    changed: np.ndarray  # bool: where the feather is above zero (nothing else differs)
    sites: list[Site]
    pixel_format: PixelFormat
    conditions: list[np.ndarray]  # each site's model input, in site order
    #: The factor each site's nodule opacity was scaled by to meet its target contrast (None for
    #: sites without a target), in site order.
    gains: list[float | None] = dataclasses.field(default_factory=list)

    def describe(self) -> list[dict]:
        """Each site as provenance records it, with the gain its target contrast took."""
        edits = [site.describe() for site in self.sites]
        for entry, gain in zip(edits, self.gains):
            if gain is not None:
                entry["contrast_gain"] = round(gain, 4)
        return edits


@dataclasses.dataclass
class EditTask:
    """One radiograph to edit: what ``run_edits`` batches with others."""

    image: XRayImage
    masks: MaskStack | None
    plan: EditPlan
    seed: int


class _EditState:
    """The working copy of one radiograph while its sites are drawn, round by round."""

    def __init__(self, task: EditTask, spec: EditSpec) -> None:
        if task.plan.empty:
            raise GenerationError("nothing to edit: stamp a nodule, move or delete one of the "
                                  "radiograph's nodules, or paint over a region with the Remove "
                                  "tool")
        image, masks = task.image, task.masks
        self.task, self.spec = task, spec
        self.fmt = PixelFormat.of(image)
        self.spacing_mm = _spacing(image, masks)
        self.sites = plan_sites(task.plan, image.shape, self.spacing_mm, spec)
        self.sign = np.float32(-1.0 if image.invert else 1.0)  # work with dense = bright
        self.work = image.values * self.sign
        self.span = value_span(image.values)
        self.gains: dict[int, float] = {}
        lungs = masks.union(LUNGS) if masks is not None and any(n in masks for n in LUNGS) else None
        self.lungs = lungs if lungs is not None and lungs.any() else None
        self.changed = np.zeros(image.shape, bool)
        self.groups = rounds(self.sites)
        # Each site's noise comes from the seed and its place in the drawing order, so an image
        # is the same whichever other images share its batch.
        order = [id(site) for group in self.groups for site in group]
        self.noise_seed = {key: task.seed * 1000 + k for k, key in enumerate(order)}
        self.conditions: dict[int, np.ndarray] = {}

    def prepare(self, site: Site) -> tuple[np.ndarray, tuple]:
        """The model input for ``site`` and what ``apply`` needs to paste its result."""
        spec = self.spec
        w = site.box.cut(self.work)
        weight = feather(site.core, site.band_px)
        region = to_model(weight, spec) > 0
        small = to_model(w, spec)
        lo, hi = value_range(small, ~region)
        s = site.box.spacing_mm
        if site.nodule is not None:
            x, y, diameter = site.nodule
            cy = (y - site.box.y0 + 0.5) * spec.window / site.box.size - 0.5
            cx = (x - site.box.x0 + 0.5) * spec.window / site.box.size - 0.5
            disc_at = (cy, cx, diameter / 2 / s)
            # Only a nodule drawn to a target contrast is asked for the narrower disc: its gain
            # gives it the asked contrast, where one drawn as the model draws it would only fade.
            scale = spec.nodule_scale if site.contrast is not None else 1.0
            nodule = soft_disc((spec.window,) * 2, cy, cx, scale * diameter / 2 / s)
        else:
            disc_at = None
            nodule = np.zeros((spec.window,) * 2, np.float32)
        lung_w = (None if self.lungs is None
                  else to_model(site.box.cut(self.lungs.astype(np.float32)), spec))
        cond = condition(normalise(small, lo, hi), region, nodule, lung_w, s, spec)
        self.conditions[id(site)] = cond
        return cond, (w, weight, small, lo, hi, disc_at)

    def apply(self, site: Site, window: tuple, generated: np.ndarray,
              without: np.ndarray | None = None) -> None:
        """Paste the model's window; ``without``, the same window drawn without the nodule,
        is given for a site with a target contrast, which the nodule's opacity is scaled to."""
        w, weight = window[:2]
        new = self._pasted(window, generated)
        if without is not None and site.nodule is not None and site.contrast is not None:
            cy, cx, r_model = window[5]
            x, y, diameter = site.nodule
            around = ndimage.gaussian_filter(
                soft_disc(generated.shape, cy, cx, GAIN_RADII * r_model), 0.15 * r_model)
            delta = self._pasted(window, generated + around * (generated - without)) - new
            lx, ly, r = x - site.box.x0, y - site.box.y0, diameter / 2 / self.spacing_mm
            # The measure is linear in the pixels: at gain g the opacity adds g * per_unit.
            per_unit = relative_contrast(delta, lx, ly, r, self.span)
            gain = 1.0
            if per_unit > 1e-6:
                gain = float(np.clip(site.contrast / per_unit, 0.0, MAX_CONTRAST_GAIN))
            else:
                log.info("the model drew no nodule opacity at (%.0f, %.0f) to scale to its "
                         "target contrast; it is kept as drawn", x, y)
            new = (w + gain * delta if self.spec.composite == "opacity"
                   else new + (gain - 1.0) * delta)
            self.gains[id(site)] = gain
        _paste(self.work, self.changed, site.box, new, weight > 0)

    def _pasted(self, window: tuple, generated: np.ndarray) -> np.ndarray:
        """The source window with the model's drawing blended in (affine in ``generated``)."""
        w, weight, small, lo, hi = window[:5]
        drawn = resize(denormalise(generated, lo, hi), w.shape, smooth=True)
        coarse = resize(small, w.shape, smooth=True) if w.shape != small.shape else w
        if self.spec.detail_mm > 0:
            sigma = self.spec.detail_mm / self.spacing_mm
            drawn = ndimage.gaussian_filter(drawn, sigma, mode="nearest")
            coarse = ndimage.gaussian_filter(coarse, sigma, mode="nearest")
        return w + weight * (drawn - coarse)

    def output(self) -> EditOutput:
        values = self.task.image.values.copy()
        values[self.changed] = self.fmt.quantise(self.work[self.changed] * self.sign)
        return EditOutput(values, self.changed, self.sites, self.fmt,
                          [self.conditions[id(s)] for s in self.sites],
                          [self.gains.get(id(s)) for s in self.sites])


def run_edit(
    pipe, image: XRayImage, masks: MaskStack | None, plan: EditPlan, seed: int,
    steps: int | None = None, scheduler: str | None = None,
    on_step: Callable[[int, int], None] | None = None, cancel: threading.Event | None = None,
) -> EditOutput:
    """Apply ``plan`` to ``image`` with the edit pipeline ``pipe`` (see edit_pipeline)."""
    return run_edits(pipe, [EditTask(image, masks, plan, seed)], steps, scheduler, on_step,
                     cancel)[0]


def run_edits(
    pipe, tasks: list[EditTask], steps: int | None = None, scheduler: str | None = None,
    on_step: Callable[[int, int], None] | None = None, cancel: threading.Event | None = None,
    max_windows: int | None = None,
) -> list[EditOutput]:
    """Edit several radiographs with shared model calls: the windows of every image's n-th
    round go through the pipeline together (at most ``max_windows`` at once), so a GPU is kept
    busy; each image comes out as ``run_edit`` alone would make it."""
    import torch

    spec: EditSpec = pipe.spec
    states = [_EditState(task, spec) for task in tasks]
    steps = steps or spec.steps
    rounds_ = [[(state, site) for state in states if r < len(state.groups)
                for site in state.groups[r]]
               for r in range(max((len(s.groups) for s in states), default=0))]
    # A site with a target contrast is drawn twice, with and without its nodule (a "twin").
    jobs_per_round = [len(e) + sum(site.contrast is not None for _, site in e) for e in rounds_]
    size = max_windows or max(jobs_per_round, default=1)
    total = sum(-(-n // size) for n in jobs_per_round) * steps
    done_calls = 0
    for entries in rounds_:
        prepared = [state.prepare(site) for state, site in entries]
        jobs = [(k, cond) for k, (cond, _) in enumerate(prepared)]
        jobs += [(k, _without_nodule(cond)) for k, (cond, _) in enumerate(prepared)
                 if entries[k][1].contrast is not None]
        drawn: dict[tuple[int, bool], np.ndarray] = {}
        for start in range(0, len(jobs), size):
            chunk = jobs[start:start + size]

            def step(i: int, n: int, base: int = done_calls * steps) -> bool:
                if on_step is not None:
                    on_step(base + i, total)
                return cancel is not None and cancel.is_set()

            generators = [torch.Generator("cpu").manual_seed(
                entries[k][0].noise_seed[id(entries[k][1])]) for k, _ in chunk]
            out = pipe(torch.from_numpy(np.stack([c for _, c in chunk])), generators, steps,
                       scheduler, step)
            if out is None:
                raise GenerationCancelled("edit cancelled; no image was kept")
            for j, ((k, _), gen) in enumerate(zip(chunk, out[:, 0].cpu().numpy())):
                drawn[(k, start + j >= len(entries))] = gen
            done_calls += 1
        for k, ((state, site), (_, window)) in enumerate(zip(entries, prepared)):
            state.apply(site, window, drawn[(k, False)], drawn.get((k, True)))
    return [state.output() for state in states]


def _without_nodule(cond: np.ndarray) -> np.ndarray:
    """The same model input with an empty nodule channel: the window as a fill would draw it."""
    out = cond.copy()
    out[CHANNELS.index("nodule")] = 0.0
    return out


def _paste(work: np.ndarray, changed: np.ndarray, box: WindowBox, new: np.ndarray,
           inside: np.ndarray) -> None:
    """Write ``new`` where ``inside`` into the part of ``box`` that lies in the image."""
    iy, ix, wy, wx = box.inside(work.shape)
    sel = inside[wy, wx]
    work[iy, ix][sel] = new[wy, wx][sel]
    changed[iy, ix] |= sel


def save_edit(values: np.ndarray, image: XRayImage, provenance: dict, folder, stem: str) -> list:
    """Write an edited radiograph in the source's format: a DICOM source gives a DICOM with its
    pixel format and geometry plus a 16-bit display PNG; an image source a PNG of its own bit
    depth and values. Returns the paths written."""
    from pathlib import Path

    from xraystudio.io.images import write_png16, write_png_values

    folder = Path(folder)
    fmt = PixelFormat.of(image)
    if image.format == "DICOM" and image.source is not None:
        from xraystudio.io.edited_dicom import write_edited_dicom

        dcm = write_edited_dicom(image.source, fmt.stored(values), folder / f"{stem}.dcm", provenance)
        png = write_png16(folder / f"{stem}.png", dataclasses.replace(image, values=values).display())
        return [dcm, png]
    dtype = str(image.metadata.get("dtype", "uint16"))
    if dtype not in ("uint8", "uint16"):
        dtype = "uint16"
    return [write_png_values(folder / f"{stem}.png", fmt.stored(values), dtype)]

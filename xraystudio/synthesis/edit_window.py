"""Edit windows: the square of a radiograph around one edited place, as the edit model sees it.

Training and inference cut windows, derive the edit region and build the model's condition with
these same functions, so the model trains on exactly what it is later given. Everything here is
numpy (no torch): the window is placed in source pixels, resampled to the model's grid at a
spacing chosen from the size of the edit (native spacing for the usual nodule, coarser only when
the edit would otherwise fill more than about a third of the window), and its values are mapped
linearly to the model's range from the known pixels alone, so the map back is exact.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from pathlib import Path

import numpy as np
from scipy import ndimage

from xraystudio.errors import ModelError
from xraystudio.io.atomic import write_text
from xraystudio.synthesis.condition import resize

EDIT_SPEC_FILE = "edit.json"
#: Condition channels, in order: known pixels (0 in the region), region, nodule disc, lungs, scale.
CHANNELS = ("known", "region", "nodule", "lungs", "scale")
#: Known pixels are mapped so that their 1st..99th percentiles span [-LEVEL, LEVEL]: the margin
#: leaves room for a nodule brighter than anything around it.
LEVEL = 0.7


@dataclasses.dataclass
class EditSpec:
    """``edit/edit.json`` of a model folder: how the edit model's windows are made."""

    window: int = 128  # model pixels per side
    patch: int = 2  # space-to-depth factor of the UNet (see pipelines.pack)
    spacing_mm: float = 0.35  # the finest window spacing: the training data's native spacing
    context: float = 1.6  # window side >= context x the edit region's diameter
    steps: int = 20
    scheduler: str = "dpm++"
    format_version: int = 1
    #: Inside the region the source keeps its detail finer than this (a Gaussian of this sigma,
    #: in mm) and the model replaces only the coarser band: X-ray densities add along the beam, so
    #: a nodule is the patient's own fine texture under a smooth new opacity, and the model's
    #: residual sampling grain stays out of the file. 0 keeps the model's every band. Chosen on
    #: the tuning cases (benchmarks/tune_edit_detail.py).
    detail_mm: float = 0.0
    #: For an insertion drawn to a target contrast, the nodule disc the model is conditioned on,
    #: as a fraction of the one asked for: the model (with the detail blur) draws an opacity wider
    #: than its disc, so a 10 mm nodule is asked of it as a smaller disc and comes out as wide as
    #: a real 10 mm nodule. The label, the region and the contrast stay at the asked size. A
    #: nodule without a target keeps the asked disc (narrower, it would only come out fainter:
    #: contrast vs real 0.69 at 0.9 instead of 0.80 on the validation split). Chosen on training
    #: cases (benchmarks/tune_nodule_scale.py).
    nodule_scale: float = 1.0
    #: How an insertion drawn to a target contrast (the model draws its window twice, with and
    #: without the nodule) enters the file. "redraw": the model's window with the nodule, its
    #: opacity scaled to the target. "opacity": only the nodule's opacity (the difference of the
    #: two drawings, within 1.25 of its radii) added to the source's own pixels, as X-ray
    #: densities add along the beam: the model's redraw of the lung around the nodule, and the
    #: faint halo it leaves there, stay out of the file. Chosen on training cases
    #: (benchmarks/tune_nodule_scale.py).
    composite: str = "redraw"

    #: The settings chosen on tuning cases after training, not by it: a retrained model keeps them.
    TUNED = ("detail_mm", "nodule_scale", "composite")
    COMPOSITES = ("redraw", "opacity")

    def __post_init__(self) -> None:
        if self.window % (8 * self.patch):
            raise ModelError("edit window must be a multiple of 8 x patch")
        if self.detail_mm < 0:
            raise ModelError("edit detail_mm must not be negative")
        if not 0 < self.nodule_scale <= 2:
            raise ModelError("edit nodule_scale must be in (0, 2]")
        if self.composite not in self.COMPOSITES:
            raise ModelError(f"edit composite must be one of {', '.join(self.COMPOSITES)}")
        if self.spacing_mm <= 0 or self.context < 1:
            raise ModelError("edit spacing must be positive and context at least 1")

    def tuned(self) -> dict:
        """The tuned settings, as provenance records how an edit was made."""
        return {key: getattr(self, key) for key in self.TUNED}

    @property
    def condition_channels(self) -> int:
        return len(CHANNELS)

    def window_spacing(self, region_diameter_mm: float) -> float:
        """The window's pixel spacing: native unless the region needs a wider window."""
        return max(self.spacing_mm, self.context * region_diameter_mm / self.window)

    @classmethod
    def read(cls, folder: str | os.PathLike) -> EditSpec:
        path = Path(folder) / EDIT_SPEC_FILE
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return cls(**data)
        except FileNotFoundError:
            raise ModelError(f"{folder}: no {EDIT_SPEC_FILE}; not an edit model") from None
        except (OSError, ValueError, TypeError) as exc:
            raise ModelError(f"{path}: cannot be read ({exc})") from exc

    def write(self, folder: str | os.PathLike) -> None:
        write_text(Path(folder) / EDIT_SPEC_FILE, json.dumps(dataclasses.asdict(self), indent=2) + "\n")


def region_radii_mm(nodule_radius_mm: float) -> tuple[float, float]:
    """(core radius, feather width) of the region replaced around a nodule of that radius.

    The core reaches past the nodule's nominal disc (a JSRT disc only approximates a real
    outline, and a nodule's edge fades into the lung); the feather blends the new pixels into
    the source over a few millimetres, wider for larger nodules.
    """
    return 1.4 * nodule_radius_mm + 1.5, max(2.0, 0.3 * nodule_radius_mm)


def feather(core: np.ndarray, width_px: float) -> np.ndarray:
    """Blend weight: 1 on ``core``, falling smoothly (raised cosine) to exactly 0 ``width_px``
    outside it; 0 everywhere farther out, so those pixels are never touched."""
    if not core.any():
        return np.zeros(core.shape, np.float32)
    dist = ndimage.distance_transform_edt(~core)
    t = np.clip(dist / max(width_px, 1e-6), 0.0, 1.0)
    return (0.5 * (1.0 + np.cos(np.pi * t))).astype(np.float32)


def disc(shape: tuple[int, int], cy: float, cx: float, radius: float) -> np.ndarray:
    yy, xx = np.ogrid[: shape[0], : shape[1]]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2


def soft_disc(shape: tuple[int, int], cy: float, cx: float, radius: float) -> np.ndarray:
    """A disc with its edge pixels area-weighted (4x supersampled), as masks are at any scale."""
    yy, xx = np.mgrid[: shape[0] * 4, : shape[1] * 4]
    inside = ((yy + 0.5) / 4 - 0.5 - cy) ** 2 + ((xx + 0.5) / 4 - 0.5 - cx) ** 2 <= radius**2
    return inside.reshape(shape[0], 4, shape[1], 4).mean(axis=(1, 3)).astype(np.float32)


@dataclasses.dataclass(frozen=True)
class WindowBox:
    """A square of ``size`` source pixels at (y0, x0), shown to the model at ``spacing_mm``.

    The box may reach past the image border (it is then padded by reflection); ``inside`` is
    the part that lies in the image.
    """

    y0: int
    x0: int
    size: int
    spacing_mm: float

    @classmethod
    def around(cls, cy: float, cx: float, spacing_mm: float, src_spacing_mm: float,
               spec: EditSpec, shape: tuple[int, int]) -> WindowBox:
        """The window centred on (cy, cx), moved inward where it would cross the border."""
        size = max(spec.window, int(round(spec.window * spacing_mm / src_spacing_mm)))
        y0 = int(round(cy - size / 2))
        x0 = int(round(cx - size / 2))
        # Shift inside the image where it fits; a window larger than the image stays centred.
        y0 = min(max(y0, 0), shape[0] - size) if size <= shape[0] else (shape[0] - size) // 2
        x0 = min(max(x0, 0), shape[1] - size) if size <= shape[1] else (shape[1] - size) // 2
        return cls(y0, x0, size, float(src_spacing_mm) * size / spec.window)

    @property
    def slices(self) -> tuple[slice, slice]:
        return slice(self.y0, self.y0 + self.size), slice(self.x0, self.x0 + self.size)

    def inside(self, shape: tuple[int, int]) -> tuple[slice, slice, slice, slice]:
        """(image rows, image cols, window rows, window cols) of the overlap with the image."""
        iy0, ix0 = max(self.y0, 0), max(self.x0, 0)
        iy1, ix1 = min(self.y0 + self.size, shape[0]), min(self.x0 + self.size, shape[1])
        return (slice(iy0, iy1), slice(ix0, ix1),
                slice(iy0 - self.y0, iy1 - self.y0), slice(ix0 - self.x0, ix1 - self.x0))

    def cut(self, arr: np.ndarray) -> np.ndarray:
        """The window's pixels of ``arr`` (reflected where the box passes the border)."""
        iy, ix, wy, wx = self.inside(arr.shape)
        out = np.asarray(arr[iy, ix], np.float32)
        pads = ((wy.start, self.size - wy.stop), (wx.start, self.size - wx.stop))
        if any(p for pair in pads for p in pair):
            out = np.pad(out, pads, mode="symmetric" if min(out.shape) > 1 else "edge")
        return out

    def overlaps(self, other: WindowBox) -> bool:
        return not (self.y0 >= other.y0 + other.size or other.y0 >= self.y0 + self.size
                    or self.x0 >= other.x0 + other.size or other.x0 >= self.x0 + self.size)


def to_model(arr: np.ndarray, spec: EditSpec) -> np.ndarray:
    """A window's source pixels on the model grid (area average when shrinking)."""
    return resize(arr, (spec.window, spec.window))


def value_range(window: np.ndarray, known: np.ndarray) -> tuple[float, float]:
    """(lo, hi) of the linear map to the model's range, from the known pixels only."""
    pixels = window[known] if known.any() else window.ravel()
    lo, hi = (float(v) for v in np.percentile(pixels, [1.0, 99.0]))
    if not math.isfinite(lo) or not math.isfinite(hi):
        raise ValueError("the window holds no finite values")
    return lo, max(hi, lo + 1e-6)


def normalise(window: np.ndarray, lo: float, hi: float) -> np.ndarray:
    return ((window - lo) / (hi - lo) * (2 * LEVEL) - LEVEL).astype(np.float32)


def denormalise(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    return ((x + LEVEL) / (2 * LEVEL) * (hi - lo) + lo).astype(np.float32)


def condition(x: np.ndarray, region: np.ndarray, nodule: np.ndarray, lungs: np.ndarray | None,
              spacing_mm: float, spec: EditSpec) -> np.ndarray:
    """The (5, W, W) condition: known pixels (region zeroed), region, nodule, lungs, scale.

    ``x`` is the normalised window, ``region`` (bool) what the model must draw, ``nodule`` the
    soft disc of a nodule to draw there (zeros for a removal), ``lungs`` the lung fields (None when
    the study has no lung masks: an empty channel, which the model also trains on). The scale
    channel tells the model how coarse this window's pixels are.
    """
    region_f = region.astype(np.float32)
    scale = np.full_like(region_f, math.log2(spacing_mm / spec.spacing_mm))
    lungs_f = np.zeros_like(region_f) if lungs is None else lungs.astype(np.float32)
    return np.stack([x * (1.0 - region_f), region_f, nodule.astype(np.float32), lungs_f, scale])

"""XRayImage: a radiograph's values, how to display them, and how big its pixels are.

The values are kept as the modality produced them (after the Modality LUT), and display is a view
computed on demand through a VOI window, so changing the window never loses information. The
window functions follow DICOM PS3.3 C.11.2.1.2 exactly (LINEAR, LINEAR_EXACT, SIGMOID) and VOI LUT
sequences are kept as tables; MONOCHROME1 images are inverted after the window so air is dark.
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import numpy as np

WINDOW_FUNCTIONS = ("LINEAR", "LINEAR_EXACT", "SIGMOID")


@dataclasses.dataclass(frozen=True)
class Window:
    """One VOI transform: a window (centre/width/function) or a lookup table.

    ``lut`` maps value ``lut_first + i`` to ``lut[i]``; values outside the table take its ends.
    ``lut_max`` is the largest value the table can hold (2**bits - 1) and scales it to [0, 1].
    """

    center: float
    width: float
    function: str = "LINEAR"
    name: str = ""
    lut: np.ndarray | None = dataclasses.field(default=None, compare=False, repr=False)
    lut_first: int = 0
    lut_max: float = 1.0

    def __post_init__(self) -> None:
        if self.lut is None:
            if self.function not in WINDOW_FUNCTIONS:
                raise ValueError(f"unknown VOI LUT function {self.function!r}")
            if not np.isfinite(self.width) or self.width <= 0:
                raise ValueError(f"window width must be positive, got {self.width}")

    @property
    def label(self) -> str:
        if self.lut is not None:
            return self.name or "VOI LUT"
        text = f"C {self.center:g} / W {self.width:g}"
        return f"{self.name} ({text})" if self.name else text

    def apply(self, values: np.ndarray) -> np.ndarray:
        """Map values to display intensities in [0, 1] (float32)."""
        x = np.asarray(values, dtype=np.float32)
        if self.lut is not None:
            idx = np.clip(np.rint(x - self.lut_first), 0, len(self.lut) - 1).astype(np.intp)
            return (self.lut[idx].astype(np.float32) / np.float32(self.lut_max)).clip(0, 1)
        c, w = np.float32(self.center), np.float32(self.width)
        if self.function == "SIGMOID":
            return (1.0 / (1.0 + np.exp(-4.0 * (x - c) / w))).astype(np.float32)
        if self.function == "LINEAR_EXACT":
            out = (x - c) / w + np.float32(0.5)
        else:
            # LINEAR: the standard's (c - 0.5) and (w - 1) account for integer sampling.
            w1 = max(w - np.float32(1.0), np.float32(1e-6))
            out = (x - (c - np.float32(0.5))) / w1 + np.float32(0.5)
        return np.clip(out, 0.0, 1.0, out=out)

    @classmethod
    def from_range(cls, lo: float, hi: float, name: str) -> Window:
        """A LINEAR_EXACT window spanning [lo, hi] exactly."""
        width = max(float(hi) - float(lo), 1e-6)
        return cls(center=float(lo) + width / 2.0, width=width, function="LINEAR_EXACT", name=name)


@dataclasses.dataclass
class XRayImage:
    """A grey radiograph.

    ``values`` are modality values (float32, H x W). ``windows`` are the display presets, best
    first (those stored in the file, then automatic ones). ``invert`` is True for MONOCHROME1.
    ``spacing_mm`` is (row, column) spacing or None when unknown; ``spacing_source`` says where
    it came from (``ImagerPixelSpacing``, ``PixelSpacing``, ``unknown`` or ``user``).
    """

    values: np.ndarray
    windows: list[Window]
    invert: bool = False
    spacing_mm: tuple[float, float] | None = None
    spacing_source: str = "unknown"
    source: Path | None = None
    format: str = ""
    metadata: dict = dataclasses.field(default_factory=dict)
    notes: list[str] = dataclasses.field(default_factory=list)

    def __post_init__(self) -> None:
        self.values = np.asarray(self.values, dtype=np.float32)
        if self.values.ndim != 2:
            raise ValueError(f"a radiograph is a 2-D grey image, got shape {self.values.shape}")
        if not self.windows:
            self.windows = auto_windows(self.values)

    @property
    def shape(self) -> tuple[int, int]:
        return (int(self.values.shape[0]), int(self.values.shape[1]))

    @property
    def window(self) -> Window:
        """The default display window."""
        return self.windows[0]

    def display(self, window: Window | None = None) -> np.ndarray:
        """Display intensities in [0, 1], air dark, through ``window`` (default: the first)."""
        out = (window or self.window).apply(self.values)
        if self.invert:
            out = np.subtract(np.float32(1.0), out, out=out)
        return out

    def with_spacing(self, spacing_mm: tuple[float, float]) -> XRayImage:
        """A copy with a user-given pixel spacing (when the file has none or it is wrong)."""
        if min(spacing_mm) <= 0:
            raise ValueError("pixel spacing must be positive")
        return dataclasses.replace(
            self, spacing_mm=(float(spacing_mm[0]), float(spacing_mm[1])), spacing_source="user"
        )

    def pixel_hash(self) -> str:
        """A short hash of the values: the image's identity in provenance records."""
        return hashlib.sha256(np.ascontiguousarray(self.values).tobytes()).hexdigest()[:16]

    @classmethod
    def from_display(
        cls, display: np.ndarray, spacing_mm: tuple[float, float] | None = None, **kwargs
    ) -> XRayImage:
        """Wrap a display-ready image in [0, 1] (a generated image, a PNG) with an identity window."""
        w = Window.from_range(0.0, 1.0, "Full range")
        src = "unknown" if spacing_mm is None else kwargs.pop("spacing_source", "user")
        return cls(np.asarray(display, np.float32), [w], spacing_mm=spacing_mm,
                   spacing_source=src, **kwargs)


def auto_windows(values: np.ndarray) -> list[Window]:
    """Presets for an image whose file has none: its full range, then a robust 0.5-99.5 % range."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return [Window.from_range(0.0, 1.0, "Full range")]
    lo, hi = float(finite.min()), float(finite.max())
    # Percentiles on a subsample: exact enough for a window and fast on 9-megapixel images.
    sample = finite[:: max(1, finite.size // 500_000)]
    plo, phi = (float(v) for v in np.percentile(sample, [0.5, 99.5]))
    out = [Window.from_range(lo, hi, "Full range")]
    if phi > plo and (plo, phi) != (lo, hi):
        out.append(Window.from_range(plo, phi, "Auto (0.5-99.5 %)"))
    return out

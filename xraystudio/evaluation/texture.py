"""Fine texture of a film measured the way a reader sees it: at a given size, and as film grain.

Two measures, both on grey images in [0, 1]:

- ``texture_ratio``: the Laplacian energy (``metrics.hf_ratio``) of a generated film over the
  real one, with both box-averaged to one size first. At the model's coarse size it asks whether
  the anatomy's structure (ribs, vessels) is drawn; at full resolution whether the fine detail
  (rib cortex, small vessels, grain) is. A film upsampled from 256 px scores about 1 at 256 px
  and far below 1 at 1024 px, which one number at one size would hide.
- the noise power spectrum (NPS) in flat lung, the standard measure of radiographic grain: square
  regions wholly inside the lungs, each detrended (a second-order surface takes out the lung's
  slow shading, which would otherwise swamp the lowest frequencies) and Hann-windowed (so the
  square's edges add no spectral leakage), their periodograms radially averaged and then
  averaged over regions. Compared band by band, it says at which scale a film is too smooth or
  too noisy.
"""

from __future__ import annotations

import math

import numpy as np

from xraystudio import metrics
from xraystudio.synthesis.condition import Letterbox

#: Frequency bands (cycles per pixel of the film they are measured on) the NPS is reported in:
#: octaves from coarse texture to the finest the pixels carry (0.5 is the Nyquist frequency).
NPS_BANDS: tuple[tuple[float, float], ...] = ((0.03, 0.06), (0.06, 0.125), (0.125, 0.25),
                                             (0.25, 0.5))


def texture_ratio(real: np.ndarray, generated: np.ndarray, lungs: np.ndarray, size: int) -> float:
    """``hf_ratio`` of ``generated`` over ``real`` in ``lungs`` with both boxed to ``size`` px.

    All three share one shape (a film and its mask at the source's size); the longer side is
    brought to ``size`` as the working square does it (area average when shrinking).
    """
    box = Letterbox(np.shape(real), size)
    return metrics.hf_ratio(box.crop(box.to_working(real)), box.crop(box.to_working(generated)),
                            box.crop(box.working_mask(lungs)))


def flat_rois(mask: np.ndarray, side: int, stride: int | None = None) -> list[tuple[int, int]]:
    """Top-left corners of ``side`` x ``side`` squares wholly inside ``mask``, on a grid of
    ``stride`` (default: half a square, so neighbouring regions overlap by half)."""
    m = np.asarray(mask, bool)
    stride = stride or max(1, side // 2)
    table = np.pad(m.astype(np.int64).cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    out = []
    for y in range(0, m.shape[0] - side + 1, stride):
        for x in range(0, m.shape[1] - side + 1, stride):
            inside = (table[y + side, x + side] - table[y, x + side] - table[y + side, x]
                      + table[y, x])
            if inside == side * side:
                out.append((y, x))
    return out


def detrend(roi: np.ndarray) -> np.ndarray:
    """``roi`` less its least-squares second-order surface."""
    n, m = roi.shape
    yy, xx = np.mgrid[0:n, 0:m]
    y, x = (yy / n - 0.5).ravel(), (xx / m - 0.5).ravel()
    basis = np.stack([np.ones_like(x), x, y, x * x, x * y, y * y], axis=1)
    coef, *_ = np.linalg.lstsq(basis, roi.ravel().astype(np.float64), rcond=None)
    return roi - (basis @ coef).reshape(n, m)


def roi_nps(roi: np.ndarray) -> np.ndarray:
    """2-D periodogram of one square region, detrended and Hann-windowed, in (value)^2.

    Normalised by the window's energy, so white noise of variance s^2 gives s^2 at every
    frequency, whatever the square's side.
    """
    n = roi.shape[0]
    if roi.shape != (n, n):
        raise ValueError(f"an NPS region must be square, got {roi.shape}")
    w = np.outer(np.hanning(n), np.hanning(n))
    spec = np.abs(np.fft.fft2(detrend(roi) * w)) ** 2
    return spec / float((w * w).sum())


def radial_average(nps2d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(frequencies in cycles/pixel, NPS): the 2-D spectrum averaged over rings of width 1/n.

    The zero frequency (taken out by the detrending) is left out.
    """
    n = nps2d.shape[0]
    f = np.fft.fftfreq(n)
    radius = np.hypot(*np.meshgrid(f, f, indexing="ij"))
    k = np.rint(radius * n).astype(int)
    sums = np.bincount(k.ravel(), nps2d.ravel())
    counts = np.bincount(k.ravel())
    top = n // 2
    return np.arange(1, top + 1) / n, sums[1:top + 1] / counts[1:top + 1]


def lung_nps(film: np.ndarray, lungs: np.ndarray, side: int) -> tuple[np.ndarray, np.ndarray, int]:
    """(frequencies, mean radial NPS over the film's flat lung regions, number of regions).

    With no region that fits, the NPS is all ``nan`` and the count 0.
    """
    arr = np.asarray(film, np.float64)
    corners = flat_rois(lungs, side)
    freqs = np.arange(1, side // 2 + 1) / side
    if not corners:
        return freqs, np.full(len(freqs), math.nan), 0
    mean2d = np.mean([roi_nps(arr[y:y + side, x:x + side]) for y, x in corners], axis=0)
    return (*radial_average(mean2d), len(corners))


def band_means(freqs: np.ndarray, nps: np.ndarray,
               bands: tuple[tuple[float, float], ...] = NPS_BANDS) -> list[float]:
    """Mean NPS in each band [lo, hi) of cycles/pixel (``nan`` for a band with no sample)."""
    out = []
    for lo, hi in bands:
        sel = (freqs >= lo) & (freqs < hi) if hi < 0.5 else (freqs >= lo) & (freqs <= hi)
        out.append(float(np.mean(nps[sel])) if sel.any() else math.nan)
    return out


def compare_nps(real: list[tuple[np.ndarray, int]], generated: list[tuple[np.ndarray, int]],
                freqs: np.ndarray, bands: tuple[tuple[float, float], ...] = NPS_BANDS,
                factor: float = 1.5) -> dict:
    """Pool per-film NPS curves (each weighted by its region count) and compare them by band.

    ``real`` and ``generated`` hold (NPS, regions) per film. Returns the bands, the pooled real
    and generated band means, their ratio per band (None where a band holds no frequency of the
    regions or no region was found), and ``within_factor``: whether every ratio lies within
    ``factor`` of 1 (None when a band could not be measured).
    """
    def pooled(curves: list[tuple[np.ndarray, int]]) -> np.ndarray:
        used = [(c, n) for c, n in curves if n > 0]
        if not used:
            return np.full(len(freqs), math.nan)
        return np.sum([c * n for c, n in used], axis=0) / sum(n for _, n in used)

    r, g = band_means(freqs, pooled(real), bands), band_means(freqs, pooled(generated), bands)
    ratio = [gv / rv if rv > 0 and math.isfinite(gv) else math.nan for gv, rv in zip(g, r)]
    finite = all(math.isfinite(v) for v in ratio)

    def plain(values: list[float]) -> list[float | None]:  # JSON has no nan
        return [v if math.isfinite(v) else None for v in values]

    return {"bands_cycles_per_px": [list(b) for b in bands], "real": plain(r),
            "generated": plain(g), "ratio": plain(ratio), "factor": factor,
            "within_factor": all(1 / factor <= v <= factor for v in ratio) if finite else None,
            "rois_real": int(sum(n for _, n in real)),
            "rois_generated": int(sum(n for _, n in generated))}

"""Image-quality metrics: the one definition used by the GUI, the CLI and the evaluation.

Every number the app reports about a result comes from here, so that a PSNR in the results panel,
in ``report.json`` and in a benchmark mean the same thing. Images are grey floats in [0, 1]
(``data_range`` is 1 everywhere); regions are boolean masks of the same shape. Integer images are
refused rather than silently measured on the wrong scale.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage
from skimage import metrics as skm


def _image(img: np.ndarray, name: str) -> np.ndarray:
    arr = np.asarray(img)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a grey 2-D image, got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.floating):
        raise ValueError(
            f"{name} must be float in [0, 1], got {arr.dtype}; convert it with "
            "skimage.util.img_as_float"
        )
    return arr.astype(np.float64, copy=False)


def _pair(ref: np.ndarray, img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a, b = _image(ref, "reference"), _image(img, "image")
    if a.shape != b.shape:
        raise ValueError(
            f"images differ in size: reference is {a.shape[1]} x {a.shape[0]}, "
            f"image is {b.shape[1]} x {b.shape[0]}"
        )
    return a, b


def _region(region: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    mask = np.asarray(region, dtype=bool)
    if mask.shape != shape:
        raise ValueError(f"region has shape {mask.shape} but the image has shape {shape}")
    if not mask.any():
        raise ValueError("region is empty: nothing to measure")
    return mask


def _psnr_from_mse(mse: float) -> float:
    return math.inf if mse == 0 else 10.0 * math.log10(1.0 / mse)


def psnr(ref: np.ndarray, img: np.ndarray, region: np.ndarray | None = None) -> float:
    """Peak signal-to-noise ratio in dB (peak 1), over the image or inside ``region``.

    Identical images (zero error) give ``math.inf``: callers that average over cases should
    handle it rather than have it replaced by an arbitrary cap here.
    """
    a, b = _pair(ref, img)
    if region is None:
        with np.errstate(divide="ignore"):
            return float(skm.peak_signal_noise_ratio(a, b, data_range=1.0))
    mask = _region(region, a.shape)
    return _psnr_from_mse(float(np.mean((a[mask] - b[mask]) ** 2)))


def _ssim_map(a: np.ndarray, b: np.ndarray) -> tuple[float, np.ndarray]:
    mean, full = skm.structural_similarity(a, b, data_range=1.0, full=True)
    return float(mean), full


def ssim(ref: np.ndarray, img: np.ndarray, region: np.ndarray | None = None) -> float:
    """Structural similarity: mean SSIM, or the mean of the SSIM map inside ``region``.

    The map is computed on the whole image so that a region's value uses the same local
    windows (including context just outside the region) as the global one.
    """
    a, b = _pair(ref, img)
    mean, full = _ssim_map(a, b)
    if region is None:
        return mean
    return float(full[_region(region, a.shape)].mean())


def hf_energy(img: np.ndarray, region: np.ndarray, sigma: float = 0.5) -> float:
    """RMS of the Laplacian of Gaussian inside ``region``: how much fine texture there is.

    A small sigma picks up the fine lung texture (vessels, noise) that blurry generators lose,
    which PSNR and SSIM reward rather than punish. The LoG is a Gaussian blur followed by the
    discrete 5-point Laplacian, whose weights sum to zero: ``ndimage.gaussian_laplace`` samples
    the continuous kernel, which below sigma ~0.7 px responds to flat grey (-1.12 per unit at
    0.5), so it would measure brightness instead of texture.
    """
    arr = _image(img, "image")
    mask = _region(region, arr.shape)
    log = ndimage.laplace(ndimage.gaussian_filter(arr, sigma=sigma))
    return float(np.sqrt(np.mean(log[mask] ** 2)))


def hf_ratio(
    real: np.ndarray, generated: np.ndarray, region: np.ndarray, sigma: float = 0.5
) -> float:
    """High-frequency energy of ``generated`` relative to ``real`` in ``region``.

    A realistic texture scores about 1, a blurred one well below 1 and a noisy one above.
    A real image without any texture there makes the ratio undefined: ``nan``.
    """
    real_e = hf_energy(real, region, sigma)
    gen_e = hf_energy(generated, region, sigma)
    return math.nan if real_e == 0 else gen_e / real_e


def nodule_contrast(img: np.ndarray, x: float, y: float, radius_px: float) -> float:
    """Mean inside the nodule disc minus the mean of a ring around it (1.5 r to 2.5 r).

    The gap between r and 1.5 r keeps the nodule's soft edge and small misplacements out of the
    background; the outer radius keeps the background local (ribs and the mediastinum nearby
    change the level) while its area, four times the disc's, keeps the estimate stable. Pixel
    centres are at integer coordinates; disc and ring are clipped to the image.
    """
    arr = _image(img, "image")
    if radius_px <= 0:
        raise ValueError(f"nodule radius must be positive, got {radius_px}")
    h, w = arr.shape
    if not (0 <= x < w and 0 <= y < h):
        raise ValueError(f"nodule centre ({x:.1f}, {y:.1f}) lies outside the {w} x {h} image")
    outer = 2.5 * radius_px
    y0, y1 = max(0, int(math.floor(y - outer))), min(h, int(math.ceil(y + outer)) + 1)
    x0, x1 = max(0, int(math.floor(x - outer))), min(w, int(math.ceil(x + outer)) + 1)
    yy, xx = np.ogrid[y0:y1, x0:x1]
    d2 = (xx - x) ** 2 + (yy - y) ** 2
    crop = arr[y0:y1, x0:x1]
    disc = d2 <= radius_px**2
    ring = (d2 >= (1.5 * radius_px) ** 2) & (d2 <= outer**2)
    if not disc.any() or not ring.any():
        raise ValueError(f"a nodule of radius {radius_px} px is too small to measure")
    return float(crop[disc].mean() - crop[ring].mean())


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice overlap of two masks; two empty masks agree perfectly (1.0)."""
    m, n = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    if m.shape != n.shape:
        raise ValueError(f"masks differ in shape: {m.shape} and {n.shape}")
    total = int(m.sum()) + int(n.sum())
    return 1.0 if total == 0 else 2.0 * int(np.logical_and(m, n).sum()) / total


def diversity(a: np.ndarray, b: np.ndarray, region: np.ndarray) -> float:
    """Mean absolute difference of two samples inside ``region``.

    Two generations from the same masks should differ in their texture; near zero means the
    model ignores its seed (mode collapse).
    """
    x, y = _pair(a, b)
    mask = _region(region, x.shape)
    return float(np.abs(x[mask] - y[mask]).mean())


def compare(
    ref: np.ndarray, img: np.ndarray, lungs: np.ndarray | None = None
) -> dict[str, float]:
    """The figures shown under each result: ``psnr``, ``ssim`` and, with lungs, their lung values.

    ``psnr_lungs`` and ``ssim_lungs`` are present only when ``lungs`` is given and not empty, so
    a study without painted lungs still gets its global figures. SSIM is computed once.
    """
    a, b = _pair(ref, img)
    ssim_mean, ssim_full = _ssim_map(a, b)
    out = {"psnr": psnr(a, b), "ssim": ssim_mean}
    if lungs is not None and np.any(lungs):
        mask = _region(lungs, a.shape)
        out["psnr_lungs"] = psnr(a, b, mask)
        out["ssim_lungs"] = float(ssim_full[mask].mean())
    return out


def detections(pred: np.ndarray, truth: np.ndarray, min_area: int = 1) -> dict[str, int]:
    """Lesion-level counts of a predicted mask against true nodule discs.

    Each connected component (8-connected) of ``truth`` is one nodule, hit when any predicted
    component overlaps it; a predicted component overlapping no true nodule is a false positive.
    Predicted components smaller than ``min_area`` pixels are dropped first, as speckle no reader
    would call a finding. Returns ``nodules``, ``hits`` and ``false_positives``.
    """
    p, t = np.asarray(pred, dtype=bool), np.asarray(truth, dtype=bool)
    if p.shape != t.shape:
        raise ValueError(f"masks differ in shape: {p.shape} and {t.shape}")
    eight = np.ones((3, 3), bool)
    p = keep_components(p, min_area)
    p_lab, n_pred = ndimage.label(p, structure=eight)
    t_lab, n_true = ndimage.label(t, structure=eight)
    hit_truth = np.unique(t_lab[p & t])
    hit_pred = np.unique(p_lab[p & t])
    return {
        "nodules": int(n_true),
        "hits": int(np.count_nonzero(hit_truth)),
        "false_positives": int(n_pred - np.count_nonzero(hit_pred)),
    }


def keep_components(mask: np.ndarray, min_area: int) -> np.ndarray:
    """``mask`` without its 8-connected components of fewer than ``min_area`` pixels."""
    m = np.asarray(mask, dtype=bool)
    if min_area <= 1:
        return m.copy()
    lab, n = ndimage.label(m, structure=np.ones((3, 3), bool))
    if n == 0:
        return m.copy()
    areas = np.bincount(lab.ravel())
    keep = areas >= min_area
    keep[0] = False
    return keep[lab]

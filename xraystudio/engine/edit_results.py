"""Edit-mode results as the window shows, measures and saves them (the engine process measures
them too).

An edit result is the source radiograph changed only inside its edit windows, so comparing it
with the source over the whole image would mostly measure identical pixels: its figures are
PSNR and SSIM inside the model's windows (from the provenance's ``edits``), at the source's
full resolution, and how many pixels changed. Its difference is exactly zero elsewhere; the
difference view amplifies it so that an edit of a few grey levels shows, and says by how much.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from xraystudio.engine.protocol import GeneratedImage
from xraystudio.image import XRayImage
from xraystudio.io.atomic import write_text

#: At most this much amplification in the difference view (a nearly invisible edit stays faint).
MAX_GAIN = 20.0


def is_edit(provenance: dict) -> bool:
    return (provenance.get("parameters") or {}).get("mode") == "edit"


def edit_windows(provenance: dict, shape: tuple[int, int]) -> list[tuple[int, int, int, int]]:
    """The model windows of an edit result as (y0, x0, y1, x1), clipped to the image."""
    h, w = shape
    boxes = []
    for site in provenance.get("edits") or []:
        x0, y0, size = (int(v) for v in site["window"])
        box = (max(0, y0), max(0, x0), min(h, y0 + size), min(w, x0 + size))
        if box[2] > box[0] and box[3] > box[1]:
            boxes.append(box)
    return boxes


def changed_box(changed: np.ndarray, margin: float = 0.5) -> tuple[int, int, int, int] | None:
    """The bounding box (y0, x0, y1, x1) of the changed pixels, grown by ``margin`` of its size
    on every side (to see the edit in its surroundings); None when nothing changed."""
    rows, cols = np.flatnonzero(changed.any(axis=1)), np.flatnonzero(changed.any(axis=0))
    if not len(rows):
        return None
    y0, y1, x0, x1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    pad = int(math.ceil(margin * max(y1 - y0, x1 - x0))) + 4
    h, w = changed.shape
    return max(0, y0 - pad), max(0, x0 - pad), min(h, y1 + pad), min(w, x1 + pad)


def edit_metrics(source: np.ndarray, edited: np.ndarray, changed: np.ndarray,
                 provenance: dict, spacing_mm: tuple[float, float] | None = None
                 ) -> dict[str, float]:
    """PSNR/SSIM of an edit result against its source inside the edit windows, at full size.

    ``source`` and ``edited`` are display images in [0, 1]; PSNR pools the squared error of
    every window pixel, SSIM is the pixel-weighted mean of each window's SSIM. With no windows
    recorded, the changed pixels' bounding box stands in for them.
    """
    from xraystudio.metrics import psnr, ssim

    boxes = edit_windows(provenance, source.shape)
    if not boxes:
        box = changed_box(changed, margin=0.25)
        boxes = [box] if box is not None else []
    out: dict[str, float] = {"changed_px": float(changed.sum()), "edit_windows": float(len(boxes))}
    if spacing_mm is not None:
        out["changed_mm2"] = float(changed.sum() * spacing_mm[0] * spacing_mm[1])
    if not boxes:
        return out
    region = np.zeros(source.shape, bool)
    weighted, total = 0.0, 0
    for y0, x0, y1, x1 in boxes:
        region[y0:y1, x0:x1] = True
        a, b = source[y0:y1, x0:x1], edited[y0:y1, x0:x1]
        if min(a.shape) >= 7:  # SSIM's window
            weighted += ssim(a, b) * a.size
            total += a.size
    out["psnr_edit"] = psnr(source, edited, region)
    if total:
        out["ssim_edit"] = weighted / total
    return out


def difference_gain(difference: np.ndarray) -> float:
    """How much to amplify a difference image so its largest change spans the colour scale
    (at least 1, at most MAX_GAIN)."""
    peak = float(np.abs(difference).max()) if difference.size else 0.0
    return 1.0 if peak == 0 else float(min(max(1.0 / peak, 1.0), MAX_GAIN))


def save_edit_result(values: np.ndarray, source: XRayImage, provenance: dict,
                     path: str | Path) -> list[Path]:
    """Write an edit result in the source's format (see ``synthesis.edit.save_edit``): a DICOM
    source gives ``<stem>.dcm`` and a 16-bit display ``<stem>.png``, an image source a PNG of
    its own bit depth; plus the provenance as ``<stem>.json``. Returns the paths written."""
    from xraystudio.synthesis.edit import save_edit

    path = Path(path)
    stem = path.name[: -len(path.suffix)] if path.suffix.lower() in (".png", ".dcm") else path.name
    written = [Path(p) for p in save_edit(values, source, provenance, path.parent, stem)]
    meta = path.parent / f"{stem}.json"
    write_text(meta, json.dumps(provenance, indent=2, default=str) + "\n")
    return written + [meta]


def edit_arrays(source_values: np.ndarray, changed: np.ndarray, changed_values: np.ndarray
                ) -> np.ndarray:
    """The full edited values from the source and what changed (how projects store edits)."""
    values = np.array(source_values, dtype=np.float32, copy=True)
    values[changed] = changed_values
    return values


def save_result(result: GeneratedImage, source: XRayImage | None, path: str | Path) -> list[Path]:
    """Write a result and its provenance as JSON beside it; returns the paths written.

    A generated image is a 16-bit PNG; an edit result is the edited radiograph at full size
    in the source's format (see :func:`save_edit_result`), when its source is given.
    """
    if result.is_edit and source is not None:
        return save_edit_result(result.values, source, result.provenance, path)
    from xraystudio.io.images import write_png16

    png = write_png16(Path(path).with_suffix(".png"), result.image)
    meta = png.with_suffix(".json")
    write_text(meta, json.dumps(result.provenance, indent=2, default=str) + "\n")
    return [png, meta]

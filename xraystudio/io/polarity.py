"""One polarity for every image a dataset or an export holds: air dark, the sense of MONOCHROME2.

A DICOM stores a radiograph either way round: MONOCHROME2 (higher values brighter, air dark) or
MONOCHROME1 (higher values darker, air bright, as many CR readers write). A viewer reads the
tag; a trainer reading PNGs does not, so a dataset that mixes both teaches a model films upside
down in grey. Every writer of dataset images (``xraystudio synthesize``, the nnU-Net, JSRT and
DICOM SC exports) goes through here:

- stored values (an edit of a real film, kept at its own bit depth) of a MONOCHROME1 source are
  mirrored within the source's stored range, ``lo + hi - v`` (12 bits: ``4095 - v``), which
  keeps the bit depth and every grey-level step and clips nothing;
- display pixels (results saved from the window, generated images) are air dark already: the
  display pipeline inverts MONOCHROME1 after the window (:meth:`XRayImage.display`), as the
  image generator draws.

Each item records :func:`record`: the photometric its pixels are in (always MONOCHROME2), the
source's, and the transform applied; a dataset declares :data:`DECLARATION`.
"""

from __future__ import annotations

import numpy as np

from xraystudio.image import XRayImage

AIR_DARK = "MONOCHROME2"
#: What each transform did to the source's pixels.
TRANSFORMS: dict[str, str] = {
    "none": "the source's stored values as they are (the source is air dark)",
    "inverted": "the source's stored values mirrored within its stored range (lo + hi - value)",
    "display": "the source's display (its window; MONOCHROME1 inverted after it)",
    "generated": "a new image drawn by the model, air dark",
}
#: What a dataset's dataset.json says of its images.
DECLARATION: dict[str, object] = {
    "photometric_interpretation": AIR_DARK,
    "polarity": "air dark (higher values brighter) in every image, whatever the source's "
                "photometric; each item's metadata records the source's and the transform",
    "polarity_transforms": TRANSFORMS,
}


def source_photometric(image: XRayImage | None) -> str | None:
    """A DICOM's PhotometricInterpretation; a plain image (PNG, TIFF, JPEG) stores grey with 0
    black, the sense of MONOCHROME2; None without an image (a mask stack)."""
    if image is None:
        return None
    return str(image.metadata.get("photometric") or ("MONOCHROME1" if image.invert else AIR_DARK))


def record(source: str | None, transform: str, stored_range: tuple[int, int] | None = None
           ) -> dict:
    """What an item records of its polarity."""
    if transform not in TRANSFORMS:
        raise ValueError(f"unknown polarity transform {transform!r}")
    out: dict = {"photometric": AIR_DARK, "source_photometric": source, "transform": transform}
    if stored_range is not None:
        out["stored_range"] = [int(stored_range[0]), int(stored_range[1])]
    return out


def air_dark_stored(stored: np.ndarray, photometric: str | None, lo: int, hi: int
                    ) -> tuple[np.ndarray, dict]:
    """Stored integers in ``[lo, hi]`` (the source's range) as dataset pixels: air dark, at the
    source's bit depth (uint8 when ``hi`` fits 8 bits, else uint16), with their record.

    Raises ValueError for signed or wider than 16-bit ranges, which a PNG cannot hold as they
    are (callers fall back to display pixels or record a failure).
    """
    if lo < 0 or hi > 65535:
        raise ValueError(f"the source stores values in {lo}..{hi}, which a 16-bit PNG cannot "
                         "hold as they are (signed or wider than 16 bits)")
    values = np.clip(np.rint(np.asarray(stored, np.float64)), lo, hi)
    if photometric == "MONOCHROME1":
        values = (lo + hi) - values
        rec = record(photometric, "inverted", (lo, hi))
    else:
        rec = record(photometric, "none")
    return values.astype(np.uint8 if hi <= 255 else np.uint16), rec

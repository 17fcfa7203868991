"""Write an edited radiograph as a DICOM of the source's own kind, pixel format and geometry.

The edit changes a few pixels of a real image, so the object stays the source's (CR, DX ...)
with its size, bits, photometric interpretation, rescale and spacing, and everything a viewer
needs to display it the same way; what changes is what must: the pixels (written uncompressed),
new Study, Series and SOP Instance UIDs (a synthetic image never joins the patient's real
study), ImageType DERIVED\\SECONDARY with SYN, a series description and image comments that
say "synthetic", and the edit's provenance in DerivationDescription. An icon of the old
pixels is dropped.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from xraystudio import __version__
from xraystudio.errors import ImageLoadError
from xraystudio.io.atomic import atomic_path

DESCRIPTION = "SYNTHETIC edit - NOT FOR DIAGNOSIS"
_ST_MAX = 1024


def write_edited_dicom(source: str | os.PathLike, stored: np.ndarray, path: str | os.PathLike,
                       provenance: dict) -> Path:
    """Write ``stored`` (the source's stored pixel integers, edited) as a derived copy of
    ``source`` to ``path``, atomically."""
    import pydicom
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    try:
        ds = pydicom.dcmread(source)
    except Exception as exc:
        raise ImageLoadError(f"{Path(source).name}: the source DICOM cannot be read again ({exc})") from exc
    rows, cols = int(ds.Rows), int(ds.Columns)
    if stored.shape != (rows, cols):
        raise ValueError(f"edited pixels are {stored.shape}, the source is {(rows, cols)}")
    bits = int(ds.BitsAllocated)
    signed = bool(ds.get("PixelRepresentation", 0))
    dtype = np.dtype(f"{'i' if signed else 'u'}{bits // 8}").newbyteorder("<")
    ds.PixelData = np.ascontiguousarray(stored.astype(dtype)).tobytes()
    ds["PixelData"].VR = "OW" if bits > 8 else "OB"
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    for keyword in ("IconImageSequence", "LossyImageCompressionRatio", "LossyImageCompressionMethod"):
        if keyword in ds:
            del ds[keyword]
    if "LossyImageCompression" in ds and ds.LossyImageCompression != "01":
        del ds["LossyImageCompression"]
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.ImageType = ["DERIVED", "SECONDARY", "SYN"]
    ds.SeriesDescription = DESCRIPTION
    ds.ImageComments = "Synthetic image made by xraystudio edit mode; not for diagnosis"
    ds.BurnedInAnnotation = ds.get("BurnedInAnnotation", "NO")
    ds.DerivationDescription = _derivation(provenance)
    ds.SoftwareVersions = f"xraystudio {__version__}"
    with atomic_path(path) as tmp:
        ds.save_as(tmp, enforce_file_format=True)
    return Path(path)


def _derivation(provenance: dict) -> str:
    """The edit's provenance in compact form, cut to the 1024 characters of an ST."""
    brief = {
        "synthetic": True,
        "software": provenance.get("software"),
        "model": (provenance.get("model") or {}).get("name"),
        "seed": (provenance.get("parameters") or {}).get("seed"),
        "edits": provenance.get("edits"),
    }
    text = json.dumps(brief, separators=(",", ":"))
    return text if len(text) <= _ST_MAX else text[: _ST_MAX - 3] + "..."

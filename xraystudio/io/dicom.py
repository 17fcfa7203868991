"""Read a DICOM radiograph into an XRayImage with its full display pipeline.

pydicom decodes the pixels with whichever plugin handles the transfer syntax (pylibjpeg,
openjpeg, libjpeg, RLE, pyjpegls, GDCM are dependencies), applies the Modality LUT, and every
VOI window and VOI LUT of the file becomes a display preset. Each way a file can be unusable maps
to one ImageLoadError whose message says what is wrong and what to do.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from xraystudio.errors import ImageLoadError
from xraystudio.image import Window, XRayImage, auto_windows

log = logging.getLogger(__name__)

GREY = ("MONOCHROME1", "MONOCHROME2")


def read_dicom(path: str | os.PathLike) -> XRayImage:
    """Read one single-frame grey DICOM image. Raises ImageLoadError for anything unusable."""
    import pydicom
    from pydicom.errors import InvalidDicomError
    from pydicom.pixels import apply_modality_lut

    path = Path(path)
    if not path.is_file():
        raise ImageLoadError(f"{path}: no such file")
    try:
        ds = pydicom.dcmread(path)
    except InvalidDicomError:
        ds = _read_without_preamble(path)
    except Exception as exc:  # pydicom raises many kinds on broken files
        raise ImageLoadError(f"{path.name}: the DICOM file is damaged and cannot be read ({exc})") from exc

    _check_image(ds, path)
    ts = _transfer_syntax(ds)
    try:
        stored = ds.pixel_array
    except Exception as exc:
        raise ImageLoadError(_decode_message(path, ts, exc)) from exc
    if stored.ndim != 2:
        raise ImageLoadError(
            f"{path.name}: pixel data has shape {stored.shape}; a single grey frame is required"
        )
    values = np.asarray(apply_modality_lut(stored, ds), dtype=np.float32)
    spacing, spacing_source = _spacing(ds)
    windows = _windows(ds) + auto_windows(values)
    meta = {
        "rows": int(ds.Rows),
        "columns": int(ds.Columns),
        "bits_allocated": int(ds.get("BitsAllocated", 0)),
        "bits_stored": int(ds.get("BitsStored", 0)),
        "pixel_representation": "signed" if ds.get("PixelRepresentation", 0) else "unsigned",
        "photometric": str(ds.PhotometricInterpretation),
        "modality": str(ds.get("Modality", "")),
        "sop_class": _uid_name(ds.get("SOPClassUID")),
        "transfer_syntax": ts,
        "manufacturer": str(ds.get("Manufacturer", "")),
        "body_part": str(ds.get("BodyPartExamined", "")),
        "view_position": str(ds.get("ViewPosition", "")),
        "rescale": [float(ds.get("RescaleSlope", 1) or 1), float(ds.get("RescaleIntercept", 0) or 0)],
        "modality_lut_sequence": "ModalityLUTSequence" in ds,
    }
    return XRayImage(
        values=values,
        windows=windows,
        invert=str(ds.PhotometricInterpretation) == "MONOCHROME1",
        spacing_mm=spacing,
        spacing_source=spacing_source,
        source=path,
        format="DICOM",
        metadata=meta,
    )


def _read_without_preamble(path: Path):
    """Files written without the 128-byte preamble are still DICOM; plain junk is not."""
    import pydicom

    try:
        ds = pydicom.dcmread(path, force=True)
        if "PixelData" in ds or "SOPClassUID" in ds or "Rows" in ds:
            return ds
    except Exception:
        pass
    raise ImageLoadError(f"{path.name}: not a DICOM file (and not a PNG, JPEG or TIFF image)")


def _check_image(ds, path: Path) -> None:
    if not any(k in ds for k in ("PixelData", "FloatPixelData", "DoubleFloatPixelData")):
        what = _uid_name(ds.get("SOPClassUID")) or str(ds.get("Modality", "")) or "this object"
        raise ImageLoadError(
            f"{path.name}: has no pixel data ({what}); open a DICOM file that holds an image"
        )
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if frames > 1:
        raise ImageLoadError(
            f"{path.name}: is a multi-frame image ({frames} frames); a chest radiograph is one "
            "frame: export the frame you want as a single-frame DICOM or PNG"
        )
    photometric = str(ds.get("PhotometricInterpretation", ""))
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    if photometric not in GREY or samples != 1:
        raise ImageLoadError(
            f"{path.name}: is a colour image ({photometric or 'unknown'}, {samples} samples per "
            "pixel); radiographs must be grey (MONOCHROME1 or MONOCHROME2)"
        )


def _transfer_syntax(ds) -> str:
    uid = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    return _uid_name(uid) or "unknown transfer syntax"


def _uid_name(uid) -> str:
    if uid is None:
        return ""
    return str(getattr(uid, "name", uid))


def _decode_message(path: Path, ts: str, exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    detail = " ".join(line.strip() for line in text)[:400]
    if isinstance(exc, ValueError) and "less than expected" in detail:
        return f"{path.name}: the pixel data is truncated or damaged ({detail})"
    if "no pixel data" in detail.lower() or isinstance(exc, AttributeError):
        return f"{path.name}: the pixel data is missing or damaged ({detail})"
    return (
        f"{path.name}: cannot decode its {ts} pixel data with the installed decoders "
        f"(pylibjpeg, openjpeg, libjpeg, pyjpegls, GDCM): {detail}. Convert the file to an "
        "uncompressed or JPEG 2000 DICOM (for example with dcmtk's dcmdjpeg) and open it again."
    )


def _spacing(ds) -> tuple[tuple[float, float] | None, str]:
    # Projection radiographs store spacing at the detector (ImagerPixelSpacing); PixelSpacing is
    # the fallback (secondary captures, some calibrated DX files).
    for key in ("ImagerPixelSpacing", "PixelSpacing"):
        value = ds.get(key)
        if value is not None:
            try:
                row, col = (float(v) for v in value)
            except (TypeError, ValueError):
                log.warning("ignoring malformed %s %r", key, value)
                continue
            if row > 0 and col > 0:
                return (row, col), key
    return None, "unknown"


def _windows(ds) -> list[Window]:
    """Every VOI of the file: each centre/width pair, then each VOI LUT of the sequence."""
    out: list[Window] = []
    centers, widths = ds.get("WindowCenter"), ds.get("WindowWidth")
    if centers is not None and widths is not None:
        centers = _as_list(centers)
        widths = _as_list(widths)
        names = _as_list(ds.get("WindowCenterWidthExplanation", []))
        function = str(ds.get("VOILUTFunction", "LINEAR") or "LINEAR").upper()
        if function not in ("LINEAR", "LINEAR_EXACT", "SIGMOID"):
            log.warning("unknown VOI LUT function %r; using LINEAR", function)
            function = "LINEAR"
        for i, (c, w) in enumerate(zip(centers, widths)):
            try:
                out.append(Window(float(c), float(w), function,
                                  str(names[i]) if i < len(names) else f"File window {i + 1}"))
            except (TypeError, ValueError) as exc:
                log.warning("ignoring window %s/%s: %s", c, w, exc)
    for i, item in enumerate(ds.get("VOILUTSequence", []) or []):
        try:
            out.append(_lut_window(item, signed=bool(ds.get("PixelRepresentation", 0)), index=i))
        except (AttributeError, TypeError, ValueError) as exc:
            log.warning("ignoring malformed VOI LUT %d: %s", i + 1, exc)
    return out


def _lut_window(item, *, signed: bool, index: int) -> Window:
    entries, first, bits = (int(v) for v in item.LUTDescriptor)
    entries = entries or 65536
    if signed and first > 32767:
        first -= 65536
    data = item.LUTData
    if isinstance(data, bytes | bytearray):
        lut = np.frombuffer(data, dtype="<u2" if bits > 8 else "u1")
    else:
        lut = np.asarray(_as_list(data), dtype=np.float64)
    lut = np.asarray(lut[:entries], dtype=np.float32)
    name = str(item.get("LUTExplanation", "") or f"VOI LUT {index + 1}")
    return Window(center=0.0, width=1.0, name=name, lut=lut, lut_first=first,
                  lut_max=float(2**bits - 1))


def _as_list(value) -> list:
    if isinstance(value, str | bytes | int | float) or not hasattr(value, "__iter__"):
        return [value]
    return list(value)

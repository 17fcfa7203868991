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
from xraystudio.io.quiet import c_stderr, quiet

log = logging.getLogger(__name__)

GREY = ("MONOCHROME1", "MONOCHROME2")
LIBRARY_LOGGERS = ("pydicom", "highdicom")


def read_dicom(path: str | os.PathLike) -> XRayImage:
    """Read one single-frame grey DICOM image. Raises ImageLoadError for anything unusable.

    Nothing reaches the terminal while a file is read: pydicom's log records and warnings and
    what C decoders print are kept and logged at INFO (``xraystudio -v``) under this module's
    logger, so a broken file gives exactly one error and a good one no noise.
    """
    path = Path(path)
    if not path.is_file():
        raise ImageLoadError(f"{path}: no such file")
    details: list[str] = []
    try:
        with quiet(details, LIBRARY_LOGGERS):
            return _read(path, details)
    except ImageLoadError as exc:
        exc.details = list(details)  # type: ignore[attr-defined]
        raise
    except MemoryError as exc:
        raise ImageLoadError(f"{path.name}: too large to read into memory") from exc
    except _HeaderError as exc:
        raise ImageLoadError(f"{path.name}: the DICOM header is damaged: {exc}") from exc
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # noqa: BLE001 (a damaged header raises anything; a Rust
        # decoder's panic, pyo3's PanicException, is a BaseException)
        raise ImageLoadError(
            f"{path.name}: the DICOM file is damaged and cannot be read "
            f"({type(exc).__name__}: {_one_line(exc)})"
        ) from exc
    finally:
        for line in details:
            log.info("%s: %s", path.name, line)


def _read(path: Path, details: list[str]) -> XRayImage:
    import pydicom
    from pydicom.errors import InvalidDicomError
    from pydicom.pixels import apply_modality_lut

    from xraystudio.io import codecs  # imports pydicom: only when a DICOM file is read

    codecs.register()
    try:
        ds = pydicom.dcmread(path)
    except InvalidDicomError:
        ds = _read_without_preamble(path)
    except Exception as exc:  # pydicom raises many kinds on broken files
        if _truncated(details) or isinstance(exc, EOFError):
            raise ImageLoadError(_truncated_message(path)) from exc
        raise ImageLoadError(
            f"{path.name}: the DICOM file is damaged and cannot be read ({_one_line(exc)})"
        ) from exc
    if _truncated(details):
        # pydicom drops an encapsulated Pixel Data element whose end is missing.
        raise ImageLoadError(_truncated_message(path))

    _check_image(ds, path)
    ts = _transfer_syntax(ds)
    _check_size(ds, path)
    _check_codestream(ds, path)
    try:
        with c_stderr(details), codecs.watch() as used:
            stored = ds.pixel_array
        decoder = ("imagecodecs" if used else "pydicom plugins") if "Compression" in ts or \
            "JPEG" in ts or "RLE" in ts else ""
    except (MemoryError, KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # noqa: BLE001 (pylibjpeg-rle panics on a damaged stream)
        if _truncated(details):
            raise ImageLoadError(_truncated_message(path)) from exc
        raise ImageLoadError(_decode_message(path, ts, exc)) from exc
    if stored.ndim != 2:
        raise ImageLoadError(
            f"{path.name}: pixel data has shape {stored.shape}; a single grey frame is required"
        )
    notes: list[str] = []
    try:
        values = np.asarray(apply_modality_lut(stored, ds), dtype=np.float32)
    except Exception as exc:  # noqa: BLE001 (a malformed LUT item raises anything)
        details.append(f"Modality LUT not applied: {type(exc).__name__}: {_one_line(exc)}")
        notes.append("its Modality LUT is malformed and was ignored")
        values = np.asarray(stored, dtype=np.float32)
    if not np.isfinite(values).all():
        raise ImageLoadError(f"{path.name}: the pixel values are not finite numbers")
    spacing, spacing_source = _spacing(ds, notes)
    windows = _windows(ds, notes) + auto_windows(values)
    meta = {
        "rows": int(ds.Rows),
        "columns": int(ds.Columns),
        "bits_allocated": _int(ds, "BitsAllocated"),
        "bits_stored": _int(ds, "BitsStored"),
        "pixel_representation": "signed" if _int(ds, "PixelRepresentation") else "unsigned",
        "photometric": str(ds.PhotometricInterpretation),
        "modality": _text(ds, "Modality"),
        "sop_class": _uid_name(ds.get("SOPClassUID")),
        "transfer_syntax": ts,
        "decoder": decoder,
        "manufacturer": _text(ds, "Manufacturer"),
        "body_part": _text(ds, "BodyPartExamined"),
        "view_position": _text(ds, "ViewPosition"),
        "view_code": _code_meaning(ds, "ViewCodeSequence"),
        "anatomic_region": _code_meaning(ds, "AnatomicRegionSequence"),
        "laterality": _text(ds, "ImageLaterality") or _text(ds, "Laterality"),
        "patient_orientation": _text(ds, "PatientOrientation"),
        "study_description": _text(ds, "StudyDescription"),
        "series_description": _text(ds, "SeriesDescription"),
        "protocol_name": _text(ds, "ProtocolName"),
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
        notes=notes,
    )


# Largest image read: 2**28 pixels (16384 x 16384), 1 GB as float32. A header claiming more is
# refused before anything is allocated (a fuzzed 100000 x 100000 header must not allocate).
MAX_PIXELS = 1 << 28


def _check_size(ds, path: Path) -> None:
    rows, cols = _int(ds, "Rows"), _int(ds, "Columns")
    bits = _int(ds, "BitsAllocated")
    if rows <= 0 or cols <= 0:
        raise ImageLoadError(f"{path.name}: the header gives an image size of {rows} x {cols}")
    if bits not in (1, 8, 16, 32, 64):
        raise ImageLoadError(f"{path.name}: the header gives {bits} bits allocated per pixel")
    if rows * cols > MAX_PIXELS:
        raise ImageLoadError(
            f"{path.name}: the header gives an image of {cols} x {rows} pixels, larger than the "
            f"{MAX_PIXELS // (1 << 20)} megapixels this app reads"
        )
    ts = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    if "PixelData" in ds and not (ts is not None and ts.is_encapsulated):
        need = (rows * cols * bits + 7) // 8
        have = len(ds.PixelData or b"")
        if have < need:
            raise ImageLoadError(
                f"{path.name}: the file is truncated or damaged: its pixel data has {have} of "
                f"the {need} bytes a {cols} x {rows} image of {bits} bits needs"
            )


def _check_codestream(ds, path: Path) -> None:
    """The compressed image's own size and depth must fit the header's (see
    :mod:`xraystudio.io.codestream`: GDCM aborts the process when they do not)."""
    ts = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    if ts is None or not ts.is_encapsulated or "PixelData" not in ds:
        return
    from pydicom.encaps import generate_frames

    from xraystudio.io.codestream import codestream_shape

    try:
        frame = next(generate_frames(ds.PixelData, number_of_frames=1))
    except StopIteration:
        raise ImageLoadError(f"{path.name}: its compressed pixel data holds no image") from None
    except Exception as exc:  # noqa: BLE001 (damaged item tags or offsets)
        raise ImageLoadError(
            f"{path.name}: its compressed pixel data is damaged ({_one_line(exc)[:160]})"
        ) from exc
    shape = codestream_shape(ts, frame)
    if shape is None:
        return  # not parsed here: the decoders judge it
    rows, cols, components, precision = shape
    header = (_int(ds, "Rows"), _int(ds, "Columns"), _int(ds, "SamplesPerPixel", 1) or 1)
    if (rows, cols, components) != header or precision > _int(ds, "BitsAllocated"):
        raise ImageLoadError(
            f"{path.name}: the file is damaged: its header describes a {header[1]} x "
            f"{header[0]} image ({header[2]} sample(s), {_int(ds, 'BitsAllocated')} bits "
            f"allocated) but its compressed pixel data one of {cols} x {rows} ({components} "
            f"sample(s), {precision} bits)"
        )


def _truncated(details: list[str]) -> bool:
    return any("End of file reached" in d or "unexpected end of file" in d.lower()
               for d in details)


def _truncated_message(path: Path) -> str:
    size = path.stat().st_size
    where = "inside its pixel data" if _has_pixel_tag(path) else "before its pixel data"
    return (f"{path.name}: the file is truncated: it ends after {size} bytes, {where}; copy it "
            "again from its source")


def _has_pixel_tag(path: Path) -> bool:
    with open(path, "rb") as f:
        data = f.read()
    return b"\xe0\x7f\x10\x00" in data or b"\x7f\xe0\x00\x10" in data


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
        what = _uid_name(ds.get("SOPClassUID")) or _text(ds, "Modality") or "this object"
        raise ImageLoadError(
            f"{path.name}: has no pixel data ({what}); open a DICOM file that holds an image"
        )
    frames = _int(ds, "NumberOfFrames", 1) or 1
    if frames > 1:
        raise ImageLoadError(
            f"{path.name}: is a multi-frame image ({frames} frames); a chest radiograph is one "
            "frame: export the frame you want as a single-frame DICOM or PNG"
        )
    photometric = _text(ds, "PhotometricInterpretation")
    samples = _int(ds, "SamplesPerPixel", 1) or 1
    if photometric not in GREY or samples != 1:
        raise ImageLoadError(
            f"{path.name}: is a colour image ({photometric or 'unknown'}, {samples} samples per "
            "pixel); radiographs must be grey (MONOCHROME1 or MONOCHROME2)"
        )


class _HeaderError(Exception):
    """An attribute the reader needs does not parse."""


def _int(ds, key: str, default: int = 0) -> int:
    """An integer attribute; a malformed one (``'1A'``) is a damaged header."""
    try:
        value = ds.get(key, default)
    except Exception as exc:  # noqa: BLE001 (pydicom converts lazily and raises anything)
        raise _HeaderError(f"the {key} attribute is malformed ({_one_line(exc)})") from exc
    if value is None or value == "":
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        raise _HeaderError(f"the {key} attribute is malformed ({value!r})") from None


def _text(ds, key: str) -> str:
    try:
        value = ds.get(key, "")
    except Exception:  # noqa: BLE001
        return ""
    if value is None:
        return ""
    if isinstance(value, bytes | bytearray):
        value = value.decode("ascii", "replace")
    if not isinstance(value, str) and hasattr(value, "__iter__"):
        value = "\\".join(str(v) for v in value)
    return str(value).strip()


def _code_meaning(ds, key: str) -> str:
    try:
        items = ds.get(key) or []
        return "; ".join(str(item.get("CodeMeaning", "")).strip() for item in items
                         if item.get("CodeMeaning"))
    except Exception:  # noqa: BLE001
        return ""


def _one_line(exc: BaseException) -> str:
    return " ".join(line.strip() for line in str(exc).strip().splitlines())[:300]


def _transfer_syntax(ds) -> str:
    uid = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    return _uid_name(uid) or "unknown transfer syntax"


def _uid_name(uid) -> str:
    if uid is None:
        return ""
    return str(getattr(uid, "name", uid))


def _decode_message(path: Path, ts: str, exc: Exception) -> str:
    detail = _one_line(exc)
    if "less than expected" in detail or "end of file" in detail.lower():
        return f"{path.name}: the file is truncated or its pixel data damaged ({detail[:160]})"
    if "no pixel data" in detail.lower() or isinstance(exc, AttributeError):
        return f"{path.name}: the pixel data is missing or damaged ({detail[:160]})"
    return (
        f"{path.name}: none of the installed decoders (pylibjpeg, GDCM, Pillow, pyjpegls, "
        f"imagecodecs) can decode its {ts} pixel data (run with -v for each one's reason); "
        "convert it to an uncompressed or JPEG 2000 DICOM (for example with dcmtk's dcmdjpeg) "
        "and open it again"
    )


def _spacing(ds, notes: list[str]) -> tuple[tuple[float, float] | None, str]:
    # Projection radiographs store spacing at the detector (ImagerPixelSpacing); PixelSpacing is
    # the fallback (secondary captures, some calibrated DX files).
    for key in ("ImagerPixelSpacing", "PixelSpacing"):
        value = ds.get(key)
        if value is not None:
            try:
                row, col = (float(v) for v in value)
            except (TypeError, ValueError):
                notes.append(f"ignored its malformed {key} {value!r}")
                continue
            if row > 0 and col > 0:
                return (row, col), key
    return None, "unknown"


def _windows(ds, notes: list[str]) -> list[Window]:
    """Every VOI of the file: each centre/width pair, then each VOI LUT of the sequence."""
    out: list[Window] = []
    centers, widths = ds.get("WindowCenter"), ds.get("WindowWidth")
    if centers is not None and widths is not None:
        centers = _as_list(centers)
        widths = _as_list(widths)
        names = _as_list(ds.get("WindowCenterWidthExplanation", []))
        function = str(ds.get("VOILUTFunction", "LINEAR") or "LINEAR").upper()
        if function not in ("LINEAR", "LINEAR_EXACT", "SIGMOID"):
            notes.append(f"unknown VOI LUT function {function!r}; LINEAR used")
            function = "LINEAR"
        for i, (c, w) in enumerate(zip(centers, widths)):
            try:
                center, width = float(c), float(w)
                if not (abs(center) < 1e30 and 0 < width < 1e30):  # nan, inf, 1e308, <= 0
                    raise ValueError("out of range")
                out.append(Window(center, width, function,
                                  str(names[i]) if i < len(names) else f"File window {i + 1}"))
            except (TypeError, ValueError):
                notes.append(f"ignored its malformed window {c}/{w}")
    for i, item in enumerate(ds.get("VOILUTSequence", []) or []):
        try:
            out.append(_lut_window(item, signed=bool(ds.get("PixelRepresentation", 0)), index=i))
        except (AttributeError, TypeError, ValueError) as exc:
            notes.append(f"ignored its malformed VOI LUT {i + 1} ({exc})")
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

"""Make small, valid radiograph DICOM files for the tests (no external data needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.sequence import Sequence
from pydicom.uid import (
    CTImageStorage,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    JPEGBaseline8Bit,
    generate_uid,
)

DX_STORAGE = "1.2.840.10008.5.1.4.1.1.1.1"


def chest_like(h: int = 64, w: int = 48, bits: int = 12) -> np.ndarray:
    """A smooth test pattern: dark 'lungs' (low values) on a bright body, in ``bits`` bits."""
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.full((h, w), 0.8)
    for cx in (w * 0.3, w * 0.7):
        img -= 0.5 * (((xx - cx) / (w * 0.16)) ** 2 + ((yy - h * 0.5) / (h * 0.3)) ** 2 < 1)
    img += 0.05 * np.sin(xx / 3.0)
    return np.rint(np.clip(img, 0, 1) * (2**bits - 1)).astype(np.uint16)


def make_dicom(
    path: Path,
    pixels: np.ndarray | None = None,
    *,
    photometric: str = "MONOCHROME2",
    bits_stored: int = 12,
    windows: list[tuple[float, float, str]] | None = None,
    rescale: tuple[float, float] | None = None,
    imager_spacing: tuple[float, float] | None = (0.15, 0.15),
    pixel_spacing: tuple[float, float] | None = None,
    voi_function: str | None = None,
    transfer_syntax: str = ExplicitVRLittleEndian,
    sop_class: str = DX_STORAGE,
    extra=None,
) -> Path:
    """Write a single-frame grey DX image; compressed syntaxes use pydicom's own encoders."""
    arr = chest_like(bits=bits_stored) if pixels is None else pixels
    signed = arr.dtype.kind == "i"
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.Modality = "DX" if sop_class == DX_STORAGE else "CT"
    ds.PatientName = "Test^Patient"
    ds.PatientID = "T123"
    ds.Rows, ds.Columns = arr.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = 16 if arr.dtype.itemsize == 2 else 8
    ds.BitsStored = bits_stored
    ds.HighBit = bits_stored - 1
    ds.PixelRepresentation = 1 if signed else 0
    ds.PixelData = arr.tobytes()
    if windows:
        ds.WindowCenter = [w[0] for w in windows]
        ds.WindowWidth = [w[1] for w in windows]
        ds.WindowCenterWidthExplanation = [w[2] for w in windows]
    if voi_function:
        ds.VOILUTFunction = voi_function
    if rescale:
        ds.RescaleSlope, ds.RescaleIntercept = rescale
    if imager_spacing:
        ds.ImagerPixelSpacing = list(imager_spacing)
    if pixel_spacing:
        ds.PixelSpacing = list(pixel_spacing)
    if extra:
        extra(ds)
    if transfer_syntax == JPEGBaseline8Bit:
        ds.PixelData = encapsulate([_jpeg_bytes(arr)])
        ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
        ds["PixelData"].VR = "OB"
        ds.LossyImageCompression = "01"
    elif transfer_syntax == DeflatedExplicitVRLittleEndian:
        ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    elif transfer_syntax != ExplicitVRLittleEndian:
        ds.compress(transfer_syntax, arr)
    ds.save_as(path, enforce_file_format=True)
    return path


def _jpeg_bytes(arr: np.ndarray) -> bytes:
    """Baseline JPEG of an 8-bit grey image (pydicom has no JPEG encoder; Pillow has one)."""
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(arr.astype(np.uint8)).save(buf, format="JPEG", quality=95)
    return buf.getvalue()


def add_voi_lut(ds: Dataset, lut: np.ndarray, first: int, bits: int) -> None:
    item = Dataset()
    item.LUTDescriptor = [len(lut), first, bits]
    item.LUTExplanation = "Test LUT"
    item.add_new("LUTData", "US", [int(v) for v in lut])
    ds.VOILUTSequence = Sequence([item])


__all__ = ["CTImageStorage", "DX_STORAGE", "add_voi_lut", "chest_like", "make_dicom"]

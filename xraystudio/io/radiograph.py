"""One entry point to open any radiograph file: DICOM by content, else a plain image."""

from __future__ import annotations

import os
from pathlib import Path

from xraystudio.errors import ImageLoadError
from xraystudio.image import XRayImage
from xraystudio.io.dicom import read_dicom
from xraystudio.io.images import read_image

# Signatures of the plain image formats we read; anything else is tried as DICOM.
_IMAGE_MAGIC = (
    b"\x89PNG\r\n\x1a\n",
    b"\xff\xd8\xff",  # JPEG
    b"II*\x00",  # TIFF little endian
    b"MM\x00*",  # TIFF big endian
    b"II+\x00",  # BigTIFF
    b"BM",  # BMP
)


def load_radiograph(path: str | os.PathLike) -> XRayImage:
    """Open a DICOM, PNG, JPEG or TIFF radiograph, deciding by the file's content, not its name."""
    path = Path(path)
    if path.is_dir():
        raise ImageLoadError(f"{path}: is a folder; open an image file")
    if not path.is_file():
        raise ImageLoadError(f"{path}: no such file")
    try:
        with open(path, "rb") as f:
            head = f.read(132)
    except OSError as exc:
        raise ImageLoadError(f"{path}: cannot be read ({exc.strerror})") from exc
    if not head:
        raise ImageLoadError(f"{path.name}: the file is empty")
    if head[128:132] != b"DICM" and head.startswith(_IMAGE_MAGIC):
        return read_image(path)
    return read_dicom(path)

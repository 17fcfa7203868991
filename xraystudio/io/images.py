"""Read and write plain image files (PNG, JPEG, TIFF) as radiographs.

8- and 16-bit grey images load as they are; colour images are converted to grey (ITU-R 601
luma) with a note, because a radiograph saved as RGB by a viewer is still a grey picture.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from xraystudio.errors import ImageLoadError
from xraystudio.image import Window, XRayImage, auto_windows
from xraystudio.io.atomic import atomic_path
from xraystudio.io.quiet import quiet

log = logging.getLogger(__name__)

TIFF_SUFFIXES = (".tif", ".tiff")

#: zlib level of the radiograph and label PNGs the product writes (saved results, synthesize,
#: export, dataset cases). Level 1 writes a 1024 x 1024 radiograph 6-9 times
#: faster than Pillow's default (6) for files 7-17 % larger, lossless either way; at the default,
#: writing took half of a GPU ``synthesize`` run's time.
PNG_COMPRESS_LEVEL = 1


def read_image(path: str | os.PathLike) -> XRayImage:
    """Read a PNG/JPEG/TIFF/BMP file as a grey radiograph; ImageLoadError when it cannot."""
    path = Path(path)
    if not path.is_file():
        raise ImageLoadError(f"{path}: no such file")
    notes: list[str] = []
    details: list[str] = []
    try:
        # Pillow and tifffile warn and log about damaged files: kept off the terminal (-v).
        with quiet(details, ("PIL", "tifffile")):
            if path.suffix.lower() in TIFF_SUFFIXES or _is_tiff(path):
                arr, fmt = _read_tiff(path), "TIFF"
            else:
                arr, fmt = _read_pillow(path)
    except ImageLoadError:
        raise
    except MemoryError as exc:
        raise ImageLoadError(f"{path.name}: too large to read into memory") from exc
    except Exception as exc:  # noqa: BLE001 (a damaged file raises anything)
        text = " ".join(str(exc).split())[:300]
        raise ImageLoadError(f"{path.name}: the image file is damaged or unsupported ({text})") from exc
    finally:
        for line in details:
            log.info("%s: %s", path.name, line)
    if arr.ndim == 3:
        arr, note = _to_grey(arr)
        notes.append(note)
    if arr.ndim != 2:
        raise ImageLoadError(f"{path.name}: expected a 2-D image, got shape {arr.shape}")
    values = arr.astype(np.float32)
    bits = _bits(arr)
    # 8-bit files are display-ready as stored; deeper files rarely use their full range.
    windows = (
        [Window.from_range(0, 255, "Full range (8 bit)")] + auto_windows(values)[1:]
        if bits == 8
        else auto_windows(values)
    )
    meta = {"rows": arr.shape[0], "columns": arr.shape[1], "bits": bits, "dtype": str(arr.dtype)}
    return XRayImage(values, windows, source=path, format=fmt, metadata=meta, notes=notes)


def _read_pillow(path: Path) -> tuple[np.ndarray, str]:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            fmt = im.format or path.suffix.lstrip(".").upper()
            _check_pixels(path, im.size[0] * im.size[1])
            if getattr(im, "n_frames", 1) > 1:
                raise ImageLoadError(f"{path.name}: has {im.n_frames} frames; open a single image")
            if im.mode in ("P", "PA"):
                im = im.convert("RGBA" if "transparency" in im.info or im.mode == "PA" else "RGB")
            elif im.mode == "1":
                im = im.convert("L")
            elif im.mode in ("I;16B", "I;16L", "I;16N"):
                im = im.convert("I;16")
            elif im.mode == "CMYK":
                im = im.convert("RGB")
            im.load()
            return np.asarray(im), fmt
    except Image.DecompressionBombError as exc:  # Pillow's own limit, checked at open
        raise ImageLoadError(
            f"{path.name}: the file claims an image larger than this app reads ({exc})"
        ) from None
    except UnidentifiedImageError:
        raise ImageLoadError(
            f"{path.name}: not a DICOM, PNG, JPEG or TIFF image; open a chest radiograph file"
        ) from None


def _read_tiff(path: Path) -> np.ndarray:
    import tifffile

    with tifffile.TiffFile(path) as tif:
        if not tif.pages:
            raise ImageLoadError(f"{path.name}: the TIFF file holds no image")
        page = tif.pages[0]
        _check_pixels(path, int(np.prod(page.shape)) if page.shape else 0)
        arr = page.asarray()
    arr = np.squeeze(arr)
    if arr.ndim == 3 and arr.shape[0] in (3, 4) and arr.shape[-1] not in (3, 4):
        arr = np.moveaxis(arr, 0, -1)
    return arr


def _is_tiff(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(4) in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")


def _check_pixels(path: Path, count: int) -> None:
    """Refuse a header claiming more pixels than the app reads before anything is decoded."""
    from xraystudio.io.dicom import MAX_PIXELS

    if count > MAX_PIXELS:
        raise ImageLoadError(
            f"{path.name}: the file claims {count / 1e6:.0f} million pixels, more than the "
            f"{MAX_PIXELS // (1 << 20)} megapixels this app reads"
        )
    if count <= 0:
        raise ImageLoadError(f"{path.name}: the file holds an empty image")


def _to_grey(arr: np.ndarray) -> tuple[np.ndarray, str]:
    channels = arr.shape[-1]
    if channels in (2, 4):  # grey+alpha or RGBA: alpha is not image content
        arr = arr[..., :-1]
        channels -= 1
    if channels == 1:
        return arr[..., 0], "alpha channel dropped"
    if channels != 3:
        raise ImageLoadError(f"unsupported image with {channels} channels")
    rgb = arr.astype(np.float32)
    grey = rgb @ np.array([0.299, 0.587, 0.114], np.float32)
    if np.issubdtype(arr.dtype, np.integer):
        grey = np.rint(grey).astype(arr.dtype)
    return grey, "colour image converted to grey (ITU-R 601 luma)"


def _bits(arr: np.ndarray) -> int:
    if arr.dtype == np.uint8 or arr.dtype == bool:
        return 8
    if arr.dtype in (np.uint16, np.int16):
        return 16
    return arr.dtype.itemsize * 8


def write_png16(path: str | os.PathLike, display: np.ndarray) -> Path:
    """Write a display image in [0, 1] as a 16-bit grey PNG, atomically."""
    return _write_png(path, display, np.uint16)


def write_png8(path: str | os.PathLike, display: np.ndarray) -> Path:
    """Write a display image in [0, 1] as an 8-bit grey PNG, atomically."""
    return _write_png(path, display, np.uint8)


def _write_png(path: str | os.PathLike, display: np.ndarray, dtype: type) -> Path:
    top = np.iinfo(dtype).max
    arr = np.rint(np.clip(np.asarray(display, np.float32), 0, 1) * top).astype(dtype)
    path = Path(path)
    save_png(path, arr)
    return path


def write_png_values(path: str | os.PathLike, values: np.ndarray, dtype: str) -> Path:
    """Write integer pixel values as a grey PNG of ``dtype`` (uint8 or uint16), atomically: an
    edited PNG keeps the source's bit depth and values."""
    kind = np.dtype(dtype)
    if kind not in (np.uint8, np.uint16):
        raise ValueError(f"a PNG holds 8 or 16-bit grey values, not {dtype}")
    info = np.iinfo(kind)
    arr = np.clip(np.rint(values), info.min, info.max).astype(kind)
    path = Path(path)
    save_png(path, arr)
    return path


def save_png(path: str | os.PathLike, pixels: np.ndarray) -> None:
    """Write uint8, uint16 or bool pixels as they are to a PNG, atomically and with its folder:
    a killed run leaves the old file or none, never half a PNG that a resume would trust."""
    from PIL import Image

    with atomic_path(path) as tmp:
        Image.fromarray(pixels).save(tmp, format="PNG", compress_level=PNG_COMPRESS_LEVEL)

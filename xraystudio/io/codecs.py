"""imagecodecs as a pydicom pixel-data decoder plugin, tried after pydicom's own plugins.

pydicom 3 decodes compressed pixel data with plugins (pylibjpeg, GDCM, Pillow, pyjpegls); a
plugin is a module with ``is_available(uid)``, ``DECODER_DEPENDENCIES`` and a frame decoder.
imagecodecs (libjpeg-turbo 3, CharLS, OpenJPEG, OpenJPH) decodes what those refuse, first of all
the 12-bit JPEG Extended (process 4) files of the NEMA WG04 set and pydicom's ``JPEG-lossy.dcm``:
GDCM and Pillow do not support 12-bit JPEG, and pylibjpeg-libjpeg rejects their scan header
(spectral selection end 0 instead of 63, which a baseline decoder ignores). It is added last,
so files the standard plugins decode keep their decoder and their values.

Only grey (one sample per pixel) frames are handled: the app reads grey radiographs, and a
colour JPEG's colour conversion would have to be matched to pydicom's conventions.
"""

from __future__ import annotations

import contextlib
import threading

from pydicom import uid

_DEPENDENCIES = ("numpy", "imagecodecs>=2024.1")

# Transfer syntax -> name of the imagecodecs function that decodes one frame of it.
_FUNCTIONS: dict[str, str] = {
    uid.JPEGBaseline8Bit: "jpeg8_decode",
    uid.JPEGExtended12Bit: "jpeg8_decode",
    uid.JPEGLossless: "jpeg8_decode",
    uid.JPEGLosslessSV1: "jpeg8_decode",
    uid.JPEGLSLossless: "jpegls_decode",
    uid.JPEGLSNearLossless: "jpegls_decode",
    uid.JPEG2000Lossless: "jpeg2k_decode",
    uid.JPEG2000: "jpeg2k_decode",
    uid.HTJ2KLossless: "htj2k_decode",
    uid.HTJ2KLosslessRPCL: "htj2k_decode",
    uid.HTJ2K: "htj2k_decode",
}
# Lossless JPEG (process 14): libjpeg-turbo 3 decodes it; older builds need ljpeg_decode.
_FALLBACKS = {"jpeg8_decode": ("ljpeg_decode", "jpegsof3_decode")}

DECODER_DEPENDENCIES = {ts: _DEPENDENCIES for ts in _FUNCTIONS}

PLUGIN = "imagecodecs"
_lock = threading.Lock()
_registered = False
_local = threading.local()


@contextlib.contextmanager
def watch():
    """``with watch() as used:`` -- ``used`` is true after the block when this plugin decoded a
    frame in it (on this thread)."""
    flag = _Flag()
    previous = getattr(_local, "flag", None)
    _local.flag = flag
    try:
        yield flag
    finally:
        _local.flag = previous


class _Flag:
    def __init__(self) -> None:
        self.used = False

    def __bool__(self) -> bool:
        return self.used


def _codec(name: str):
    try:
        import imagecodecs
    except ImportError:
        return None
    func = getattr(imagecodecs, name, None)
    # A codec missing from this build is present as a stub that raises when called.
    check = getattr(imagecodecs, name.replace("_decode", "").upper(), None)
    if func is None or (check is not None and not getattr(check, "available", True)):
        return None
    return func


def is_available(transfer_syntax: str) -> bool:
    """True when imagecodecs is installed and has a decoder for ``transfer_syntax``."""
    name = _FUNCTIONS.get(transfer_syntax)
    return name is not None and _codec(name) is not None


def decode_frame(src: bytes, runner) -> bytes:
    """Decode one encapsulated frame to the bytes pydicom expects (native byte order)."""
    import numpy as np

    if runner.samples_per_pixel != 1:
        raise NotImplementedError("the imagecodecs plugin of xraystudio decodes grey frames only")
    name = _FUNCTIONS[runner.transfer_syntax]
    errors = []
    for candidate in (name, *_FALLBACKS.get(name, ())):
        func = _codec(candidate)
        if func is None:
            continue
        try:
            frame = np.asarray(func(src))
            break
        except Exception as exc:  # noqa: BLE001 (each codec raises its own kind)
            errors.append(f"{candidate}: {exc}")
    else:
        raise RuntimeError("; ".join(errors) or f"imagecodecs has no {name}")
    frame = np.squeeze(frame)
    if frame.shape != (runner.rows, runner.columns):
        raise ValueError(
            f"imagecodecs decoded a frame of shape {frame.shape}, the file says "
            f"{runner.rows} x {runner.columns}"
        )
    if frame.dtype.kind not in "ui" or frame.dtype.itemsize > 4:
        raise ValueError(f"imagecodecs decoded {frame.dtype} samples")
    # The container follows the codec's precision, as pydicom's own plugins do.
    runner.set_option("bits_allocated", frame.dtype.itemsize * 8)
    if frame.dtype.kind == "i":
        frame = frame.view(frame.dtype.str.replace("i", "u"))
    flag = getattr(_local, "flag", None)
    if flag is not None:
        flag.used = True
    return np.ascontiguousarray(frame).tobytes()


def register() -> bool:
    """Add the plugin to every pydicom decoder it serves (once); False without imagecodecs."""
    global _registered
    with _lock:
        if _registered:
            return True
        if _codec("jpeg8_decode") is None:
            return False
        from pydicom.pixels import get_decoder

        for ts in _FUNCTIONS:
            try:
                decoder = get_decoder(uid.UID(ts))
            except (NotImplementedError, ValueError):
                continue
            try:
                decoder.add_plugin(PLUGIN, (__name__, "decode_frame"))
            except ValueError:
                pass  # added before (by another import of this module) or not served
        _guard_gdcm()
        _registered = True
        return True


def _guard_gdcm() -> None:
    """Move GDCM behind every other plugin and guard it (see xraystudio.io.gdcm_guard)."""
    from pydicom.pixels import get_decoder

    from xraystudio.io import gdcm_guard

    for ts in (*_FUNCTIONS, uid.RLELossless):
        try:
            decoder = get_decoder(uid.UID(ts))
        except (NotImplementedError, ValueError):
            continue
        if "gdcm" not in decoder._available or decoder._available["gdcm"] is gdcm_guard.decode_frame:  # noqa: SLF001
            continue
        decoder.remove_plugin("gdcm")
        decoder.add_plugin("gdcm", (gdcm_guard.__name__, "decode_frame"))

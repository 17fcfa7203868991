"""What a compressed DICOM frame says about itself: its size, samples and precision.

Decoders trust these while the buffer they fill is sized from the DICOM header: GDCM aborts the
whole process (an uncaught C++ exception) when the two disagree, so the reader
(:mod:`xraystudio.io.dicom`) and the GDCM guard (:mod:`xraystudio.io.gdcm_guard`) compare them
first. Kept apart from the decoder plugins (:mod:`xraystudio.io.codecs`), which register the
guard: neither needs the other's module for this.
"""

from __future__ import annotations

import struct

from pydicom import uid

#: JPEG family (baseline, extended, lossless, JPEG-LS): the SOF marker holds the shape.
JPEG_SYNTAXES = frozenset({
    uid.JPEGBaseline8Bit, uid.JPEGExtended12Bit, uid.JPEGLossless, uid.JPEGLosslessSV1,
    uid.JPEGLSLossless, uid.JPEGLSNearLossless,
})
#: JPEG 2000 and HTJ2K: the SIZ marker holds the shape.
J2K_SYNTAXES = frozenset({
    uid.JPEG2000Lossless, uid.JPEG2000, uid.HTJ2KLossless, uid.HTJ2KLosslessRPCL, uid.HTJ2K,
})


def codestream_shape(transfer_syntax: str, frame: bytes) -> tuple[int, int, int, int] | None:
    """(rows, columns, components, precision) the compressed frame itself declares, read from
    its JPEG/JPEG-LS SOF or JPEG 2000 SIZ marker; ``None`` when it cannot be parsed."""
    from pydicom.pixels.utils import _get_jpg_parameters

    if transfer_syntax in J2K_SYNTAXES:
        return _j2k_shape(frame)
    if transfer_syntax in JPEG_SYNTAXES:
        try:
            info = _get_jpg_parameters(frame)
        except Exception:  # noqa: BLE001 (a damaged stream)
            return None
        if not info or "height" not in info:
            return None
        return (int(info["height"]), int(info["width"]), int(info.get("components", 1)),
                int(info.get("precision", 0)))
    return None


def _j2k_shape(frame: bytes) -> tuple[int, int, int, int] | None:
    offset = 0
    if frame[4:8] == b"jP  ":  # a JP2 file: find the codestream box
        offset = 12
        while offset + 8 <= len(frame):
            length = int.from_bytes(frame[offset:offset + 4], "big")
            if frame[offset + 4:offset + 8] == b"jp2c":
                offset += 8
                break
            if length < 8:
                return None
            offset += length
        else:
            return None
    siz = frame[offset:offset + 42]
    if len(siz) < 42 or siz[:4] != b"\xff\x4f\xff\x51":
        return None
    x, y, x0, y0 = struct.unpack(">IIII", siz[8:24])
    components = int.from_bytes(siz[40:42], "big")
    precision = (frame[offset + 42] & 0x7F) + 1 if len(frame) > offset + 42 else 0
    return y - y0, x - x0, components, precision

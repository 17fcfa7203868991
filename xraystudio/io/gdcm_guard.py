"""GDCM as pydicom's last decoder plugin, asked only about frames whose header it can trust.

GDCM aborts the whole process (an uncaught C++ exception: ``terminate called after throwing an
instance of 'gdcm::Exception'``) when a DICOM header disagrees with its compressed frame: rows
or columns, bits allocated (32 or 64 for an 8-bit JPEG), bits stored (7 for an 8-bit JPEG).
The fuzz harness (benchmarks/fuzz_open.py) found all three. pydicom tries GDCM first; here it
is tried last, after pylibjpeg, Pillow, pyjpegls and imagecodecs, and only when the frame's own
size, samples and precision (its SOF or SIZ marker, or its RLE header) match the header.
"""

from __future__ import annotations

from pydicom import uid
from pydicom.pixels.decoders import gdcm as _gdcm

from xraystudio.io.codestream import codestream_shape

DECODER_DEPENDENCIES = _gdcm.DECODER_DEPENDENCIES
PLUGIN = "gdcm"


def is_available(transfer_syntax: str) -> bool:
    return _gdcm.is_available(transfer_syntax)


def decode_frame(src: bytes, runner) -> bytes | bytearray:
    problem = _disagreement(src, runner)
    if problem:
        raise ValueError(f"not given to GDCM, which would abort on it: {problem}")
    return _gdcm._decode_frame(src, runner)


def _disagreement(src: bytes, runner) -> str:
    ts = runner.transfer_syntax
    allocated, stored = runner.bits_allocated, runner.bits_stored
    if allocated not in (8, 16) or not 0 < stored <= allocated:
        return f"{allocated} bits allocated, {stored} stored"
    if ts == uid.RLELossless:
        if len(src) < 64:
            return "no RLE header"
        segments = int.from_bytes(src[:4], "little")
        expected = runner.samples_per_pixel * allocated // 8
        return "" if segments == expected else f"{segments} RLE segments, {expected} expected"
    shape = codestream_shape(ts, src)
    if shape is None:
        return "its frame header could not be read"
    rows, cols, components, precision = shape
    header = (runner.rows, runner.columns, runner.samples_per_pixel, stored)
    if (rows, cols, components, precision) != header:
        return (f"the frame is {cols} x {rows} x {components} at {precision} bits, the header "
                f"says {header[1]} x {header[0]} x {header[2]} at {header[3]} bits")
    return ""

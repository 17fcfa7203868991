"""Fuzz the radiograph loader: mutated DICOM, PNG, JPEG and TIFF files must open or raise
ImageLoadError -- no other exception, no hang, no crash of the process, bounded memory.

Seeds are made here (uncompressed, big endian, deflated, RLE, JPEG baseline, 12-bit JPEG
Extended, JPEG-LS, JPEG 2000 DICOMs; 8/16-bit PNG, JPEG, TIFF) plus pydicom's small test files.
Each case is a seed with 1-4 mutations: bit flips, interesting bytes, truncation, chunk
duplication or removal, and overwrites of the image attributes a reader trusts (Rows, Columns,
Bits Allocated/Stored, Samples per Pixel, Number of Frames, element lengths) with extreme values
such as 65535 x 65535. Cases run in a worker process with an address-space limit; a case that
takes longer than --timeout is a hang (the worker is killed and restarted), a worker that dies
(a signal from a C decoder) is a crash, and a case that printed anything on stderr or raised a
warning while opening and displaying is "noisy". All three count as failures.

    python benchmarks/fuzz_open.py [--cases 5000] [--seed 0] [--timeout 10] [--memory-mb 3072]

Writes benchmarks/results/fuzz_open.json; exits 1 when any case crashed, raised or hung.
tests/fuzz/test_fuzz_open.py runs a few hundred fixed-seed cases of the same harness in CI.
"""

from __future__ import annotations

import argparse
import io
import json
import multiprocessing as mp
import os
import platform
import resource
import struct
import sys
import tempfile
import time
import traceback
from collections import Counter
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results" / "fuzz_open.json"

# (group, element) of attributes worth lying about, and values to lie with.
_IMAGE_TAGS = [(0x0028, 0x0010), (0x0028, 0x0011), (0x0028, 0x0100), (0x0028, 0x0101),
               (0x0028, 0x0102), (0x0028, 0x0002), (0x0028, 0x0008), (0x0028, 0x0103),
               (0x0028, 0x0006), (0x7FE0, 0x0010), (0x0028, 0x1052), (0x0028, 0x1053),
               (0x0028, 0x1050), (0x0028, 0x1051), (0x0028, 0x3002), (0x0028, 0x3010)]
_U16 = [0, 1, 2, 7, 8, 12, 15, 16, 17, 31, 32, 33, 64, 255, 4096, 32767, 32768, 65535]
_U32 = [0, 1, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFE, 0xFFFFFFFF, 0x10000]
_BYTES = [0x00, 0x01, 0x7F, 0x80, 0xFE, 0xFF]


# ------------------------------------------------------------------------------ seeds
def make_seeds() -> list[tuple[str, bytes]]:
    """(name, file bytes) of small valid files of every format the loader reads."""
    import pydicom
    from PIL import Image
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.encaps import encapsulate
    from pydicom.uid import (
        DeflatedExplicitVRLittleEndian,
        ExplicitVRBigEndian,
        ExplicitVRLittleEndian,
        JPEG2000Lossless,
        JPEGBaseline8Bit,
        JPEGExtended12Bit,
        JPEGLSLossless,
        RLELossless,
        generate_uid,
    )

    rng = np.random.default_rng(1234)
    yy, xx = np.mgrid[0:48, 0:40]
    base = (2000 + 1500 * np.sin(xx / 5.0) * np.cos(yy / 7.0)
            + rng.integers(0, 200, (48, 40))).astype(np.uint16)

    def dataset(arr: np.ndarray, bits: int) -> Dataset:
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"
        ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
        ds.Modality, ds.BodyPartExamined, ds.ViewPosition = "DX", "CHEST", "PA"
        ds.Rows, ds.Columns = arr.shape
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME1"
        ds.BitsAllocated = 8 if arr.dtype == np.uint8 else 16
        ds.BitsStored, ds.HighBit, ds.PixelRepresentation = bits, bits - 1, 0
        ds.WindowCenter, ds.WindowWidth = [2000, 1000], [4000, 2000]
        ds.RescaleSlope, ds.RescaleIntercept = 1, 0
        ds.ImagerPixelSpacing = [0.15, 0.15]
        ds.PixelData = arr.tobytes()
        return ds

    def save(ds: Dataset) -> bytes:
        buf = io.BytesIO()
        ds.save_as(buf, enforce_file_format=True)
        return buf.getvalue()

    seeds: list[tuple[str, bytes]] = []
    arr12 = np.minimum(base, 4095)
    seeds.append(("explicit_le.dcm", save(dataset(arr12, 12))))
    for name, ts in (("big_endian.dcm", ExplicitVRBigEndian),
                     ("deflated.dcm", DeflatedExplicitVRLittleEndian)):
        ds = dataset(arr12, 12)
        if ts == ExplicitVRBigEndian:
            ds.PixelData = arr12.astype(">u2").tobytes()
        ds.file_meta.TransferSyntaxUID = ts
        seeds.append((name, save(ds)))
    for name, ts in (("rle.dcm", RLELossless), ("jpegls.dcm", JPEGLSLossless),
                     ("j2k.dcm", JPEG2000Lossless)):
        ds = dataset(arr12, 12)
        ds.compress(ts, arr12)
        seeds.append((name, save(ds)))
    arr8 = (arr12 >> 4).astype(np.uint8)
    jpg = io.BytesIO()
    Image.fromarray(arr8).save(jpg, format="JPEG", quality=90)
    ds = dataset(arr8, 8)
    ds.PixelData = encapsulate([jpg.getvalue()])
    ds["PixelData"].VR = "OB"
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    seeds.append(("jpeg_baseline.dcm", save(ds)))
    try:
        import imagecodecs

        ds = dataset(arr12, 12)
        ds.PixelData = encapsulate([imagecodecs.jpeg8_encode(arr12, level=90,
                                                             bitspersample=12)])
        ds["PixelData"].VR = "OB"
        ds.file_meta.TransferSyntaxUID = JPEGExtended12Bit
        seeds.append(("jpeg_extended_12bit.dcm", save(ds)))
    except Exception:  # noqa: BLE001 (an imagecodecs without a 12-bit encoder)
        pass
    ds = dataset(arr12, 12)
    del ds.file_meta  # no preamble, no meta: read with force
    buf = io.BytesIO()
    pydicom.dcmwrite(buf, ds, implicit_vr=True, little_endian=True)
    seeds.append(("no_meta.dcm", buf.getvalue()[128 + 4:] if buf.getvalue()[128:132] == b"DICM"
                  else buf.getvalue()))
    for name, im in (("grey8.png", Image.fromarray(arr8)),
                     ("grey16.png", Image.fromarray(arr12.astype(np.uint16))),
                     ("rgb.png", Image.fromarray(np.stack([arr8] * 3, -1)))):
        b = io.BytesIO()
        im.save(b, format="PNG")
        seeds.append((name, b.getvalue()))
    seeds.append(("grey.jpg", jpg.getvalue()))
    import tifffile

    t = io.BytesIO()
    tifffile.imwrite(t, arr12)
    seeds.append(("grey16.tif", t.getvalue()))
    from pydicom.data import get_testdata_file

    for name in ("MR_small.dcm", "CT_small.dcm", "MR_small_RLE.dcm", "JPEG-lossy.dcm",
                 "MR_small_jpeg_ls_lossless.dcm", "MR_small_jp2klossless.dcm",
                 "JPGLosslessP14SV1_1s_1f_8b.dcm", "MR_small_bigendian.dcm", "image_dfl.dcm"):
        path = get_testdata_file(name, download=False)
        if path:
            seeds.append((name, Path(path).read_bytes()))
    return seeds


# ------------------------------------------------------------------------------ mutations
def _tag_offsets(data: bytes) -> list[tuple[int, int, str]]:
    """(offset of the tag, offset of its value, 'US'|'UL'|'IS'|'len') of image attributes."""
    out = []
    for group, elem in _IMAGE_TAGS:
        for order in ("<", ">"):
            tag = struct.pack(order + "HH", group, elem)
            start = 0
            while (i := data.find(tag, start)) >= 0:
                start = i + 1
                vr = data[i + 4:i + 6]
                if vr in (b"US", b"SS"):
                    out.append((i, i + 8, order + "H"))
                elif vr in (b"UL", b"SL"):
                    out.append((i, i + 8, order + "I"))
                elif vr in (b"IS", b"DS"):
                    out.append((i, i + 8, "text"))
                elif vr in (b"OB", b"OW", b"UN"):
                    out.append((i, i + 8, order + "I"))  # the 4-byte length after 2 reserved
                else:  # implicit VR: 4-byte length, then the value
                    out.append((i, i + 8, order + "H"))
    return out


def mutate(data: bytes, rng: np.random.Generator) -> tuple[bytes, list[str]]:
    """Apply 1-4 random mutations; returns the bytes and what was done."""
    buf = bytearray(data)
    done = []
    for _ in range(int(rng.integers(1, 5))):
        kind = rng.choice(["flip", "byte", "truncate", "dup", "cut", "field", "field", "field"])
        n = len(buf)
        if n < 8:
            break
        if kind == "flip":
            for _ in range(int(rng.integers(1, 9))):
                i = int(rng.integers(n))
                buf[i] ^= 1 << int(rng.integers(8))
            done.append("flip")
        elif kind == "byte":
            i = int(rng.integers(n))
            buf[i] = int(rng.choice(_BYTES))
            done.append(f"byte@{i}")
        elif kind == "truncate":
            keep = int(rng.integers(1, n))
            del buf[keep:]
            done.append(f"truncate@{keep}")
        elif kind == "dup":
            i, size = int(rng.integers(n)), int(rng.integers(1, 256))
            buf[i:i] = buf[i:i + size]
            done.append(f"dup@{i}+{size}")
        elif kind == "cut":
            i, size = int(rng.integers(n)), int(rng.integers(1, 256))
            del buf[i:i + size]
            done.append(f"cut@{i}+{size}")
        else:
            spots = _tag_offsets(bytes(buf))
            if not spots:
                continue
            tag_at, value_at, fmt = spots[int(rng.integers(len(spots)))]
            if fmt == "text":
                text = str(rng.choice(["65535", "-1", "1e308", "nan", "0", "1A", "999999999"]))
                raw = text.encode().ljust(2 * ((len(text) + 1) // 2))
                buf[value_at:value_at + len(raw)] = raw
            elif fmt.endswith("H"):
                buf[value_at:value_at + 2] = struct.pack(fmt, int(rng.choice(_U16)))
            else:
                buf[value_at + 4:value_at + 8] = struct.pack(fmt, int(rng.choice(_U32)))
            done.append(f"field@{tag_at}")
    return bytes(buf), done


# ------------------------------------------------------------------------------ worker
def _worker(jobs, results, memory_mb: int) -> None:
    """Open each case; report (index, outcome, detail, seconds, peak RSS in MB)."""
    if memory_mb:
        limit = memory_mb * 2**20
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    import logging

    logging.disable(logging.CRITICAL)
    import warnings

    from xraystudio.errors import XRayStudioError
    from xraystudio.io.radiograph import load_radiograph

    while True:
        job = jobs.get()
        if job is None:
            return
        index, path = job
        start = time.perf_counter()
        # What reaches the terminal: warnings, and anything written to file descriptor 2.
        noise = tempfile.TemporaryFile()
        saved = os.dup(2)
        os.dup2(noise.fileno(), 2)
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                try:
                    image = load_radiograph(path)
                    assert image.values.ndim == 2 and image.values.size > 0
                    image.display()
                    outcome, detail = "opened", ""
                except XRayStudioError as exc:
                    outcome, detail = "error", str(exc)[:200]
                except MemoryError:
                    outcome, detail = "memory", traceback.format_exc(limit=6)[-1500:]
                except BaseException:  # noqa: BLE001 (what the fuzzer is for)
                    outcome, detail = "exception", traceback.format_exc(limit=8)[-2000:]
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
        noise.seek(0)
        printed = noise.read(2000).decode("utf-8", "replace")
        noise.close()
        if outcome in ("opened", "error") and (caught or printed):
            outcome = "noisy"
            detail = "; ".join([f"{w.category.__name__}: {w.message}" for w in caught]
                               + ([printed] if printed else []))[:1500]
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        results.put((index, outcome, detail, time.perf_counter() - start, rss))


class Pool:
    """One worker process, restarted after a hang or a death."""

    def __init__(self, memory_mb: int) -> None:
        self.ctx = mp.get_context("spawn")
        self.memory_mb = memory_mb
        self.proc = None
        self.start()

    def start(self) -> None:
        self.jobs, self.results = self.ctx.Queue(), self.ctx.Queue()
        self.proc = self.ctx.Process(target=_worker, args=(self.jobs, self.results,
                                                           self.memory_mb), daemon=True)
        self.proc.start()

    def run(self, index: int, path: str, timeout: float):
        import queue

        self.jobs.put((index, path))
        deadline = time.monotonic() + timeout + (30 if index == 0 else 0)  # imports at first
        while True:
            try:
                return self.results.get(timeout=0.2)
            except queue.Empty:
                if not self.proc.is_alive():
                    code = self.proc.exitcode
                    self.start()
                    return index, "died", f"worker exit code {code}", 0.0, 0.0
                if time.monotonic() > deadline:
                    self.proc.kill()
                    self.proc.join()
                    self.start()
                    return index, "hang", f"over {timeout} s", timeout, 0.0

    def close(self) -> None:
        self.jobs.put(None)
        self.proc.join(10)
        if self.proc.is_alive():
            self.proc.kill()


def fuzz(cases: int, seed: int = 0, timeout: float = 10.0, memory_mb: int = 3072,
         keep_failures: Path | None = None, log=print) -> dict:
    """Run ``cases`` mutated files; returns the summary (counts, worst time, peak RSS...)."""
    seeds = make_seeds()
    rng = np.random.default_rng(seed)
    pool = Pool(memory_mb)
    counts: Counter[str] = Counter()
    failures = []
    times = []
    peak = 0.0
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="xraystudio-fuzz-") as tmp:
        try:
            for i in range(cases):
                name, data = seeds[int(rng.integers(len(seeds)))]
                mutated, how = mutate(data, rng)
                path = Path(tmp) / f"case{i:06d}_{name}"
                path.write_bytes(mutated)
                _, outcome, detail, seconds, rss = pool.run(i, str(path), timeout)
                counts[outcome] += 1
                times.append(seconds)
                peak = max(peak, rss)
                if outcome not in ("opened", "error"):
                    failures.append({"case": i, "seed_file": name, "mutations": how,
                                     "outcome": outcome, "detail": detail})
                    if keep_failures is not None:
                        keep_failures.mkdir(parents=True, exist_ok=True)
                        (keep_failures / path.name).write_bytes(mutated)
                    log(f"case {i} ({name}, {' '.join(how)}): {outcome}: {detail[-300:]}")
                path.unlink()
                if (i + 1) % 500 == 0:
                    log(f"{i + 1} cases: {dict(counts)}, peak RSS {peak:.0f} MB")
        finally:
            pool.close()
    return {
        "cases": cases, "seed": seed, "seeds": len(seeds), "outcomes": dict(counts),
        "failures": failures, "bad": sum(v for k, v in counts.items()
                                          if k not in ("opened", "error")),
        "max_case_s": round(max(times), 3) if times else 0.0,
        "median_case_ms": round(1000 * float(np.median(times)), 2) if times else 0.0,
        "peak_rss_mb": round(peak, 1), "memory_limit_mb": memory_mb, "timeout_s": timeout,
        "total_s": round(time.perf_counter() - started, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per case")
    parser.add_argument("--memory-mb", type=int, default=3072,
                        help="address-space limit of the worker (0: none)")
    parser.add_argument("--keep-failures", type=Path, help="folder for failing inputs")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    summary = fuzz(args.cases, args.seed, args.timeout, args.memory_mb, args.keep_failures)
    summary["machine"] = {"python": platform.python_version(), "cpus": os.cpu_count()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps({k: v for k, v in summary.items() if k != "failures"}, indent=2))
    return 1 if summary["bad"] else 0


if __name__ == "__main__":
    sys.exit(main())

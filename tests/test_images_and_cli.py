"""Plain image files and the inspect/convert commands, run as a user would run them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile
from dicom_factory import make_dicom
from PIL import Image

from xraystudio.cli import main
from xraystudio.errors import ImageLoadError
from xraystudio.io.images import save_png, write_png_values
from xraystudio.io.radiograph import load_radiograph
from xraystudio.study import Study


def test_png_8_and_16_bit(tmp_path: Path) -> None:
    a8 = (np.arange(64 * 48) % 256).reshape(64, 48).astype(np.uint8)
    Image.fromarray(a8).save(tmp_path / "a.png")
    im = load_radiograph(tmp_path / "a.png")
    np.testing.assert_array_equal(im.values, a8)
    np.testing.assert_allclose(im.display(), a8 / 255.0, atol=1e-6)

    a16 = (np.arange(64 * 48) * 7).reshape(64, 48).astype(np.uint16)
    Image.fromarray(a16).save(tmp_path / "b.png")
    im16 = load_radiograph(tmp_path / "b.png")
    np.testing.assert_array_equal(im16.values, a16)
    assert im16.display().min() == 0 and im16.display().max() == 1


def _zlib_level(path: Path) -> int:
    """FLEVEL of a PNG's zlib stream (RFC 1950): 0 for zlib level 1, 2 for the default 6."""
    data = path.read_bytes()
    start = data.index(b"IDAT") + 4
    return data[start + 1] >> 6


def test_pngs_are_written_losslessly_at_the_fast_zlib_level(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    values = rng.integers(0, 4096, (256, 256)).astype(np.uint16)
    write_png_values(tmp_path / "v.png", values, "uint16")
    save_png(tmp_path / "m.png", values > 2000)
    Image.fromarray(values).save(tmp_path / "default.png")
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "v.png")), values)
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "m.png")), values > 2000)
    assert _zlib_level(tmp_path / "v.png") == _zlib_level(tmp_path / "m.png") == 0
    assert _zlib_level(tmp_path / "default.png") == 2  # the check can tell the levels apart


def test_a_failed_png_write_keeps_the_old_file_and_leaves_no_partial_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = np.full((8, 8), 7, np.uint8)
    save_png(tmp_path / "deep" / "x.png", old)  # makes its folder

    def dies_half_way(self: Image.Image, fp: Path, *args: object, **kwargs: object) -> None:
        Path(fp).write_bytes(b"\x89PNG half")  # a killed or failing encoder leaves this behind
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", dies_half_way)
    with pytest.raises(OSError):
        save_png(tmp_path / "deep" / "x.png", np.zeros((8, 8), np.uint8))
    monkeypatch.undo()
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "deep" / "x.png")), old)
    assert [p.name for p in (tmp_path / "deep").iterdir()] == ["x.png"]


def test_rgb_jpeg_and_tiff_become_grey_with_a_note(tmp_path: Path) -> None:
    rgb = np.zeros((32, 40, 3), np.uint8)
    rgb[..., 1] = 200
    Image.fromarray(rgb).save(tmp_path / "c.jpg", quality=100)
    im = load_radiograph(tmp_path / "c.jpg")
    assert im.values.shape == (32, 40)
    assert any("grey" in n for n in im.notes)
    assert abs(im.values.mean() - 0.587 * 200) < 3

    t16 = (np.arange(30 * 20) * 50).reshape(30, 20).astype(np.uint16)
    tifffile.imwrite(tmp_path / "d.tif", t16)
    np.testing.assert_array_equal(load_radiograph(tmp_path / "d.tif").values, t16)


def test_dicom_is_found_by_content_not_name(tmp_path: Path) -> None:
    path = make_dicom(tmp_path / "image.png")  # a DICOM with a misleading name
    assert load_radiograph(path).format == "DICOM"


def test_broken_png_is_a_clear_error(tmp_path: Path) -> None:
    Image.fromarray(np.zeros((50, 50), np.uint8)).save(tmp_path / "ok.png")
    data = (tmp_path / "ok.png").read_bytes()
    (tmp_path / "bad.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageLoadError, match="bad.png"):
        load_radiograph(tmp_path / "bad.png")


def test_study_uses_default_spacing_when_unknown(tmp_path: Path) -> None:
    Image.fromarray(np.zeros((20, 30), np.uint8)).save(tmp_path / "s.png")
    study = Study.open(tmp_path / "s.png", default_spacing_mm=0.3)
    assert study.image.spacing_source == "default"
    assert study.masks.shape == (20, 30) and study.spacing_mm == (0.3, 0.3)


def test_inspect_json(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = make_dicom(tmp_path / "x.dcm", windows=[(2000, 4000, "SOFT")], photometric="MONOCHROME1")
    assert main(["inspect", str(path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["size"] == {"width": 48, "height": 64}
    assert info["photometric"] == "MONOCHROME1" and info["bits_stored"] == 12
    assert info["spacing_mm"] == [0.15, 0.15] and info["spacing_source"] == "ImagerPixelSpacing"
    assert info["windows"][0]["name"] == "SOFT"
    assert info["modality"] == "DX" and "Little Endian" in info["transfer_syntax"]


def test_inspect_bad_file_is_one_line_and_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.dcm"
    bad.write_bytes(b"\x00" * 10 + b"garbage")
    proc = subprocess.run(
        [sys.executable, "-m", "xraystudio", "inspect", str(bad)],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: ") and proc.stderr.count("\n") == 1
    assert "Traceback" not in proc.stderr


def test_convert_writes_16_bit_png(tmp_path: Path) -> None:
    src = make_dicom(tmp_path / "x.dcm", photometric="MONOCHROME1")
    out = tmp_path / "out.png"
    assert main(["convert", str(src), str(out)]) == 0
    with Image.open(out) as im:
        arr = np.asarray(im)
        assert im.size == (48, 64) and arr.dtype == np.uint16
    expected = load_radiograph(src).display()
    np.testing.assert_allclose(arr / 65535.0, expected, atol=1 / 65535)
    assert main(["convert", str(src), str(tmp_path / "small.png"), "--size", "32"]) == 0
    with Image.open(tmp_path / "small.png") as im:
        assert im.size == (24, 32)

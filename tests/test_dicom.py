"""DICOM reading: every transfer syntax we promise, the display pipeline, and clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from dicom_factory import add_voi_lut, chest_like, make_dicom
from pydicom.data import get_testdata_file
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGLSLossless,
    RLELossless,
)

from xraystudio.errors import ImageLoadError
from xraystudio.image import Window
from xraystudio.io.dicom import read_dicom
from xraystudio.io.radiograph import load_radiograph


@pytest.mark.parametrize(
    "syntax", [RLELossless, JPEGLSLossless, JPEG2000Lossless, DeflatedExplicitVRLittleEndian]
)
def test_lossless_syntaxes_decode_bit_exact(tmp_path: Path, syntax: str) -> None:
    pixels = chest_like(bits=12)
    image = read_dicom(make_dicom(tmp_path / "a.dcm", pixels, transfer_syntax=syntax))
    assert image.metadata["transfer_syntax"] == syntax.name
    np.testing.assert_array_equal(image.values, pixels.astype(np.float32))


def test_jpeg_baseline_decodes_close(tmp_path: Path) -> None:
    pixels = chest_like(bits=8).astype(np.uint8)
    path = make_dicom(tmp_path / "j.dcm", pixels, bits_stored=8, transfer_syntax=JPEGBaseline8Bit)
    image = read_dicom(path)
    assert image.metadata["transfer_syntax"] == JPEGBaseline8Bit.name
    assert np.abs(image.values - pixels).mean() < 3


@pytest.mark.parametrize(
    "name, syntax_word",
    [
        ("MR_small_implicit.dcm", "Implicit"),
        ("MR_small_bigendian.dcm", "Big Endian"),
        ("image_dfl.dcm", "Deflated"),
        ("JPGLosslessP14SV1_1s_1f_8b.dcm", "Lossless"),
        ("JPGExtended.dcm", "Extended"),
        ("MR_small_RLE.dcm", "RLE"),
        ("MR_small_jpeg_ls_lossless.dcm", "JPEG-LS"),
        ("MR_small_jp2klossless.dcm", "2000"),
        ("RG1_UNCR.dcm", "Explicit"),
    ],
)
def test_pydicom_test_files_decode(name: str, syntax_word: str) -> None:
    image = read_dicom(get_testdata_file(name))
    assert syntax_word in image.metadata["transfer_syntax"]
    assert image.values.ndim == 2 and np.isfinite(image.values).all()
    assert image.values.max() > image.values.min()


def test_big_endian_matches_little_endian() -> None:
    little = read_dicom(get_testdata_file("MR_small.dcm"))
    big = read_dicom(get_testdata_file("MR_small_bigendian.dcm"))
    np.testing.assert_array_equal(little.values, big.values)


def test_monochrome1_is_inverted_so_air_is_dark(tmp_path: Path) -> None:
    pixels = chest_like(bits=12)
    m2 = read_dicom(make_dicom(tmp_path / "m2.dcm", pixels))
    m1 = read_dicom(make_dicom(tmp_path / "m1.dcm", 4095 - pixels, photometric="MONOCHROME1"))
    assert m1.invert and not m2.invert
    # Same anatomy stored both ways displays the same, lungs darker than the body.
    np.testing.assert_allclose(m1.display(m1.windows[0]), m2.display(m2.windows[0]), atol=1e-3)
    d = m1.display()
    assert d[32, 14] < d[5, 24]


def test_rescale_and_every_window_become_presets(tmp_path: Path) -> None:
    pixels = chest_like(bits=12)
    path = make_dicom(
        tmp_path / "w.dcm", pixels, rescale=(2.0, -1000.0),
        windows=[(2000, 4000, "SOFT"), (1000, 500, "BONE")],
    )
    image = read_dicom(path)
    np.testing.assert_allclose(image.values, pixels * 2.0 - 1000.0)
    names = [w.name for w in image.windows]
    assert names[:2] == ["SOFT", "BONE"]
    assert "Full range" in names
    bone = image.display(image.windows[1])
    lo = image.values <= 1000 - 0.5 - (500 - 1) / 2
    hi = image.values > 1000 - 0.5 + (500 - 1) / 2
    assert (bone[lo] == 0).all() and (bone[hi] == 1).all()


def test_window_functions_follow_the_standard() -> None:
    x = np.array([0.0, 99.5, 100.0, 200.0])
    linear = Window(100, 101, "LINEAR").apply(x)
    np.testing.assert_allclose(linear, [0.0, 0.5, 0.505, 1.0], atol=1e-6)
    exact = Window(100, 100, "LINEAR_EXACT").apply(x)
    np.testing.assert_allclose(exact, [0.0, 0.495, 0.5, 1.0], atol=1e-6)
    sig = Window(100, 100, "SIGMOID").apply(x)
    assert sig[2] == pytest.approx(0.5) and 0 < sig[0] < 0.05 and 0.95 < sig[3] < 1


def test_sigmoid_function_is_read_from_the_file(tmp_path: Path) -> None:
    path = make_dicom(tmp_path / "s.dcm", windows=[(2000, 1000, "S")], voi_function="SIGMOID")
    assert read_dicom(path).windows[0].function == "SIGMOID"


def test_voi_lut_sequence_becomes_a_preset(tmp_path: Path) -> None:
    lut = np.linspace(0, 255, 4096).astype(np.uint16)[::-1]

    def extra(ds):
        add_voi_lut(ds, lut, first=0, bits=8)

    image = read_dicom(make_dicom(tmp_path / "l.dcm", extra=extra))
    lut_window = [w for w in image.windows if w.lut is not None]
    assert len(lut_window) == 1 and lut_window[0].name == "Test LUT"
    d = image.display(lut_window[0])
    expected = lut[image.values.astype(int)] / 255.0
    np.testing.assert_allclose(d, expected, atol=1e-6)


def test_pydicom_voi_lut_file() -> None:
    image = read_dicom(get_testdata_file("vlut_04.dcm"))
    assert any(w.lut is not None for w in image.windows)


def test_modality_lut_sequence_file() -> None:
    from pydicom import dcmread
    from pydicom.pixels import apply_modality_lut

    path = get_testdata_file("mlut_18.dcm")
    ds = dcmread(path)
    image = read_dicom(path)
    assert image.metadata["modality_lut_sequence"]
    np.testing.assert_allclose(image.values, apply_modality_lut(ds.pixel_array, ds))


def test_spacing_prefers_imager_pixel_spacing(tmp_path: Path) -> None:
    both = read_dicom(make_dicom(tmp_path / "a.dcm", imager_spacing=(0.2, 0.25),
                                 pixel_spacing=(0.1, 0.1)))
    assert both.spacing_mm == (0.2, 0.25) and both.spacing_source == "ImagerPixelSpacing"
    ps = read_dicom(make_dicom(tmp_path / "b.dcm", imager_spacing=None, pixel_spacing=(0.1, 0.12)))
    assert ps.spacing_mm == (0.1, 0.12) and ps.spacing_source == "PixelSpacing"
    none = read_dicom(make_dicom(tmp_path / "c.dcm", imager_spacing=None))
    assert none.spacing_mm is None and none.spacing_source == "unknown"


# ------------------------------------------------------------------ errors
def test_not_dicom(tmp_path: Path) -> None:
    path = tmp_path / "notes.dcm"
    path.write_text("this is not an image\n" * 20)
    with pytest.raises(ImageLoadError, match="not a DICOM file"):
        load_radiograph(path)


def test_empty_and_missing_files(tmp_path: Path) -> None:
    (tmp_path / "empty.dcm").write_bytes(b"")
    with pytest.raises(ImageLoadError, match="empty"):
        load_radiograph(tmp_path / "empty.dcm")
    with pytest.raises(ImageLoadError, match="no such file"):
        load_radiograph(tmp_path / "missing.dcm")


def test_no_pixel_data() -> None:
    with pytest.raises(ImageLoadError, match="no pixel data"):
        read_dicom(get_testdata_file("rtplan.dcm"))


def test_truncated_pixel_data() -> None:
    with pytest.raises(ImageLoadError, match="truncated"):
        read_dicom(get_testdata_file("MR_truncated.dcm"))


def test_file_cut_in_the_middle(tmp_path: Path) -> None:
    full = make_dicom(tmp_path / "full.dcm", transfer_syntax=JPEG2000Lossless).read_bytes()
    cut = tmp_path / "cut.dcm"
    cut.write_bytes(full[: len(full) * 2 // 3])
    with pytest.raises(ImageLoadError):
        read_dicom(cut)


def test_colour_is_refused() -> None:
    with pytest.raises(ImageLoadError, match="colour"):
        read_dicom(get_testdata_file("SC_rgb.dcm"))


def test_multiframe_is_refused() -> None:
    with pytest.raises(ImageLoadError, match="multi-frame"):
        read_dicom(get_testdata_file("OBXXXX1A_2frame.dcm"))


def test_undecodable_codec_names_the_transfer_syntax(tmp_path: Path) -> None:
    # A JPEG 2000 code stream overwritten after its header: no decoder reads it.
    path = make_dicom(tmp_path / "j2k.dcm", transfer_syntax=JPEG2000Lossless)
    data = bytearray(path.read_bytes())
    start = data.find(b"\xff\x4f\xff\x51") + 120
    data[start:-10] = bytes(0xFF * (k % 2) for k in range(start, len(data) - 10))
    path.write_bytes(bytes(data))
    with pytest.raises(ImageLoadError, match="JPEG 2000") as info:
        read_dicom(path)
    assert "\n" not in str(info.value) and "-v" in str(info.value)


def test_code_stream_that_disagrees_with_the_header_is_damaged() -> None:
    # 4 bytes of the code stream replaced by a sequence delimiter: its SIZ size is nonsense.
    with pytest.raises(ImageLoadError, match="damaged"):
        read_dicom(get_testdata_file("JPEG2000-embedded-sequence-delimiter.dcm"))


# ------------------------------------------------------------ real files
@pytest.mark.shared
def test_real_cr_jpeg2000_chest_has_dark_lungs(shared_data: Path) -> None:
    image = load_radiograph(shared_data / "dicom" / "RG1_J2KR.dcm")
    assert image.shape == (1955, 1841) and image.invert
    d = image.display()
    h, w = d.shape
    lungs = np.concatenate([d[h // 3: h // 2, w // 5: w // 3].ravel(),
                            d[h // 3: h // 2, 2 * w // 3: 4 * w // 5].ravel()])
    spine = d[h // 3: h // 2, w // 2 - 40: w // 2 + 40]
    assert lungs.mean() < spine.mean() - 0.05


@pytest.mark.shared
def test_real_dx_secondary_capture_has_dark_lungs(shared_data: Path) -> None:
    image = load_radiograph(shared_data / "dicom" / "nih_dx_chest.dcm")
    assert image.shape == (1024, 1024) and not image.invert
    d = image.display()
    assert d[350:500, 250:380].mean() < d[350:500, 470:550].mean() - 0.05

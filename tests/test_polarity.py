"""One polarity in every dataset image: a MONOCHROME1 film exports air dark in the nnU-Net, JSRT
and DICOM SC forms, at its own bit depth where the form keeps it, with what was done recorded."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pydicom
import pytest
from dicom_factory import chest_like, make_dicom
from PIL import Image

from xraystudio.curation.export import export_project
from xraystudio.curation.project import Project
from xraystudio.io import polarity
from xraystudio.study import Study

H, W, BITS = 64, 48, 12
TOP = 2**BITS - 1


def _regions() -> tuple[np.ndarray, np.ndarray]:
    """The lungs of :func:`chest_like` and the mediastinum between them."""
    yy, xx = np.mgrid[0:H, 0:W]
    lungs = np.zeros((H, W), bool)
    for cx in (W * 0.3, W * 0.7):
        lungs |= ((xx - cx) / (W * 0.16)) ** 2 + ((yy - H * 0.5) / (H * 0.3)) ** 2 < 1
    mediastinum = (np.abs(xx - W / 2) < 3) & (np.abs(yy - H / 2) < 10)
    return lungs, mediastinum


def air_dark(pixels: np.ndarray) -> bool:
    lungs, mediastinum = _regions()
    return float(pixels[lungs].mean()) < float(pixels[mediastinum].mean())


def test_stored_values_of_a_monochrome1_film_are_mirrored_within_their_range() -> None:
    stored = np.array([[0, 1000, 4095]], np.uint16)
    pixels, rec = polarity.air_dark_stored(stored, "MONOCHROME1", 0, TOP)
    assert pixels.dtype == np.uint16 and pixels.tolist() == [[4095, 3095, 0]]
    assert rec == {"photometric": "MONOCHROME2", "source_photometric": "MONOCHROME1",
                   "transform": "inverted", "stored_range": [0, 4095]}
    same, rec2 = polarity.air_dark_stored(stored, "MONOCHROME2", 0, TOP)
    assert np.array_equal(same, stored) and rec2["transform"] == "none"
    eight, _ = polarity.air_dark_stored(np.array([[3, 250]]), "MONOCHROME1", 0, 255)
    assert eight.dtype == np.uint8 and eight.tolist() == [[252, 5]]
    with pytest.raises(ValueError, match="16-bit PNG"):
        polarity.air_dark_stored(stored, "MONOCHROME2", -2048, 2047)


@pytest.fixture(scope="module")
def m1_project(tmp_path_factory):
    """A MONOCHROME1 12-bit chest film (lungs stored bright) with one accepted edit result,
    stored as the window stores one: its display pixels plus the changed source values."""
    root = tmp_path_factory.mktemp("m1")
    raw = (TOP - chest_like(H, W, BITS)).astype(np.uint16)  # MONOCHROME1: air high

    def chest(ds) -> None:
        ds.BodyPartExamined = "CHEST"

    study = Study.open(make_dicom(root / "m1.dcm", raw, photometric="MONOCHROME1",
                                  bits_stored=BITS, extra=chest))
    assert study.image.invert and not air_dark(raw)  # the trap: stored values are air bright
    lungs, mediastinum = _regions()
    yy, xx = np.mgrid[0:H, 0:W]
    study.masks.set_layer("right_lung", lungs & (xx < W / 2))
    study.masks.set_layer("left_lung", lungs & (xx >= W / 2))
    study.masks.set_layer("heart", mediastinum)
    changed = np.zeros((H, W), bool)
    changed[28:34, 12:17] = True  # a "nodule" in the right lung: denser, so lower in MONOCHROME1
    values = study.image.values.copy()
    values[changed] -= 300.0
    shown = dataclasses.replace(study.image, values=values).display()
    prov = {"synthetic": True, "model": {"name": "tiny"}, "parameters": {"mode": "edit"},
            "source_image": {"file": "m1.dcm", "pixel_hash": study.image.pixel_hash()}}
    project = Project.create(root / "proj")
    sid = project.add_study(study)
    rid = project.add_result(sid, shown, prov, edit=(changed, values))
    project.decide(rid, "accepted")
    expected = raw.astype(np.int32)
    expected[changed] -= 300
    yield project, TOP - expected  # the edited film, air dark, at its 12 bits
    project.close()


def _row(out: Path) -> dict:
    (line,) = (out / "metadata.jsonl").read_text().splitlines()
    return json.loads(line)


def test_monochrome1_edit_exports_air_dark_to_nnunet(m1_project, tmp_path: Path) -> None:
    project, expected = m1_project
    out = export_project(project, tmp_path / "nn", "nnunet")
    pixels = np.asarray(Image.open(out / "imagesTr" / "case_0001_0000.png"))
    assert pixels.dtype == np.uint16 and pixels.max() <= TOP  # still the source's 12 bits
    assert air_dark(pixels) and np.array_equal(pixels, expected)
    assert _row(out)["polarity"] == {"photometric": "MONOCHROME2",
                                     "source_photometric": "MONOCHROME1",
                                     "transform": "inverted", "stored_range": [0, TOP]}
    assert json.loads((out / "dataset.json").read_text())["photometric_interpretation"] \
        == "MONOCHROME2"


def test_monochrome1_edit_exports_air_dark_to_the_jsrt_layout(m1_project, tmp_path: Path) -> None:
    project, expected = m1_project
    out = export_project(project, tmp_path / "js", "jsrt")
    pixels = np.asarray(Image.open(out / "images" / "case_0001.png"))
    assert pixels.dtype == np.uint16 and air_dark(pixels) and np.array_equal(pixels, expected)
    rec = _row(out)["polarity"]
    assert rec["source_photometric"] == "MONOCHROME1" and rec["transform"] == "inverted"


def test_monochrome1_edit_exports_air_dark_to_dicom_sc(m1_project, tmp_path: Path) -> None:
    project, _ = m1_project
    out = export_project(project, tmp_path / "dcm", "dicom")
    sc = pydicom.dcmread(out / "case_0001_sc.dcm")
    assert sc.PhotometricInterpretation == "MONOCHROME2"
    assert air_dark(sc.pixel_array)
    rec = _row(out)["polarity"]
    assert rec == {"photometric": "MONOCHROME2", "source_photometric": "MONOCHROME1",
                   "transform": "display"}

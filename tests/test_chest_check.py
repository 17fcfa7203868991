"""Issue 14: non-chest and lateral radiographs are named, with real files (NEMA WG04 via
pydicom-data, pydicom's test files) and the shipped segmenter."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file

from xraystudio import chest_check
from xraystudio.cli import main
from xraystudio.io.dicom import read_dicom

# The WG04 hip (RG2_JPLY, 12-bit JPEG Extended) is in no installable package; set this to a
# folder holding it (pylibjpeg-data's ljdata/ds/JPEGExtended) to test it as well.
WG04_JPLY = os.environ.get("XRAYSTUDIO_WG04_JPLY", "")


def installed_file(name: str) -> str:
    path = get_testdata_file(name, download=False)
    if path is None:
        pytest.skip(f"{name} is not installed (pip install pydicom-data)")
    return path


def relabelled(tmp_path: Path, name: str, **attrs) -> Path:
    ds = pydicom.dcmread(installed_file(name))
    for key, value in attrs.items():
        if value is None:
            delattr(ds, key)
        else:
            setattr(ds, key, value)
    out = tmp_path / f"{name[:-4]}_{'_'.join(attrs)}.dcm"
    ds.save_as(out)
    return out


# ------------------------------------------------------------ labels
def test_real_extremity_is_named() -> None:
    image = read_dicom(installed_file("RG3_UNCR.dcm"))  # CR, EXTREMITY, AP: a lower leg
    check = chest_check.check(image)
    assert check.kind == "not_chest"
    assert check.warning == ("This radiograph is labelled EXTREMITY; the built-in models are "
                             "for frontal (PA/AP) chest radiographs")


def test_real_chest_passes() -> None:
    image = read_dicom(installed_file("RG1_UNCR.dcm"))  # CR, CHEST, PA
    assert chest_check.check(image).kind == "frontal_chest"
    assert chest_check.check(image).warning is None


def test_real_nuclear_medicine_file_is_not_a_radiograph() -> None:
    image = read_dicom(get_testdata_file("JPEG-lossy.dcm"))  # NM, WHOLE BODY
    assert "labelled nuclear medicine" in chest_check.check(image).warning


@pytest.mark.parametrize("view", ["LL", "RL", "LATERAL"])
def test_lateral_chest_is_named(tmp_path: Path, view: str) -> None:
    image = read_dicom(relabelled(tmp_path, "RG1_UNCR.dcm", ViewPosition=view))
    check = chest_check.check(image)
    assert check.kind == "lateral_chest" and not check.supported
    assert check.warning.startswith(f"This chest radiograph is a lateral view ({view})")


def test_hip_label(tmp_path: Path) -> None:
    image = read_dicom(relabelled(tmp_path, "RG3_UNCR.dcm", BodyPartExamined="HIP"))
    assert chest_check.check(image).warning.startswith("This radiograph is labelled HIP;")


def test_other_label_sources() -> None:
    check = chest_check.check_labels
    assert check({}).kind == "unknown"
    assert check({"modality": "DX", "body_part": "THORAX"}).kind == "frontal_chest"
    assert check({"modality": "CR", "series_description": "KNEE 2 VIEWS"}).kind == "not_chest"
    assert check({"modality": "CR", "series_description": "CHEST LAT"}).kind == "lateral_chest"
    assert check({"modality": "CR", "series_description": "CHEST PA"}).kind == "unknown"
    assert check({"body_part": "CHEST", "patient_orientation": "A\\F"}).kind == "lateral_chest"
    assert check({"body_part": "CHEST", "patient_orientation": "L\\F"}).kind == "frontal_chest"
    assert check({"body_part": "CHEST", "view_code": "left lateral"}).kind == "lateral_chest"
    assert check({"body_part": "CHEST", "view_position": "LAO"}).kind == "lateral_chest"
    assert check({"modality": "MR"}).kind == "not_chest"


@pytest.mark.skipif(not WG04_JPLY, reason="set XRAYSTUDIO_WG04_JPLY to the WG04 JPLY folder")
def test_real_hip_jpeg_extended(capfd) -> None:
    path = Path(WG04_JPLY) / "RG2_JPLY.dcm"
    assert main(["inspect", str(path)]) == 0
    err = capfd.readouterr().err
    assert err == ("warning: This radiograph is labelled HIP; the built-in models are for "
                   "frontal (PA/AP) chest radiographs\n")


# ------------------------------------------------------------ masks
def _masks(h=256, w=256, lungs=((60, 170, 30, 110), (60, 170, 146, 226)), heart=(110, 190, 100, 160)):
    out = {}
    for name, box in zip(("right_lung", "left_lung"), lungs):
        m = np.zeros((h, w), bool)
        m[box[0]:box[1], box[2]:box[3]] = True
        out[name] = m
    m = np.zeros((h, w), bool)
    m[heart[0]:heart[1], heart[2]:heart[3]] = True
    out["heart"] = m
    return out


def test_plausible_masks_score_high_and_swapped_or_missing_low() -> None:
    assert chest_check.chest_confidence(_masks()) == 1.0
    swapped = _masks()
    swapped["right_lung"], swapped["left_lung"] = swapped["left_lung"], swapped["right_lung"]
    assert chest_check.chest_confidence(swapped) < chest_check.MIN_CONFIDENCE
    one_lung = _masks(lungs=((60, 170, 30, 110), (0, 0, 0, 0)))
    assert chest_check.chest_confidence(one_lung) < chest_check.MIN_CONFIDENCE
    assert chest_check.chest_confidence({}) == 0.0


def test_short_names_count_the_verdicts() -> None:
    """The few words ``synthesize`` counts skipped films by."""
    labels = chest_check.check_labels
    assert labels({"body_part": "HIP"}).short == "not chest"
    assert labels({"modality": "MR"}).short == "not chest"
    assert labels({"body_part": "CHEST", "view_position": "LL"}).short == "not frontal"
    assert labels({"body_part": "CHEST", "view_position": "PA"}).short == "chest"
    swapped = _masks()
    swapped["right_lung"], swapped["left_lung"] = swapped["left_lung"], swapped["right_lung"]
    assert chest_check.check(None, swapped).short == "implausible lungs"
    assert chest_check.check(None, _masks()).short == "chest"


@pytest.mark.slow
def test_segmenter_masks_on_real_files() -> None:
    """The segmenter paints a 'left lung' on the WG04 lower leg: its masks score low; on the
    WG04 chest they score high."""
    from xraystudio.segmentation.segmenter import Segmenter

    seg = Segmenter.load()
    leg = read_dicom(installed_file("RG3_UNCR.dcm"))
    chest = read_dicom(installed_file("RG1_UNCR.dcm"))
    leg_check = chest_check.check_masks(seg.segment(leg.display()))
    assert leg_check.kind == "not_chest" and leg_check.confidence < 0.3
    assert "no plausible pair of lungs" in leg_check.warning
    assert chest_check.check_masks(seg.segment(chest.display())).confidence >= 0.95


# ------------------------------------------------------------ CLI
def test_inspect_warns_on_stderr(capfd) -> None:
    assert main(["inspect", "--json", installed_file("RG3_UNCR.dcm")]) == 0
    out, err = capfd.readouterr()
    assert err.startswith("warning: This radiograph is labelled EXTREMITY;")
    assert len(err.splitlines()) == 1 and '"kind": "not_chest"' in out
    assert main(["inspect", installed_file("RG1_UNCR.dcm")]) == 0
    assert capfd.readouterr().err == ""


@pytest.mark.slow
def test_segment_warns_on_an_unlabelled_leg(tmp_path: Path, capfd) -> None:
    """A PNG has no labels: the segmenter's masks give the warning."""
    assert main(["convert", installed_file("RG3_UNCR.dcm"), str(tmp_path / "leg.png"),
                 "--size", "512"]) == 0
    capfd.readouterr()
    assert main(["segment", str(tmp_path / "leg.png"), "--out", str(tmp_path / "m")]) == 0
    err = capfd.readouterr().err
    assert err.startswith("warning: The anatomy segmenter found no plausible pair of lungs")


@pytest.mark.slow
def test_generate_names_a_lower_leg_before_generating(capfd) -> None:
    import argparse

    from xraystudio.cli.generate_cmd import build_study

    args = argparse.Namespace(input=installed_file("RG3_UNCR.dcm"), masks=None, no_segment=False,
                              nodule=[], remove=[], spacing=None)
    build_study(args)
    err = capfd.readouterr().err
    assert err == ("warning: This radiograph is labelled EXTREMITY; the built-in models are "
                   "for frontal (PA/AP) chest radiographs\n")

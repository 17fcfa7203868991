"""Exports read back: nnU-Net rules, JSRT layout, DICOM SC + SEG tags and references, identity,
atomicity and overwrite protection, and the export command."""

from __future__ import annotations

import json
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest
from dicom_factory import make_dicom
from PIL import Image

from xraystudio.cli import main
from xraystudio.curation.export import export_project
from xraystudio.curation.project import Project
from xraystudio.errors import ProjectError
from xraystudio.io.datasets import JsrtDataset
from xraystudio.io.nnunet import LABELS
from xraystudio.study import Study

LABEL_ORDER = [name for name in LABELS if name != "background"]


def _birth_date(ds: pydicom.Dataset) -> None:
    ds.PatientBirthDate = "19600101"


def _source(path: Path) -> Study:
    study = Study.open(make_dicom(path, extra=_birth_date))
    masks = study.masks
    masks.set_layer("right_lung", np.pad(np.ones((40, 14), bool), ((10, 14), (6, 28))))
    masks.set_layer("left_lung", np.pad(np.ones((40, 14), bool), ((10, 14), (28, 6))))
    masks.set_layer("heart", np.pad(np.ones((12, 14), bool), ((36, 16), (20, 14))))
    masks.set_layer("right_clavicle", np.pad(np.ones((3, 20), bool), ((8, 53), (2, 26))))
    masks.add_nodule(12.0, 30.0, 1.5)  # inside the right lung
    return study


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Project:
    """Two source studies; three accepted results (two from the first study), one rejected."""
    root = tmp_path_factory.mktemp("export")
    project = Project.create(root / "proj")
    rng = np.random.default_rng(0)
    for name, decisions in (("Test_Patient_a", ("accepted", "rejected", "accepted")),
                            ("Test_Patient_b", ("accepted",))):
        sid = project.add_study(_source(root / f"{name}.dcm"))
        for decision in decisions:
            prov = {"synthetic": True, "software": "xraystudio test",
                    "model": {"name": "tiny", "kind": "pixel", "weights_sha256": "ab" * 32},
                    "parameters": {"seed": int(rng.integers(1000)), "steps": 20},
                    "source_image": {"file": f"{name}.dcm", "pixel_hash": "0" * 16}}
            rid = project.add_result(sid, rng.random((64, 48), dtype=np.float32), prov)
            project.decide(rid, decision)
    yield project
    project.close()


def _rows(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metadata.jsonl").read_text().splitlines()]


def test_nnunet_layout_follows_its_rules(project: Project, tmp_path: Path) -> None:
    out = export_project(project, tmp_path / "nn", "nnunet")
    dataset = json.loads((out / "dataset.json").read_text())
    labels = dataset["labels"]
    assert sorted(labels.values()) == list(range(len(labels))) and labels["background"] == 0
    assert dataset["channel_names"] == {"0": "xray"} and dataset["file_ending"] == ".png"
    images = sorted((out / "imagesTr").iterdir())
    assert dataset["numTraining"] == len(images) == 3
    accepted = project.results(decision="accepted")
    for path, result in zip(images, accepted):
        assert path.name.endswith("_0000.png")
        label_path = out / "labelsTr" / (path.name[: -len("_0000.png")] + ".png")
        image, label = np.asarray(Image.open(path)), np.asarray(Image.open(label_path))
        assert image.dtype == np.uint16 and label.dtype == np.uint8
        assert image.shape == label.shape == (64, 48)
        assert np.array_equal(image, project.result_pixels(result.id))
        assert set(np.unique(label)) <= set(labels.values())
        masks = project.result_masks(result.id)
        # Overlaps are resolved in LABEL_ORDER: the nodule over the lung, clavicle over lung.
        assert (label[np.asarray(masks["nodule"])] == labels["nodule"]).all()
        both = np.asarray(masks["right_clavicle"]) & np.asarray(masks["right_lung"])
        assert both.any() and (label[both] == labels["right_clavicle"]).all()
        assert (label[np.asarray(masks["heart"]) & ~np.asarray(masks["left_lung"])]
                == labels["heart"]).all()
    assert sorted(p.name for p in (out / "labelsTr").iterdir()) == [
        f"case_{i:04d}.png" for i in (1, 2, 3)]
    rows = _rows(out)
    assert [r["result_id"] for r in rows] == [r.id for r in accepted]
    assert all(r["synthetic"] is True and r["provenance"]["model"]["name"] == "tiny"
               for r in rows)
    assert [r["subject"] for r in rows] == ["SYN0001", "SYN0001", "SYN0002"]
    assert "Test_Patient" not in (out / "metadata.jsonl").read_text()
    assert list(LABEL_ORDER) == [k for k in labels if k != "background"]


def test_jsrt_export_is_a_trainable_dataset(project: Project, tmp_path: Path) -> None:
    out = export_project(project, tmp_path / "jsrt", "jsrt")
    data = JsrtDataset(out)
    assert data.ids == ["case_0001", "case_0002", "case_0003"]
    case = data.load("case_0001")
    masks = project.result_masks(project.results(decision="accepted")[0].id)
    assert np.array_equal(case.masks["heart"], masks["heart"])
    assert case.info.nodule and case.info.size_mm == 1.5


def _files(out: Path, kind: str) -> list[Path]:
    return sorted(out.glob(f"case_*_{kind}.dcm"))


def test_dicom_export_is_deidentified_and_references_are_valid(
        project: Project, tmp_path: Path) -> None:
    out = export_project(project, tmp_path / "dcm", "dicom")
    source = pydicom.dcmread(project.source_path(project.studies[0].id))
    scs = [pydicom.dcmread(p) for p in _files(out, "sc")]
    segs = [hd.seg.segread(p) for p in _files(out, "seg")]
    assert len(scs) == len(segs) == 3
    uids = [str(getattr(d, tag)) for d in scs + segs
            for tag in ("SOPInstanceUID", "SeriesInstanceUID", "StudyInstanceUID")]
    sops = [str(d.SOPInstanceUID) for d in scs + segs]
    assert len(set(sops)) == 6
    assert not {str(source.SOPInstanceUID), str(source.SeriesInstanceUID),
                str(source.StudyInstanceUID)} & set(uids)
    # Cases of one source study share a new study; the other source gets another.
    assert scs[0].StudyInstanceUID == scs[1].StudyInstanceUID != scs[2].StudyInstanceUID
    for sc, seg, path in zip(scs, segs, _files(out, "sc")):
        assert sc.SOPClassUID == "1.2.840.10008.5.1.4.1.1.7"  # Secondary Capture
        assert list(sc.ImageType) == ["DERIVED", "SECONDARY"] and sc.ConversionType == "SYN"
        assert "SYNTHETIC" in sc.SeriesDescription and "NOT FOR DIAGNOSIS" in sc.SeriesDescription
        assert "model tiny" in sc.DerivationDescription and "seed" in sc.DerivationDescription
        assert sc.PatientID.startswith("SYN") and "Synthetic" in str(sc.PatientName)
        assert "PatientBirthDate" not in sc or not sc.PatientBirthDate
        assert "SourceImageSequence" not in sc and sc.PatientIdentityRemoved == "YES"
        assert sc.pixel_array.dtype == np.uint16 and sc.pixel_array.shape == (64, 48)
        for file in (path, path.with_name(path.name.replace("_sc", "_seg"))):
            data = file.read_bytes()
            assert b"Test^Patient" not in data and b"T123" not in data and b"19600101" not in data
            assert b"Test_Patient" not in data
        ref = seg.ReferencedSeriesSequence[0]
        assert ref.SeriesInstanceUID == sc.SeriesInstanceUID
        assert ref.ReferencedInstanceSequence[0].ReferencedSOPInstanceUID == sc.SOPInstanceUID
        assert seg.StudyInstanceUID == sc.StudyInstanceUID and seg.PatientID == sc.PatientID
        assert seg.SegmentationType == "BINARY" and seg.number_of_segments == 6
        codes = {s.SegmentLabel: s.SegmentedPropertyTypeCodeSequence[0]
                 for s in seg.SegmentSequence}
        assert codes["Nodule"].CodeValue == "27925004"
        assert codes["Heart"].CodeValue == "80891009"
        assert codes["Right lung"].CodeValue == "39607008"
        assert codes["Left clavicle"].SegmentedPropertyTypeModifierCodeSequence[0].CodeMeaning \
            == "Left"
    result = project.results(decision="accepted")[0]
    pixels = segs[0].get_pixels_by_source_instance([scs[0].SOPInstanceUID])[0]
    masks = project.result_masks(result.id)
    for i, name in enumerate(LABEL_ORDER):
        assert np.array_equal(pixels[..., i].astype(bool), masks[name])


def test_dicom_export_keeps_identity_and_reference_with_keep_link(
        project: Project, tmp_path: Path) -> None:
    out = export_project(project, tmp_path / "dcm", "dicom", keep_link=True)
    source = pydicom.dcmread(project.source_path(project.studies[0].id))
    sc = pydicom.dcmread(_files(out, "sc")[0])
    assert (str(sc.PatientName), sc.PatientID, sc.PatientBirthDate) == (
        "Test^Patient", "T123", "19600101")
    assert sc.SourceImageSequence[0].ReferencedSOPInstanceUID == source.SOPInstanceUID
    assert sc.StudyInstanceUID != source.StudyInstanceUID
    assert "Test_Patient_a.dcm" in (out / "metadata.jsonl").read_text()


def _partials(folder: Path) -> list[Path]:
    return [p for p in folder.iterdir() if p.name.startswith(".")]


def test_failure_mid_export_leaves_no_output_and_keeps_an_old_one(
        project: Project, tmp_path: Path) -> None:
    def cancel_second(done: int, total: int) -> None:
        if done == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        export_project(project, tmp_path / "out", "nnunet", progress=cancel_second)
    assert not (tmp_path / "out").exists() and _partials(tmp_path) == []

    export_project(project, tmp_path / "out", "dicom")
    with pytest.raises(KeyboardInterrupt):
        export_project(project, tmp_path / "out", "nnunet", overwrite=True,
                       progress=cancel_second)
    assert len(_files(tmp_path / "out", "sc")) == 3 and _partials(tmp_path) == []


def test_overwrite_needs_force(project: Project, tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    with pytest.raises(ProjectError, match="already exists"):
        out.mkdir()
        (out / "keep.txt").write_text("mine")
        export_project(project, out, "nnunet")
    assert (out / "keep.txt").read_text() == "mine"
    args = ["export", str(project.folder), "--format", "nnunet", "--out", str(out)]
    assert main(args) == 2
    assert "--force" in capsys.readouterr().err
    assert main([*args, "--force"]) == 0
    assert "3 accepted images" in capsys.readouterr().out
    assert not (out / "keep.txt").exists() and (out / "dataset.json").is_file()


def test_nothing_accepted_is_an_error(tmp_path: Path) -> None:
    with Project.create(tmp_path / "proj") as empty:
        with pytest.raises(ProjectError, match="no accepted results"):
            export_project(empty, tmp_path / "out", "nnunet")
    assert not (tmp_path / "out").exists()


def test_edit_results_export_in_their_sources_values_and_bit_depth(tmp_path: Path) -> None:
    """nnU-Net and JSRT exports of an edit carry the source's stored values (12-bit DICOM here)
    with the edited pixels replaced, not the 16-bit display copy; a changed source falls back."""
    rng = np.random.default_rng(3)
    raw = rng.integers(200, 4000, (64, 48)).astype(np.uint16)
    src = tmp_path / "edit_src.dcm"
    make_dicom(src, raw, bits_stored=12)
    study = Study.open(src)
    changed = np.zeros(raw.shape, bool)
    changed[20:30, 10:20] = True
    values = study.image.values.copy()
    values[changed] += 100.0
    prov = {"synthetic": True, "model": {"name": "tiny"}, "parameters": {"mode": "edit"},
            "source_image": {"file": "edit_src.dcm", "pixel_hash": study.image.pixel_hash()}}
    with Project.create(tmp_path / "proj") as project:
        sid = project.add_study(study)
        rid = project.add_result(sid, study.image.display(), prov, edit=(changed, values))
        project.decide(rid, "accepted")
        out = export_project(project, tmp_path / "nn", "nnunet")
        jsrt = export_project(project, tmp_path / "js", "jsrt")
    expected = raw.copy()
    expected[changed] += 100
    for image in (out / "imagesTr" / "case_0001_0000.png", jsrt / "images" / "case_0001.png"):
        pixels = np.asarray(Image.open(image))
        assert pixels.dtype == np.uint16 and np.array_equal(pixels, expected)
    make_dicom(src, raw + 1, bits_stored=12)  # the source changed after the edit
    with Project.open(tmp_path / "proj") as project:
        again = export_project(project, tmp_path / "nn2", "nnunet")
        assert np.array_equal(np.asarray(Image.open(again / "imagesTr" / "case_0001_0000.png")),
                              project.result_pixels(rid))

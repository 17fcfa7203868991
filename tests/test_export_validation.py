"""Issue 14: the DICOM exports (Secondary Capture + SEG) pass an independent IOD validator.

The validator is dicom3tools' ``dciodvfy`` (Debian/Ubuntu: ``apt-get install dicom3tools``),
which carries the standard's module tables compiled in and so runs offline. The PyPI
``dicom-validator`` needs the standard's DocBook parts 3, 4 and 6, which it downloads on first
use (nothing on PyPI ships them), so it cannot run here. Skipped where dciodvfy is missing.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest
from test_export import _source

from xraystudio.curation.export import export_project
from xraystudio.curation.project import Project
from xraystudio.io.images import write_png16
from xraystudio.study import Study

DCIODVFY = shutil.which("dciodvfy")


def _project(root: Path) -> Project:
    """One DICOM source (spacing 0.15 mm) and one PNG-like source without spacing."""
    project = Project.create(root / "proj")
    rng = np.random.default_rng(1)
    dicom = _source(root / "Patient_a.dcm")
    write_png16(root / "b.png", rng.random((64, 48), dtype=np.float32))
    png = Study.open(root / "b.png")  # no spacing in the file: the default is assumed
    png.masks.set_layer("heart", np.pad(np.ones((12, 14), bool), ((36, 16), (20, 14))))
    for study in (dicom, png):
        sid = project.add_study(study)
        prov = {"synthetic": True, "software": "xraystudio test",
                "model": {"name": "tiny", "kind": "pixel", "weights_sha256": "ab" * 32},
                "parameters": {"seed": 1, "steps": 20},
                "source_image": {"file": "x", "pixel_hash": "0" * 16}}
        rid = project.add_result(sid, rng.random((64, 48), dtype=np.float32), prov)
        project.decide(rid, "accepted")
    return project


@pytest.fixture(scope="module")
def exports(tmp_path_factory) -> list[Path]:
    root = tmp_path_factory.mktemp("validate")
    project = _project(root)
    try:
        outs = [export_project(project, root / f"dcm_{keep}", "dicom", keep_link=keep)
                for keep in (False, True)]
    finally:
        project.close()
    return outs


def test_pixel_spacing_is_written_where_known(exports: list[Path]) -> None:
    for out in exports:
        dicom_sc, png_sc = (pydicom.dcmread(out / f"case_000{i}_sc.dcm") for i in (1, 2))
        assert [float(v) for v in dicom_sc.PixelSpacing] == [0.15, 0.15]
        assert "PixelSpacing" not in png_sc  # the PNG's spacing was a default, not known
        assert dicom_sc.BodyPartExamined == "CHEST"
        seg = hd.seg.segread(out / "case_0001_seg.dcm")  # still reads back
        assert seg.PatientOrientation == ["L", "F"]


@pytest.mark.skipif(DCIODVFY is None, reason="needs dciodvfy (apt-get install dicom3tools)")
def test_sc_and_seg_exports_have_no_validator_errors(exports: list[Path]) -> None:
    files = sorted(p for out in exports for p in out.glob("*.dcm"))
    assert len(files) == 8
    for path in files:
        run = subprocess.run([DCIODVFY, "-new", str(path)], capture_output=True, text=True,
                             timeout=60)
        report = (run.stdout + run.stderr).splitlines()
        iod = "SCImage" if path.name.endswith("_sc.dcm") else "Segmentation"
        assert iod in report, report
        errors = [line for line in report if line.startswith("Error")]
        # DICOMDIR hints (StudyDate/ID...) are not IOD rules; every other warning counts too.
        warnings = [line for line in report if line.startswith("Warning")
                    and "needed to build DICOMDIR" not in line]
        assert errors == [] and warnings == [], (path.name, errors, warnings)

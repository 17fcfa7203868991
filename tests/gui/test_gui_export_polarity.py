"""A MONOCHROME1 film edited and exported from the window comes out the right way up (air dark)
in every export form: nnU-Net, the JSRT layout and DICOM Secondary Capture."""

from __future__ import annotations

import json

import numpy as np
import pydicom
import pytest
from dicom_factory import chest_like, make_dicom
from gui_helpers import click, open_and_wait
from PIL import Image
from test_gui_edit import SHAPE, lungs

from xraystudio.gui.dialogs import keep_results
from xraystudio.gui.dialogs.keep_results import KeepChoice

pytest.importorskip("diffusers")


def _air_dark(pixels: np.ndarray) -> bool:
    """The lungs (the dark ovals of chest_like when read the right way up) below the body."""
    h, w = pixels.shape
    yy, xx = np.mgrid[0:h, 0:w]
    lung = ((xx - w * 0.3) / (w * 0.16)) ** 2 + ((yy - h * 0.5) / (h * 0.3)) ** 2 < 0.5
    body = (np.abs(xx - w / 2) < w * 0.04) & (np.abs(yy - h / 2) < h * 0.1)
    return float(pixels[lung].mean()) < float(pixels[body].mean())


def test_monochrome1_exports_air_dark_in_every_form(window, qtbot, tmp_path, edit_model,
                                                    shared_engine, monkeypatch):
    w = window
    w.gen.engine = shared_engine
    (tmp_path / "sources").mkdir()
    stored = (4095 - chest_like(*SHAPE, bits=12)).astype(np.uint16)  # MONOCHROME1: air high
    dcm = make_dicom(tmp_path / "sources" / "m1.dcm", stored, photometric="MONOCHROME1",
                     imager_spacing=(0.5, 0.5))
    open_and_wait(qtbot, w, dcm)
    assert _air_dark(w.study.image.display())  # shown the right way up
    lungs(w)
    w.gen.add_model_folder(edit_model)
    w.nodules.stamp_size.setValue(10.0)
    w.set_tool(next(t for t in w.tools if t.name == "Nodule"))
    click(w, 60, 110)
    g = w.generator
    g.random_seed.setChecked(False)
    g.seed.setValue(3)
    g.n_images.setValue(1)
    g.generate.click()
    qtbot.waitUntil(lambda: w.gen.generation is None, timeout=120_000)
    assert w.last_error is None and w.strip.count() == 1
    monkeypatch.setattr(keep_results, "ask_keep", lambda parent, n, verb: KeepChoice.KEEP)
    assert w.switch.new_project(tmp_path / "project")
    qtbot.waitUntil(lambda: not w.projects.staging and None not in w.strip.result_ids,
                    timeout=30_000)
    project = w.projects.project
    (record,) = project.results()
    project.decide(record.id, "accepted")

    for fmt in ("nnunet", "jsrt", "dicom"):
        dialog = w.show_export()
        dialog.format.setCurrentIndex(dialog.format.findData(fmt))
        out = tmp_path / f"export_{fmt}"
        dialog.out.setText(str(out))
        dialog.start()
        qtbot.waitUntil(lambda d=dialog: d.thread is None, timeout=30_000)
        assert dialog.error is None, dialog.error
        dialog.cancel_button.click()
        meta = [json.loads(line) for line in (out / "metadata.jsonl").read_text().splitlines()]
        assert meta[0]["polarity"]["source_photometric"] == "MONOCHROME1", fmt
        if fmt == "dicom":
            (sc,) = [p for p in out.rglob("*.dcm")
                     if pydicom.dcmread(p, stop_before_pixels=True).Modality != "SEG"]
            ds = pydicom.dcmread(sc)
            assert ds.PhotometricInterpretation == "MONOCHROME2"
            pixels = ds.pixel_array
        else:
            folder = out / ("imagesTr" if fmt == "nnunet" else "images")
            (png,) = list(folder.rglob("*.png"))
            pixels = np.asarray(Image.open(png))
        assert pixels.shape == SHAPE and _air_dark(pixels.astype(np.float64)), fmt

"""One walk through the window as a radiologist makes it, with a tiny model: open a DICOM,
stamp a nodule, generate, compare, make a project (keeping the results), review, export; each
screen's state is checked on the way."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from dicom_factory import chest_like, make_dicom
from gui_helpers import click, open_and_wait
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QFileDialog
from test_gui_edit import SHAPE, lungs

from xraystudio.gui.dialogs import keep_results
from xraystudio.gui.dialogs.keep_results import KeepChoice

pytest.importorskip("diffusers")
torch = pytest.importorskip("torch")


def test_walk_open_stamp_generate_compare_project_review_export(window, qtbot, tmp_path,
                                                                 edit_model, shared_engine,
                                                                 monkeypatch):
    w = window
    w.gen.engine = shared_engine
    # Open: a 12-bit DICOM with its spacing; no warning to show, no result yet
    (tmp_path / "sources").mkdir()
    dcm = make_dicom(tmp_path / "sources" / "chest.dcm", chest_like(*SHAPE, bits=12),
                     imager_spacing=(0.5, 0.5))
    open_and_wait(qtbot, w, dcm)
    assert w.windowTitle().startswith("chest") and w.tabs.currentIndex() == 0
    assert not w.film_warnings.banner.isVisible() and w.strip.count() == 0
    assert not w.save_result_action.isEnabled() and not w.export_action.isEnabled()

    # Stamp: the nodule list shows it, to be inserted
    lungs(w)
    w.gen.add_model_folder(edit_model)
    g = w.generator
    assert g.mode.currentData() == "edit"
    w.nodules.stamp_size.setValue(10.0)
    w.set_tool(next(t for t in w.tools if t.name == "Nodule"))
    click(w, 60, 110)
    (nodule,) = w.study.masks.nodules
    assert nodule.diameter_mm == 10.0
    assert w.nodules.statuses() == {nodule.id: "painted"}

    # Generate twice: Compare follows the newest result
    g.random_seed.setChecked(False)
    g.n_images.setValue(1)
    for seed in (4, 5):
        g.seed.setValue(seed)
        g.generate.click()
        assert w.gen.generation is not None and not g.generate.isEnabled()
        qtbot.waitUntil(lambda: w.gen.generation is None, timeout=120_000)
    assert w.last_error is None and w.strip.count() == 2
    assert [r.seed for r in w.strip.results] == [4, 5] and w.strip.result_ids == [None, None]

    # Compare: the newest result, as an edit of this radiograph, with its source
    w.compare_tab_action.trigger()
    assert w.tabs.currentIndex() == 1
    c = w.compare
    assert c.result is w.strip.results[1] and c.result.is_edit
    assert c.truth.title.text() == "Source" and c.generated.title.text() == "Edited #2"
    assert "Result #2 · seed 5" in c.hint.text() and w.save_result_action.isEnabled()
    assert w.nodules.table.item(0, 5).text() != ""  # the contrast it was drawn to

    # Save result… proposes a folder the user can write in, never the source's data folder
    proposed = []
    monkeypatch.setattr(QFileDialog, "getSaveFileName",
                        lambda parent, title, start, filt: proposed.append(Path(start)) or ("", ""))
    w.results.save_result()
    assert proposed[-1].parent == Path.home() and proposed[-1].suffix == ".dcm"

    # New project: the session's two results are kept in it
    asked = []
    monkeypatch.setattr(keep_results, "ask_keep",
                        lambda parent, n, verb: asked.append(n) or KeepChoice.KEEP)
    assert w.switch.new_project(tmp_path / "project")  # a folder that does not exist yet
    assert asked == [2] and "project project" in w.windowTitle()
    qtbot.waitUntil(lambda: not w.projects.staging and None not in w.strip.result_ids,
                    timeout=30_000)
    project = w.projects.project
    assert len(project.results()) == 2 and w.export_action.isEnabled()
    w.results.save_result()
    assert proposed[-1].parent == project.folder
    saved = tmp_path / "saved"
    saved.mkdir()
    assert w.results.save_to(saved / "edited.dcm")
    w.results.save_result()
    assert proposed[-1].parent == saved  # then where the user saved last

    # Review in the gallery with the keyboard: accept the first, reject the second
    w.show_gallery()
    gallery = w.gallery
    qtbot.waitUntil(lambda: gallery.list.count() == 2, timeout=5000)
    assert not gallery.list.item(0).text().startswith("·")
    gallery.list.setCurrentRow(0)
    gallery.list.setFocus()
    QTest.keyClick(gallery.list, Qt.Key.Key_A)
    QTest.keyClick(gallery.list, Qt.Key.Key_R)
    assert [r.decision for r in project.results()] == ["accepted", "rejected"]
    assert gallery.list.item(0).text().startswith("✓ accepted")
    assert w.canvas.tool.name == "Nodule"  # A and R did not switch tools

    # Export: nnU-Net, and the dialog says what it wrote
    dialog = w.show_export()
    dialog.format.setCurrentIndex(dialog.format.findData("nnunet"))
    out = tmp_path / "export"
    dialog.out.setText(str(out))
    dialog.start()
    qtbot.waitUntil(lambda: dialog.thread is None, timeout=30_000)
    assert dialog.error is None and dialog.result_path == out and dialog.isVisible()
    assert "Wrote 1 accepted result" in dialog.status.text()
    assert dialog.cancel_button.text() == "Close"
    meta = [json.loads(line) for line in (out / "metadata.jsonl").read_text().splitlines()]
    assert len(meta) == 1 and meta[0]["synthetic"] is True
    dialog.cancel_button.click()
    assert not dialog.isVisible()

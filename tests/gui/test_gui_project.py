"""Projects from the window: studies, autosaved masks, stored results, gallery review with the
keyboard, reopening, the restore question after a crash, and export from the dialog."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from dicom_factory import chest_like, make_dicom
from gui_helpers import drag, open_and_wait
from PIL import Image
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QMessageBox

from xraystudio.curation.project import Project
from xraystudio.curation.session import SESSION_JSON
from xraystudio.gui.dialogs import export as export_dialog
from xraystudio.gui.dialogs import restore as restore_dialog
from xraystudio.gui.dialogs.restore import RestoreChoice

pytest.importorskip("diffusers")
torch = pytest.importorskip("torch")


# shared_engine comes from conftest.py.
@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> str:
    from xraystudio.synthesis.tiny import make_tiny_pixel_model

    return str(make_tiny_pixel_model(tmp_path_factory.mktemp("models") / "tiny"))


@pytest.fixture
def dicom(tmp_path: Path) -> Path:
    (tmp_path / "sources").mkdir()
    return make_dicom(tmp_path / "sources" / "chest.dcm", chest_like(240, 200, bits=12))


def key(widget, k) -> None:
    QTest.keyClick(widget, k)


def test_project_round_trip_review_and_export(window, qtbot, tmp_path, dicom, tiny_model,
                                              shared_engine, monkeypatch):
    w = window
    w.engine = shared_engine
    folder = tmp_path / "proj"
    assert w.new_project(folder)
    assert "project proj" in w.windowTitle()
    assert str(folder) in w.settings.recent_projects[0]

    # opening a radiograph makes it a study; painting is saved to the project on its own
    open_and_wait(qtbot, w, dicom)
    project = w.projects.project
    sid = w.projects.study_id
    assert [s.id for s in project.studies] == [sid]
    w.set_tool(next(t for t in w.tools if t.name == "Brush"))
    w.layers.set_active_index(0)
    drag(w, [(40, 80), (60, 120), (70, 160)])
    painted = w.study.masks.to_array(["right_lung"]).copy()
    assert painted.any()
    saved = lambda: project.load_masks(sid).to_array(["right_lung"])  # noqa: E731
    qtbot.waitUntil(lambda: np.array_equal(saved(), painted), timeout=5000)
    assert not w.isWindowModified()  # nothing unsaved: no "save changes?" question

    # generated results are stored with their provenance
    w.add_model_folder(tiny_model)
    g = w.generator
    g.random_seed.setChecked(False)
    g.seed.setValue(3)
    g.steps.setValue(2)
    g.n_images.setValue(3)
    import threading

    import xraystudio.curation.result_files as result_files
    png_threads: list[threading.Thread] = []
    real_write_png = result_files.write_png

    def recording_write_png(pixels, path):
        png_threads.append(threading.current_thread())
        real_write_png(pixels, path)

    monkeypatch.setattr(result_files, "write_png", recording_write_png)
    w.generate()
    qtbot.waitUntil(lambda: w.generation is None and w.strip.count() == 3
                    and not w.projects.staging and None not in w.strip.result_ids,
                    timeout=120_000)
    # results are encoded off the GUI thread; only renames and the record happen on it
    assert len(png_threads) == 3
    assert all(t is not threading.main_thread() for t in png_threads)
    monkeypatch.setattr(result_files, "write_png", real_write_png)
    records = project.results(study=sid)
    assert len(records) == 3 and w.strip.result_ids == [r.id for r in records]
    assert records[0].provenance["synthetic"] is True
    assert records[0].parameters["seed"] == 3

    # keyboard review in the gallery (the window's single-key shortcuts must not steal keys)
    w.show_gallery()
    gallery = w.gallery
    qtbot.waitUntil(lambda: gallery.list.count() == 3, timeout=5000)
    gallery.list.setCurrentRow(0)
    gallery.list.setFocus()
    tool = w.canvas.tool.name
    key(gallery.list, Qt.Key.Key_A)  # accept r1, move to r2
    assert gallery.current_id() == records[1].id
    key(gallery.list, Qt.Key.Key_R)  # reject r2, move to r3
    key(gallery.list, Qt.Key.Key_S)  # star r3
    key(gallery.list, Qt.Key.Key_N)  # note r3
    assert gallery.note_edit.hasFocus() or gallery.note_edit.isEnabled()
    gallery.note_edit.setText("nice heart")
    key(gallery.note_edit, Qt.Key.Key_Return)
    key(gallery.list, Qt.Key.Key_Left)
    assert gallery.current_id() == records[1].id
    assert w.strip.currentRow() == 1  # the gallery selection is compared
    key(gallery.list, Qt.Key.Key_J)
    key(gallery.list, Qt.Key.Key_K)
    assert gallery.current_id() == records[1].id
    assert w.canvas.tool.name == tool  # A, R, S, N did not switch tools
    assert [r.decision for r in project.results()] == ["accepted", "rejected", "none"]
    assert project.result(records[2].id).starred
    assert project.result(records[2].id).note == "nice heart"
    assert "✓" in gallery.list.item(0).text() and "★" in gallery.list.item(2).text()
    # filters
    gallery.decision_filter.setCurrentIndex(gallery.decision_filter.findData("accepted"))
    gallery.refresh()
    assert gallery.list.count() == 1
    gallery.decision_filter.setCurrentIndex(0)
    gallery.starred_filter.setChecked(True)
    assert gallery.list.count() == 1 and gallery.current_id() == records[2].id
    gallery.starred_filter.setChecked(False)
    gallery.parameters_filter.setText(f"seed={records[1].parameters['seed']}, steps=2")
    gallery.refresh()
    assert gallery.list.count() == 1 and gallery.current_id() == records[1].id
    gallery.parameters_filter.clear()
    gallery.refresh()

    # close and reopen: masks, results and decisions are back
    w.close_project()
    assert not (folder / SESSION_JSON).exists() and "project" not in w.windowTitle()
    assert w.open_project(folder)
    qtbot.waitUntil(lambda: w.projects.study_id == sid and w.strip.count() == 3, timeout=10_000)
    assert np.array_equal(w.study.masks.to_array(["right_lung"]), painted)
    assert sorted(w.strip.result_ids) == [r.id for r in records]
    reopened = w.projects.project
    assert [r.decision for r in reopened.results()] == ["accepted", "rejected", "none"]
    qtbot.waitUntil(lambda: w.gallery.list.count() == 3, timeout=5000)
    # opening it again from the recent list is not mistaken for a crash
    monkeypatch.setattr(restore_dialog, "ask_restore", lambda *a: pytest.fail("asked"))
    assert w.open_project(folder) and w.projects.project is reopened

    # export from the dialog; an existing output is replaced only after confirming
    out = tmp_path / "export"
    for attempt in range(2):
        dialog = w.show_export()
        assert not dialog.keep_link.isChecked()
        dialog.format.setCurrentIndex(dialog.format.findData("nnunet"))
        dialog.out.setText(str(out))
        asked = []
        monkeypatch.setattr(export_dialog.ExportDialog, "confirm_overwrite",
                            lambda self, path, asked=asked: asked.append(path) or True)
        dialog.start()
        qtbot.waitUntil(lambda d=dialog: d.thread is None, timeout=30_000)
        assert dialog.error is None and dialog.result_path == out
        assert len(asked) == attempt
    # a cancelled export leaves nothing behind
    cancelled_out = tmp_path / "cancelled"
    dialog = w.show_export()
    dialog.out.setText(str(cancelled_out))
    dialog.start()
    dialog.cancel()
    qtbot.waitUntil(lambda: dialog.thread is None, timeout=30_000)
    assert dialog.result_path is None and "Cancelled" in dialog.status.text()
    assert not cancelled_out.exists()
    assert (out / "dataset.json").is_file()
    assert sorted(p.name for p in (out / "imagesTr").iterdir()) == ["case_0001_0000.png"]
    assert (out / "labelsTr" / "case_0001.png").is_file()
    meta = [json.loads(line) for line in (out / "metadata.jsonl").read_text().splitlines()]
    assert len(meta) == 1 and meta[0]["synthetic"] is True


def crashed_project(tmp_path: Path) -> tuple[Path, Path]:
    """A project whose session was never closed, with a stray image of an interrupted add."""
    source = tmp_path / "src.png"
    Image.fromarray((np.random.default_rng(0).random((64, 48)) * 255).astype(np.uint8)).save(source)
    folder = tmp_path / "crashed"
    project = Project.create(folder)
    sid = project.add_study(source)
    project.add_result(sid, np.full((64, 48), 0.5, np.float32), {"synthetic": True})
    stray = folder / "results" / "r00009.png"
    stray.write_bytes((folder / "results" / "r00001.png").read_bytes())
    assert (folder / SESSION_JSON).exists()  # no close(): as after a kill
    return folder, stray


@pytest.mark.parametrize("choice", list(RestoreChoice))
def test_restore_question_after_a_crash(window, qtbot, tmp_path, monkeypatch, choice):
    folder, stray = crashed_project(tmp_path)
    asked = []

    def answer(parent, path, recovery):
        asked.append(restore_dialog.recovery_text(recovery))
        return choice

    monkeypatch.setattr(restore_dialog, "ask_restore", answer)
    opened = window.open_project(folder)
    assert len(asked) == 1 and "added result r00001" in asked[0] and "r00009.png" in asked[0]
    project = window.projects.project
    if choice is RestoreChoice.CANCEL:
        assert not opened and project is None
        return
    assert opened and len(project.results()) == 1
    if choice is RestoreChoice.RESTORE:
        assert not stray.exists() and not project.read_only and not project.needs_restore
    else:
        assert stray.exists() and project.read_only and "read-only" in window.windowTitle()
        window.gallery.list.setCurrentRow(0)
        window.gallery.review("accepted")  # refused: read-only, shown as an error
        assert project.result("r00001").decision == "none"
        qtbot.waitUntil(lambda: window.last_error is not None, timeout=2000)


def test_export_failure_is_a_dialog(window, qtbot, tmp_path, monkeypatch):
    folder, _ = crashed_project(tmp_path)
    monkeypatch.setattr(restore_dialog, "ask_restore", lambda *a: RestoreChoice.RESTORE)
    window.open_project(folder)
    shown = []
    monkeypatch.setattr(QMessageBox, "open", lambda self: shown.append(self.text()))
    dialog = window.show_export()
    dialog.out.setText(str(tmp_path / "out"))
    dialog.start()  # nothing accepted yet
    qtbot.waitUntil(lambda: dialog.thread is None, timeout=10_000)
    assert dialog.error and "no accepted results" in dialog.error and shown
    assert not (tmp_path / "out").exists()


def test_restore_box_names_what_was_found(qtbot, tmp_path, monkeypatch):
    folder, stray = crashed_project(tmp_path)
    project = Project.open(folder)
    seen = []

    def click_read_only(box):
        seen.append(box.text() + box.informativeText())
        next(b for b in box.buttons() if b.text() == "Open read-only").click()

    monkeypatch.setattr(QMessageBox, "exec", click_read_only)
    choice = restore_dialog.ask_restore(None, folder, project.recovery)
    assert choice is RestoreChoice.READ_ONLY
    assert "did not close cleanly" in seen[0] and "Restore?" in seen[0]
    assert "r00009.png" in seen[0] and "added result r00001" in seen[0]
    project.close()


def test_new_project_takes_a_folder_that_does_not_exist_yet(window, tmp_path, monkeypatch):
    from PySide6.QtWidgets import QFileDialog

    folder = tmp_path / "not" / "yet"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(folder), ""))
    window.choose_new_project()
    assert window.projects.project is not None and window.projects.project.folder == folder
    assert (folder / "project.json").is_file()

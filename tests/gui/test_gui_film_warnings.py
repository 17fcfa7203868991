"""Warnings about the film travel with its results: a result's provenance records them, and a
result of a film that failed the chest check is accepted and exported only after a question."""

from __future__ import annotations

import pytest
from test_gui_edit import generate, lungs

from xraystudio.gui.dialogs import chest_confirm
from xraystudio.gui.dialogs.chest_confirm import CHEST

pytest.importorskip("diffusers")
torch = pytest.importorskip("torch")


def test_chest_check_warning_is_recorded_and_asked_about(opened, qtbot, tmp_path, plain_model,
                                                         shared_engine, monkeypatch):
    w = opened
    w.gen.engine = shared_engine
    assert w.switch.new_project(tmp_path / "proj")
    lungs(w)
    w.gen.add_model_folder(plain_model)
    w.generator.steps.setValue(2)
    w.film_warnings.add(CHEST, "The anatomy segmenter found no plausible pair of lungs")
    answers = [True]
    asked: list[str] = []
    monkeypatch.setattr(chest_confirm, "confirm_unsupported",
                        lambda parent, reason, action: asked.append(action) or answers[-1])
    generate(w, qtbot)
    assert asked == ["Generate"]
    qtbot.waitUntil(lambda: not w.projects.staging and None not in w.strip.result_ids,
                    timeout=30_000)
    rid = w.strip.result_ids[0]
    project = w.projects.project
    kinds = [x["kind"] for x in project.result(rid).provenance["warnings"]]
    assert kinds == ["assumed_spacing", CHEST]  # a PNG: no spacing either
    # Accept asks; "no" leaves it undecided
    w.show_gallery()
    qtbot.waitUntil(lambda: w.gallery.list.count() == 1, timeout=5000)
    w.gallery.list.setCurrentRow(0)
    answers.append(False)
    w.gallery.review("accepted")
    assert asked[-1] == "Accept this result" and project.result(rid).decision == "none"
    answers.append(True)
    w.gallery.review("accepted")
    assert project.result(rid).decision == "accepted"
    # Export asks too, and says what it wrote when done
    dialog = w.show_export()
    dialog.out.setText(str(tmp_path / "out"))
    answers.append(False)
    dialog.start()
    assert asked[-1] == "Export them" and dialog.thread is None
    answers.append(True)
    dialog.start()
    qtbot.waitUntil(lambda: dialog.thread is None, timeout=30_000)
    assert dialog.result_path is not None and dialog.isVisible()
    assert "Wrote 1 accepted result" in dialog.status.text() and "files" in dialog.status.text()


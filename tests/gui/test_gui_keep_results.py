"""Nothing is lost by a project switch: results generated, edited and swept without a project
survive File ▸ New project and Open project, kept or discarded only by the user's choice."""

from __future__ import annotations

import pytest
from gui_helpers import click
from test_gui_edit import generate, lungs

from xraystudio.curation.project import Project
from xraystudio.gui.dialogs import keep_results
from xraystudio.gui.dialogs.keep_results import KeepChoice

pytest.importorskip("diffusers")
torch = pytest.importorskip("torch")


def answer(monkeypatch, choice: KeepChoice) -> list[int]:
    asked: list[int] = []
    monkeypatch.setattr(keep_results, "ask_keep",
                        lambda parent, count, verb: asked.append(count) or choice)
    return asked


@pytest.fixture
def session(opened, qtbot, edit_model, shared_engine):
    """A window holding, in no project, a generated result, an edit and a two-cell sweep."""
    w = opened
    w.gen.engine = shared_engine
    lungs(w)
    w.gen.add_model_folder(edit_model)
    g = w.generator
    g.steps.setValue(2)
    g.mode.setCurrentIndex(g.mode.findData("guided"))
    generate(w, qtbot, seed=1)
    assert not w.strip.results[0].is_edit
    g.mode.setCurrentIndex(g.mode.findData("edit"))
    w.set_tool(next(t for t in w.tools if t.name == "Nodule"))
    click(w, 60, 100)
    generate(w, qtbot, seed=2)
    assert w.strip.results[1].is_edit
    g.mode.setCurrentIndex(g.mode.findData("guided"))
    w.sweeps.faithfulness = False
    w.sweeps.panel.set_axis_texts(["seed=3,4"])
    w.sweeps.panel.run.click()
    qtbot.waitUntil(lambda: not w.sweeps.running, timeout=90_000)
    assert w.strip.count() == 4 and w.strip.result_ids == [None] * 4
    assert len(w.results.unsaved) == 4
    return w


def test_new_project_keeps_generated_edited_and_swept_results(session, qtbot, tmp_path,
                                                              monkeypatch):
    w = session
    shown = list(w.strip.results)
    # Cancel: no project, nothing lost
    asked = answer(monkeypatch, KeepChoice.CANCEL)
    assert not w.switch.new_project(tmp_path / "cancelled")
    assert asked == [4] and not (tmp_path / "cancelled").exists()
    assert w.projects.project is None and w.strip.results == shown
    # Keep: every result is stored in the new project, with its edit and the sweep record
    answer(monkeypatch, KeepChoice.KEEP)
    assert w.switch.new_project(tmp_path / "kept")
    assert w.strip.results == shown
    qtbot.waitUntil(lambda: not w.projects.staging and None not in w.strip.result_ids,
                    timeout=30_000)
    project = w.projects.project
    records = project.results(study=w.projects.study_id)
    ids = w.strip.result_ids
    assert ids == [r.id for r in records]  # stored in the strip's order
    # each is stored as what it is: the edit with its exact values, the others without
    assert [project.result_edit(rid) is not None for rid in ids] == [False, True, False, False]
    assert [project.result(rid).parameters["seed"] for rid in ids] == [1, 2, 3, 4]
    qtbot.waitUntil(lambda: all(c.result for c in w.sweeps.record.cells), timeout=10_000)
    sweeps = project.sweeps(study=w.projects.study_id)
    assert len(sweeps) == 1
    assert [c["result"] for c in sweeps[0]["cells"]] == ids[2:]
    assert not w.results.unsaved
    # and they are there after reopening
    folder = project.folder
    w.projects.close()
    reopened = Project.open(folder, read_only=True)
    assert len(reopened.results()) == 4 and len(reopened.sweeps()) == 1


def test_open_project_asks_and_discards_only_when_told(session, qtbot, tmp_path, monkeypatch):
    w = session
    other = Project.create(tmp_path / "other")
    other.close()
    asked = answer(monkeypatch, KeepChoice.DISCARD)
    assert w.switch.open_project(tmp_path / "other")
    assert asked == [4]
    assert w.strip.count() == 0 and not w.results.unsaved
    assert w.projects.project.results() == []


def test_opening_another_radiograph_or_quitting_asks_before_dropping_them(session, qtbot,
                                                                          tmp_path, monkeypatch):
    from gui_helpers import chest_png, open_and_wait

    w = session
    shown = list(w.strip.results)
    asked = []
    answers = [False]
    monkeypatch.setattr(keep_results, "ask_discard",
                        lambda parent, n, verb: asked.append(n) or answers[-1])
    other = chest_png(tmp_path / "other.png")
    w.open_file(other)
    assert asked == [4] and w._open_thread is None and w.strip.results == shown
    w.close()  # quitting: the same question; "cancel" keeps the window and its results
    assert w.isVisible() and asked == [4, 4] and w.strip.results == shown
    answers.append(True)
    open_and_wait(qtbot, w, other)
    assert w.study.name == "other" and w.strip.count() == 0 and not w.results.unsaved

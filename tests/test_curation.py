"""Projects: round trips, autosave under a killed process or a failing write, moves, filters."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from dicom_factory import make_dicom

from xraystudio.curation.project import Project, ProjectEvent
from xraystudio.errors import ProjectError
from xraystudio.study import Study


def _study(path: Path) -> Study:
    study = Study.open(make_dicom(path))
    study.masks.set_layer("right_lung", np.pad(np.ones((30, 10), bool), ((10, 24), (8, 30))))
    study.masks.add_nodule(12.0, 20.0, 2.0)
    return study


def _provenance(seed: int, model: str = "tiny", steps: int = 20) -> dict:
    return {"synthetic": True, "model": {"name": model},
            "parameters": {"seed": seed, "steps": steps}, "source_image": {"file": "src.dcm"}}


def _image(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).random((64, 48), dtype=np.float32)


def _tmp_files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob(".*") if ".tmp" in p.name]


def test_round_trip_keeps_results_decisions_and_result_masks(tmp_path: Path) -> None:
    events: list[ProjectEvent] = []
    with Project.create(tmp_path / "proj") as project:
        project.subscribe(events.append)
        sid = project.add_study(_study(tmp_path / "src.dcm"))
        r1 = project.add_result(sid, _image(1), _provenance(1))
        r2 = project.add_result(sid, _image(2), _provenance(2, model="other", steps=50))
        project.decide(r1, "accepted")
        project.decide(r2, "rejected")
        project.decide(r2, None)
        project.star(r1)
        project.note(r1, "sharp ribs")
        edited = project.load_masks(sid)
        edited.clear("right_lung")
        project.update_masks(sid, edited)
    assert [e.kind for e in events] == ["study_added", "result_added", "result_added",
                                        "result_changed", "result_changed", "result_changed",
                                        "result_changed", "result_changed", "masks_updated"]

    project = Project.open(tmp_path / "proj")
    assert not project.needs_restore
    r = project.result(r1)
    assert (r.decision, r.starred, r.note, r.model) == ("accepted", True, "sharp ribs", "tiny")
    assert project.result(r2).decision == "none"
    assert np.abs(project.result_image(r1) - _image(1)).max() <= 1 / 65535
    # Labels of a result are the masks it was made from, not the study's later edits.
    assert project.result_masks(r1)["right_lung"].any()
    assert not project.load_masks(sid)["right_lung"].any()
    assert [n.diameter_mm for n in project.result_masks(r1).nodules] == [2.0]
    study = project.load_study(sid)
    assert study.shape == (64, 48) and study.spacing_mm == (0.15, 0.15)
    project.close()


def test_filters(tmp_path: Path) -> None:
    with Project.create(tmp_path / "proj") as project:
        a = project.add_study(_study(tmp_path / "a.dcm"))
        b = project.add_study(_study(tmp_path / "b.dcm"))
        ra = project.add_result(a, _image(1), _provenance(1))
        rb = project.add_result(b, _image(2), _provenance(2, model="other", steps=50))
        project.decide(rb, "accepted")
        ids = lambda **kw: [r.id for r in project.results(**kw)]  # noqa: E731
        assert ids() == [ra, rb]
        assert ids(study=a) == [ra]
        assert ids(decision="accepted") == [rb] and ids(decision="none") == [ra]
        assert ids(model="other") == [rb]
        assert ids(parameters={"steps": 20}) == [ra]
        assert ids(starred=True) == []
        with pytest.raises(ProjectError, match="decision"):
            project.decide(ra, "maybe")


_WORKER = textwrap.dedent("""
    import sys
    import numpy as np
    from xraystudio.curation.project import Project
    project = Project.open(sys.argv[1])
    sid = project.studies[0].id
    for i in range(1000):
        rid = project.add_result(sid, np.full((64, 48), i / 1000, np.float32),
                                 {"model": {"name": "tiny"}, "parameters": {"seed": i}})
        project.decide(rid, "accepted" if i % 2 else "rejected")
        print(rid, flush=True)
""")


def test_killed_process_loses_at_most_the_last_action(tmp_path: Path) -> None:
    folder = tmp_path / "proj"
    with Project.create(folder) as project:
        project.add_study(_study(tmp_path / "src.dcm"))
    proc = subprocess.Popen([sys.executable, "-c", _WORKER, str(folder)],
                            stdout=subprocess.PIPE, text=True)
    try:
        done = [proc.stdout.readline().strip() for _ in range(4)]
        with pytest.raises(ProjectError, match="open in another"):
            Project.open(folder)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()

    declined = Project.open(folder)
    last = declined.recovery.last_action
    assert declined.needs_restore and last and last != "open"
    # Looking without restoring (the app's "Open read-only") keeps the offer and the last action.
    Project.open(folder, read_only=True).close()
    project = Project.open(folder)
    assert project.needs_restore and project.recovery.last_action == last
    assert project.recovery.unreadable == []
    ids = [r.id for r in project.results()]
    assert set(done) <= set(ids)
    for r in project.results():
        assert r.decision in ("none", "accepted", "rejected")
        assert project.result_image(r.id).shape == (64, 48)
    # Every result reported done also has its decision (written before it was reported).
    assert all(project.result(rid).decision != "none" for rid in done)
    project.restore()
    assert not project.needs_restore and _tmp_files(folder) == []
    assert sorted(p.stem for p in (folder / "results").glob("*.png")) == ids
    project.close()
    assert not Project.open(folder).needs_restore


def test_failing_write_leaves_the_previous_state(tmp_path: Path, monkeypatch) -> None:
    folder = tmp_path / "proj"
    project = Project.create(folder)
    sid = project.add_study(_study(tmp_path / "src.dcm"))
    rid = project.add_result(sid, _image(1), _provenance(1))
    project.decide(rid, "accepted")

    real_replace = os.replace

    def failing_replace(src, dst):
        if str(dst).endswith(".json") and "results" in str(dst):
            raise OSError(28, "No space left on device")
        return real_replace(src, dst)

    monkeypatch.setattr("xraystudio.io.atomic.os.replace", failing_replace)
    with pytest.raises(OSError):
        project.add_result(sid, _image(2), _provenance(2))
    with pytest.raises(OSError):
        project.decide(rid, "rejected")
    monkeypatch.undo()
    assert [r.id for r in project.results()] == [rid]
    assert project.result(rid).decision == "accepted"

    # The process "dies" here without closing the project.
    reopened = Project.open(folder)
    assert reopened.needs_restore
    assert [(r.id, r.decision) for r in reopened.results()] == [(rid, "accepted")]
    assert _tmp_files(folder) == []
    assert [p.name for p in reopened.recovery.leftovers] == ["r00002.png"]
    reopened.restore()
    assert not (folder / "results" / "r00002.png").exists()
    assert reopened.add_result(sid, _image(3), _provenance(3)) == "r00002"
    reopened.close()


def test_moved_project_finds_sources_moved_with_it(tmp_path: Path) -> None:
    (tmp_path / "a" / "data").mkdir(parents=True)
    with Project.create(tmp_path / "a" / "proj") as project:
        sid = project.add_study(_study(tmp_path / "a" / "data" / "src.dcm"))
        rid = project.add_result(sid, _image(1), _provenance(1))
    shutil.move(tmp_path / "a", tmp_path / "b")

    with Project.open(tmp_path / "b" / "proj") as project:
        assert project.source_path(sid) == (tmp_path / "b" / "data" / "src.dcm").resolve()
        assert project.load_study(sid).masks.nodules
        (tmp_path / "b" / "data" / "src.dcm").unlink()
        with pytest.raises(ProjectError, match=r"missing: .*src\.dcm"):
            project.load_study(sid)
        # Everything stored in the project still works without the source.
        assert project.result_image(rid).shape == (64, 48)
        assert project.result_masks(rid)["right_lung"].any()


def test_save_as_recomputes_relative_paths_and_refuses_a_full_folder(tmp_path: Path) -> None:
    src = tmp_path / "data" / "src.dcm"
    src.parent.mkdir()
    project = Project.create(tmp_path / "proj")
    sid = project.add_study(_study(src))
    project.add_result(sid, _image(1), _provenance(1))
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(ProjectError, match="already exists"):
        project.save_as(tmp_path / "full")
    project.save_as(tmp_path / "deeper" / "copy")
    assert not (tmp_path / "proj" / "session.json").exists()
    record = json.loads((tmp_path / "deeper" / "copy" / "project.json").read_text())["studies"][0]
    assert record["source_relative"] == "../../data/src.dcm"
    project.decide("r00001", "accepted")
    project.close()
    with Project.open(tmp_path / "deeper" / "copy") as copy:
        assert copy.result("r00001").decision == "accepted"
        assert copy.load_study(sid).shape == (64, 48)
    assert Project.open(tmp_path / "proj").result("r00001").decision == "none"


def test_open_rejects_a_folder_that_is_not_a_project(tmp_path: Path) -> None:
    with pytest.raises(ProjectError, match="not an xraystudio project"):
        Project.open(tmp_path)


def test_staged_result_commits_like_add_result(tmp_path: Path) -> None:
    with Project.create(tmp_path / "proj") as project:
        study = _study(tmp_path / "src.dcm")
        sid = project.add_study(study)
        direct = project.add_result(sid, _image(1), _provenance(1), study.masks)
        staged = project.stage_result(_image(1), study.masks)
        assert project.results() == [project.result(direct)]  # staged is not a result yet
        committed = project.add_result(sid, staged, _provenance(1))
        a, b = project.result(direct), project.result(committed)
        assert (a.study_id, a.provenance, a.mask_hash) == (b.study_id, b.provenance, b.mask_hash)
        assert np.array_equal(project.result_pixels(direct), project.result_pixels(committed))
        assert project.result_masks(committed).content_hash() == study.masks.content_hash()
        assert _tmp_files(project.folder) == []


def test_staged_result_masks_snapshot_is_moved_into_place(tmp_path: Path) -> None:
    with Project.create(tmp_path / "proj") as project:
        study = _study(tmp_path / "src.dcm")
        sid = project.add_study(study)
        edited = study.masks.copy()
        edited.add_nodule(30.0, 30.0, 3.0)
        rid = project.add_result(sid, project.stage_result(_image(2), edited), _provenance(2))
        assert project.result_masks(rid).content_hash() == edited.content_hash()
        assert _tmp_files(project.folder) == []


def test_uncommitted_staged_result_is_a_leftover(tmp_path: Path) -> None:
    folder = tmp_path / "proj"
    project = Project.create(folder)
    study = _study(tmp_path / "src.dcm")
    sid = project.add_study(study)
    edited = study.masks.copy()
    edited.add_nodule(30.0, 30.0, 3.0)
    staged = project.stage_result(_image(1), edited)
    assert staged.png.is_file() and staged.masks_file is not None
    assert project.results() == []
    # crash: the session is never closed
    reopened = Project.open(folder)
    assert reopened.needs_restore
    assert reopened.results() == []
    assert {staged.png, staged.masks_file} <= set(reopened.recovery.leftovers)
    reopened.restore()
    assert not staged.png.exists() and not staged.masks_file.exists()
    assert _tmp_files(folder) == []
    assert reopened.add_result(sid, _image(3), _provenance(3)) == "r00001"
    reopened.close()


def test_edit_result_keeps_its_changed_pixels_staged_or_not(tmp_path: Path) -> None:
    """An edit result stores where it changed and the values there (results/<rid>.edit.npz);
    the source's values with those replaced are the exact edit."""
    folder = tmp_path / "proj"
    rng = np.random.default_rng(0)
    source = rng.integers(0, 4096, (64, 48)).astype(np.float32)
    edited = source.copy()
    changed = np.zeros(source.shape, bool)
    changed[20:30, 10:25] = True
    edited[changed] += 7.0
    with Project.create(folder) as project:
        sid = project.add_study(_study(tmp_path / "src.dcm"))
        plain = project.add_result(sid, _image(1), _provenance(1))
        staged = project.stage_result(_image(2), edit=(changed, edited))
        assert staged.edit_file is not None and staged.edit_file.is_file()
        rid = project.add_result(sid, staged, _provenance(2))
        direct = project.add_result(sid, _image(3), _provenance(3), edit=(changed, edited))
        assert _tmp_files(folder) == []
    with Project.open(folder) as project:
        assert project.result_edit(plain) is None
        for r in (rid, direct):
            mask, values = project.result_edit(r)
            assert np.array_equal(mask, changed)
            rebuilt = source.copy()
            rebuilt[mask] = values
            assert np.array_equal(rebuilt, edited)
        # an edit file without its record is a leftover of an interrupted action
        shutil.copy(project.edit_path(rid), folder / "results" / "r00009.edit.npz")
    project = Project.open(folder)
    staged = project.stage_result(_image(4), edit=(changed, edited))
    reopened = Project.open(folder)  # the first session never closed: a crash
    assert staged.edit_file in reopened.recovery.leftovers
    assert folder / "results" / "r00009.edit.npz" in reopened.recovery.leftovers
    reopened.restore()
    assert not staged.edit_file.exists() and project.edit_path(rid).is_file()
    reopened.close()


def test_discarded_staged_result_leaves_nothing(tmp_path: Path) -> None:
    with Project.create(tmp_path / "proj") as project:
        project.add_study(_study(tmp_path / "src.dcm"))
        staged = project.stage_result(_image(1))
        staged.discard()
        assert _tmp_files(project.folder) == [] and project.results() == []


def test_failed_staging_leaves_no_temporaries(tmp_path: Path) -> None:
    """A staging that fails after its PNG (here: an edit whose mask and values differ in shape)
    removes what it had written: nothing is left for a recovery to find."""
    with Project.create(tmp_path / "proj") as project:
        study = _study(tmp_path / "src.dcm")
        project.add_study(study)
        bad_edit = (np.zeros((64, 48), bool), np.zeros((10, 10), np.float32))
        with pytest.raises(ProjectError, match="differ in shape"):
            project.stage_result(_image(1), study.masks, edit=bad_edit)
        assert _tmp_files(project.folder) == []
        assert list((project.folder / "results").glob("*")) == []


def test_result_record_that_is_not_an_object_is_skipped(tmp_path: Path) -> None:
    """A damaged result record (valid JSON, but not an object) is reported unreadable; the
    project still opens with its other results."""
    folder = tmp_path / "proj"
    with Project.create(folder) as project:
        sid = project.add_study(_study(tmp_path / "src.dcm"))
        rid = project.add_result(sid, _image(1), _provenance(1))
    (folder / "results" / "r00002.json").write_text("[1, 2]\n", encoding="utf-8")
    with Project.open(folder) as project:
        assert [r.id for r in project.results()] == [rid]
    (folder / "session.json").write_text("{}\n", encoding="utf-8")  # as a crash leaves it
    with Project.open(folder) as project:
        assert project.recovery.unreadable == [folder / "results" / "r00002.json"]

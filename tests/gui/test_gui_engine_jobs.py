"""Every engine job reaches the user with one readable message when it fails unexpectedly,
and the window accepts every model folder the command line accepts (issue 34)."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from gui_helpers import InProcessEngine

from xraystudio.engine import server
from xraystudio.engine.client import EngineProcess
from xraystudio.engine.protocol import Job, SegmentJob, SweepJob
from xraystudio.gui.engine_job import EngineJobThread
from xraystudio.masks import MaskStack


def _masks() -> MaskStack:
    masks = MaskStack((64, 64), (1.0, 1.0))
    masks.fill_polygon("right_lung", [(10, 10), (30, 10), (30, 50), (10, 50)])
    return masks


def _pack(job_type: type):
    """A job of ``job_type`` with its shared blocks, as the window packs it."""
    if job_type is Job:
        return Job.pack(None, _masks(), None, {})
    if job_type is SegmentJob:
        return SegmentJob.pack(np.zeros((64, 64), np.float32))
    if job_type is SweepJob:
        job, blocks = Job.pack(None, _masks(), None, {})
        return SweepJob(job, {}), blocks
    raise AssertionError(f"{job_type.__name__}: add it to this test's _pack")


def _run(qtbot, thread: EngineJobThread) -> dict:
    seen: dict = {}
    thread.done.connect(lambda answer: seen.setdefault("done", answer))
    thread.cancelled.connect(lambda: seen.setdefault("cancelled", True))
    thread.failed.connect(lambda message: seen.setdefault("failed", message))
    with qtbot.waitSignal(thread.finished, timeout=20_000):
        thread.start()
    return seen


def _break(monkeypatch, job_type: type, exc: Exception) -> str:
    """Make the handler of ``job_type`` raise ``exc``; what its messages call the job."""
    def broken(job, cache, send, cancel):
        raise exc

    entry = server.JOB_TYPES[job_type]
    monkeypatch.setitem(server.JOB_TYPES, job_type, dataclasses.replace(entry, handler=broken))
    return entry.what


@pytest.mark.parametrize("job_type", list(server.JOB_TYPES), ids=lambda t: t.__name__)
def test_an_unexpected_error_in_any_engine_job_reaches_the_user(qtbot, monkeypatch, job_type):
    what = _break(monkeypatch, job_type, KeyError("a bug in the handler"))
    thread = EngineJobThread(InProcessEngine(), lambda: _pack(job_type), what)
    seen = _run(qtbot, thread)
    assert set(seen) == {"failed"}  # exactly one ending, and not a result
    assert seen["failed"] == f"{what} failed unexpectedly: 'a bug in the handler'"
    assert "Traceback" not in seen["failed"]


def test_a_failure_on_the_window_side_of_a_job_reaches_the_user(qtbot):
    """Packing (or receiving) can fail too; the old generation thread then ended silently."""
    def pack():
        raise MemoryError("no room for the shared block")

    seen = _run(qtbot, EngineJobThread(InProcessEngine(), pack, "Generation"))
    assert seen == {"failed": "Generation failed unexpectedly: no room for the shared block"}


def test_a_failure_receiving_the_answer_reaches_the_user(qtbot, monkeypatch):
    """The answer arrived but could not be prepared for the window (after the process was done
    with the job: nothing is left to wait for)."""
    entry = server.JOB_TYPES[SegmentJob]
    monkeypatch.setitem(server.JOB_TYPES, SegmentJob, dataclasses.replace(
        entry, handler=lambda job, cache, send, cancel: "an answer"))

    def receive(answer):
        raise ValueError(f"cannot show {answer}")

    thread = EngineJobThread(InProcessEngine(), lambda: _pack(SegmentJob), entry.what, receive)
    assert _run(qtbot, thread) == {"failed": "Segmentation failed unexpectedly: cannot show an "
                                             "answer"}


def test_a_generation_failing_unexpectedly_shows_a_message_in_the_window(opened, qtbot,
                                                                        monkeypatch):
    _break(monkeypatch, Job, RuntimeError("CUDA error: an illegal memory access"))
    w = opened
    w.gen.engine = InProcessEngine()
    w.gen.generate()
    qtbot.waitUntil(lambda: w.gen.generation is None, timeout=20_000)
    assert w.last_error is not None
    assert w.last_error.text() == ("Generation failed unexpectedly: CUDA error: an illegal "
                                   "memory access")
    assert w.generator.generate.isEnabled()  # the window is ready for the next run


def test_a_sweep_failing_unexpectedly_says_so_in_the_sweep_tab(opened, qtbot, monkeypatch):
    _break(monkeypatch, SweepJob, ZeroDivisionError("division by zero"))
    w = opened
    w.gen.engine = InProcessEngine()
    panel = w.sweeps.panel
    panel.set_axis_texts(["seed=1,2"])
    panel.run.click()
    qtbot.waitUntil(lambda: not w.sweeps.running, timeout=20_000)
    assert panel.status.text() == ("The sweep failed: The sweep failed unexpectedly: division "
                                   "by zero")
    assert w.sweeps.record.status == "failed" and w.generator.generate.isEnabled()


def test_the_real_engine_process_answers_a_job_it_has_no_handler_for():
    engine = EngineProcess(name="xraystudio-test-engine")
    try:
        engine.submit("not a job")
        event = None
        while event is None:
            event = engine.next_event(timeout=20)
        assert event.terminal and event.args == ("The engine cannot run a str.",)
    finally:
        engine.close()


def test_the_engine_imports_neither_qt_nor_the_gui():
    """The child process imports xraystudio.engine (and the core), never xraystudio.gui."""
    code = ("import sys, xraystudio.engine.client, xraystudio.engine.opening; "
            "bad = [m for m in sys.modules if m.startswith(('xraystudio.gui', 'PySide6'))]; "
            "assert not bad, bad")
    root = Path(__file__).resolve().parents[2]
    subprocess.run([sys.executable, "-c", code], check=True, cwd=root,
                   env={**os.environ, "PYTHONPATH": str(root)})


# ------------------------------------------------------------ model folders
@pytest.fixture(scope="module")
def cli_model_folders(tmp_path_factory) -> list[Path]:
    """Folders the command line loads: the built-in pixel model and a plain diffusers Stable
    Diffusion ControlNet pipeline folder (model_index.json, no xraystudio.json)."""
    pytest.importorskip("diffusers")
    from xraystudio.synthesis.model import builtin_model_dir
    from xraystudio.synthesis.tiny import make_tiny_stable_diffusion

    plain = make_tiny_stable_diffusion(tmp_path_factory.mktemp("models") / "tiny") / "sd"
    assert (plain / "model_index.json").is_file() and not (plain / "xraystudio.json").exists()
    return [builtin_model_dir(), plain]


def test_the_window_accepts_every_model_folder_the_cli_accepts(window, cli_model_folders):
    from xraystudio.synthesis.model import read_spec

    for folder in cli_model_folders:
        spec = read_spec(folder)  # what `xraystudio generate --model FOLDER` reads
        assert window.gen.add_model_folder(str(folder)), window.last_error.text()
        assert window.generator.model_ref() == str(folder)
        assert window.generator.model.currentText() == spec.name
        assert window.generator.params().get("resolution") in (None, spec.resolution)
    assert window.last_error is None


def test_the_window_refuses_a_folder_the_cli_refuses(window, tmp_path):
    (tmp_path / "model_index.json").write_text("{not json", encoding="utf-8")
    assert not window.gen.add_model_folder(str(tmp_path))
    assert "is not a model folder" in window.last_error.text()

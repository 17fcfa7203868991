"""Several images per pipeline call in every mode, with the pixels of one at a time, and the GPU
measures (half precision, channels-last, compilation): off on the CPU, and when compilation is
unavailable or fails the image still comes out, with provenance saying what ran."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from test_synthesis import _study

from xraystudio.errors import GenerationCancelled
from xraystudio.synthesis.engine import Engine, GenerationRequest
from xraystudio.synthesis.tiny import (
    make_tiny_edit_model,
    make_tiny_fullres,
    make_tiny_pixel_model,
    make_tiny_stable_diffusion,
)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    folder = make_tiny_pixel_model(tmp_path_factory.mktemp("m") / "tiny", prior=True)
    make_tiny_fullres(folder)
    make_tiny_edit_model(folder)
    return folder


def _engine(model_dir: Path, **kw) -> Engine:
    return Engine.load(str(model_dir), device="cpu", precision="fp32", **kw)


@pytest.mark.parametrize("mode,resolution", [("layout", 32), ("layout", 128), ("guided", 128),
                                             ("edit", None)])
def test_n_images_in_one_call_are_the_images_of_one_at_a_time(model_dir: Path, mode: str,
                                                              resolution: int | None) -> None:
    masks, image = _study()
    engine = _engine(model_dir)
    calls = []
    unet = engine.edit_pipe.unet if mode == "edit" else engine.model.pipe.unet
    handle = unet.register_forward_hook(lambda m, a, o: calls.append(a[0].shape[0]))
    req = dict(mode=mode, resolution=resolution, steps=2)
    together = engine.generate(GenerationRequest(masks, image, seed=5, n_images=3, **req))
    batched_calls = list(calls)
    alone = [engine.generate(GenerationRequest(masks, image, seed=5 + k, **req))[0]
             for k in range(3)]
    handle.remove()
    windows = len(together[0].provenance["edits"]) if mode == "edit" else 1
    assert batched_calls and set(batched_calls) == {3 * windows}  # all three in each call
    for t, a in zip(together, alone):
        assert t.seed == a.seed and t.provenance["batch"] == 3 and a.provenance["batch"] == 1
        assert t.image.shape == a.image.shape == masks.shape
        # float rounding only: a batched convolution may sum in another order
        if mode == "edit":
            assert np.abs(t.values - a.values).max() <= 1e-3 and (t.changed == a.changed).all()
        else:
            np.testing.assert_allclose(t.working, a.working, atol=1e-5)
    assert np.abs(together[0].image - together[1].image).max() > 1e-3  # each its own noise


def test_a_latent_model_batches_too(tmp_path: Path) -> None:
    engine = Engine.load(str(make_tiny_stable_diffusion(tmp_path / "sd")), device="cpu")
    masks, image = _study()
    together = engine.generate(GenerationRequest(masks, image, seed=2, n_images=2, mode="layout"))
    alone = engine.generate(GenerationRequest(masks, image, seed=3, mode="layout"))[0]
    np.testing.assert_allclose(together[1].working, alone.working, atol=1e-4)


def test_max_batch_splits_the_calls_and_keeps_the_pixels(model_dir: Path) -> None:
    masks, image = _study()
    req = dict(mode="layout", resolution=128, steps=2, n_images=3, seed=9)
    whole = _engine(model_dir).generate(GenerationRequest(masks, image, **req))
    parts = _engine(model_dir, max_batch=2).generate(GenerationRequest(masks, image, **req))
    assert [r.provenance["batch"] for r in parts] == [2, 2, 1]
    for a, b in zip(whole, parts):
        np.testing.assert_allclose(a.working, b.working, atol=1e-5)


def test_cancel_stops_a_batch_at_either_stage(model_dir: Path) -> None:
    masks, image = _study()
    engine = _engine(model_dir)
    for stage in ("coarse", "full resolution"):
        cancel = threading.Event()
        seen = []

        def progress(p, stage=stage, cancel=cancel, seen=seen) -> None:
            seen.append((p.stage, p.step, p.batch))
            if p.stage == stage:
                cancel.set()

        with pytest.raises(GenerationCancelled):
            engine.generate(GenerationRequest(masks, mode="layout", seed=1, steps=3, n_images=2),
                            progress, cancel)
        assert seen[-1][0] == stage and seen[-1][2] == 2
    cancel = threading.Event()
    with pytest.raises(GenerationCancelled):
        engine.generate(GenerationRequest(masks, image, mode="edit", seed=1, n_images=2),
                        lambda p: cancel.set(), cancel)


def test_the_cpu_runs_eagerly_and_says_so(model_dir: Path, monkeypatch) -> None:
    import torch

    compiled = []
    monkeypatch.setattr(torch, "compile", lambda *a, **k: compiled.append(a) or a[0])
    engine = _engine(model_dir)
    masks, image = _study()
    r = engine.generate(GenerationRequest(masks, image, mode="guided", seed=1, steps=2))[0]
    assert compiled == []
    assert r.provenance["acceleration"] == {"half": "off", "channels_last": False,
                                            "compiled": "off", "compile_seconds": 0.0}
    assert not engine.acceleration.active


def _every_network(engine: Engine) -> list:
    """Guided, edit and full-resolution layout images: every network the engine runs."""
    masks, image = _study()
    out = [engine.generate(GenerationRequest(masks, image, mode=m, seed=4, steps=2))[0]
           for m in ("guided", "edit")]
    out.append(engine.generate(GenerationRequest(masks, mode="layout", seed=4, steps=2,
                                                 resolution=128))[0])
    return out


def _forced(model_dir: Path, monkeypatch, compile_fn) -> tuple[Engine, list]:
    import torch

    monkeypatch.setattr(torch, "compile", compile_fn)
    engine = _engine(model_dir, optimize="on")
    return engine, _every_network(engine)


def _plain(model_dir: Path) -> list:
    return _every_network(_engine(model_dir, optimize="off"))


def _same(a: list, b: list) -> None:
    for x, y in zip(a, b):
        np.testing.assert_allclose(x.working, y.working, atol=1e-5)


def test_eager_keeps_the_cheap_measures_without_compiling(model_dir: Path, monkeypatch) -> None:
    """The window's engine (optimize eager) never compiles: on CUDA half precision and
    channels-last only, on the CPU nothing (the same images as off)."""
    import torch

    from xraystudio.synthesis.acceleration import Acceleration
    from xraystudio.synthesis.device import DeviceChoice

    cuda = Acceleration.plan(DeviceChoice("cuda", "float32", None), "eager")
    assert cuda.half == "float16 autocast" and cuda.channels_last and not cuda.compile
    assert not Acceleration.plan(DeviceChoice("cpu", "float32", None), "eager").active

    def never(*a, **k):
        raise AssertionError("torch.compile was called")

    monkeypatch.setattr(torch, "compile", never)
    out = _every_network(_engine(model_dir, optimize="eager"))
    _same(out, _plain(model_dir))
    assert all(r.provenance["acceleration"]["compiled"] == "off" for r in out)


def test_compilation_unavailable_falls_back_to_eager(model_dir: Path, monkeypatch) -> None:
    def unavailable(*a, **k):
        raise RuntimeError("torch.compile is not supported on this platform")

    engine, out = _forced(model_dir, monkeypatch, unavailable)
    _same(out, _plain(model_dir))
    for r in out:
        acc = r.provenance["acceleration"]
        assert acc["channels_last"] is True and acc["half"] == "off"  # never half on a CPU
        assert acc["compiled"].startswith("partly eager") and "not supported" in acc["compiled"]
    assert set(engine.acceleration.failures) == {"unet", "controlnet", "edit unet",
                                                 "fullres unet"}


def test_compilation_failing_at_the_first_call_falls_back_to_eager(model_dir: Path,
                                                                   monkeypatch) -> None:
    calls = []

    def broken(fn, **kw):
        def run(*a, **k):
            calls.append(kw)
            raise RuntimeError("inductor: no C++ compiler found")
        return run

    engine, out = _forced(model_dir, monkeypatch, broken)
    _same(out, _plain(model_dir))
    assert calls and all(c["mode"] is None for c in calls)  # the CPU has no CUDA graphs
    assert len(calls) == 4  # each network tried once, then eager for good
    assert "no C++ compiler" in out[-1].provenance["acceleration"]["compiled"]


def test_a_working_compiler_is_used_once_per_shape_and_timed_apart(model_dir: Path,
                                                                   monkeypatch) -> None:
    traced: dict[int, int] = {}

    def counting(fn, **kw):  # a stand-in "compiler" that runs the function it is given
        def run(*a, **k):
            traced[id(run)] = traced.get(id(run), 0) + 1
            return fn(*a, **k)
        return run

    engine, out = _forced(model_dir, monkeypatch, counting)
    _same(out, _plain(model_dir))
    acc = out[0].provenance["acceleration"]
    assert acc["compiled"] == "torch.compile (default)" and acc["compile_seconds"] > 0
    assert engine.acceleration.failures == {} and sum(traced.values()) > 4
    masks, image = _study()
    again = engine.generate(GenerationRequest(masks, image, mode="guided", seed=5, steps=2))[0]
    assert again.provenance["acceleration"]["compile_seconds"] == 0  # shapes seen before

"""``xraystudio synthesize``: nnU-Net output by its rules, determinism by seed, resume after a
kill without duplicates, settings fingerprint, batching, and the accelerate and Ray back-ends
giving the same files as one process."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from synthetic_data import write_dataset

from xraystudio.cli import main
from xraystudio.factory.items import find_sources, item_seed, plan_items, shard, units
from xraystudio.factory.settings import SynthesisSettings
from xraystudio.io.datasets import JsrtDataset
from xraystudio.io.nnunet import check_nnunet_dataset
from xraystudio.synthesis.tiny import make_tiny_edit_model, make_tiny_pixel_model

NODULE_LABEL = 6


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> tuple[Path, Path]:
    from xraystudio.synthesis.layout_sampler import LAYOUT_SAMPLER_FILE, LayoutSampler

    root = tmp_path_factory.mktemp("synth")
    data = write_dataset(root / "data", n=6, size=128)
    model = root / "tiny"
    make_tiny_pixel_model(model)
    make_tiny_edit_model(model)
    LayoutSampler.fit(JsrtDataset(data)).save(model / LAYOUT_SAMPLER_FILE)
    return data, model


def _args(data: Path, model: Path, out: Path, *extra: str) -> list[str]:
    return ["synthesize", str(data), "--out", str(out), "--model", str(model), "--steps", "2",
            "-n", "2", "--batch", "2", "--threads", "1", *extra]


def _files(out: Path) -> dict[str, bytes]:
    keep = ("imagesTr", "labelsTr", "items", "jsrt")
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*"))
            if p.is_file() and p.relative_to(out).parts[0] in keep
            or p.name in ("metadata.jsonl", "dataset.json", "manifest.jsonl")}


@pytest.fixture(scope="module")
def reference(setup, tmp_path_factory) -> Path:
    data, model = setup
    out = tmp_path_factory.mktemp("ref") / "out"
    assert main(_args(data, model, out, "--jsrt")) == 0
    return out


def test_output_follows_the_nnunet_rules_and_records_provenance(setup, reference: Path) -> None:
    data, _ = setup
    assert check_nnunet_dataset(reference) == []
    rows = [json.loads(line) for line in (reference / "metadata.jsonl").read_text().splitlines()]
    assert len(rows) == 12 and len({r["id"] for r in rows}) == 12
    meta = json.loads((reference / "dataset.json").read_text())
    assert meta["numTraining"] == 12 and meta["labels"]["nodule"] == NODULE_LABEL
    for r in rows:
        assert r["synthetic"] is True and r["nodules"] and r["provenance"]["edits"]
        label = np.asarray(Image.open(reference / r["label"]))
        for n in r["nodules"]:  # the inserted nodule is labelled where it was drawn
            assert label[int(round(n["y"])), int(round(n["x"]))] == NODULE_LABEL
        src = np.asarray(Image.open(data / "images" / f"{r['source']['case']}.png"))
        img = np.asarray(Image.open(reference / r["image"]))
        assert img.dtype == src.dtype and img.shape == src.shape
        assert 0 < (img != src).sum() <= r["provenance"]["changed_pixels"]
    # the JSRT-style copy opens as a dataset the product's trainers read
    assert len(JsrtDataset(reference / "jsrt").cases) >= 1


def test_nnunet_check_reports_broken_datasets(reference: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(reference, broken)
    next((broken / "labelsTr").glob("*.png")).unlink()
    first = next((broken / "imagesTr").glob("*.png"))
    first.rename(first.with_name("bad-name.png"))
    problems = check_nnunet_dataset(broken)
    assert any("has no labelsTr" in p for p in problems)
    assert any("not named" in p for p in problems) and any("numTraining" in p for p in problems)


def test_item_seeds_come_from_the_master_seed_and_id_only(setup) -> None:
    data, _ = setup
    items = plan_items(find_sources(data), "edit", 3, master_seed=7)
    assert [i.seed for i in items] == [item_seed(7, i.id) for i in items]
    assert len({i.seed for i in items}) == len(items)
    assert item_seed(8, items[0].id) != items[0].seed
    all_units = units(items, 4)
    shards = [shard(all_units, r, 3) for r in range(3)]
    assert sorted(i.id for s in shards for u in s for i in u) == sorted(i.id for i in items)
    removal = plan_items(find_sources(data), "remove", 5, master_seed=0)
    assert len(removal) == 3 and all(i.source.nodules for i in removal)  # one per nodule case


def test_rerun_is_idempotent_and_other_settings_refuse(setup, reference: Path, tmp_path: Path,
                                                       capsys) -> None:
    data, model = setup
    out = tmp_path / "again"
    shutil.copytree(reference, out)
    before = _files(out)
    capsys.readouterr()
    assert main(_args(data, model, out, "--jsrt")) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["made"] == 0 and report["already_done"] == 12 and _files(out) == before
    assert main(_args(data, model, out, "--jsrt", "--seed", "5")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "seed" in err[0]
    assert main(["synthesize", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o")]) == 2


def test_kill_minus_9_then_resume_gives_the_same_files(setup, tmp_path: Path) -> None:
    data, model = setup
    out, clean = tmp_path / "killed", tmp_path / "clean"
    args = _args(data, model, out, "-n", "8")
    proc = subprocess.Popen([sys.executable, "-m", "xraystudio", *args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def done() -> int:
        return len(list((out / "items").glob("*.json"))) if (out / "items").is_dir() else 0

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and done() < 3 and proc.poll() is None:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert 0 < done() < 48, "the run was not caught in the middle"
    assert not (out / "metadata.jsonl").exists()
    assert main(args) == 0
    assert main(_args(data, model, clean, "-n", "8")) == 0
    assert _files(out) == _files(clean)  # nothing duplicated, nothing different
    assert len((out / "metadata.jsonl").read_text().splitlines()) == 48


def test_overlapped_reading_drawing_and_writing_give_the_same_files(setup, reference: Path,
                                                                      tmp_path: Path,
                                                                      monkeypatch) -> None:
    import threading

    from xraystudio.factory import worker

    data, model = setup
    threads: dict[str, set[str]] = {"prepare": set(), "draw": set(), "_write": set()}
    for name in threads:
        original = getattr(worker.Synthesizer, name)

        def spy(self, *a, _name=name, _original=original, **k):
            threads[_name].add(threading.current_thread().name)
            return _original(self, *a, **k)

        monkeypatch.setattr(worker.Synthesizer, name, spy)
    plain = tmp_path / "plain"
    assert main(_args(data, model, plain, "--jsrt", "--no-overlap")) == 0
    assert threads["prepare"] == threads["draw"] == threads["_write"] == {"MainThread"}
    for seen in threads.values():
        seen.clear()
    overlapped = tmp_path / "overlapped"
    assert main(_args(data, model, overlapped, "--jsrt")) == 0
    assert threads["draw"] == {"MainThread"}  # the model in this thread, files in others
    assert all(n.startswith("synthesize-read") for n in threads["prepare"])
    assert all(n.startswith("synthesize-write") for n in threads["_write"])
    assert _files(plain) == _files(overlapped) == _files(reference)


def test_a_unit_that_fails_while_others_are_in_flight_is_made_item_by_item(
        setup, tmp_path: Path, monkeypatch) -> None:
    from xraystudio.errors import GenerationError
    from xraystudio.factory import worker

    data, model = setup
    original = worker.Synthesizer._edit
    refused = []

    def flaky(self, todo, loaded):
        if any(i.id.endswith("001") for i in todo) and len(todo) > 1:
            refused.append(len(todo))
            raise GenerationError("lungs too small for a nodule")
        return original(self, todo, loaded)

    monkeypatch.setattr(worker.Synthesizer, "_edit", flaky)
    out = tmp_path / "flaky"
    assert main(_args(data, model, out)) == 0
    monkeypatch.undo()
    assert refused  # some units were refused whole
    clean = tmp_path / "clean"
    assert main(_args(data, model, clean)) == 0
    rows = (out / "metadata.jsonl").read_text().splitlines()
    assert len(rows) == 12 and not list((out / "failed").glob("*.json"))
    # units retried item by item went through the model one at a time: the same files
    # (an edit's windows in a batch of one round at most one stored level otherwise)
    assert sorted(_files(out)) == sorted(_files(clean))
    for name in _files(clean):
        if name.startswith("imagesTr"):
            a = np.asarray(Image.open(out / name), np.int32)
            b = np.asarray(Image.open(clean / name), np.int32)
            assert np.abs(a - b).max() <= 1


def test_an_item_that_fails_to_be_written_in_a_writer_thread_is_made_again(
        setup, reference: Path, tmp_path: Path, monkeypatch) -> None:
    from xraystudio.errors import XRayStudioError
    from xraystudio.factory import worker

    data, model = setup
    original = worker.Synthesizer._write
    failed = []

    def once(self, item, *a, **k):
        if item.id.endswith("001") and not failed:
            failed.append(item.id)
            raise XRayStudioError("the label map could not be made")
        return original(self, item, *a, **k)

    monkeypatch.setattr(worker.Synthesizer, "_write", once)
    out = tmp_path / "retried"
    assert main(_args(data, model, out, "--jsrt")) == 0
    assert failed and not (out / "failed").exists()
    # the unit's other item was written by the threads, this one again alone
    assert sorted(_files(out)) == sorted(_files(reference))


def test_batched_windows_give_the_same_images(setup) -> None:
    from xraystudio.io.images import read_image
    from xraystudio.synthesis.edit import EditPlan, EditTask, run_edit, run_edits
    from xraystudio.synthesis.edit_pipeline import load_edit_model

    data, model = setup
    pipe = load_edit_model(model)
    ds = JsrtDataset(data)
    tasks = []
    for k, cid in enumerate(ds.ids[:3]):
        case = ds.load(cid)
        image = read_image(data / "images" / f"{cid}.png").with_spacing(case.spacing_mm)
        tasks.append(EditTask(image, case.masks, EditPlan([(40.0 + k, 60.0, 12.0)], []), k))
    together = run_edits(pipe, tasks, steps=2)
    for task, out in zip(tasks, together):
        alone = run_edit(pipe, task.image, task.masks, task.plan, task.seed, steps=2)
        assert np.abs(alone.values - out.values).max() <= 1  # at most one stored grey level


@pytest.mark.slow
def test_accelerate_with_two_cpu_processes_gives_the_single_process_files(
        setup, reference: Path, tmp_path: Path) -> None:
    data, model = setup
    out = tmp_path / "acc"
    accelerate = Path(sys.executable).with_name("accelerate")
    cmd = [str(accelerate), "launch", "--cpu", "--num_processes", "2", "--num_machines", "1",
           "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "xraystudio",
           *_args(data, model, out, "--jsrt", "--backend", "accelerate")]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert _files(out) == _files(reference)


@pytest.mark.slow
def test_ray_local_mode_gives_the_single_process_files(setup, reference: Path, tmp_path: Path) -> None:
    ray = pytest.importorskip("ray")
    from xraystudio.factory.run import synthesize_ray

    data, model = setup
    out = tmp_path / "ray"
    settings = SynthesisSettings(input=data, out=out, per_input=2, batch=2, steps=2,
                                 model=str(model), jsrt=True)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        summary = synthesize_ray(settings, actors=2)
    finally:
        ray.shutdown()
    assert summary.complete and summary.made == 12
    assert _files(out) == _files(reference)


def test_remove_mode_makes_nodule_free_counterparts(setup, tmp_path: Path) -> None:
    data, model = setup
    out = tmp_path / "removed"
    assert main(_args(data, model, out, "--remove")) == 0
    rows = [json.loads(line) for line in (out / "metadata.jsonl").read_text().splitlines()]
    assert len(rows) == 3 and all(r["removed"] and not r["nodules"] for r in rows)
    for r in rows:
        assert NODULE_LABEL not in np.unique(np.asarray(Image.open(out / r["label"])))
    assert check_nnunet_dataset(out) == []


def test_layout_mode_draws_new_patients(setup, tmp_path: Path) -> None:
    data, model = setup
    out = tmp_path / "layout"
    assert main(_args(data, model, out, "--mode", "layout", "--limit", "2")) == 0
    rows = [json.loads(line) for line in (out / "metadata.jsonl").read_text().splitlines()]
    assert len(rows) == 4 and all(r["mode"] == "layout" and r["nodules"] for r in rows)
    assert check_nnunet_dataset(out) == []


def test_layout_resolution_is_a_setting_of_the_folder_and_edit_modes_refuse_it(
        setup, tmp_path: Path, capsys) -> None:
    """``--resolution``: layout mode draws at the side asked for (default the largest), the
    folder's fingerprint holds it, and edit and remove modes refuse it as ``generate`` does."""
    from xraystudio.synthesis.tiny import make_tiny_fullres

    data, tiny = setup
    model = tmp_path / "with_fullres"
    shutil.copytree(tiny, model)
    make_tiny_fullres(model)  # draws 32 px and, through the second stage, 128 px
    first = ("--mode", "layout", "--limit", "1")

    def drawn(out: Path) -> set[int]:
        rows = [json.loads(line) for line in (out / "metadata.jsonl").read_text().splitlines()]
        assert len(rows) == 2
        return {r["provenance"]["drawn_resolution"] for r in rows}

    coarse, full = tmp_path / "coarse", tmp_path / "full"
    assert main(_args(data, model, coarse, *first, "--resolution", "32")) == 0
    assert main(_args(data, model, full, *first)) == 0
    assert drawn(coarse) == {32} and drawn(full) == {128}
    assert json.loads((coarse / "synthesis.json").read_text())["resolution"] == 32
    row = json.loads((coarse / "metadata.jsonl").read_text().splitlines()[0])
    assert "fullres_weights_sha256" not in row["provenance"]["model"]  # the stage did not draw
    capsys.readouterr()
    # The largest side asked for by name is the default: the same folder, resumed.
    assert main(_args(data, model, full, *first, "--resolution", "128")) == 0
    assert json.loads(capsys.readouterr().out)["already_done"] == 2
    for out, other in ((full, "32"), (coarse, "128")):
        before = _files(out)
        assert main(_args(data, model, out, *first, "--resolution", other)) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error:") and "resolution" in err[0]
        assert _files(out) == before
    refused = tmp_path / "refused"
    for extra, says in ((("--mode", "layout", "--resolution", "64"), "not 64"),
                        (("--resolution", "32"), "edit mode draws at the source's own"),
                        (("--remove", "--resolution", "32"), "edit mode draws at the source's own")):
        assert main(_args(data, model, refused, "--limit", "1", *extra)) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error:") and says in err[0]
        assert not refused.exists()


def test_layout_mode_draws_new_patients_from_a_folder_of_saved_masks(setup, tmp_path: Path,
                                                                     capsys) -> None:
    from xraystudio.io.masks_io import save_masks

    data, model = setup
    dataset = JsrtDataset(data)
    masks_dir = tmp_path / "masks"
    masks_dir.mkdir()
    save_masks(dataset.load(dataset.ids[0]).masks, masks_dir / "first.npz")
    save_masks(dataset.load(dataset.ids[1]).masks, masks_dir / "second")  # folder of PNGs
    (masks_dir / "notes.txt").write_text("not masks")
    sources = find_sources(masks_dir)
    assert [(s.name, s.masks_only) for s in sources] == [("first", True), ("second", True)]
    out = tmp_path / "out"
    assert main(_args(masks_dir, model, out, "--mode", "layout")) == 0
    rows = [json.loads(line) for line in (out / "metadata.jsonl").read_text().splitlines()]
    assert len(rows) == 4 and all(r["nodules"] and r["source"]["masks"] for r in rows)
    assert all(r["provenance"]["source_pixel_hash"] is None for r in rows)
    assert check_nnunet_dataset(out) == []
    capsys.readouterr()
    assert main(_args(masks_dir, model, tmp_path / "edit")) == 2  # nothing to edit
    err = capsys.readouterr().err
    assert err.startswith("error:") and "--mode layout" in err and len(err.strip().splitlines()) == 1


def test_layout_batch_gives_each_request_the_image_it_gets_alone(setup) -> None:
    from xraystudio.synthesis.engine import Engine, GenerationRequest

    data, model = setup
    engine = Engine.load(str(model), device="cpu")
    dataset = JsrtDataset(data)
    reqs = [GenerationRequest(masks=dataset.load(i).masks, mode="layout", seed=k + 3, steps=2)
            for k, i in enumerate(dataset.ids[:3])]
    batch = engine.generate_batch(reqs)
    alone = [engine.generate(r)[0] for r in reqs]
    for b, a in zip(batch, alone):
        assert b.seed == a.seed and np.abs(b.image - a.image).max() < 1e-4
    assert np.abs(batch[0].image - batch[1].image).max() > 1e-3  # each its own noise


def test_an_input_that_cannot_be_used_is_recorded_and_the_run_goes_on(setup, tmp_path: Path,
                                                                        capsys) -> None:
    data, model = setup
    broken = tmp_path / "data"
    shutil.copytree(data, broken)
    (broken / "images" / "CASE001.png").write_bytes(b"not a png")
    out = tmp_path / "out"
    assert main(_args(broken, model, out)) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["failed"] == 2 and report["made"] == 10 and report["complete"]
    failed = sorted(p.name for p in (out / "failed").glob("*.json"))
    assert failed == ["CASE001_e000.json", "CASE001_e001.json"]
    assert json.loads((out / "failed" / failed[0]).read_text())["error"]
    assert check_nnunet_dataset(out) == []
    assert len((out / "metadata.jsonl").read_text().splitlines()) == 10
    shutil.copy(data / "images" / "CASE001.png", broken / "images" / "CASE001.png")
    assert main(_args(broken, model, out)) == 0  # the rerun retries what failed
    assert not list((out / "failed").glob("*.json"))
    assert len((out / "metadata.jsonl").read_text().splitlines()) == 12


# ----------------------------------------------------------- a folder of films as they come
def _stored(name: str, factor: int = 4) -> np.ndarray:
    """A pydicom-data film's stored integers, ``factor`` times smaller (block means)."""
    import pydicom
    from pydicom.data import get_testdata_file

    path = get_testdata_file(name, download=False)
    if path is None:
        pytest.skip(f"{name} is not installed (pip install pydicom-data)")
    arr = pydicom.dcmread(path).pixel_array.astype(np.float64)
    h, w = (s // factor for s in arr.shape)
    return np.rint(arr[:h * factor, :w * factor].reshape(h, factor, w, factor).mean((1, 3))
                   ).astype(np.uint16)


@pytest.fixture(scope="module")
def films(tmp_path_factory) -> Path:
    """A folder as an archive gives it: a MONOCHROME1 chest film labelled CHEST with its
    spacing; the same chest as an unlabelled MONOCHROME2 film without spacing; a lower leg
    labelled HIP; the lower leg as an unlabelled 8-bit PNG (a picture of no chest)."""
    from dicom_factory import make_dicom

    folder = tmp_path_factory.mktemp("films") / "in"
    folder.mkdir()
    chest, leg = _stored("RG1_UNCR.dcm"), _stored("RG3_UNCR.dcm")

    def labels(part: str):
        def add(ds) -> None:
            ds.BodyPartExamined, ds.ViewPosition = part, "PA" if part == "CHEST" else "AP"
        return add

    make_dicom(folder / "chest_m1.dcm", chest, photometric="MONOCHROME1", bits_stored=15,
               imager_spacing=(0.7, 0.7), extra=labels("CHEST"))
    make_dicom(folder / "chest_m2.dcm", (2**15 - 1 - chest).astype(np.uint16),
               photometric="MONOCHROME2", bits_stored=15, imager_spacing=None)
    make_dicom(folder / "hip.dcm", leg, photometric="MONOCHROME1", bits_stored=10,
               imager_spacing=(0.7, 0.7), extra=labels("HIP"))
    Image.fromarray(np.rint(255 - leg / 1023 * 255).astype(np.uint8)).save(folder / "leg.png")
    return folder


def _air_dark(out: Path, row: dict) -> bool:
    """Air (the lungs) darker than the mediastinum (the heart) in the written image."""
    img = np.asarray(Image.open(out / row["image"])).astype(np.float64)
    label = np.asarray(Image.open(out / row["label"]))
    return img[(label == 1) | (label == 2)].mean() < img[label == 3].mean()


def test_a_folder_of_films_uses_only_the_chests_and_writes_them_air_dark(
        setup, films: Path, tmp_path: Path, capsys) -> None:
    _, model = setup
    out = tmp_path / "out"
    capsys.readouterr()
    assert main(_args(films, model, out, "-n", "1")) == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert report["inputs"] == 4 and report["images"] == 4 and report["complete"]
    assert report["made"] == report["in_dataset"] == 2 and report["failed"] == 0
    assert report["skipped"] == {"implausible lungs": 1, "not chest": 1}
    assert report["made"] + report["failed"] + report["skipped_images"] == report["images"]
    assert report["spacing"] == {"ImagerPixelSpacing": 1, "assumed": 1}
    assert report["spacing_assumed_mm"] == 0.2
    assert "2 of 4 inputs not used (1 implausible lungs, 1 not chest)" in captured.err
    assert "1 of the 2 films used record no pixel spacing: 0.2 mm was assumed" in captured.err

    hip = json.loads((out / "failed" / "hip_e000.json").read_text())
    assert hip["skipped"] == "not chest" and "labelled HIP" in hip["error"]
    leg = json.loads((out / "failed" / "leg_e000.json").read_text())
    assert leg["skipped"] == "implausible lungs" and "no plausible pair of lungs" in leg["error"]

    rows = {r["source"]["name"]: r for r in map(json.loads, (out / "metadata.jsonl").read_text()
                                                .splitlines())}
    assert sorted(rows) == ["chest_m1", "chest_m2"]
    assert all(_air_dark(out, r) for r in rows.values())
    m1, m2 = rows["chest_m1"], rows["chest_m2"]
    assert m1["polarity"] == {"photometric": "MONOCHROME2", "source_photometric": "MONOCHROME1",
                              "transform": "inverted", "stored_range": [0, 2**15 - 1]}
    assert m2["polarity"]["source_photometric"] == "MONOCHROME2"
    assert m2["polarity"]["transform"] == "none"
    # the MONOCHROME1 film, mirrored at its own 15 bits: outside the edit, 32767 - stored
    img = np.asarray(Image.open(out / m1["image"]))
    src = _stored("RG1_UNCR.dcm")
    assert img.dtype == np.uint16 and img.max() <= 2**15 - 1
    assert 0 < (img != 2**15 - 1 - src).sum() <= m1["provenance"]["changed_pixels"]
    assert m1["spacing"] == {"mm": [0.7, 0.7], "source": "ImagerPixelSpacing"}
    assert m2["spacing"] == {"mm": [0.2, 0.2], "source": "assumed"}
    assert m1["chest_check"]["source"] == "labels"
    assert m2["chest_check"]["source"] == "segmentation"
    assert m2["chest_check"]["confidence"] >= 0.85
    meta = json.loads((out / "dataset.json").read_text())
    assert meta["numTraining"] == 2 and meta["photometric_interpretation"] == "MONOCHROME2"
    assert check_nnunet_dataset(out) == []

    # A rerun makes nothing and does not retry the films not used; other settings refuse.
    before = {p.name: p.read_bytes() for p in (out / "failed").iterdir()}
    assert main(_args(films, model, out, "-n", "1")) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["made"] == 0 and again["skipped"] == report["skipped"]
    assert {p.name: p.read_bytes() for p in (out / "failed").iterdir()} == before
    assert main(_args(films, model, out, "-n", "1", "--keep-implausible")) == 2
    assert "keep_implausible" in capsys.readouterr().err


def test_keep_implausible_tries_an_unlabelled_picture_but_never_a_labelled_hip(
        setup, films: Path, tmp_path: Path, capsys) -> None:
    """With --keep-implausible the unlabelled leg goes to the model like a chest (here the
    sampler finds no room for a nodule in its "lungs": a failure with that reason, retried by
    a rerun, not a skip); the film labelled HIP is skipped all the same."""
    _, model = setup
    out = tmp_path / "kept"
    capsys.readouterr()
    assert main(_args(films, model, out, "-n", "1", "--keep-implausible")) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["skipped"] == {"not chest": 1} and report["skipped_images"] == 1
    assert report["made"] == 2 and report["failed"] == 1
    leg = json.loads((out / "failed" / "leg_e000.json").read_text())
    assert "skipped" not in leg and "nodule" in leg["error"]
    assert json.loads((out / "failed" / "hip_e000.json").read_text())["skipped"] == "not chest"


def test_the_summary_says_when_films_carry_no_spacing(tmp_path: Path) -> None:
    from xraystudio.factory.output import Tally

    def tally(spacing: dict[str, int]) -> Tally:
        return Tally(inputs=3, done=3, skipped_inputs={}, skipped_items=0, failed=0,
                     spacing=spacing)

    (line,) = tally({"assumed": 3}).warnings(tmp_path)
    assert line.startswith("none of the films used records its pixel spacing: 0.2 mm was assumed")
    (line,) = tally({"PixelSpacing": 2, "assumed": 1}).warnings(tmp_path)
    assert line.startswith("1 of the 3 films used record no pixel spacing")
    assert tally({"ImagerPixelSpacing": 3}).warnings(tmp_path) == []

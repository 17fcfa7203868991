"""The downstream benchmark: metrics on hand-made masks, the three arms, leakage, the CLI."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from fake_synthetic import write_fake_synthetic
from PIL import Image
from synthetic_data import write_dataset

from xraystudio import metrics
from xraystudio.cli import main
from xraystudio.errors import DatasetError
from xraystudio.evaluation import downstream_data as data
from xraystudio.evaluation.downstream import markdown_table, paired, summarise
from xraystudio.io.datasets import JsrtDataset
from xraystudio.synthesis.conspicuity import RealNodule, draw_contrast, relative_contrast
from xraystudio.training.nodule_segmenter import NoduleTraining, sample_batch


def disc(shape: tuple[int, int], x: float, y: float, r: float) -> np.ndarray:
    yy, xx = np.ogrid[: shape[0], : shape[1]]
    return (xx - x) ** 2 + (yy - y) ** 2 <= r * r


# --------------------------------------------------------------------------------- metrics
def test_detections_count_hits_and_false_positives() -> None:
    truth = disc((64, 64), 16, 16, 5) | disc((64, 64), 48, 48, 5)
    pred = disc((64, 64), 18, 16, 4)            # overlaps the first nodule
    pred |= disc((64, 64), 16, 50, 3)           # overlaps nothing: a false positive
    pred[2, 60] = True                          # one-pixel speckle
    found = metrics.detections(pred, truth)
    assert found == {"nodules": 2, "hits": 1, "false_positives": 2}
    found = metrics.detections(pred, truth, min_area=5)
    assert found == {"nodules": 2, "hits": 1, "false_positives": 1}
    assert metrics.detections(np.zeros_like(truth), truth)["hits"] == 0
    assert metrics.detections(truth, truth) == {"nodules": 2, "hits": 2, "false_positives": 0}


def test_keep_components_and_dice() -> None:
    mask = disc((32, 32), 10, 10, 4)
    mask[30, 30] = True
    kept = metrics.keep_components(mask, 3)
    assert not kept[30, 30] and kept[10, 10] and kept.sum() == mask.sum() - 1
    half = mask.copy()
    half[:, 10:] = False
    assert metrics.dice(mask, mask) == 1.0
    assert metrics.dice(kept, half) == pytest.approx(2 * half.sum() / (kept.sum() + half.sum()))


def test_summarise_and_markdown() -> None:
    runs = [{"dice": d, "sensitivity": s, "fp_per_normal": f, "fp_per_nodule_image": 0.0}
            for d, s, f in ((0.4, 0.5, 1.0), (0.6, 0.7, 3.0))]
    summary = summarise(runs)
    assert summary["dice"]["mean"] == pytest.approx(0.5)
    assert summary["dice"]["sd"] == pytest.approx(np.std([0.4, 0.6], ddof=1))
    assert summary["fp_per_normal"]["seeds"] == [1.0, 3.0]
    table = markdown_table({"data": {"train_cases": 10, "synthetic_images": 4},
                            "summary": {"real": summary, "synthetic": summary}})
    assert "0.500 ± 0.141 (0.40, 0.60)" in table and "10 + 4" in table


def test_paired_differences_match_seeds_and_say_when_a_gap_is_noise() -> None:
    def arm(dice: list[float], fp: list[float], first: int = 0) -> list[dict]:
        return [{"seed": first + k, "dice": d, "sensitivity": 0.5, "fp_per_normal": f}
                for k, (d, f) in enumerate(zip(dice, fp))]

    runs = {"blob": arm([0.2, 0.3, 0.4], [2.0, 1.0, 3.0]),
            "synthetic": arm([0.25, 0.36, 0.44], [1.0, 3.0, 2.0])}
    diff = paired(runs)
    assert diff["seeds"] == [0, 1, 2]
    assert diff["dice"]["seeds"] == pytest.approx([0.05, 0.06, 0.04])
    low, high = diff["dice"]["ci95"]
    assert diff["dice"]["mean"] == pytest.approx(0.05)
    assert 0 < low < 0.05 < high  # a steady gain
    low, high = diff["fp_per_normal"]["ci95"]
    assert low < 0 < high  # a gap of 0 with swings of 1-2: noise
    # Only seeds both arms ran are paired; without the blob arm there is nothing to pair.
    runs["synthetic"] = arm([0.3, 0.3], [1.0, 1.0], first=1)
    assert paired(runs)["seeds"] == [1, 2]
    assert paired({"synthetic": runs["synthetic"]}) is None
    # one paired seed has no interval, and the report stays strict JSON
    one = paired({"blob": runs["blob"][:1], "synthetic": arm([0.1], [1.0])})
    assert one["dice"]["ci95"] is None
    json.loads(json.dumps(one, allow_nan=False))


# ------------------------------------------------------------------------------ data and arms
@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, list[str], list[str]]:
    root = tmp_path_factory.mktemp("downstream")
    jsrt = write_dataset(root / "jsrt", n=12, size=128)
    train, val = JsrtDataset(jsrt).split()
    synthetic = write_fake_synthetic(jsrt, root / "synthetic", train[:4], per_case=2)
    return jsrt, synthetic, train, val


def test_blob_arm_matches_the_synthetic_folder(tiny) -> None:
    jsrt, synthetic, train, val = tiny
    dataset = JsrtDataset(jsrt)
    items = data.read_synthetic(synthetic, dataset, val)
    assert len(items) == 8 and {i.nodule_value for i in items} == {6}
    real, nodules = data.real_pool(dataset, train, 128)
    assert len(nodules) == sum(dataset.load(i).info.nodule for i in train)
    syn = data.synthetic_pool(items, dataset, 128)
    blob = data.blob_pool(items, dataset, nodules, 128)
    assert len(blob) == len(syn) == 8 and blob.ids == syn.ids
    for k, item in enumerate(items):
        n = item.nodules[0]
        assert blob.masks[k][int(n.y), int(n.x)] and syn.masks[k][int(n.y), int(n.x)]
        # The blob raised the image where it was inserted, by a real nodule's contrast.
        source = dataset.load(item.case).image
        assert blob.images[k][int(n.y), int(n.x)] / 255 > source[int(n.y), int(n.x)]
    # Same layouts: the blob labels hold the same nodules as the synthetic ones.
    assert blob.nodule_count == syn.nodule_count
    again = data.blob_pool(items, dataset, nodules, 128)
    assert np.array_equal(again.images, blob.images)  # deterministic


def test_several_folders_and_a_removal_counterpart(tiny, tmp_path: Path) -> None:
    """An edit folder and a folder of nodule-free counterparts train one synthetic arm; the
    blob arm, which cannot remove, gets the removal's source unchanged, nodule label and all."""
    jsrt, synthetic, train, val = tiny
    dataset = JsrtDataset(jsrt)
    case = next(i for i in train if dataset.load(i).info.nodule)
    removed = write_fake_synthetic(jsrt, tmp_path / "removed", [case], per_case=1)
    rows = [json.loads(line) for line in (removed / "metadata.jsonl").read_text().splitlines()]
    row = rows[0]
    row["id"], row["nodules"] = f"{case}_r000", []
    (removed / "metadata.jsonl").write_text(json.dumps(row) + "\n")
    source = dataset.load(case)
    Image.fromarray(np.zeros(source.image.shape, np.uint8)).save(removed / row["label"])
    items = data.read_synthetic([synthetic, removed], dataset, val)
    assert len(items) == 9 and items[-1].id == f"{case}_r000"
    syn = data.synthetic_pool(items, dataset, 128)
    assert not syn.masks[-1].any()
    _, nodules = data.real_pool(dataset, train, 128)
    blob = data.blob_pool(items, dataset, nodules, 128)
    real = data.real_pool(dataset, [case], 128)[0]
    assert np.array_equal(blob.images[-1], real.images[0])
    assert np.array_equal(blob.masks[-1], real.masks[0]) and real.masks[0].any()
    with pytest.raises(DatasetError, match="twice"):
        data.read_synthetic([synthetic, synthetic], dataset, val)


def test_draw_contrast_prefers_same_subtlety_and_size() -> None:
    real = [RealNodule(10, 3, 0.1), RealNodule(11, 3, 0.11), RealNodule(30, 3, 0.5),
            RealNodule(10, 5, 0.9)]
    rng = np.random.default_rng(0)
    got = {draw_contrast(real, 10.5, 3, rng) for _ in range(50)}
    assert got <= {0.1, 0.11, 0.5}
    assert 0.9 not in got
    # Too few of a subtlety: any subtlety, nearest sizes.
    assert draw_contrast(real, 10, 1, rng) in {0.1, 0.11, 0.5, 0.9}


def test_blobs_take_the_contrast_the_synthetic_item_was_made_to(tiny, tmp_path: Path) -> None:
    jsrt, _, train, val = tiny
    dataset = JsrtDataset(jsrt)
    folder = write_fake_synthetic(jsrt, tmp_path / "syn", train[:2], per_case=1)
    rows = [json.loads(line) for line in (folder / "metadata.jsonl").read_text().splitlines()]
    for row, target in zip(rows, (0.05, 0.2)):
        row["nodules"][0]["contrast"] = target
    (folder / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    items = data.read_synthetic(folder, dataset, val)
    _, nodules = data.real_pool(dataset, train, 128)
    full = dataset.load(items[0].case).image.shape[0]
    blob = data.blob_pool(items, dataset, nodules, full)
    for k, (item, target) in enumerate(zip(items, (0.05, 0.2))):
        n = item.nodules[0]
        r = n.diameter_mm / dataset.load(item.case).spacing_mm[1] / 2
        before = relative_contrast(dataset.load(item.case).image, n.x, n.y, r)
        after = relative_contrast(blob.images[k].astype(np.float64) / 255, n.x, n.y, r,
                                  span=float(np.ptp(dataset.load(item.case).image)))
        assert after - before == pytest.approx(target, abs=0.02)


def test_batches_mix_real_and_extra_with_nodule_patches(tiny) -> None:
    jsrt, synthetic, train, val = tiny
    dataset = JsrtDataset(jsrt)
    real, _ = data.real_pool(dataset, train, 128)
    cfg = NoduleTraining(size=128, patch=32, batch=8, positive_fraction=1.0)
    x, y, mean, std = sample_batch(cfg, real, real, np.random.default_rng(0))
    assert x.shape == y.shape == (8, 48, 48) and mean.shape == (8,)
    inner = y[:, 8:40, 8:40]
    assert inner.any(axis=(1, 2)).all()  # every patch holds a nodule when asked to


def test_extra_fraction_sets_the_share_of_added_patches(tiny) -> None:
    jsrt, _, train, _ = tiny
    real, _ = data.real_pool(JsrtDataset(jsrt), train, 128)
    black = dataclasses.replace(real, images=np.zeros_like(real.images))
    cfg = NoduleTraining(size=128, patch=32, batch=8, extra_fraction=0.25)  # not the default
    x, _, _, _ = sample_batch(cfg, real, black, np.random.default_rng(0))
    assert (x[:2] == 0).all(axis=(1, 2)).all() and not (x[2:] == 0).all(axis=(1, 2)).any()


@pytest.mark.parametrize("value", ["1.5", "-0.1"])
def test_extra_fraction_outside_0_1_is_one_error_line(tiny, value: str, capsys) -> None:
    jsrt, synthetic, _, _ = tiny
    code = main(["benchmark", "downstream", str(jsrt), "--synthetic", str(synthetic),
                 "--extra-fraction", value])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("error:") and "0-1" in err[0]


def test_leaking_validation_case_is_refused(tiny, tmp_path: Path, capsys) -> None:
    jsrt, _, train, val = tiny
    leak = write_fake_synthetic(jsrt, tmp_path / "leak", [train[0], val[0]])
    with pytest.raises(DatasetError, match="leak"):
        data.read_synthetic(leak, JsrtDataset(jsrt), val)
    code = main(["benchmark", "downstream", str(jsrt), "--synthetic", str(leak), "--steps", "1"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("error:") and val[0] in err[0]


def test_bad_synthetic_folder_is_one_error_line(tiny, tmp_path: Path, capsys) -> None:
    jsrt, _, _, _ = tiny
    code = main(["benchmark", "downstream", str(jsrt), "--synthetic", str(tmp_path)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("error:")
    assert "dataset.json" in err[0]


def test_three_arms_same_compute_and_complete_report(tiny, tmp_path: Path, capsys) -> None:
    jsrt, synthetic, train, val = tiny
    out = tmp_path / "report.json"
    code = main(["benchmark", "downstream", str(jsrt), "--synthetic", str(synthetic),
                 "--seeds", "2", "--steps", "3", "--batch", "4", "--size", "128", "--patch", "32",
                 "--threads", "1", "--tune-cases", "2", "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "real + synthetic" in printed and "real + blob insertion" in printed
    report = json.loads(out.read_text())
    assert report["complete"]
    counts = report["data"]
    assert counts["blob_images"] == counts["synthetic_images"] <= counts["synthetic_images_made"] == 8
    assert counts["train_cases"] + counts["tune_cases"] == len(train) and counts["tune_cases"] == 2
    assert counts["val_cases"] == len(val)
    assert report["settings"]["training"]["steps"] == 3
    assert report["settings"]["tuned_on_validation"] is False
    for arm in ("real", "blob", "synthetic"):
        runs = report["runs"][arm]
        assert [r["seed"] for r in runs] == [0, 1]
        assert all(0 < r["threshold"] < 1 for r in runs)
        assert set(runs[0]["per_case"]) == set(val)
        for key in ("dice", "sensitivity", "fp_per_normal"):
            assert len(report["summary"][arm][key]["seeds"]) == 2
            assert 0 <= report["summary"][arm][key]["mean"]
    assert {"dice", "sensitivity", "fp_per_normal", "met"} <= set(report["bar"])
    assert report["paired_synthetic_minus_blob"]["seeds"] == [0, 1]
    assert "synthetic - blob over 2 paired seeds" in printed
    for arm in ("real", "blob", "synthetic"):
        run = report["runs"][arm][0]
        assert 0 <= run["cpm"] <= 1 and set(run["sensitivity_at_fp"]) == {"0.25", "0.5", "1.0",
                                                                          "2.0", "4.0"}
    assert report["timing"]["seconds_per_step"] > 0


def test_threshold_is_the_most_sensitive_within_the_false_positive_budget() -> None:
    from xraystudio.evaluation.downstream import choose_threshold
    from xraystudio.training.nodule_segmenter import Pool

    shape = (64, 64)
    nodule = disc(shape, 20, 20, 5)
    prob = np.zeros((2, *shape), np.float32)
    prob[0][nodule] = 0.9
    prob[1][disc(shape, 40, 40, 5)] = 0.6  # a false positive on the normal image
    masks = np.stack([nodule, np.zeros(shape, bool)])
    pool = Pool("tune", ["a", "b"], np.zeros((2, *shape), np.uint8), masks, [np.array([[20, 20]]),
                np.zeros((0, 2))], np.zeros(2, np.float32), np.ones(2, np.float32),
                np.array([0.35, 0.35]))
    kinds = np.array([True, False])
    strict = choose_threshold(prob, pool, kinds, 0.0, 1.0)
    assert 0.6 < strict <= 0.9
    assert choose_threshold(prob, pool, kinds, 1.0, 1.0) < 0.6


def test_one_arm_rerun_reports_no_bar(tiny, tmp_path: Path, capsys) -> None:
    jsrt, synthetic, _, _ = tiny
    out = tmp_path / "one.json"
    code = main(["benchmark", "downstream", str(jsrt), "--synthetic", str(synthetic),
                 "--arms", "synthetic", "--steps", "2", "--batch", "4", "--size", "128",
                 "--patch", "32", "--threads", "1", "--tune-cases", "2", "--out", str(out)])
    assert code == 0 and "not measured" in capsys.readouterr().out
    report = json.loads(out.read_text())
    assert list(report["runs"]) == ["synthetic"] and report["complete"]
    assert report["bar"]["met"] is None and 0 <= report["runs"]["synthetic"][0]["tune_cpm"] <= 1


def test_resume_extends_a_report_to_more_seeds_as_one_run_would(tiny, tmp_path: Path,
                                                                capsys) -> None:
    jsrt, synthetic, _, _ = tiny
    common = ["benchmark", "downstream", str(jsrt), "--synthetic", str(synthetic), "--steps", "2",
              "--batch", "4", "--size", "128", "--patch", "32", "--threads", "1",
              "--tune-cases", "2"]
    whole, part = tmp_path / "whole.json", tmp_path / "part.json"
    assert main([*common, "--seeds", "2", "--out", str(whole)]) == 0
    assert main([*common, "--seeds", "1", "--out", str(part)]) == 0
    assert json.loads(part.read_text())["paired_synthetic_minus_blob"]["seeds"] == [0]
    # Rerun one arm to two seeds: the other arms' runs stay, not retrained.
    assert main([*common, "--seeds", "2", "--arms", "blob", "--out", str(part), "--resume"]) == 0
    report = json.loads(part.read_text())
    assert {a: [r["seed"] for r in rs] for a, rs in report["runs"].items()} == {
        "real": [0], "blob": [0, 1], "synthetic": [0]}
    assert not report["complete"]
    assert main([*common, "--seeds", "2", "--out", str(part), "--resume"]) == 0
    resumed, fresh = json.loads(part.read_text()), json.loads(whole.read_text())
    assert resumed["complete"]
    for arm in ("real", "blob", "synthetic"):
        for key in ("dice", "sensitivity", "fp_per_normal", "cpm", "threshold"):
            assert resumed["summary"][arm][key] == fresh["summary"][arm][key]
    capsys.readouterr()

    before = part.read_bytes()
    other_steps = [*common]
    other_steps[other_steps.index("--steps") + 1] = "3"
    assert main([*other_steps, "--seeds", "3", "--out", str(part), "--resume"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: cannot resume") and "training" in err[0]
    assert part.read_bytes() == before
    assert main([*common, "--resume"]) == 2
    assert "--resume needs --out" in capsys.readouterr().err
    for text in ("not json", "{}", '{"settings": {}, "data": {}, "runs": {"real": [{}]}}'):
        part.write_text(text)
        assert main([*common, "--out", str(part), "--resume"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "not a downstream report" in err[0]
        assert part.read_text() == text


def test_resume_trains_again_only_the_arm_whose_images_changed(tiny, tmp_path: Path,
                                                               capsys) -> None:
    import shutil

    jsrt, synthetic, _, _ = tiny
    remade = tmp_path / "remade"
    shutil.copytree(synthetic, remade)
    out = tmp_path / "report.json"
    common = ["benchmark", "downstream", str(jsrt), "--steps", "2", "--batch", "4", "--size",
              "128", "--patch", "32", "--threads", "1", "--tune-cases", "2", "--out", str(out)]
    assert main([*common, "--synthetic", str(synthetic)]) == 0
    before = json.loads(out.read_text())
    # The same layouts drawn anew (another model): one image's pixels differ, metadata does not.
    image = sorted((remade / "imagesTr").glob("*.png"))[0]
    pixels = np.asarray(Image.open(image)).copy()
    pixels[: pixels.shape[0] // 2] //= 2
    Image.fromarray(pixels).save(image)
    assert main([*common, "--synthetic", str(remade), "--resume"]) == 0
    after = json.loads(out.read_text())
    assert after["complete"] and after["data"]["synthetic_dirs"] == [str(remade)]
    pools = before["data"]["pool_sha256"], after["data"]["pool_sha256"]
    assert pools[0]["synthetic"] != pools[1]["synthetic"]
    assert all(pools[0][k] == pools[1][k] for k in ("real", "tune", "val", "blob"))
    for arm in ("real", "blob"):  # kept as they were, not trained again
        assert after["runs"][arm] == before["runs"][arm]
    assert after["runs"]["synthetic"][0]["train_seconds"] is not None
    # Other real cases are refused outright.
    other = tmp_path / "other_jsrt"
    shutil.copytree(jsrt, other)
    first = sorted((other / "images").glob("*.png"))[0]
    pixels = np.asarray(Image.open(first)).copy()
    Image.fromarray(255 - pixels).save(first)
    capsys.readouterr()
    args = [*common, "--synthetic", str(remade), "--resume"]
    args[args.index(str(jsrt))] = str(other)
    assert main(args) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error")]
    assert len(errors) == 1 and "cannot resume" in errors[0] and "real cases" in errors[0]


# ------------------------------------------------------------------ the new-patients arm
def _small(jsrt: Path) -> list[str]:
    return ["benchmark", "downstream", str(jsrt), "--steps", "2", "--batch", "4", "--size", "128",
            "--patch", "32", "--threads", "1", "--tune-cases", "2"]


def test_new_patients_arm_beside_real_data_alone(tiny, tmp_path: Path, capsys) -> None:
    """A layout-mode folder trains a fourth arm, its images added to the real cases as the
    synthetic arm's are: labelled by their own label maps, nothing of a tuning case trained on,
    a pool hash, a row of the table, and a paired comparison with real data alone."""
    from xraystudio.io.datasets import tune_split

    jsrt, _, train, _ = tiny
    rest, tune = tune_split(JsrtDataset(jsrt), train, 2)
    new = write_fake_synthetic(jsrt, tmp_path / "new", [*rest[:3], tune[0]], per_case=2,
                               mode="layout")
    out = tmp_path / "report.json"
    assert main([*_small(jsrt), "--new-patients", str(new), "--seeds", "2", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    report = json.loads(out.read_text())
    assert list(report["runs"]) == ["real", "new_patients"] and report["complete"]
    counts = report["data"]
    assert counts["new_patients_images_made"] == 8 and counts["new_patients_images"] == 6
    assert counts["new_patients_source_cases"] == 3 and counts["new_patients_dirs"] == [str(new)]
    assert set(counts["pool_sha256"]) == {"real", "tune", "val", "new_patients"}
    items = [i for i in data.read_synthetic(new, JsrtDataset(jsrt), [], data.LAYOUT_MODES)
             if i.case != tune[0]]
    pool = data.synthetic_pool(items, JsrtDataset(jsrt), 128, name="new_patients")
    assert counts["new_patients_nodules_labelled"] == pool.nodule_count >= 6
    assert [r["seed"] for r in report["runs"]["new_patients"]] == [0, 1]
    assert report["paired_new_patients_minus_real"]["seeds"] == [0, 1]
    assert report["paired_synthetic_minus_blob"] is None and report["bar"]["met"] is None
    assert "| real + new patients | " in printed and f"{counts['train_cases']} + 6" in printed
    assert "new_patients - real over 2 paired seeds" in printed


def test_new_patients_folder_is_checked_as_the_synthetic_one_is(tiny, tmp_path: Path,
                                                                capsys) -> None:
    jsrt, synthetic, train, val = tiny
    leak = write_fake_synthetic(jsrt, tmp_path / "leak", [train[0], val[0]], mode="layout")
    layout = write_fake_synthetic(jsrt, tmp_path / "layout", [train[0]], mode="layout")
    for extra, says in (
            (["--new-patients", str(leak)], val[0]),  # a validation case's masks
            (["--new-patients", str(synthetic)], "edit-mode images"),  # edits, not new patients
            (["--synthetic", str(layout)], "layout-mode images"),  # no blob twin for them
            (["--arms", "new_patients"], "--new-patients"),
            (["--synthetic", str(synthetic), "--arms", "real", "new_patients"], "--new-patients"),
            (["--new-patients", str(layout), "--arms", "blob"], "--synthetic"),
            (["--new-patients", str(layout), "--arms", "bogus"], "unknown arm")):
        assert main([*_small(jsrt), *extra]) == 2, extra
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error:") and says in err[0], (extra, err)


def test_resume_trains_only_the_new_arm_without_the_other_arms_folders(tiny, tmp_path: Path,
                                                                       capsys) -> None:
    """A report's blob and synthetic runs are kept, all their seeds, when their folders are
    gone and only the new-patients arm is trained; their data and pool hashes stay with them."""
    import shutil

    from xraystudio.evaluation.downstream import markdown_table

    jsrt, synthetic, train, _ = tiny
    gone = tmp_path / "gone"
    shutil.copytree(synthetic, gone)
    new = write_fake_synthetic(jsrt, tmp_path / "new", train[:4], mode="layout")
    out = tmp_path / "report.json"
    assert main([*_small(jsrt), "--synthetic", str(gone), "--seeds", "2", "--out", str(out)]) == 0
    before = json.loads(out.read_text())
    assert all(r["threads"] == 1 for rs in before["runs"].values() for r in rs)
    # As a report from before runs recorded their threads, made with 3: resumed with 1 thread.
    old = json.loads(out.read_text())
    old["settings"]["threads"] = 3
    for rs in old["runs"].values():
        for r in rs:
            del r["threads"]
    out.write_text(json.dumps(old))
    shutil.rmtree(gone)
    assert main([*_small(jsrt), "--new-patients", str(new), "--arms", "new_patients",
                 "--seeds", "1", "--out", str(out), "--resume"]) == 0
    after = json.loads(out.read_text())
    for arm in ("real", "blob", "synthetic"):  # both seeds, not trained again, threads kept
        assert after["runs"][arm] == [{**r, "threads": 3} for r in before["runs"][arm]]
    assert [(r["seed"], r["threads"]) for r in after["runs"]["new_patients"]] == [(0, 1)]
    assert after["complete"] and after["settings"]["threads"] == 1
    assert all(after["data"][k] == v for k, v in before["data"].items() if k != "pool_sha256")
    assert before["data"]["pool_sha256"].items() <= after["data"]["pool_sha256"].items()
    assert after["summary"]["blob"] == before["summary"]["blob"]
    assert after["paired_synthetic_minus_blob"] == before["paired_synthetic_minus_blob"]
    table = markdown_table(after)
    assert "| real + new patients (1 seed) |" in table and "| real only (2 seeds) |" in table
    # Trained again (its own seeds below --seeds), the new arm is the only one that changes.
    capsys.readouterr()
    assert main([*_small(jsrt), "--new-patients", str(new), "--arms", "new_patients",
                 "--seeds", "2", "--out", str(out), "--resume"]) == 0
    again = json.loads(out.read_text())
    assert [r["seed"] for r in again["runs"]["new_patients"]] == [0, 1]
    assert again["runs"]["new_patients"][0] == after["runs"]["new_patients"][0]
    assert all(again["runs"][a] == after["runs"][a] for a in ("real", "blob", "synthetic"))

"""The conditioning explorer's core: axis parsing, cells, seeds, ablation, cancel, export."""

from __future__ import annotations

import csv
import json
import math
import threading

import numpy as np
import pytest
from PIL import Image

from xraystudio.errors import SweepError
from xraystudio.explore import grid
from xraystudio.explore.axes import MODES, parse_axes, parse_axis
from xraystudio.explore.sweep import Sweep, SweepRecord, run_sweep
from xraystudio.image import XRayImage
from xraystudio.masks import MaskStack


# ------------------------------------------------------------------ parsing
def test_ranges_lists_and_labels():
    a = parse_axis("conditioning_scale=0.5:1.5:5")
    assert a.name == "conditioning_scale" and a.values == (0.5, 0.75, 1.0, 1.25, 1.5)
    assert a.labels == ("0.5", "0.75", "1", "1.25", "1.5")
    assert parse_axis("seed=1,2,3").values == (1, 2, 3)
    assert parse_axis("seed=5:3").values == (5, 4, 3)
    assert parse_axis("steps=10:50:5").values == (10, 20, 30, 40, 50)
    assert parse_axis("Conditioning-Scale=1").name == "conditioning_scale"
    assert parse_axis("scheduler=DDIM,dpm++").values == ("ddim", "dpm++")
    assert parse_axis("layout_prior=on,off").values == (True, False)
    assert parse_axis("mode=layout,guided").values == ("layout", "guided")
    assert parse_axis("layer.heart=on,off,+5,-2.5mm").values == ("on", "off", "+5mm", "-2.5mm")
    assert parse_axis("model=builtin,/m/other/").labels == ("builtin", "other")
    assert parse_axis("model=builtin,/m/other").values == (None, "/m/other")


def test_the_engine_modes_are_the_axis_modes():
    from xraystudio.synthesis.engine import MODES as ENGINE_MODES

    assert MODES == ENGINE_MODES


@pytest.mark.parametrize("text, message", [
    ("conditioning_scale", "NAME=VALUES"),
    ("cfg=1,2", "unknown sweep axis 'cfg'"),
    ("seed=", "no values"),
    ("seed=1,,2", "empty value"),
    ("seed=1.5", "whole numbers"),
    ("seed=a", "not a number"),
    ("conditioning_scale=0.5:1.5", "number of values"),
    ("conditioning_scale=0.5:1.5:x", "whole number"),
    ("conditioning_scale=0:1:100", "at most 25"),
    ("conditioning_scale=-1,1", "outside 0..5"),
    ("control_end=0.5,1.5", "outside 0..1"),
    ("steps=0,10", "outside 1..1000"),
    ("scheduler=ddim,fast", "'fast' is not one of"),
    ("mode=edit,draw", "not one of edit, layout, guided"),
    ("prior=on,maybe", "not on or off"),
    ("layer.heart=on,bigger", "+Nmm (dilate)"),
    ("layer.=on", "layer.NAME"),
    ("seed=1,2,1", "given twice"),
    ("conditioning_scale=nan", "finite"),
])
def test_bad_axes_say_what_is_wrong(text, message):
    with pytest.raises(SweepError, match=message.replace("(", r"\(").replace(")", r"\)")
                       .replace("+", r"\+").replace(".", r"\.")):
        parse_axis(text)


def test_axes_together():
    with pytest.raises(SweepError, match="at least one axis"):
        parse_axes([None, ""])
    with pytest.raises(SweepError, match="given twice"):
        parse_axes(["seed=1,2", "seed=3"])
    assert [a.name for a in parse_axes(["seed=1", None, "steps=2"])] == ["seed", "steps"]
    with pytest.raises(SweepError, match="at most 400"):
        Sweep(parse_axes(["seed=1:25", "steps=1:20", "conditioning_scale=0:1:2"]))


# ------------------------------------------------------------------- cells
def test_cell_order_is_x_fastest_and_seeds_are_the_sweeps():
    sweep = Sweep(parse_axes(["conditioning_scale=0.5,1,1.5", "steps=2,3", "layer.heart=on,off"]),
                  seed=42)
    cells = sweep.cells()
    assert sweep.shape == (3, 2, 2) and len(cells) == 12
    assert [c.coords for c in cells[:4]] == [(0, 0, 0), (1, 0, 0), (2, 0, 0), (0, 1, 0)]
    assert cells[7].coords == (1, 0, 1)
    for c in cells:
        ix, iy, iz = c.coords
        assert c.index == (iz * 2 + iy) * 3 + ix
        assert sweep.params(c)["seed"] == 42  # one seed: cells differ only in their axes
    assert cells[4].values == {"conditioning_scale": 1.0, "steps": 3, "layer.heart": "on"}
    seeded = Sweep(parse_axes(["seed=7,8", "conditioning_scale=1,2"]))
    assert [seeded.params(c)["seed"] for c in seeded.cells()] == [7, 8, 7, 8]
    assert Sweep(parse_axes(["seed=1"])).seed is not None  # a random seed, recorded


def study(shape=(120, 100)) -> tuple[MaskStack, XRayImage]:
    masks = MaskStack(shape, (1.0, 1.0))
    masks.fill_polygon("right_lung", [(10, 20), (45, 20), (45, 100), (10, 100)])
    masks.fill_polygon("left_lung", [(55, 20), (90, 20), (90, 100), (55, 100)])
    masks.fill_polygon("heart", [(40, 60), (70, 60), (70, 90), (40, 90)])
    masks.add_nodule(30, 50, 8)
    rng = np.random.default_rng(0)
    return masks, XRayImage.from_display(rng.random(shape).astype(np.float32))


def test_ablation_changes_the_layer_in_the_condition_and_not_the_study():
    from xraystudio.synthesis.condition import build_condition
    from xraystudio.synthesis.spec import ModelSpec

    masks, _ = study()
    before = masks.content_hash()
    spec = ModelSpec(name="t", resolution=64)
    heart = spec.layers.index("heart")
    sweep = Sweep(parse_axes(["layer.heart=on,off,+5mm,-5mm"]), seed=1)
    on, off, grown, shrunk = (sweep.masks_for(c, masks) for c in sweep.cells())
    assert on.content_hash() == masks.content_hash()
    assert not off["heart"].any() and off["right_lung"].sum() == masks["right_lung"].sum()
    area = masks["heart"].sum()
    assert grown["heart"].sum() > area and masks["heart"][grown["heart"]].sum() == area
    assert 0 < shrunk["heart"].sum() < area and grown["heart"][shrunk["heart"]].all()
    # 5 mm at 1 mm pixels: the 31 x 31 square grows to about 41 wide, shrinks to about 21
    cols = np.flatnonzero(grown["heart"].any(axis=0))
    assert 40 <= cols[-1] - cols[0] + 1 <= 42
    conds = [build_condition(spec, m)[heart] for m in (on, off, grown, shrunk)]
    assert conds[1].max() == 0 and conds[0].sum() > 0
    assert conds[2].sum() > conds[0].sum() > conds[3].sum() > 0
    assert masks.content_hash() == before  # the study's masks never change
    nodule_off = Sweep(parse_axes(["layer.nodule=off"]), seed=1)
    gone = nodule_off.masks_for(nodule_off.cells()[0], masks)
    assert not gone["nodule"].any() and not gone.nodules and masks.nodules
    size = Sweep(parse_axes(["nodule_diameter=4,16"]), seed=1)
    small, big = (size.masks_for(c, masks) for c in size.cells())
    assert small.nodules[0].diameter_mm == 4 and big["nodule"].sum() > small["nodule"].sum()


def test_check_refuses_what_cannot_work():
    masks, _ = study()
    masks.add_layer("custom")
    with pytest.raises(SweepError, match="no mask layer 'spleen'"):
        Sweep(parse_axes(["layer.spleen=on,off"])).check(masks)
    with pytest.raises(SweepError, match="custom layer is empty"):
        Sweep(parse_axes(["layer.custom=on,+2"])).check(masks)
    with pytest.raises(SweepError, match="not before control end"):
        Sweep(parse_axes(["control_start=0,0.6", "control_end=0.5,1"])).check(masks)
    with pytest.raises(SweepError, match="guided mode, not layout"):
        Sweep(parse_axes(["guide_strength=0,1"]), base={"mode": "layout"}).check(masks)
    with pytest.raises(SweepError, match="layout mode, not guided"):
        Sweep(parse_axes(["prior=on,off", "mode=layout,guided"])).check(masks)
    with pytest.raises(SweepError, match="not edit mode"):
        Sweep(parse_axes(["detail=1,2"]), base={"mode": "edit"}).check(masks)
    with pytest.raises(SweepError):
        parse_axes(["detail_gain=0,1"])  # a gain of 0 would erase the band, not draw it
    sweep = Sweep(parse_axes(["detail=1:3:3"]), base={"mode": "layout"})
    assert [sweep.request(c, masks, None)[1].detail_gain for c in sweep.cells()] == [1, 2, 3]
    empty = MaskStack((50, 50))
    with pytest.raises(SweepError, match="no nodules"):
        Sweep(parse_axes(["nodule_diameter=5,10"])).check(empty)


def test_prepare_settles_the_base_mode_for_the_window_and_the_cli_alike():
    from xraystudio.synthesis.spec import Defaults, ModelSpec

    specs = {None: ModelSpec(name="t", resolution=64, defaults=Defaults(mode="guided"))}
    stamped, _ = study()  # a nodule the source did not have: edit mode has work
    blank = MaskStack((120, 100), (1.0, 1.0))
    blank.fill_polygon("right_lung", [(10, 20), (45, 20), (45, 100), (10, 100)])
    seeds = parse_axes(["seed=1,2"])
    no_mode = Sweep(seeds, base={})
    assert no_mode.prepare(stamped, specs) == "" and no_mode.base["mode"] == "guided"
    nothing_to_edit = Sweep(seeds, base={"mode": "edit"})
    note = nothing_to_edit.prepare(blank, specs)
    assert nothing_to_edit.base["mode"] == "guided" and "nothing to edit" in note
    edits = Sweep(seeds, base={"mode": "edit"})
    assert edits.prepare(stamped, specs) == "" and edits.base["mode"] == "edit"
    by_axis = Sweep(parse_axes(["mode=layout,guided"]), base={})
    by_axis.prepare(blank, specs)
    assert "mode" not in by_axis.base
    with pytest.raises(SweepError, match="guided mode, not layout"):
        Sweep(parse_axes(["guide_strength=0,1"]), base={"mode": "layout"}).prepare(blank, specs)


# --------------------------------------------------------------- running
torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    pytest.importorskip("diffusers")
    from xraystudio.synthesis.engine import Engine
    from xraystudio.synthesis.tiny import make_tiny_pixel_model

    torch.set_num_threads(1)
    folder = make_tiny_pixel_model(tmp_path_factory.mktemp("m") / "tiny", prior=True)
    return Engine.load(str(folder), device="cpu")


def test_a_sweep_runs_measures_and_exports(engine, tmp_path):
    masks, image = study()
    sweep = Sweep(parse_axes(["conditioning_scale=0:2:3", "layer.heart=on,off"]),
                  base={"mode": "guided", "steps": 3}, model=engine.model.source, seed=5)
    sweep.check(masks, {engine.model.source: engine.spec})
    record = SweepRecord.new(sweep, study="s1")
    seen, progress = [], []
    run_sweep(record, masks, image, lambda ref: engine, progress.append,
              on_cell=lambda o: seen.append(o))
    assert record.status == "done" and [o.record.index for o in seen] == list(range(6))
    assert all(c.status == "done" and c.seed == 5 for c in record.cells)
    first, second = record.cells[0], record.cells[1]
    for key in ("psnr", "ssim", "psnr_lungs", "nodule_contrast", "faithfulness_dice",
                "diff_to_first"):
        assert key in second.metrics and math.isfinite(second.metrics[key])
    assert first.metrics["diff_to_first"] == 0 and second.metrics["diff_to_first"] > 0
    assert second.parameters["conditioning_scale"] == 1.0
    # heart off really reached the model: another condition, another image
    assert seen[0].result.provenance["condition_hash"] != seen[3].result.provenance["condition_hash"]
    assert seen[0].result.provenance["mask_hash"] != seen[3].result.provenance["mask_hash"]
    assert seen[4].result.provenance["sweep"]["values"] == {"conditioning_scale": "1",
                                                            "layer.heart": "off"}
    assert progress and progress[-1].cell == 5 and progress[-1].n_cells == 6
    assert all(p.eta_s >= 0 for p in progress)
    images = [o.result.image for o in seen]
    paths = grid.export(tmp_path, record, images, files=[f"c{i}.png" for i in range(6)],
                        metric="faithfulness_dice")
    with Image.open(paths[0]) as im:
        assert im.size[0] > 3 * 192 and im.size[1] > 2 * 192
    rows = list(csv.DictReader(paths[1].open()))
    assert len(rows) == 6 and rows[4]["layer.heart"] == "off" and rows[4]["conditioning_scale"] == "1"
    assert rows[1]["result"] == "c1.png" and float(rows[1]["psnr"]) == pytest.approx(
        second.metrics["psnr"], abs=1e-5)
    back = SweepRecord.from_dict(json.loads(paths[2].read_text()))
    assert back.sweep.axes == sweep.axes and back.cells[1].metrics == pytest.approx(second.metrics)


def test_cancel_keeps_the_finished_cells_and_failures_are_cells(engine, tmp_path):
    masks, image = study()
    sweep = Sweep(parse_axes(["seed=1,2,3,4"]), base={"mode": "guided", "steps": 2}, seed=0)
    record = SweepRecord.new(sweep)
    cancel = threading.Event()

    def on_cell(o):
        if o.record.index == 1:
            cancel.set()

    run_sweep(record, masks, image, lambda ref: engine, cancel=cancel, on_cell=on_cell,
              faithfulness=False)
    assert record.status == "cancelled"
    assert [c.status for c in record.cells] == ["done", "done", "pending", "pending"]
    assert [c.seed for c in record.cells[:2]] == [1, 2]
    picture = grid.grid_image(record, [np.zeros((120, 100), np.float32)] * 2 + [None, None])
    assert picture.size[0] > 0
    # resuming runs only what is left
    cancel.clear()
    run_sweep(record, masks, image, lambda ref: engine, faithfulness=False)
    assert record.status == "done" and [c.seed for c in record.cells] == [1, 2, 3, 4]
    # the engine refusing one cell fails that cell only
    bad = SweepRecord.new(Sweep(parse_axes(["mode=layout,edit"]), base={"steps": 2}, seed=0))
    run_sweep(bad, masks, None, lambda ref: engine, faithfulness=False)
    assert [c.status for c in bad.cells] == ["done", "failed"]
    assert "edit" in bad.cells[1].error and bad.status == "done"


def test_guide_strength_scales_the_guide(engine):
    from xraystudio.synthesis.engine import GenerationRequest

    masks, image = study()
    full = engine.condition(GenerationRequest(masks, image, mode="guided"), "guided")
    half = engine.condition(GenerationRequest(masks, image, mode="guided", guide_strength=0.5),
                            "guided")
    n = len(engine.spec.layers)
    assert np.allclose(half[n:], full[n:] * 0.5) and np.array_equal(half[:n], full[:n])
    from xraystudio.errors import GenerationError

    with pytest.raises(GenerationError, match="guided mode only"):
        engine.generate(GenerationRequest(masks, image, mode="layout", guide_strength=0.5))


# ------------------------------------------------------------------- CLI
def _study_files(tmp_path):
    from xraystudio.io.masks_io import save_masks

    masks, image = study()
    src = tmp_path / "case.png"
    Image.fromarray((image.display() * 255).astype(np.uint8)).save(src)
    save_masks(masks, tmp_path / "case.masks.npz")
    return src, tmp_path / "case.masks.npz"


def test_cli_sweep_round_trip(engine, tmp_path, capsys):
    from xraystudio.cli import main

    src, masks = _study_files(tmp_path)
    out = tmp_path / "out"
    code = main(["sweep", str(src), "--masks", str(masks), "--model", engine.model.source,
                 "--x", "conditioning_scale=0.5:1.5:3", "--y", "seed=1,2",
                 "--z", "layer.heart=on,off", "--steps", "2", "--threads", "1",
                 "--no-faithfulness", "--spacing", "1", "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    printed = capsys.readouterr().out
    assert "12/12 cells (done)" in printed
    rows = list(csv.DictReader((out / "sweep.csv").open()))
    assert [int(r["cell"]) for r in rows] == list(range(1, 13))
    assert [r["seed"] for r in rows[:6]] == ["1", "1", "1", "2", "2", "2"]
    assert rows[7]["layer.heart"] == "off" and rows[7]["conditioning_scale"] == "1"
    assert all(r["status"] == "done" and r["psnr"] and r["result"] for r in rows)
    for r in rows:
        cell = out / r["result"]
        assert cell.is_file()
        prov = json.loads(cell.with_suffix(".json").read_text())
        assert prov["synthetic"] and prov["sweep"]["cell"] == int(r["cell"]) - 1
        assert prov["parameters"]["seed"] == int(r["seed"])
    record = SweepRecord.from_dict(json.loads((out / "sweep.json").read_text()))
    assert record.status == "done" and record.sweep.shape == (3, 2, 2)
    with Image.open(out / "sweep_grid.png") as im:
        assert im.size[0] >= 3 * 192 and im.size[1] >= 4 * 192


@pytest.mark.parametrize("argv, message", [
    (["--x", "cfg=1,2"], "unknown sweep axis 'cfg'"),
    (["--x", "seed=1,2", "--y", "seed=3"], "given twice"),
    (["--x", "layer.spleen=on,off"], "no mask layer 'spleen'"),
    (["--x", "seed=1", "--metric", "beauty"], "--metric must be one of"),
])
def test_cli_sweep_bad_input_is_one_error_line(engine, tmp_path, capsys, argv, message):
    from xraystudio.cli import main

    src, masks = _study_files(tmp_path)
    code = main(["sweep", str(src), "--masks", str(masks), "--model", engine.model.source,
                 "--out", str(tmp_path / "o"), "--spacing", "1", *argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err[-1].startswith("error: ") and message in err[-1]
    assert not any("Traceback" in line for line in err)


def test_sweeps_are_kept_in_the_project_and_reopen(tmp_path):
    from xraystudio.curation.project import Project
    from xraystudio.errors import ProjectError
    from xraystudio.study import Study

    src, _ = _study_files(tmp_path)
    project = Project.create(tmp_path / "p")
    sid = project.add_study(Study.open(src))
    record = SweepRecord.new(Sweep(parse_axes(["seed=1,2"]), seed=3), study=sid)
    record.cells[0].status, record.cells[0].result = "done", "r00001"
    record.cells[0].metrics = {"psnr": 12.5, "ssim": math.nan}
    swid = project.save_sweep(record.to_dict())
    assert swid == "s0001" and project.sweeps(study=sid)[0]["id"] == swid
    record.id = swid
    record.status = "cancelled"
    assert project.save_sweep(record.to_dict()) == swid  # an update, not a second sweep
    with pytest.raises(ProjectError, match="no study"):
        project.save_sweep({**record.to_dict(), "id": "", "study": "nope"})
    project.close()
    again = Project.open(tmp_path / "p")
    back = SweepRecord.from_dict(again.sweep(swid))
    assert back.status == "cancelled" and back.cells[0].result == "r00001"
    assert back.cells[0].metrics["psnr"] == 12.5 and math.isnan(back.cells[0].metrics["ssim"])
    again.save_as(tmp_path / "copy")
    assert [s["id"] for s in again.sweeps()] == [swid]
    assert (tmp_path / "copy" / "sweeps" / f"{swid}.json").is_file()
    # after Save As the project works in its new folder: a new sweep is stored there only
    second = again.save_sweep({**record.to_dict(), "id": ""})
    assert second == "s0002" and (tmp_path / "copy" / "sweeps" / "s0002.json").is_file()
    assert not (tmp_path / "p" / "sweeps" / "s0002.json").exists()
    again.close()


def test_cells_that_differ_only_in_seed_or_masks_are_drawn_together(engine):
    masks, image = study()
    sweep = Sweep(parse_axes(["seed=1,2,3", "layer.heart=on,off"]),
                  base={"mode": "guided", "steps": 2}, seed=0)
    calls = []
    handle = engine.model.pipe.unet.register_forward_hook(lambda m, a, o: calls.append(a[0].shape[0]))
    seen = []
    try:
        run_sweep(SweepRecord.new(sweep), masks, image, lambda ref: engine,
                  on_cell=seen.append, faithfulness=False)
    finally:
        handle.remove()
    assert set(calls) == {6}  # all six cells in each step's one call
    assert [o.record.index for o in seen] == list(range(6))
    for o in seen:  # each the image of its cell drawn alone
        ref, req = sweep.request(sweep.cells()[o.record.index], masks, image)
        alone = engine.generate(req)[0]
        np.testing.assert_allclose(o.result.working, alone.working, atol=1e-5)
        assert o.result.provenance["batch"] == 6

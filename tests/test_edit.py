"""Edit mode: windows, feathered compositing that leaves every other pixel alone, the source's
value range and format on the way out, removal, training and resuming, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pydicom
import pytest
from dicom_factory import make_dicom
from PIL import Image
from synthetic_data import write_dataset

from xraystudio.cli import main
from xraystudio.errors import GenerationError, ModelError
from xraystudio.image import XRayImage
from xraystudio.io.dicom import read_dicom
from xraystudio.io.images import read_image
from xraystudio.masks import MaskStack, Nodule
from xraystudio.synthesis.conspicuity import relative_contrast
from xraystudio.synthesis.edit import (
    MAX_CONTRAST_GAIN,
    REMOVE_LAYER,
    EditPlan,
    PixelFormat,
    plan_from_masks,
    plan_sites,
    rounds,
    run_edit,
    save_edit,
)
from xraystudio.synthesis.edit_pipeline import load_edit_model
from xraystudio.synthesis.edit_window import CHANNELS, EditSpec, WindowBox, feather
from xraystudio.synthesis.engine import Engine, GenerationRequest
from xraystudio.synthesis.tiny import make_tiny_edit_model, make_tiny_pixel_model


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("model") / "tiny"
    make_tiny_pixel_model(folder)
    make_tiny_edit_model(folder)
    return folder


@pytest.fixture(scope="module")
def pipe(model):
    return load_edit_model(model)


def _dicom_12bit(path: Path, size: int = 160, mono1: bool = False) -> Path:
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[:size, :size]
    pixels = (1500 + 800 * np.sin(xx / 9.0) + rng.normal(0, 60, (size, size))).clip(0, 4095)
    return make_dicom(path, np.rint(pixels).astype(np.uint16), bits_stored=12,
                      photometric="MONOCHROME1" if mono1 else "MONOCHROME2",
                      imager_spacing=(0.2, 0.2))


def test_feather_is_one_on_the_core_and_exactly_zero_past_its_width() -> None:
    core = np.zeros((41, 41), bool)
    core[15:26, 15:26] = True
    w = feather(core, 6.0)
    assert (w[core] == 1).all()
    assert w[0, 0] == 0 and w[20, 20 + 5 + 7] == 0
    ramp = w[20, 25:33]
    assert (np.diff(ramp) <= 0).all() and 0 < ramp[3] < 1


def test_windows_stay_inside_the_image_at_its_borders() -> None:
    spec = EditSpec(window=32, patch=2)
    box = WindowBox.around(0, 0, 0.35, 0.35, spec, (200, 300))
    assert (box.y0, box.x0, box.size) == (0, 0, 32)
    box = WindowBox.around(199, 299, 0.35, 0.35, spec, (200, 300))
    assert (box.y0 + box.size, box.x0 + box.size) == (200, 300)
    # A window larger than the image stays centred and is padded when cut.
    small = WindowBox.around(5, 5, 0.35, 0.35, spec, (20, 10))
    cut = small.cut(np.arange(200, dtype=np.float32).reshape(20, 10))
    assert cut.shape == (32, 32)
    # A large edit gets a coarser window, never a finer one than the model's spacing.
    assert spec.window_spacing(60.0) > spec.window_spacing(5.0) == spec.spacing_mm


def test_overlapping_edits_run_one_after_the_other() -> None:
    spec = EditSpec(window=32, patch=2)
    plan = EditPlan([(50, 50, 5.0), (56, 50, 5.0), (250, 180, 5.0)], [])
    sites = plan_sites(plan, (200, 300), 0.35, spec)
    groups = rounds(sites)
    assert len(groups) == 2
    assert [len(g) for g in groups] == [2, 1]
    for group in groups:
        assert not any(a.box.overlaps(b.box) for a in group for b in group if a is not b)


def test_plan_reads_added_moved_deleted_and_painted_edits() -> None:
    masks = MaskStack.from_arrays((100, 100), {}, (0.3, 0.3),
                                  [Nodule(1, 20, 20, 6.0), Nodule(2, 70, 70, 8.0), Nodule(3, 50, 20, 5.0)])
    masks.remove_nodule(1)
    masks.update_nodule(2, x=75)
    new = masks.add_nodule(30, 80, 7.0)
    assert new.id == 4  # never an id of a deleted source nodule
    masks.add_layer(REMOVE_LAYER)
    painted = np.zeros((100, 100), bool)
    painted[40:45, 80:86] = True
    masks.set_layer(REMOVE_LAYER, painted)
    plan = plan_from_masks(masks)
    assert sorted(plan.remove) == [(20, 20, 6.0), (70, 70, 8.0)]
    assert sorted(plan.insert) == [(30, 80, 7.0), (75, 70, 8.0)]
    assert plan.remove_mask.sum() == 30
    sites = plan_sites(plan, masks.shape, 0.3, EditSpec(window=32))
    assert [s.kind for s in sites].count("remove") == 3
    assert plan_from_masks(MaskStack.from_arrays((10, 10), {}, None, [Nodule(1, 5, 5, 3.0)])).empty


def test_plan_carries_each_inserted_nodules_contrast() -> None:
    masks = MaskStack.from_arrays((100, 100), {}, (0.3, 0.3), [Nodule(1, 20, 20, 6.0)])
    masks.add_nodule(30, 80, 7.0, contrast=0.02)
    masks.add_nodule(60, 60, 5.0)
    plan = plan_from_masks(masks)
    assert plan.insert == [(30, 80, 7.0), (60, 60, 5.0)] and plan.contrast == [0.02, None]
    masks.set_nodule_contrast(2, None)
    assert plan_from_masks(masks).contrast is None  # all the model's own


def test_edit_changes_nothing_outside_the_feather_in_a_12_bit_dicom(pipe, tmp_path: Path) -> None:
    image = read_dicom(_dicom_12bit(tmp_path / "src.dcm"))
    masks = MaskStack(image.shape, image.spacing_mm)
    masks.add_nodule(5, 80, 6.0)  # at the border
    masks.add_nodule(100, 100, 5.0)
    out = run_edit(pipe, image, masks, plan_from_masks(masks), seed=3)
    assert out.values.shape == image.shape
    assert (out.values[~out.changed] == image.values[~out.changed]).all()
    assert (out.values[out.changed] != image.values[out.changed]).mean() > 0.5
    assert out.values.min() >= 0 and out.values.max() <= 4095
    assert (out.values == np.rint(out.values)).all()
    assert not out.changed[0:40, 40:60].any()  # far from both edits
    # The written DICOM has the source's format and geometry, new UIDs, DERIVED/SYN.
    dcm, png = save_edit(out.values, image, {"edits": [s.describe() for s in out.sites]},
                         tmp_path, "edited")
    src, ds = pydicom.dcmread(tmp_path / "src.dcm"), pydicom.dcmread(dcm)
    assert (ds.Rows, ds.Columns, ds.BitsStored, ds.BitsAllocated, ds.PhotometricInterpretation) == \
        (src.Rows, src.Columns, src.BitsStored, src.BitsAllocated, src.PhotometricInterpretation)
    assert list(ds.ImagerPixelSpacing) == list(src.ImagerPixelSpacing)
    assert ds.SOPInstanceUID != src.SOPInstanceUID and ds.StudyInstanceUID != src.StudyInstanceUID
    assert list(ds.ImageType)[:1] == ["DERIVED"] and "SYN" in list(ds.ImageType)
    back = ds.pixel_array
    assert (back[~out.changed] == src.pixel_array[~out.changed]).all()
    assert (back == out.values).all()
    assert Image.open(png).mode.startswith("I;16")


def test_monochrome1_edits_map_back_exactly(pipe, tmp_path: Path) -> None:
    image = read_dicom(_dicom_12bit(tmp_path / "m1.dcm", mono1=True))
    assert image.invert
    plan = EditPlan([(80, 80, 6.0)], [])
    out = run_edit(pipe, image, None, plan, seed=1)
    assert (out.values[~out.changed] == image.values[~out.changed]).all()
    assert out.changed[80, 80]


@pytest.mark.parametrize("dtype", ["uint8", "uint16"])
def test_png_edits_keep_the_bit_depth_and_values(pipe, tmp_path: Path, dtype: str) -> None:
    top = np.iinfo(dtype).max
    rng = np.random.default_rng(0)
    arr = (rng.uniform(0.2, 0.8, (120, 140)) * top).astype(dtype)
    Image.fromarray(arr).save(tmp_path / "src.png")
    image = read_image(tmp_path / "src.png").with_spacing((0.3, 0.3))
    out = run_edit(pipe, image, None, EditPlan([(70, 60, 6.0)], []), seed=0)
    [saved] = save_edit(out.values, image, {}, tmp_path, "edited")
    back = np.asarray(Image.open(saved))
    assert back.dtype == np.dtype(dtype)
    assert (back == out.values).all()
    assert (back[~out.changed] == arr[~out.changed]).all()
    assert PixelFormat.of(image).hi == top


def test_removal_redraws_the_region_with_an_empty_nodule_channel(pipe) -> None:
    values = np.full((128, 128), 100.0, np.float32)
    yy, xx = np.ogrid[:128, :128]
    values[(yy - 64) ** 2 + (xx - 64) ** 2 < 36] = 200.0
    image = XRayImage(values, [], spacing_mm=(0.35, 0.35), metadata={"dtype": "uint8"})
    out = run_edit(pipe, image, None, EditPlan([], [(64, 64, 4.2)]), seed=0)
    site = out.sites[0]
    assert site.kind == "remove" and site.nodule is None
    assert out.conditions[0][2].max() == 0  # no nodule drawn
    assert out.conditions[0][1].max() == 1  # the region is hidden
    assert out.changed[64, 64] and not out.changed[5, 5]
    assert (out.values[~out.changed] == values[~out.changed]).all()


class _DrawsNodules:
    """The tiny edit pipeline plus a bright disc wherever the nodule channel is on, so that, as
    with a trained model, drawing a window with and without its nodule differs by a nodule."""

    def __init__(self, pipe) -> None:
        self.pipe, self.spec = pipe, pipe.spec
        self.batches: list[int] = []

    def __call__(self, cond, generators, steps=None, scheduler=None, on_step=None):
        self.batches.append(len(generators))
        out = self.pipe(cond, generators, steps, scheduler, on_step)
        return None if out is None else out + 0.3 * cond[:, CHANNELS.index("nodule")][:, None]


class _NoNodule(_DrawsNodules):
    """The tiny pipeline with the nodule channel off, as the twin of a window is drawn."""

    def __call__(self, cond, generators, steps=None, scheduler=None, on_step=None):
        off = cond.clone()
        off[:, CHANNELS.index("nodule")] = 0.0
        return self.pipe(off, generators, steps, scheduler, on_step)


def test_an_inserted_nodule_is_drawn_to_its_target_contrast(pipe) -> None:
    rng = np.random.default_rng(3)
    values = np.rint(rng.normal(2000, 40, (200, 200))).astype(np.float32)
    values[0, 0], values[-1, -1] = 0, 4095  # the value range, the unit of contrast
    # A darker ring around the place: the site has contrast of its own before any nodule, and
    # the target is what the nodule adds to it.
    d = np.hypot(*np.ogrid[-100:100, -100:100])
    values[(d > 1.7 * 11.4) & (d < 2.4 * 11.4)] -= 120
    image = XRayImage(values, [], spacing_mm=(0.35, 0.35), metadata={"dtype": "uint16"})
    drawing = _DrawsNodules(pipe)
    plain = run_edit(drawing, image, None, EditPlan([(100, 100, 8.0)], []), seed=1)
    r = 8.0 / 0.35 / 2
    # The same window drawn as the twin is (nodule channel off): what the nodule is added to.
    fill = run_edit(_NoNodule(pipe), image, None, EditPlan([(100, 100, 8.0)], []), seed=1)
    site = relative_contrast(fill.values, 100, 100, r)
    as_drawn = relative_contrast(plain.values, 100, 100, r) - site
    assert plain.gains == [None] and drawing.batches == [1] and as_drawn > 0.002
    assert site > as_drawn  # so a target met as the site's final contrast would fail here
    for target in (0.5 * as_drawn, 1.8 * as_drawn):
        drawing.batches.clear()
        out = run_edit(drawing, image, None,
                       EditPlan([(100, 100, 8.0)], [], contrast=[target]), seed=1)
        assert drawing.batches == [2]  # the window with and without its nodule, together
        added = relative_contrast(out.values, 100, 100, r) - site
        assert added == pytest.approx(target, rel=0.05)
        assert (out.values[~out.changed] == values[~out.changed]).all()
        assert out.sites[0].describe()["target_contrast"] == pytest.approx(target, abs=1e-5)
    # Past MAX_CONTRAST_GAIN the opacity is not amplified further (texture would be).
    out = run_edit(drawing, image, None, EditPlan([(100, 100, 8.0)], [], contrast=[50 * as_drawn]),
                   seed=1)
    assert out.gains == [pytest.approx(MAX_CONTRAST_GAIN)]
    with pytest.raises(GenerationError, match="one target contrast"):
        EditPlan([(100, 100, 8.0)], [], contrast=[0.1, 0.2])


def test_opacity_composite_adds_only_the_nodule_and_the_scale_narrows_its_disc(pipe) -> None:
    import dataclasses

    rng = np.random.default_rng(4)
    values = np.rint(rng.normal(2000, 40, (200, 200))).astype(np.float32)
    values[0, 0], values[-1, -1] = 0, 4095
    image = XRayImage(values, [], spacing_mm=(0.35, 0.35), metadata={"dtype": "uint16"})
    r = 8.0 / 0.35 / 2
    far = np.hypot(*np.ogrid[-100:100, -100:100]) > 2.0 * r
    outs = {}
    for composite, scale in (("redraw", 1.0), ("opacity", 1.0), ("opacity", 0.8)):
        drawing = _DrawsNodules(pipe)
        drawing.spec = dataclasses.replace(pipe.spec, composite=composite, nodule_scale=scale)
        outs[composite, scale] = run_edit(drawing, image, None,
                                          EditPlan([(100, 100, 8.0)], [], contrast=[0.004]), seed=1)
    redraw, opacity, narrow = outs["redraw", 1.0], outs["opacity", 1.0], outs["opacity", 0.8]
    # The model's redraw of the lung around the nodule reaches the file in "redraw" only.
    region_far = redraw.changed & far
    assert region_far.sum() > 100
    assert (redraw.values[region_far] != values[region_far]).mean() > 0.5
    assert np.abs(opacity.values[region_far] - values[region_far]).max() <= 1
    for out in (opacity, narrow):  # the target contrast is met either way, on the source itself
        assert out.gains[0] < MAX_CONTRAST_GAIN
        added = relative_contrast(out.values, 100, 100, r) - relative_contrast(values, 100, 100, r)
        assert added == pytest.approx(0.004, rel=0.05)
    # The model is asked for a smaller disc; the region, label and contrast keep the asked size.
    disc_area = [out.conditions[0][CHANNELS.index("nodule")].sum() for out in (opacity, narrow)]
    assert disc_area[1] / disc_area[0] == pytest.approx(0.8**2, rel=0.05)
    assert (narrow.changed == opacity.changed).all()
    # A nodule without a target is drawn from the asked disc, as the model draws it.
    drawing = _DrawsNodules(pipe)
    drawing.spec = dataclasses.replace(pipe.spec, composite="opacity", nodule_scale=0.8)
    plain = run_edit(drawing, image, None, EditPlan([(100, 100, 8.0)], []), seed=1)
    assert plain.conditions[0][CHANNELS.index("nodule")].sum() == pytest.approx(disc_area[0])
    for bad in ({"nodule_scale": 0.0}, {"composite": "paste"}):
        with pytest.raises(ModelError):
            dataclasses.replace(pipe.spec, **bad)


def test_edit_is_the_default_mode_and_reproducible_by_seed(model) -> None:
    engine = Engine.load(str(model))
    image = XRayImage(np.random.default_rng(0).integers(0, 4096, (90, 70)).astype(np.float32), [],
                      spacing_mm=(0.3, 0.3))
    masks = MaskStack(image.shape, image.spacing_mm)
    masks.add_nodule(30, 40, 6.0)
    a = engine.generate(GenerationRequest(masks, image, seed=5))[0]
    b = engine.generate(GenerationRequest(masks, image, seed=5))[0]
    assert a.provenance["parameters"]["mode"] == "edit"
    assert a.provenance["edits"][0]["kind"] == "insert"
    assert (a.values == b.values).all() and a.image.shape == image.shape
    with pytest.raises(GenerationError, match="nothing to edit"):
        engine.generate(GenerationRequest(MaskStack(image.shape, image.spacing_mm), image))
    assert engine.generate(GenerationRequest(masks, None))[0].provenance["parameters"]["mode"] == "layout"


def test_generate_command_edits_a_dicom(model, tmp_path: Path, capsys) -> None:
    src = _dicom_12bit(tmp_path / "case.dcm")
    out = tmp_path / "out"
    code = main(["generate", str(src), "--out", str(out), "--model", str(model), "--mode", "edit",
                 "--nodule", "60,60,6,2", "--remove", "120,40,5", "--seed", "2", "--no-segment"])
    assert code == 0
    dcm = out / "case_edit_seed2.dcm"
    prov = json.loads((out / "case_edit_seed2.json").read_text())
    assert sorted(e["kind"] for e in prov["edits"]) == ["insert", "remove"]
    insert = next(e for e in prov["edits"] if e["kind"] == "insert")
    assert insert["target_contrast"] == 0.02 and insert["contrast_gain"] >= 0  # 2 % asked
    assert (out / "case_edit_seed2.png").is_file()
    edited = pydicom.dcmread(dcm).pixel_array
    source = pydicom.dcmread(src).pixel_array
    assert edited.shape == source.shape and edited.dtype == source.dtype
    assert (edited != source).sum() == prov["changed_pixels"] or (edited != source).sum() <= prov["changed_pixels"]
    capsys.readouterr()
    code = main(["generate", str(src), "--out", str(out), "--model", str(model), "--mode", "edit",
                 "--no-segment", "--remove", "9999,1,5"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error:") and len(err.strip().splitlines()) == 1
    with pytest.raises(SystemExit):  # argparse's usage and error, exit 2
        main(["generate", str(src), "--out", str(out), "--nodule", "60,60,6,x"])
    assert "CONTRAST_PERCENT" in capsys.readouterr().err
    code = main(["generate", str(src), "--out", str(out), "--model", str(model), "--mode", "edit",
                 "--no-segment", "--nodule", "60,60,6,150"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error:") and "contrast" in err
    assert len(err.strip().splitlines()) == 1


def test_edit_training_runs_resumes_and_exports(tmp_path: Path) -> None:
    from xraystudio.training.config import TrainConfig
    from xraystudio.training.edit import EditTrainer

    data = write_dataset(tmp_path / "data", n=6, size=96)
    cfg = TrainConfig(str(data), str(tmp_path / "run"), edit=True, edit_steps=2, edit_batch=2,
                      edit_window=32, edit_channels=(8, 16), checkpoint_every=1, warmup=1,
                      edit_tune_cases=1, val_fraction=0.34, sample_steps=2)
    trainer = EditTrainer(cfg)
    assert trainer.tune_ids and not set(trainer.tune_ids) & set(trainer.train_ids)
    folder = trainer.run(progress=False)
    assert (folder / "unet" / "diffusion_pytorch_model.safetensors").is_file()
    first = json.loads((tmp_path / "run/checkpoints/step-edit-2/state.json").read_text())
    assert first["step"] == 2
    import dataclasses

    # A continued model keeps the inference settings chosen on the tuning cases.
    tuned = dataclasses.replace(EditSpec.read(folder), detail_mm=0.7)
    tuned.write(folder)
    EditTrainer(dataclasses.replace(cfg, edit_steps=3, init_from=str(folder.parent))).run(
        resume=True, progress=False)
    assert json.loads((tmp_path / "run/checkpoints/step-edit-3/state.json").read_text())["step"] == 3
    spec = EditSpec.read(folder)
    assert spec.detail_mm == 0.7
    pipe = load_edit_model(tmp_path / "run" / "model")
    image = XRayImage(np.random.default_rng(0).uniform(0, 1, (96, 96)).astype(np.float32), [],
                      spacing_mm=(0.35, 0.35), metadata={"dtype": "uint8"})
    out = run_edit(pipe, image, None, EditPlan([(48, 48, 5.0)], []), seed=0, steps=2)
    assert out.changed.any()


def test_edit_training_windows_hide_the_region_and_draw_the_disc() -> None:
    from xraystudio.training.edit_data import WindowSource, edit_sample

    rng = np.random.default_rng(0)
    image = (rng.uniform(0.3, 0.6, (300, 300)) * 255).astype(np.uint8)
    lungs = np.zeros((300, 300), bool)
    lungs[50:250, 30:140] = True
    src = WindowSource(image, lungs, 0.35, (90.0, 150.0, 10.0))
    spec = EditSpec(window=64, patch=2)
    s = edit_sample(src, rng, spec, insertion=True, lung_dropout=0.0)
    known, region, nodule = s.condition[0], s.condition[1], s.condition[2]
    assert (known[region > 0] == 0).all() and region.sum() > nodule.sum() > 0
    assert (nodule[region == 0] == 0).all()  # the disc lies inside the hidden region
    assert s.weight[region > 0].min() == 1 and s.weight.min() < 1
    fill = edit_sample(src, rng, spec, insertion=False)
    assert fill.condition[2].max() == 0 and fill.condition[1].max() == 1


def test_edit_batches_mix_fills_and_insertions_as_asked(tmp_path: Path) -> None:
    from xraystudio.errors import XRayStudioError
    from xraystudio.training.config import TrainConfig
    from xraystudio.training.edit import EditTrainer
    from xraystudio.training.edit_data import WindowSource, edit_batch

    rng = np.random.default_rng(1)
    image = (rng.uniform(0.3, 0.6, (300, 300)) * 255).astype(np.uint8)
    lungs = np.zeros((300, 300), bool)
    lungs[50:250, 30:270] = True
    src = [WindowSource(image, lungs, 0.35, (90.0, 150.0, 10.0)), WindowSource(image, lungs, 0.35, None)]
    spec = EditSpec(window=32, patch=2)
    _, fills, _ = edit_batch(src, rng, spec, 6, insertion_fraction=0.0)
    assert fills[:, 2].max() == 0  # no nodule disc in any window
    _, inserts, _ = edit_batch(src, rng, spec, 6, insertion_fraction=1.0)
    assert all(c[2].max() > 0 for c in inserts)
    data = write_dataset(tmp_path / "data", n=4, size=64)
    with pytest.raises(XRayStudioError):
        EditTrainer(TrainConfig(str(data), str(tmp_path / "run"), edit=True, edit_fill_fraction=1.5))


def test_edit_evaluation_measures_the_saved_files(pipe, tmp_path: Path) -> None:
    from xraystudio.evaluation.edit_eval import EditEvalConfig, EditEvaluator
    from xraystudio.evaluation.realism import auc
    from xraystudio.io.datasets import JsrtDataset

    data = write_dataset(tmp_path / "data", n=8, size=128)
    cfg = EditEvalConfig(split="all", steps=2, insertions_per_normal=2, classifier_seeds=1,
                         classifier_steps=20)
    ev = EditEvaluator(pipe, JsrtDataset(data), cfg)
    report = ev.run()
    s = report["summary"]
    assert s["changed_pixels_outside_edits"] == 0
    assert len(ev.removal_sheet) == s["n_removal"] and len(ev.removal_sheet[0]) == 2
    assert "removal_seam_ratio" in s  # flat synthetic lungs have no gradient to compare
    assert s["n_fill"] == s["n_insertion"] and np.isfinite(s["fill_contrast_shift_mean"])
    assert s["n_reinsertion"] == s["n_removal"] > 0 and s["n_insertion"] > 0
    assert 0 <= s["realism_auc"] <= 1 and 0 <= s["blob_auc"] <= 1
    assert all(np.isfinite(r["hf_ratio"]) for r in report["cases"]["insertion"])
    assert auc(np.array([0.1, 0.2]), np.array([0.3, 0.4])) == 1.0
    assert auc(np.array([0.3]), np.array([0.3])) == 0.5


def test_shipped_edit_model_loads_and_edits() -> None:
    """The built-in model's edit/ (resources/): a small 12-bit image, two steps."""
    engine = Engine.load(None, device="cpu", precision="fp32")
    assert engine.has_edit
    rng = np.random.default_rng(0)
    image = XRayImage(np.rint(rng.uniform(800, 3000, (300, 260))).astype(np.float32), [],
                      spacing_mm=(0.3, 0.3), format="DICOM",
                      metadata={"bits_stored": 12, "rescale": [1.0, 0.0]})
    masks = MaskStack(image.shape, image.spacing_mm)
    masks.add_nodule(130, 150, 10.0)
    r = engine.generate(GenerationRequest(masks, image, seed=0, steps=2))[0]
    assert r.provenance["parameters"]["mode"] == "edit" and r.changed[150, 130]
    assert (r.values[~r.changed] == image.values[~r.changed]).all()

"""Anatomy segmentation: tiny models trained here, the shipped model when present, JSRT Dice."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from xraystudio.cli import main
from xraystudio.errors import ModelError, XRayStudioError
from xraystudio.io.datasets import CaseInfo, JsrtDataset, write_case
from xraystudio.masks import ANATOMY, MaskStack
from xraystudio.metrics import dice
from xraystudio.segmentation import Segmenter, default_model_dir, largest_component_filled

torch = pytest.importorskip("torch")

SHAPE = (64, 64)
TINY = (4, 8)


@pytest.fixture(autouse=True)
def one_thread():
    """The test machine is shared: keep each test on one core."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def synthetic_case(seed: int) -> tuple[np.ndarray, MaskStack]:
    """A bright body with two dark lungs, a heart and two clavicle bars, jittered per seed."""
    rng = np.random.default_rng(seed)
    dx = int(rng.integers(-3, 4))
    masks = MaskStack(SHAPE, (1.4, 1.4))
    masks.fill_polygon("right_lung", [(8 + dx, 10), (28 + dx, 10), (28 + dx, 54), (8 + dx, 54)])
    masks.fill_polygon("left_lung", [(36 + dx, 10), (56 + dx, 10), (56 + dx, 54), (36 + dx, 54)])
    masks.fill_polygon("heart", [(26 + dx, 34), (46 + dx, 34), (40 + dx, 56)])
    masks.paint("right_clavicle", [(8 + dx, 12), (28 + dx, 8)], 3.0)
    masks.paint("left_clavicle", [(36 + dx, 8), (56 + dx, 12)], 3.0)
    image = np.full(SHAPE, 0.7, np.float32)
    image[masks.union(["right_lung", "left_lung"])] = 0.25
    image[masks["heart"]] = 0.6
    image[masks.union(["right_clavicle", "left_clavicle"])] = 0.9
    image += rng.normal(0, 0.02, SHAPE).astype(np.float32)
    return np.clip(image, 0, 1), masks


@pytest.fixture
def tiny_dataset(tmp_path):
    root = tmp_path / "ds"
    for i in range(6):
        image, masks = synthetic_case(i)
        write_case(root, f"S{i:02d}", image, masks, CaseInfo(f"S{i:02d}", False))
    return root


def tiny_training(data, out, steps, resume=False):
    from xraystudio.training.segmenter import SegmenterTraining

    return SegmenterTraining(data_dir=data, out=out, steps=steps, size=32, batch=2,
                             channels=TINY, checkpoint_every=2, warmup=1, val_fraction=0.34,
                             resume=resume)


def tiny_model_dir(path):
    from xraystudio.segmentation.model import UNet, UNetConfig
    from xraystudio.segmentation.segmenter import save_model

    torch.manual_seed(0)
    save_model(UNet(UNetConfig(channels=TINY)), path, size=32)
    return path


# ------------------------------------------------------------------------------------ training
def test_train_checkpoint_and_resume(tiny_dataset, tmp_path):
    from safetensors.torch import load_file

    from xraystudio.segmentation.model import UNet, UNetConfig
    from xraystudio.training.segmenter import load_checkpoint, train_segmenter

    out = tmp_path / "run"
    result = train_segmenter(tiny_training(tiny_dataset, out, 2), progress=False)
    assert set(result["mean"]) >= set(ANATOMY) | {"lungs", "clavicles"}
    assert result["cases"] == 2
    state = json.loads((out / "state.json").read_text())
    assert state["step"] == 2 and state["checkpoint"] == "checkpoints/step-000002"

    # A fresh model restored from the checkpoint equals the exported model, optimizer included.
    cfg = tiny_training(tiny_dataset, out, 4, resume=True)
    model = UNet(UNetConfig(channels=TINY))
    optimizer = torch.optim.AdamW(model.parameters())
    step, history = load_checkpoint(out, model, optimizer, cfg)
    assert step == 2 and [h["step"] for h in history] == [2]
    exported = load_file(str(out / "model" / "model.safetensors"))
    for name, value in model.state_dict().items():
        assert torch.equal(value, exported[name]), name
    assert len(optimizer.state) == len(list(model.parameters()))
    assert all(int(s["step"]) == 2 for s in optimizer.state.values())

    # Resuming continues the step count and the history; a plain re-run is refused.
    train_segmenter(cfg, progress=False)
    state = json.loads((out / "state.json").read_text())
    assert state["step"] == 4 and [h["step"] for h in state["history"]] == [2, 4]
    assert json.loads((out / "val_dice.json").read_text())["cases"] == 2
    with pytest.raises(XRayStudioError, match="--resume"):
        train_segmenter(tiny_training(tiny_dataset, out, 6), progress=False)


def test_validation_cases_never_train(tiny_dataset, tmp_path, monkeypatch):
    from xraystudio.training import segmenter as training

    seen = []
    real = training.load_arrays
    monkeypatch.setattr(training, "load_arrays",
                        lambda ds, ids, size: seen.append(list(ids)) or real(ds, ids, size))
    training.train_segmenter(tiny_training(tiny_dataset, tmp_path / "run", 1), progress=False)
    train_ids, val_ids = JsrtDataset(tiny_dataset).split(0.34)
    assert seen == [train_ids, val_ids] and not set(train_ids) & set(val_ids)


def test_augment_moves_masks_with_the_image():
    from xraystudio.training.segmenter import augment

    image, masks = synthetic_case(0)
    x = torch.from_numpy(image)[None, None].repeat(4, 1, 1, 1)
    y = torch.from_numpy(masks.to_array(list(ANATOMY)).astype(np.float32))[None].repeat(4, 1, 1, 1)
    # An image that *is* its mask must stay equal to it through the geometric part.
    xa, ya = augment(y[:, :1].clone(), y, torch.Generator().manual_seed(1))
    assert xa.shape == x.shape and ya.shape == y.shape
    lung_in, lung_out = xa[:, 0] > xa[:, 0].mean(), ya[:, 0] > 0.5
    assert all(dice(a.numpy(), b.numpy()) > 0.9 for a, b in zip(lung_in, lung_out))
    assert not torch.equal(ya[0], y[0])


# ---------------------------------------------------------------------------------- inference
def test_segment_returns_masks_at_input_size(tmp_path):
    segmenter = Segmenter.load(tiny_model_dir(tmp_path / "m"))
    image = np.random.default_rng(0).random((50, 70)).astype(np.float32)
    masks = segmenter.segment(image)
    assert list(masks) == list(ANATOMY)
    assert all(m.shape == (50, 70) and m.dtype == bool for m in masks.values())

    stack = MaskStack((50, 70), (0.2, 0.2))
    stack.paint("heart", [(10, 10)], 2.0)
    segmenter.fill_stack(stack, image)
    assert all(np.array_equal(stack[s], masks[s]) for s in ANATOMY)
    assert stack.undo() and stack["heart"].any()  # one step undoes all five layers
    assert not np.array_equal(stack["heart"], masks["heart"])


def test_largest_component_kept_and_holes_filled():
    mask = np.zeros((40, 40), bool)
    mask[5:30, 5:30] = True
    mask[12:16, 12:16] = False  # hole
    mask[34:38, 34:38] = True  # stray blob
    clean = largest_component_filled(mask)
    assert clean[12:16, 12:16].all() and not clean[34:38, 34:38].any()
    assert clean.sum() == 25 * 25
    assert not largest_component_filled(np.zeros((5, 5), bool)).any()


def test_bad_model_folders_raise_model_error(tmp_path):
    with pytest.raises(ModelError, match="no segmentation model"):
        Segmenter.load(tmp_path / "nothing")
    folder = tiny_model_dir(tmp_path / "m")
    (folder / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ModelError, match="cannot load"):
        Segmenter.load(folder)
    (folder / "config.json").write_text('{"format": "something-else"}')
    with pytest.raises(ModelError, match="not an xraystudio segmentation model"):
        Segmenter.load(folder)


def test_default_model_dir_follows_env(tmp_path, monkeypatch):
    monkeypatch.setenv("XRAYSTUDIO_RESOURCES", str(tmp_path))
    assert default_model_dir() == tmp_path / "models" / "xraystudio-anatomy"
    with pytest.raises(ModelError):
        Segmenter.load()


def test_segment_cli_writes_one_png_per_structure(tmp_path, capsys):
    model = tiny_model_dir(tmp_path / "m")
    image, _ = synthetic_case(0)
    Image.fromarray((image[:, :50] * 255).astype(np.uint8)).save(tmp_path / "in.png")
    assert main(["segment", str(tmp_path / "in.png"), "--out", str(tmp_path / "o"),
                 "--model", str(model)]) == 0
    for s in ANATOMY:
        with Image.open(tmp_path / "o" / f"{s}.png") as im:
            assert im.size == (50, 64)
    assert main(["segment", str(tmp_path / "in.png"), "--out", str(tmp_path / "o"),
                 "--model", str(tmp_path / "none")]) == 2
    assert "error: no segmentation model" in capsys.readouterr().err


# ------------------------------------------------------------------------------ shipped model
@pytest.fixture(scope="module")
def shipped():
    if not (default_model_dir() / "model.safetensors").is_file():
        pytest.skip("no shipped segmentation model in resources/")
    return Segmenter.load()


def test_shipped_model_loads_and_segments(shipped):
    image, _ = synthetic_case(0)
    big = np.kron(image, np.ones((5, 4), np.float32))  # 320 x 256, not square
    masks = shipped.segment(big)
    assert list(masks) == list(ANATOMY)
    assert all(m.shape == big.shape and m.dtype == bool for m in masks.values())


@pytest.mark.shared
def test_shipped_model_dice_on_jsrt_validation_cases(shipped, shared_data):
    ds = JsrtDataset(shared_data / "jsrt")
    _, val_ids = ds.split()
    bars = {"right_lung": 0.93, "left_lung": 0.93, "heart": 0.85,
            "right_clavicle": 0.75, "left_clavicle": 0.75}
    for case_id in val_ids[:3]:
        case = ds.load(case_id)
        masks = shipped.segment(case.image)
        for s, bar in bars.items():
            assert dice(masks[s], case.masks[s]) > bar, (case_id, s)


def _chest_like(shape=(200, 200)) -> dict[str, np.ndarray]:
    """Segmenter output with lungs, heart and clavicles where a frontal chest has them."""
    h, w = shape
    boxes = {"right_lung": (0.25, 0.65, 0.12, 0.42), "left_lung": (0.25, 0.65, 0.58, 0.88),
             "heart": (0.45, 0.7, 0.4, 0.6), "right_clavicle": (0.15, 0.2, 0.15, 0.45),
             "left_clavicle": (0.15, 0.2, 0.55, 0.85)}
    out = {}
    for name, (y0, y1, x0, x1) in boxes.items():
        m = np.zeros(shape, bool)
        m[int(h * y0): int(h * y1), int(w * x0): int(w * x1)] = True
        out[name] = m
    return out


def test_automatic_segmentation_fills_only_what_the_user_left_empty():
    from xraystudio.segmentation.merge import merge_segmentation

    masks = MaskStack((200, 200), (1.0, 1.0))
    masks.fill_polygon("heart", [(90, 100), (110, 100), (110, 120), (90, 120)])
    segmented = _chest_like()
    manual = merge_segmentation(masks, None, segmented, automatic=False)
    assert sorted(manual.layers) == sorted(ANATOMY) and manual.kept == []
    auto = merge_segmentation(masks, None, segmented, automatic=True)
    assert auto.kept == ["heart"] and sorted(auto.layers) == sorted(set(ANATOMY) - {"heart"})
    for name in ANATOMY:
        masks.fill_polygon(name, [(0, 0), (5, 0), (5, 5), (0, 5)])
    assert merge_segmentation(masks, None, segmented, automatic=True).layers == []
    # masks that show no chest (lungs side by side at the bottom, no heart) are refused
    odd = {name: np.zeros((200, 200), bool) for name in ANATOMY}
    odd["right_lung"][180:, :20] = odd["left_lung"][180:, 180:] = True
    refused = merge_segmentation(MaskStack((200, 200)), None, odd, automatic=True)
    assert refused.layers == [] and refused.not_chest

"""The JSRT-style dataset reader and writer: a tiny dataset in tmp_path, and the real one."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from PIL import Image

from xraystudio.errors import DatasetError, ImageLoadError
from xraystudio.io.datasets import CaseInfo, JsrtDataset, write_case
from xraystudio.masks import ANATOMY, NODULE, MaskStack

SHAPE = (64, 64)


def make_case(seed: int, nodule: bool, spacing: float = 0.35) -> tuple[np.ndarray, MaskStack]:
    rng = np.random.default_rng(seed)
    image = rng.random(SHAPE).astype(np.float32)
    masks = MaskStack(SHAPE, (spacing, spacing))
    masks.fill_polygon("right_lung", [(5, 5), (28, 5), (28, 55), (5, 55)])
    masks.fill_polygon("left_lung", [(36, 5), (58, 5), (58, 55), (36, 55)])
    masks.fill_polygon("heart", [(25, 30), (45, 30), (40, 55)])
    masks.paint("right_clavicle", [(5, 8), (28, 4)], 1.0)
    masks.paint("left_clavicle", [(36, 4), (58, 8)], 1.0)
    if nodule:
        masks.add_nodule(15 + seed % 10, 30.5, 3.5)
    return image, masks


@pytest.fixture
def tiny(tmp_path):
    """Six nodule and four normal cases written with write_case."""
    root = tmp_path / "ds"
    for i in range(10):
        nodule = i < 6
        image, masks = make_case(i, nodule)
        info = CaseInfo(f"C{i:03d}", nodule, subtlety=3 if nodule else None,
                        malignant=(i % 2 == 0) if nodule else None, age=40 + i, sex="female")
        write_case(root, f"C{i:03d}", image, masks, info)
    return root


def test_write_then_read_round_trip(tiny):
    ds = JsrtDataset(tiny)
    assert len(ds) == 10 and ds.ids == [f"C{i:03d}" for i in range(10)]
    image, masks = make_case(2, True)
    case = ds.load("C002")
    assert case.id == "C002" and case.image.dtype == np.float32 and case.image.shape == SHAPE
    np.testing.assert_allclose(case.image, np.round(image * 255) / 255, atol=1e-6)
    for s in ANATOMY:
        np.testing.assert_array_equal(case.masks[s], masks[s], err_msg=s)
    np.testing.assert_array_equal(case.masks[NODULE], masks[NODULE])
    assert [(n.x, n.y, n.diameter_mm) for n in case.masks.nodules] == [(17.0, 30.5, 3.5)]
    assert case.spacing_mm == (0.35, 0.35) and case.masks.spacing_mm == (0.35, 0.35)
    assert not case.masks.can_undo
    assert case.info == CaseInfo("C002", True, 17.0, 30.5, 10.0, 3.5, 3, True, 42, "female", 0.35)
    normal = ds.load("C008")
    assert normal.info.nodule is False and normal.info.x_px is None
    assert normal.masks.nodules == [] and not normal.masks[NODULE].any()


def test_csv_is_jsrt_style(tiny):
    with open(tiny / "cases.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["case", "nodule", "x_px", "y_px", "diameter_px", "size_mm",
                             "subtlety", "malignant", "age", "sex", "spacing_mm"]
    assert rows[0]["nodule"] == "1" and rows[0]["malignant"] == "TRUE"
    assert rows[9]["nodule"] == "0" and rows[9]["x_px"] == "" and rows[9]["malignant"] == ""
    assert Image.open(tiny / "masks" / "heart" / "C000.png").mode == "1"
    assert Image.open(tiny / "images" / "C000.png").mode == "L"


def test_write_case_upserts_in_place_and_takes_the_nodule_from_the_masks(tiny):
    image, masks = make_case(1, False)
    masks.add_nodule(40, 20, 7.0)  # curated: the nodule moved and grew
    row = write_case(tiny, "C001", image, masks, CaseInfo("ignored", True, 1, 1, 1, 1, 5, False))
    assert (row.x_px, row.y_px, row.size_mm, row.subtlety) == (40.0, 20.0, 7.0, 5)
    ds = JsrtDataset(tiny)
    assert len(ds) == 10 and ds.ids[1] == "C001"
    assert ds.cases[1] == row
    assert ds.load("C001").masks.nodules[0].x == 40.0
    image, masks = make_case(11, False)
    write_case(tiny, "C010", image, masks)  # a new normal case without info
    ds = JsrtDataset(tiny)
    assert ds.ids[-1] == "C010" and ds.cases[-1] == CaseInfo("C010", False)


def test_sixteen_bit_images_and_other_spacing(tmp_path):
    image16 = (np.arange(64 * 64, dtype=np.uint16).reshape(SHAPE) * 16)
    _, masks = make_case(0, True, spacing=0.2)
    write_case(tmp_path, "X1", image16, masks)
    assert Image.open(tmp_path / "images" / "X1.png").mode == "I;16"
    case = JsrtDataset(tmp_path).load("X1")
    np.testing.assert_allclose(case.image, image16 / 65535.0, atol=1e-7)
    assert case.spacing_mm == (0.2, 0.2)
    assert case.info.diameter_px == pytest.approx(3.5 / 0.2)
    assert case.masks[NODULE].sum() == masks[NODULE].sum()


def test_load_resized(tiny):
    case = JsrtDataset(tiny).load("C003", size=32)
    assert case.image.shape == (32, 32) and case.image.dtype == np.float32
    assert 0.0 <= case.image.min() and case.image.max() <= 1.0
    assert case.masks.shape == (32, 32) and case.spacing_mm == pytest.approx((0.7, 0.7))
    n = case.masks.nodules[0]
    assert (n.x, n.y, n.diameter_mm) == pytest.approx((8.75, 15.0, 3.5))
    assert case.masks["right_lung"].sum() == pytest.approx(24 * 51 / 4, rel=0.1)


def test_split_is_deterministic_stratified_and_disjoint(tiny):
    ds = JsrtDataset(tiny)
    train, val = ds.split(val_fraction=0.5)
    assert set(train).isdisjoint(val) and sorted(train + val) == ds.ids
    nodules = {c.id for c in ds.cases if c.nodule}
    assert len(nodules & set(val)) == 3 and len(set(val) - nodules) == 2
    assert ds.split(val_fraction=0.5) == (train, val)
    assert ds.split(val_fraction=0.5, seed=1) != (train, val)
    with pytest.raises(ValueError):
        ds.split(val_fraction=1.0)


def test_layout_errors_name_what_is_missing(tiny, tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        JsrtDataset(tmp_path / "nowhere")
    (tmp_path / "half" / "images").mkdir(parents=True)
    with pytest.raises(DatasetError, match=r"masks/right_lung/.*cases.csv"):
        JsrtDataset(tmp_path / "half")
    (tiny / "masks" / "heart" / "C004.png").unlink()
    with pytest.raises(DatasetError, match=r"masks/heart/C004.png"):
        JsrtDataset(tiny)


def test_bad_csv_rows_and_unknown_cases(tiny):
    ds = JsrtDataset(tiny)
    with pytest.raises(DatasetError, match="no case 'C999'"):
        ds.load("C999")
    text = (tiny / "cases.csv").read_text()
    (tiny / "cases.csv").write_text(text.replace(",42,", ",old,"))
    with pytest.raises(DatasetError, match=r"line 4: age 'old' is not a number"):
        JsrtDataset(tiny)
    (tiny / "cases.csv").write_text(text.replace(",42,", ",?,"))
    assert JsrtDataset(tiny).cases[2].age is None  # JSRT writes '?' for unknown
    (tiny / "cases.csv").write_text(text + text.splitlines()[1] + "\n")
    with pytest.raises(DatasetError, match="twice"):
        JsrtDataset(tiny)
    (tiny / "cases.csv").write_text(text.replace("subtlety,", ""))
    with pytest.raises(DatasetError, match="lacks the column"):
        JsrtDataset(tiny)
    (tiny / "cases.csv").write_text(text)
    (tiny / "images" / "C005.png").write_bytes(b"garbage")
    with pytest.raises(ImageLoadError, match="C005.png"):
        JsrtDataset(tiny).load("C005")


def test_write_case_refuses_bad_input(tmp_path):
    image, masks = make_case(0, True)
    with pytest.raises(DatasetError, match="plain file name"):
        write_case(tmp_path, "../evil", image, masks)
    with pytest.raises(DatasetError, match="shape"):
        write_case(tmp_path, "A", image[:10], masks)
    masks.add_nodule(40, 40, 3)
    with pytest.raises(DatasetError, match="one per case"):
        write_case(tmp_path, "A", image, masks)
    assert not any(tmp_path.iterdir())  # nothing half written


@pytest.mark.shared
def test_real_jsrt(shared_data):
    ds = JsrtDataset(shared_data / "jsrt")
    assert len(ds) == 200
    assert sum(c.nodule for c in ds.cases) == 122
    nodule_case = next(c for c in ds.cases if c.nodule)
    case = ds.load(nodule_case.id, size=256)
    assert case.image.shape == (256, 256) and case.spacing_mm == pytest.approx((1.4, 1.4))
    for s in ANATOMY:
        assert case.masks[s].any(), s
    assert case.masks[NODULE].any() and case.masks.nodules[0].diameter_mm == nodule_case.size_mm
    lungs = case.masks.union(["right_lung", "left_lung"])
    assert 0.1 < lungs.mean() < 0.6
    # Patient's left is image right.
    columns = {s: np.nonzero(case.masks[s])[1].mean() for s in ("left_lung", "right_lung")}
    assert columns["left_lung"] > columns["right_lung"]
    train, val = ds.split()
    assert set(train).isdisjoint(val) and len(train) + len(val) == 200
    val_nodules = sum(ds.cases[ds.ids.index(i)].nodule for i in val)
    assert (len(val), val_nodules) == (40, 24)
    assert ds.split() == (train, val)

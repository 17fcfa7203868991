"""The nodule layout sampler: layouts in the lungs, clear of other nodules, seeded, and following
the fitted data's sizes and places; its file; the shipped sampler on real cases."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as scistats
from synthetic_data import draw_case

from xraystudio.cli import main
from xraystudio.errors import DatasetError, MaskError, ModelError
from xraystudio.io.datasets import CaseInfo, JsrtDataset, write_case
from xraystudio.io.masks_io import resize_masks
from xraystudio.masks import LUNGS, MaskStack
from xraystudio.synthesis.layout_sampler import (
    LAYOUT_SAMPLER_FILE,
    LayoutSampler,
    SampledNodule,
    default_sampler,
)
from xraystudio.synthesis.model import builtin_model_dir

SIZE = 128  # px; 2.8 mm pixels, lungs about 100 x 215 mm
SPACING = 0.35 * 1024 / SIZE


def _dataset(root: Path, sizes: np.ndarray, v_range: tuple[float, float], seed: int) -> JsrtDataset:
    """Nodule cases with the given diameters, centred at a height ``v_range`` of the lung box
    (and a random width), each in the right or left lung; plus two normal cases."""
    rng = np.random.default_rng(seed)
    for i, size_mm in enumerate(sizes):
        image, masks = draw_case(SIZE, rng, nodule=False)
        lung = LUNGS[i % 2]
        ys, xs = np.nonzero(masks[lung])
        v, u = rng.uniform(*v_range), rng.uniform(0.3, 0.7)
        x = xs.min() + u * (xs.max() - xs.min())
        y = ys.min() + v * (ys.max() - ys.min())
        masks.add_nodule(x, y, float(size_mm))
        info = CaseInfo(id=f"N{i:03d}", nodule=True, subtlety=int(1 + min(size_mm // 8, 4)))
        write_case(root, f"N{i:03d}", image, masks, info)
    for i in range(2):
        image, masks = draw_case(SIZE, rng, nodule=False)
        write_case(root, f"Z{i:03d}", image, masks)
    return JsrtDataset(root)


@pytest.fixture(scope="module")
def fitted(tmp_path_factory) -> tuple[LayoutSampler, np.ndarray, MaskStack]:
    """A sampler fitted on 60 lognormal sizes (median 14 mm) anywhere in the lungs."""
    sizes = np.clip(np.random.default_rng(1).lognormal(np.log(14.0), 0.35, 60), 5, 35)
    ds = _dataset(tmp_path_factory.mktemp("wide"), sizes, (0.2, 0.8), seed=2)
    return LayoutSampler.fit(ds), sizes, ds.load("Z000").masks


@pytest.fixture(scope="module")
def upper(tmp_path_factory) -> LayoutSampler:
    """A sampler fitted on nodules only in the top third of the lungs."""
    sizes = np.full(24, 10.0)
    return LayoutSampler.fit(_dataset(tmp_path_factory.mktemp("upper"), sizes, (0.1, 0.3), 3))


def _inside_lungs(masks: MaskStack, layout: list[SampledNodule]) -> bool:
    stamped = masks.copy()
    stamped.clear("nodule")
    for n in layout:
        stamped.add_nodule(n.x, n.y, n.diameter_mm)
    return bool(stamped["nodule"].any()) and not np.any(stamped["nodule"] & ~stamped.union(LUNGS))


def _clear(a: tuple[float, float, float], b: tuple[float, float, float]) -> bool:
    """Discs (x, y, diameter_mm) apart, not touching."""
    return np.hypot(a[0] - b[0], a[1] - b[1]) * SPACING > (a[2] + b[2]) / 2


def test_layouts_stay_inside_the_lungs(fitted) -> None:
    sampler, _, masks = fitted
    rng = np.random.default_rng(0)
    for _ in range(20):
        layout = sampler.sample(masks, SPACING, rng, n=3)
        assert len(layout) == 3
        assert _inside_lungs(masks, layout)
        assert all(n.subtlety in (1, 2, 3, 4, 5) for n in layout)


def test_layouts_keep_clear_of_existing_nodules_and_each_other(fitted) -> None:
    sampler, _, masks = fitted
    rng = np.random.default_rng(1)
    existing = [(40.0, 64.0, 20.0), (88.0, 64.0, 20.0)]
    for _ in range(20):
        layout = [(n.x, n.y, n.diameter_mm) for n in
                  sampler.sample(masks, SPACING, rng, n=4, existing=existing)]
        assert all(_clear(a, e) for a in layout for e in existing)
        assert all(_clear(a, b) for i, a in enumerate(layout) for b in layout[i + 1:])


def test_the_layout_depends_only_on_the_rng_state(fitted) -> None:
    sampler, _, masks = fitted
    a = sampler.sample(masks, SPACING, np.random.default_rng(7), n=3)
    b = sampler.sample(masks, SPACING, np.random.default_rng(7), n=3)
    c = sampler.sample(masks, SPACING, np.random.default_rng(8), n=3)
    assert a == b
    assert a != c
    # The count comes from the fitted distribution (one per JSRT-style case), at least min_n.
    assert len(sampler.sample(masks, SPACING, np.random.default_rng(0))) == 1
    assert len(sampler.sample(masks, SPACING, np.random.default_rng(0), min_n=2)) == 2


def test_sampled_sizes_follow_the_fitted_sizes(fitted, tmp_path) -> None:
    sampler, sizes, masks = fitted
    rng = np.random.default_rng(2)
    drawn = np.array([sampler.sample(masks, SPACING, rng, n=1)[0].diameter_mm
                      for _ in range(500)])
    assert scistats.ks_2samp(drawn, sizes).pvalue > 0.05
    assert sizes.min() <= drawn.min() and drawn.max() <= sizes.max()
    # Negative control: the same test tells sizes of another distribution (median 22 mm) apart.
    other = np.clip(np.random.default_rng(4).lognormal(np.log(22.0), 0.35, 60), 5, 35)
    assert scistats.ks_2samp(drawn, other).pvalue < 1e-3


def test_places_follow_the_fitted_places(fitted, upper) -> None:
    sampler, _, masks = fitted
    ys, _ = np.nonzero(masks.union(LUNGS))
    middle = (ys.min() + ys.max()) / 2
    rng = np.random.default_rng(3)
    high = [n.y < middle for _ in range(200) for n in upper.sample(masks, SPACING, rng, n=1)]
    spread = [n.y < middle for _ in range(200) for n in sampler.sample(masks, SPACING, rng, n=1)]
    assert np.mean(high) > 0.85
    assert 0.25 < np.mean(spread) < 0.75
    # Both lungs are used about as often as in the data (half each here).
    lungs = [masks["right_lung"][int(n.y), int(n.x)] for _ in range(200)
             for n in sampler.sample(masks, SPACING, rng, n=1)]
    assert 0.35 < np.mean(lungs) < 0.65


@pytest.mark.parametrize("size", [256, 1600])  # 1600 px: the coarse inside-the-lungs grid
def test_masks_of_another_size_and_spacing(fitted, size) -> None:
    sampler, _, masks = fitted
    big = resize_masks(masks, (size, size))
    rng = np.random.default_rng(5)
    for _ in range(3):
        assert _inside_lungs(big, sampler.sample(big, SPACING * SIZE / size, rng, n=3))


def test_too_small_lungs_no_lungs_and_fewer_nodules(fitted, caplog) -> None:
    sampler, _, _ = fitted
    tiny = MaskStack((64, 64), (SPACING, SPACING))
    tiny.paint("right_lung", [(20, 30)], 12.0)
    with pytest.raises(MaskError, match="too small"):
        sampler.sample(tiny, SPACING, np.random.default_rng(0), n=2)
    with caplog.at_level(logging.WARNING):
        assert sampler.sample(tiny, SPACING, np.random.default_rng(0), n=2, min_n=0) == []
    assert "fit in the lungs" in caplog.text
    with pytest.raises(MaskError, match="no lung masks"):
        sampler.sample(MaskStack((64, 64)), SPACING, np.random.default_rng(0))


def test_sampled_nodules_carry_real_contrasts_of_their_size_and_subtlety(tmp_path) -> None:
    """Faint small nodules (subtlety 1) and obvious large ones (5): a proposal of each kind
    carries a contrast like the real ones of its kind, measured on the radiographs."""
    rng = np.random.default_rng(4)
    yy, xx = np.mgrid[:SIZE, :SIZE]
    for i in range(16):
        big = i % 2 == 1
        image, masks = draw_case(SIZE, rng, nodule=False)
        ys, xs = np.nonzero(masks[LUNGS[i % 2]])
        n = masks.add_nodule(float(xs.mean()), float(ys.mean()), 25.0 if big else 8.0)
        r = masks.mm_to_px(n.diameter_mm) / 2
        image = np.clip(image + (0.3 if big else 0.06) * ((xx - n.x) ** 2 + (yy - n.y) ** 2 <= r * r),
                        0, 1)
        write_case(tmp_path, f"N{i:03d}", image.astype(np.float32), masks,
                   CaseInfo(id=f"N{i:03d}", nodule=True, subtlety=5 if big else 1))
    dataset = JsrtDataset(tmp_path)
    sampler = LayoutSampler.fit(dataset)
    table = sampler.stats["contrast"]
    assert table["by_subtlety"][0][0] is not None and table["by_subtlety"][3][4] is not None
    assert table["by_subtlety"][0][4] is None  # no obvious small nodule to learn from
    masks = dataset.load("N000").masks
    drawn = [n for _ in range(60) for n in sampler.sample(masks, SPACING, rng, n=1)]
    faint = [n.contrast for n in drawn if n.diameter_mm < 10 and n.subtlety == 1]
    obvious = [n.contrast for n in drawn if n.diameter_mm > 20 and n.subtlety == 5]
    assert faint and obvious and max(faint) < min(obvious)
    assert 3 < np.median(obvious) / np.median(faint) < 7  # drawn 0.06 and 0.3 on the films
    # The file round-trips, and one without contrasts (an older one) proposes none.
    sampler.save(tmp_path / LAYOUT_SAMPLER_FILE)
    assert LayoutSampler.load(tmp_path / LAYOUT_SAMPLER_FILE).stats == sampler.stats
    older = json.loads(json.dumps(sampler.stats))
    del older["contrast"]
    assert all(n.contrast is None for n in LayoutSampler(older).sample(masks, SPACING, rng, n=2))


def test_save_load_round_trip_and_default_sampler(fitted, tmp_path) -> None:
    sampler, _, masks = fitted
    assert default_sampler(tmp_path) is None
    sampler.save(tmp_path / LAYOUT_SAMPLER_FILE)
    loaded = default_sampler(tmp_path)
    assert loaded is not None and loaded.stats == sampler.stats
    assert loaded.sample(masks, SPACING, np.random.default_rng(9), n=2) == \
        sampler.sample(masks, SPACING, np.random.default_rng(9), n=2)
    assert loaded.stats["fitted_on"]["nodules"] == 60
    assert loaded.stats["lung"] == {"right_lung": 0.5, "left_lung": 0.5}


@pytest.mark.parametrize("content, message", [
    ("{not json", "cannot read"),
    ('{"format": "something else"}', "format"),
    (None, "spatial.density must be 12 x 12"),
    (None, "lacks 'gap_mm'"),
])
def test_a_bad_file_is_a_clear_error(fitted, tmp_path, content, message) -> None:
    path = tmp_path / LAYOUT_SAMPLER_FILE
    if content is None:
        data = json.loads(json.dumps(fitted[0].stats))
        if "spatial" in message:
            data["spatial"]["density"] = [[1.0]]
        else:
            del data["gap_mm"]
        content = json.dumps(data)
    path.write_text(content)
    with pytest.raises(ModelError, match=message) as info:
        LayoutSampler.load(path)
    assert str(path) in str(info.value)
    with pytest.raises(ModelError):
        default_sampler(tmp_path)


def test_fit_on_chosen_cases_only(tmp_path) -> None:
    ds = _dataset(tmp_path, np.array([8.0, 30.0, 9.0, 31.0]), (0.3, 0.7), seed=5)
    small = LayoutSampler.fit(ds, ["N000", "N002", "Z000"])
    assert small.stats["size"]["max_mm"] == 9.0
    assert small.stats["fitted_on"] == {"dataset": tmp_path.name, "cases": 3, "nodules": 2,
                                        "centres_outside_lungs": 0}
    with pytest.raises(DatasetError, match="none of the chosen cases has a nodule"):
        LayoutSampler.fit(ds, ["Z000"])
    with pytest.raises(DatasetError, match="no case"):
        LayoutSampler.fit(ds, ["NOPE"])


def test_fit_layout_command(tmp_path, capsys) -> None:
    ds = _dataset(tmp_path / "data", np.array([8.0, 12.0, 20.0]), (0.3, 0.7), seed=6)
    out = tmp_path / "model" / LAYOUT_SAMPLER_FILE
    assert main(["fit-layout", str(ds.root), "--out", str(out), "--all-cases"]) == 0
    assert "fitted on 3 nodules of 5 cases" in capsys.readouterr().out
    assert LayoutSampler.load(out).stats["size"]["median_mm"] == 12.0
    assert main(["fit-layout", str(tmp_path / "none"), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1


def test_the_shipped_sampler_on_real_cases(shared_data) -> None:
    sampler = default_sampler(builtin_model_dir())
    assert sampler is not None
    assert 90 <= sampler.stats["fitted_on"]["nodules"] <= 122
    ds = JsrtDataset(shared_data / "jsrt")
    rng = np.random.default_rng(0)
    for case_id in ds.split()[1][:3]:
        masks = ds.load(case_id).masks
        existing = [(n.x, n.y, n.diameter_mm) for n in masks.nodules]
        layout = sampler.sample(masks, masks.spacing_mm[0], rng, n=3, existing=existing)
        assert len(layout) == 3 and _inside_lungs(masks, layout)
        assert all(5 <= n.diameter_mm <= 35 for n in layout)


def test_typical_contrast_is_the_median_of_the_size_and_grades_rise() -> None:
    """The contrast a stamped nodule is drawn to: the median of real ones of its size without a
    grade, and a JSRT grade's band among them, subtle to obvious."""
    sampler = LayoutSampler.load(builtin_model_dir() / LAYOUT_SAMPLER_FILE)
    table = sampler.stats["contrast"]
    for size in (8.0, 12.0, 18.0, 25.0):
        b = int(np.searchsorted(table["size_bin_edges_mm"], size))
        median = float(np.interp(0.5, table["quantiles"], table["by_size"][b]))
        assert sampler.typical_contrast(size) == pytest.approx(median)
        grades = [sampler.typical_contrast(size, g) for g in (1, 2, 3, 4, 5)]
        assert all(a < b for a, b in zip(grades, grades[1:]))
        assert min(table["by_size"][b]) <= grades[0] and grades[-1] <= max(table["by_size"][b])
    with pytest.raises(ValueError):
        sampler.typical_contrast(12.0, 6)


def test_added_nodule_measures_contrast_and_centre_offset() -> None:
    from xraystudio.synthesis.conspicuity import added_nodule

    rng = np.random.default_rng(0)
    source = rng.normal(500, 20, (200, 200))
    source[0, 0], source[-1, -1] = 0, 1000  # value range 1000
    yy, xx = np.mgrid[0:200, 0:200]
    blob = 30.0 * (np.hypot(xx - 103, yy - 100) <= 10)  # 4 px right of the stamp at (99, 100)
    found = added_nodule(source, source + blob, 99, 100, 20 * 0.2, 0.2)
    assert found.offset_mm == pytest.approx(0.8, abs=0.05)
    assert 0.015 < found.contrast < 0.03
    inverted = added_nodule(source, source - blob, 99, 100, 4.0, 0.2, dense_positive=False)
    assert inverted == found


def test_stamp_contrast_words_and_percentages() -> None:
    from xraystudio.synthesis.layout_sampler import parse_stamp_contrast, stamp_contrast

    sampler = LayoutSampler.load(builtin_model_dir() / LAYOUT_SAMPLER_FILE)
    assert parse_stamp_contrast(" 2.5 %") == pytest.approx(0.025)
    assert parse_stamp_contrast("G3") == "g3" and parse_stamp_contrast("typical") == "typical"
    with pytest.raises(ValueError):
        parse_stamp_contrast("g9")
    assert stamp_contrast(None, sampler, 12.0) == sampler.typical_contrast(12.0)  # the default
    assert stamp_contrast("g5", sampler, 12.0) == sampler.typical_contrast(12.0, 5)
    assert stamp_contrast(0.03, sampler, 12.0) == 0.03
    assert stamp_contrast("model", sampler, 12.0) is None
    assert stamp_contrast(None, None, 12.0) is None  # no sampler: the model's own
    with pytest.raises(ValueError, match="layout sampler"):
        stamp_contrast("g2", None, 12.0)

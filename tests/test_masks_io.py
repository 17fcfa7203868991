"""Saving, loading and resampling mask stacks, with real files in tmp_path."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from xraystudio.errors import MaskError
from xraystudio.io.masks_io import load_masks, read_mask_png, resize_masks, save_masks
from xraystudio.masks import NODULE, STRUCTURES, MaskStack

SHAPE = (60, 80)


@pytest.fixture
def painted() -> MaskStack:
    s = MaskStack(SHAPE, (0.5, 0.5))
    s.fill_polygon("right_lung", [(5, 5), (35, 5), (35, 50), (5, 50)])
    s.fill_polygon("heart", [(30, 30), (50, 30), (50, 55)])
    s.paint("left_clavicle", [(40, 8), (75, 12)], 2)
    s.add_layer("spine")
    s.paint("spine", [(40, 0), (40, 59)], 3)
    s.add_nodule(60, 30, 6)
    s.add_nodule(63, 33, 4)
    s.paint(NODULE, [(10, 10)], 2)  # painted by hand, beyond the discs
    return s


def assert_same(a: MaskStack, b: MaskStack) -> None:
    assert a.names == b.names
    assert a.spacing_mm == b.spacing_mm
    assert a.nodules == b.nodules
    np.testing.assert_array_equal(a.to_array(), b.to_array())


@pytest.mark.parametrize("name", ["masks.npz", "masks_folder"])
def test_round_trip(tmp_path, painted, name):
    path = tmp_path / name
    save_masks(painted, path)
    loaded = load_masks(path, SHAPE)
    assert_same(loaded, painted)
    assert loaded.content_hash() == painted.content_hash()
    assert not loaded.can_undo  # the file is the base state
    assert loaded.add_nodule(5, 5, 2).id == 3
    assert not [p for p in tmp_path.rglob("*") if ".tmp" in p.name]


def test_folder_layout_is_plain_png_and_json(tmp_path, painted):
    save_masks(painted, tmp_path / "m")
    heart = Image.open(tmp_path / "m" / "heart.png")
    assert heart.mode == "L" and heart.size == (80, 60)
    assert set(np.unique(np.asarray(heart))) == {0, 255}
    meta = json.loads((tmp_path / "m" / "nodules.json").read_text())
    assert meta["spacing_mm"] == [0.5, 0.5]
    assert [n["diameter_mm"] for n in meta["nodules"]] == [6.0, 4.0]
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == sorted(
        [f"{n}.png" for n in painted.names] + ["nodules.json"]
    )


def test_saving_again_replaces_the_files(tmp_path, painted):
    path = tmp_path / "m.npz"
    save_masks(painted, path)
    painted.clear("heart")
    save_masks(painted, path)
    assert not load_masks(path, SHAPE)["heart"].any()


def _save_png(path, array, mode=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    im = Image.fromarray(array)
    (im.convert(mode) if mode else im).save(path)


def test_folder_from_elsewhere_in_many_png_modes(tmp_path):
    inside = np.zeros(SHAPE, bool)
    inside[10:30, 20:50] = True
    d = tmp_path / "ext"
    _save_png(d / "right_lung.png", inside)  # mode "1"
    _save_png(d / "heart.png", inside.astype(np.uint8) * 7)  # "L", any nonzero
    _save_png(d / "left_lung.png", inside.astype(np.uint16) * 1000)  # "I;16"
    rgb = np.zeros((*SHAPE, 3), np.uint8)
    rgb[inside, 2] = 200  # only the blue channel
    _save_png(d / "left_clavicle.png", rgb)
    rgba = np.zeros((*SHAPE, 4), np.uint8)
    rgba[..., 0] = 255  # red everywhere ...
    rgba[inside, 3] = 255  # ... but transparent outside
    _save_png(d / "ribs.png", rgba)
    _save_png(d / "spine.png", inside.astype(np.uint8) * 255, mode="P")
    assert Image.open(d / "left_lung.png").mode == "I;16"

    s = load_masks(d, SHAPE, spacing_mm=(0.3, 0.3))
    assert s.names == [*STRUCTURES, "ribs", "spine"]
    for name in ("right_lung", "heart", "left_lung", "left_clavicle", "ribs", "spine"):
        np.testing.assert_array_equal(s[name], inside, err_msg=name)
    assert not s["right_clavicle"].any() and not s[NODULE].any()
    assert s.spacing_mm == (0.3, 0.3) and s.nodules == []


def test_nodules_json_stamps_discs_only_without_a_nodule_png(tmp_path, painted):
    save_masks(painted, tmp_path / "m")
    (tmp_path / "m" / "nodule.png").unlink()
    restamped = load_masks(tmp_path / "m", SHAPE)
    assert restamped.nodules == painted.nodules
    assert restamped[NODULE][30, 60] and not restamped[NODULE][10, 10]  # hand paint is gone

    # With the PNG present its pixels are kept as they are, not stamped over.
    save_masks(painted, tmp_path / "m2")
    erased = np.asarray(painted[NODULE]).copy()
    erased[25:36, 55:66] = False
    _save_png(tmp_path / "m2" / "nodule.png", erased)
    kept = load_masks(tmp_path / "m2", SHAPE)
    np.testing.assert_array_equal(kept[NODULE], erased)
    assert len(kept.nodules) == 2


def test_spacing_comes_from_the_file_unless_the_image_gives_one(tmp_path, painted):
    save_masks(painted, tmp_path / "m.npz")
    assert load_masks(tmp_path / "m.npz", SHAPE).spacing_mm == (0.5, 0.5)
    assert load_masks(tmp_path / "m.npz", SHAPE, (0.2, 0.2)).spacing_mm == (0.2, 0.2)


@pytest.mark.parametrize("name", ["m.npz", "m"])
def test_wrong_size_names_both_sizes_and_the_file(tmp_path, painted, name):
    save_masks(painted, tmp_path / name)
    with pytest.raises(MaskError, match=r"80 x 60.*100 x 90|file .*80 x 60") as info:
        load_masks(tmp_path / name, (90, 100))
    assert "100 x 90" in str(info.value) and str(tmp_path / name) in str(info.value)


def test_unreadable_files_raise_mask_error_naming_them(tmp_path, painted):
    broken = tmp_path / "broken.npz"
    broken.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(MaskError, match="broken.npz"):
        load_masks(broken, SHAPE)
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"hello")
    with pytest.raises(MaskError, match="garbage.npz"):
        load_masks(garbage, SHAPE)

    save_masks(painted, tmp_path / "m")
    heart = tmp_path / "m" / "heart.png"
    heart.write_bytes(heart.read_bytes()[:60])  # truncated
    with pytest.raises(MaskError, match="heart.png"):
        load_masks(tmp_path / "m", SHAPE)
    heart.write_bytes(b"not a png at all")
    with pytest.raises(MaskError, match="heart.png"):
        read_mask_png(heart, SHAPE)

    save_masks(painted, tmp_path / "n")
    (tmp_path / "n" / "nodules.json").write_text("{broken")
    with pytest.raises(MaskError, match="nodules.json"):
        load_masks(tmp_path / "n", SHAPE)
    (tmp_path / "n" / "nodules.json").write_text("[]")
    with pytest.raises(MaskError, match="nodules.json does not hold a JSON object"):
        load_masks(tmp_path / "n", SHAPE)

    (tmp_path / "empty").mkdir()
    with pytest.raises(MaskError, match="no mask"):
        load_masks(tmp_path / "empty", SHAPE)
    with pytest.raises(MaskError, match="no masks at"):
        load_masks(tmp_path / "missing", SHAPE)


def test_resize_keeps_thin_structures_and_scales_geometry():
    s = MaskStack((100, 120), (0.2, 0.25))
    s.paint("right_clavicle", [(11, 0), (11, 99)], diameter_mm=0.1)  # a 1-px line, odd column
    assert s["right_clavicle"].sum() == 100
    s.fill_polygon("heart", [(20, 20), (99, 20), (99, 79), (20, 79)])
    n = s.add_nodule(59.5, 39.5, 5)
    small = resize_masks(s, (50, 60))
    assert small.shape == (50, 60)
    assert small.spacing_mm == pytest.approx((0.4, 0.5))
    assert small["right_clavicle"][:, 5].all()  # nearest-neighbour would lose it
    assert small["heart"].sum() == pytest.approx(40 * 30, rel=0.05)
    m = small.nodules[0]
    assert (m.id, m.diameter_mm) == (n.id, 5)
    assert (m.x, m.y) == pytest.approx((29.5, 19.5))
    assert small[NODULE][20, 30]
    big = resize_masks(small, (100, 120))
    assert big.nodules[0].x == pytest.approx(59.5) and big.spacing_mm == pytest.approx((0.2, 0.25))
    assert not small.can_undo


def test_atomic_writes_have_ordinary_permissions(tmp_path) -> None:
    import os
    import stat

    from xraystudio.io.atomic import write_text

    write_text(tmp_path / "a.txt", "x")
    assert stat.S_IMODE(os.stat(tmp_path / "a.txt").st_mode) == 0o644


def test_staged_file_is_a_hidden_temporary_until_renamed(tmp_path) -> None:
    """A staged file outlives its block (written, ordinary permissions) under a temporary name
    that a listing skips; a failed write leaves nothing."""
    import os
    import stat

    from xraystudio.io.atomic import staged_path

    with staged_path(tmp_path / "out", ".png") as staged:
        staged.write_bytes(b"pixels")
    assert staged.read_bytes() == b"pixels" and staged.parent == tmp_path / "out"
    assert staged.name.startswith(".") and ".tmp" in staged.name and staged.suffix == ".png"
    assert stat.S_IMODE(os.stat(staged).st_mode) == 0o644
    with pytest.raises(RuntimeError), staged_path(tmp_path / "out", ".png") as failed:
        failed.write_bytes(b"half")
        raise RuntimeError("encoder failed")
    assert not failed.exists() and list((tmp_path / "out").iterdir()) == [staged]


def test_nodule_contrast_survives_saving_and_resizing(tmp_path):
    s = MaskStack(SHAPE, (0.5, 0.5))
    s.add_nodule(20, 30, 6.0, contrast=0.025)
    s.add_nodule(40, 30, 6.0)
    save_masks(s, tmp_path / "m")
    loaded = load_masks(tmp_path / "m", SHAPE)
    assert [n.contrast for n in loaded.nodules] == [0.025, None]
    half = resize_masks(loaded, (SHAPE[0] // 2, SHAPE[1] // 2))
    assert [n.contrast for n in half.nodules] == [0.025, None]

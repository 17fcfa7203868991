"""MaskStack: edits, nodule objects, undo/redo, bounded history, listeners."""

from __future__ import annotations

import numpy as np
import pytest

from xraystudio.errors import MaskError
from xraystudio.masks import ANATOMY, NODULE, STRUCTURES, MaskStack, Nodule, Rect


def stack(shape=(100, 120), spacing=1.0, **kw) -> MaskStack:
    return MaskStack(shape, (spacing, spacing), **kw)


def test_default_layers_and_read_only_views():
    s = stack()
    assert s.names == list(STRUCTURES)
    view = s["heart"]
    with pytest.raises(ValueError):
        view[0, 0] = True
    with pytest.raises(MaskError, match="no mask layer 'spine'"):
        s["spine"]


def test_brush_capsule_has_no_gaps_along_a_fast_stroke():
    s = stack()
    s.paint("heart", [(10, 10), (100, 80)], diameter_mm=3)
    layer = s["heart"]
    # Every pixel on the segment, sampled finely, is painted.
    for t in np.linspace(0, 1, 500):
        x, y = 10 + 90 * t, 10 + 70 * t
        assert layer[int(round(y)), int(round(x))]
    # Nothing beyond the radius: a pixel 5 px off the line stays empty.
    assert not layer[10, 40]
    assert not layer[0, 0] and not layer[99, 119]
    # Round caps: width across the stroke is about the diameter.
    assert 2 <= layer[:, 55].sum() <= 6


def test_brush_polyline_is_one_undo_step_and_eraser_removes():
    s = stack()
    s.paint("heart", [(10, 10), (50, 10), (50, 50), (90, 50)], diameter_mm=4)
    assert s["heart"][10, 30] and s["heart"][30, 50] and s["heart"][50, 70]
    s.erase("heart", [(30, 0), (30, 99)], diameter_mm=6)
    assert not s["heart"][10, 30] and s["heart"][10, 15]
    assert s.undo() and s["heart"][10, 30]
    assert s.undo() and not s["heart"].any()
    assert not s.can_undo


def test_brush_size_is_in_millimetres_with_spacing():
    fine = stack(spacing=0.25)
    coarse = stack(spacing=1.0)
    for s in (fine, coarse):
        s.paint("heart", [(60, 50)], diameter_mm=10)
    # 10 mm is 40 px at 0.25 mm, 10 px at 1 mm: areas ~ pi r^2.
    assert fine["heart"].sum() == pytest.approx(np.pi * 20**2, rel=0.1)
    assert coarse["heart"].sum() == pytest.approx(np.pi * 5**2, rel=0.15)


def test_polygon_fill_and_too_few_points():
    s = stack()
    s.fill_polygon("left_lung", [(20, 20), (80, 20), (80, 60), (20, 60)])
    layer = s["left_lung"]
    assert layer[40, 50] and not layer[70, 50] and not layer[40, 90]
    assert layer.sum() == pytest.approx(61 * 41, rel=0.05)
    with pytest.raises(MaskError, match="three points"):
        s.fill_polygon("left_lung", [(0, 0), (5, 5)])


def test_flood_fill_fills_only_the_enclosed_region():
    s = stack()
    s.fill_polygon("heart", [(20, 20), (80, 20), (80, 80), (20, 80)])
    s.fill_polygon("heart", [(40, 40), (60, 40), (60, 60), (40, 60)], value=False)  # a hole
    s.flood_fill("heart", 50, 50)
    assert s["heart"][50, 50] and not s["heart"][5, 5]
    before = s["heart"].copy()
    assert s.flood_fill("heart", 50, 50).empty  # already filled: no change, no step
    np.testing.assert_array_equal(s["heart"], before)
    s.flood_fill("heart", 5, 5)
    assert s["heart"].all()


def test_clear_layer_and_clear_nodules_removes_objects():
    s = stack()
    s.paint("heart", [(30, 30)], 10)
    s.add_nodule(60, 50, 8)
    s.clear("heart")
    assert not s["heart"].any()
    s.clear(NODULE)
    assert not s[NODULE].any() and s.nodules == []
    s.undo()
    assert len(s.nodules) == 1 and s[NODULE].any()


def test_clear_nodules_whose_discs_were_erased_still_removes_the_objects():
    s = stack()
    n = s.add_nodule(60, 50, 8)
    s.erase(NODULE, [(n.x, n.y)], 30)
    assert not s[NODULE].any() and s.nodules
    s.clear(NODULE)
    assert s.nodules == []
    s.undo()
    assert [m.id for m in s.nodules] == [n.id]


def test_nodule_stamp_move_resize_delete():
    s = stack(spacing=0.5)
    n = s.add_nodule(40, 50, diameter_mm=10)  # 20 px across
    assert s[NODULE][50, 40] and s[NODULE][50, 49] and not s[NODULE][50, 52]
    assert s[NODULE].sum() == pytest.approx(np.pi * 10**2, rel=0.1)
    s.update_nodule(n.id, x=80)
    assert not s[NODULE][50, 40] and s[NODULE][50, 80]
    s.update_nodule(n.id, diameter_mm=4)
    assert s[NODULE].sum() == pytest.approx(np.pi * 4**2, rel=0.25)
    assert s.nodule(n.id).diameter_mm == 4 and s.nodule(n.id).x == 80
    s.remove_nodule(n.id)
    assert s.nodules == [] and not s[NODULE].any()
    with pytest.raises(MaskError):
        s.nodule(n.id)
    with pytest.raises(MaskError, match="positive"):
        s.add_nodule(10, 10, 0)
    with pytest.raises(MaskError, match="outside"):
        s.add_nodule(500, 10, 5)


def test_moving_a_nodule_restamps_the_one_it_overlapped():
    s = stack()
    a = s.add_nodule(50, 50, 20)
    b = s.add_nodule(60, 50, 20)
    s.update_nodule(a.id, x=20)  # clearing a's old disc cut into b: b must be whole again
    expected = stack()
    expected.add_nodule(20, 50, 20)
    expected.add_nodule(60, 50, 20)
    np.testing.assert_array_equal(s[NODULE], expected[NODULE])
    s.remove_nodule(a.id)
    only_b = stack()
    only_b.add_nodule(60, 50, 20)
    np.testing.assert_array_equal(s[NODULE], only_b[NODULE])
    assert [n.id for n in s.nodules] == [b.id]


def test_undo_redo_150_steps():
    s = stack((200, 200))
    states = [s.to_array().copy()]
    for i in range(150):
        x, y = 10 + i % 180, 10 + (i * 7) % 180
        if i % 10 == 9:
            s.add_nodule(x, y, 5)
        else:
            s.paint(ANATOMY[i % 5], [(x, y), (x + 5, y + 3)], 3)
        states.append(s.to_array().copy())
    for i in range(150, 0, -1):
        np.testing.assert_array_equal(s.to_array(), states[i])
        assert s.undo()
    np.testing.assert_array_equal(s.to_array(), states[0])
    assert not s.undo() and s.nodules == []
    for i in range(1, 151):
        assert s.redo()
        np.testing.assert_array_equal(s.to_array(), states[i])
    assert not s.redo() and len(s.nodules) == 15
    # A new edit after undo drops the redo branch.
    s.undo()
    s.paint("heart", [(5, 5)], 2)
    assert not s.can_redo


def test_history_stays_small_on_a_3000_square_stack():
    s = MaskStack((3000, 3000), (0.15, 0.15))
    for i in range(100):
        x = 100 + 25 * i
        s.paint("right_lung", [(x, 500), (x + 20, 520), (x + 10, 560)], diameter_mm=3)
    assert len(s._undo) == 100
    assert s.history_bytes() < 2 * 2**20
    s.undo()
    assert s.can_redo


def test_history_is_capped_by_count_and_bytes():
    s = stack(max_undo=5)
    for i in range(12):
        s.paint("heart", [(i * 5, 10)], 2)
    assert len(s._undo) == 5
    big = MaskStack((400, 400), (1, 1), max_undo_bytes=50_000)
    for i in range(10):
        big.fill_polygon("heart", [(0, 0), (399, 0), (399, 399)], value=bool(i % 2 == 0))
    assert big.history_bytes() <= 50_000


def test_listener_gets_changed_layer_and_rect():
    s = stack()
    events: list[tuple[str, Rect]] = []
    unsubscribe = s.subscribe(lambda layer, rect: events.append((layer, rect)))
    s.paint("heart", [(30, 40)], diameter_mm=4)
    layer, rect = events[-1]
    assert layer == "heart"
    assert rect.x0 <= 28 and rect.x1 >= 32 and rect.y0 <= 38 and rect.y1 >= 42
    assert rect.x1 - rect.x0 < 10 and rect.y1 - rect.y0 < 10  # only the dab, not the image
    assert s["heart"][rect.slices].sum() == s["heart"].sum()
    events.clear()
    s.undo()
    assert events and events[0][0] == "heart"
    unsubscribe()
    s.redo()
    assert len(events) == 1


def test_set_layer_checks_size_and_adds_layers():
    s = stack((100, 120))
    with pytest.raises(MaskError, match="120 x 100"):
        s.set_layer("heart", np.zeros((50, 60), bool))
    with pytest.raises(MaskError, match="shape"):
        s.set_layer("heart", np.zeros((100, 120, 3), bool))
    s.set_layer("spine", np.ones((100, 120), np.uint8))
    assert "spine" in s and s["spine"].all()
    s.undo()
    assert not s["spine"].any()
    with pytest.raises(MaskError, match="layer names"):
        s.add_layer("bad name")


def test_from_arrays_has_no_history_and_keeps_nodules():
    heart = np.zeros((60, 80), bool)
    heart[10:20, 10:30] = True
    nod = Nodule(7, 40.0, 30.0, 10.0)
    s = MaskStack.from_arrays((60, 80), {"heart": heart, "spine": heart}, (1.0, 1.0), [nod],
                              stamp_nodules=True)
    assert s.names == [*STRUCTURES, "spine"]
    np.testing.assert_array_equal(s["heart"], heart)
    assert s[NODULE][30, 40] and s[NODULE].sum() == pytest.approx(np.pi * 25, rel=0.2)
    assert not s.can_undo and s.history_bytes() == 0
    heart[:] = False  # the stack owns a copy
    assert s["heart"].any()
    assert s.add_nodule(5, 5, 2).id == 8  # ids continue after the loaded ones
    s.undo()
    assert [n.id for n in s.nodules] == [7] and not s.undo()
    unstamped = MaskStack.from_arrays((60, 80), {}, None, [nod])
    assert not unstamped[NODULE].any() and unstamped.nodules == [nod]
    with pytest.raises(MaskError, match="80 x 60"):
        MaskStack.from_arrays((60, 80), {"heart": np.zeros((80, 60))})


def test_copy_and_content_hash():
    s = stack()
    s.paint("heart", [(30, 30)], 5)
    s.add_nodule(60, 60, 6)
    c = s.copy()
    assert c.content_hash() == s.content_hash() and not c.can_undo
    c.paint("heart", [(80, 80)], 5)
    assert c.content_hash() != s.content_hash()


def test_nodule_contrast_is_one_undo_step_and_checked():
    s = stack()
    n = s.add_nodule(50, 50, 8.0, contrast=0.03)
    assert n.contrast == 0.03
    before = s.content_hash()
    pixels = s[NODULE].copy()
    s.set_nodule_contrast(n.id, 0.01)
    assert s.nodules[0].contrast == 0.01 and s.content_hash() != before
    assert np.array_equal(s[NODULE], pixels)
    s.update_nodule(n.id, x=60)
    assert s.nodules[0].contrast == 0.01  # moving keeps it
    s.undo()
    s.undo()
    assert s.nodules[0].contrast == 0.03 and s.content_hash() == before
    s.redo()
    assert s.nodules[0].contrast == 0.01
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(MaskError, match="contrast"):
            s.set_nodule_contrast(n.id, bad)
        with pytest.raises(MaskError, match="contrast"):
            s.add_nodule(20, 20, 5.0, contrast=bad)

"""Edit mode from the window: the mode choice, the nodule list's edit column, the Remove tool,
and an edit of a 12-bit PNG and of a DICOM with the tiny edit model: full size, every pixel
outside the edit the source's, source | edited | difference in Compare, saved in the source's
format, and kept by a project across reopening."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pydicom
import pytest
from dicom_factory import chest_like, make_dicom
from gui_helpers import click, drag, key, open_and_wait
from PIL import Image
from PySide6.QtCore import Qt

from xraystudio.io.images import read_image
from xraystudio.io.masks_io import save_masks
from xraystudio.masks import MaskStack
from xraystudio.synthesis.edit import REMOVE_LAYER

pytest.importorskip("diffusers")
pytest.importorskip("torch")

SHAPE = (240, 200)
# shared_engine, edit_model and plain_model come from conftest.py.


def png12(path: Path, nodules: list[tuple[float, float, float]] = ()) -> Path:
    """A 16-bit PNG holding 12-bit values (as detectors store them), with masks beside it that
    list ``nodules`` as the radiograph's own."""
    Image.fromarray(chest_like(*SHAPE, bits=12)).save(path)
    if nodules:
        masks = MaskStack(SHAPE)
        for x, y, d in nodules:
            masks.add_nodule(x, y, d)
        masks.source_nodules = copy.deepcopy(masks.nodules)  # annotations of the radiograph
        save_masks(masks, path.with_name(path.stem + ".masks.npz"))
    return path


def lungs(w) -> None:
    w.study.masks.fill_polygon("right_lung", [(30, 50), (90, 50), (90, 190), (30, 190)])
    w.study.masks.fill_polygon("left_lung", [(110, 50), (170, 50), (170, 190), (110, 190)])


def generate(w, qtbot, seed: int = 5) -> None:
    g = w.generator
    g.random_seed.setChecked(False)
    g.seed.setValue(seed)
    g.n_images.setValue(1)
    before = w.strip.count()
    g.generate.click()
    qtbot.waitUntil(lambda: w.gen.generation is None, timeout=120_000)
    assert w.last_error is None, w.last_error.text()
    assert w.strip.count() == before + 1


def test_edit_mode_is_offered_first_and_greys_whole_image_settings(qtbot, window, tmp_path,
                                                                   edit_model, plain_model):
    open_and_wait(qtbot, window, png12(tmp_path / "chest.png"))
    g = window.generator
    window.gen.add_model_folder(edit_model)
    assert g.mode.itemData(0) == "edit" and g.mode.currentData() == "edit"
    assert "native resolution" in g.mode.currentText()
    assert "guided (32 px)" in g.mode.itemText(g.mode.findData("guided"))
    assert not g.conditioning.isEnabled() and not g.prior.isEnabled()
    assert g.steps.value() == 3  # the edit model's own steps
    assert "conditioning_scale" not in g.params() and g.params()["mode"] == "edit"
    g.mode.setCurrentIndex(g.mode.findData("guided"))
    assert g.conditioning.isEnabled() and g.steps.value() == 4
    # a model without edit/ cannot edit: its default mode comes back
    window.gen.add_model_folder(plain_model)
    assert not g.mode_enabled("edit") and g.mode.currentData() == "guided"
    # a mode chosen among all three is remembered; one chosen before edit existed is not
    window.gen.add_model_folder(edit_model)
    g.mode.setCurrentIndex(g.mode.findData("layout"))
    state = g.saved_state()
    g.mode.setCurrentIndex(0)
    g.restore(state)
    assert g.mode.currentData() == "layout"
    g.mode.setCurrentIndex(0)  # as set_models leaves it at start-up
    g.restore({**state, "edit_offered": False})
    assert g.mode.currentData() == "edit" and g.steps.value() == 3


def test_nodule_list_marks_source_painted_moved_and_removed(qtbot, window, tmp_path):
    open_and_wait(qtbot, window, png12(tmp_path / "chest.png", [(60, 100, 10), (140, 120, 8)]))
    w = window
    panel = w.nodules
    first, second = (n.id for n in w.study.masks.source_nodules)
    assert panel.statuses() == {first: "in source", second: "in source"}
    w.set_tool(next(t for t in w.tools if t.name == "Nodule"))
    click(w, 140, 60)
    painted = w.study.masks.nodules[-1].id
    w.study.masks.update_nodule(first, x=70)
    w.study.masks.remove_nodule(second)
    assert panel.statuses() == {first: "moved", painted: "painted", second: "removed"}
    # the canvas outlines where edit mode will remove the radiograph's nodules
    assert {n.id for n in w.canvas.removed_source_nodules()} == {first, second}
    assert not w.canvas._removed.path().isEmpty()
    removed_row = [r for r in range(panel.table.rowCount())
                   if panel.table.item(r, 0).text() == str(second)][0]
    item = panel.table.item(removed_row, 1)
    assert not item.flags() & Qt.ItemFlag.ItemIsSelectable and item.font().italic()
    assert "remove" in item.toolTip()
    w.undo()  # the deletion
    assert panel.statuses()[second] == "in source"
    assert {n.id for n in w.canvas.removed_source_nodules()} == {first}


def test_remove_tool_paints_its_own_layer_with_x_and_undoes(opened):
    w = opened
    assert REMOVE_LAYER not in w.study.masks
    w.layers.set_active_index(2)  # heart: the Remove tool ignores the active layer
    key(w, Qt.Key.Key_X)
    assert w.canvas.tool.name == "Remove" and w.canvas.tool.shows_brush
    drag(w, [(50, 80), (60, 100), (70, 120)])
    assert w.study.masks[REMOVE_LAYER].any() and not w.study.masks["heart"].any()
    assert REMOVE_LAYER in w.layers.names()
    drawn = w.canvas.overlay.pixels.array[w.study.masks[REMOVE_LAYER]] != 0
    assert 0.3 < drawn.mean() < 0.9  # hatched in its colour, over whatever lies below
    rows = dict(w.shortcut_rows())
    assert "X" in rows and "Remove" in rows["X"]
    assert [k for k, _ in w.shortcut_rows()].count("X") == 1
    w.undo_action.trigger()
    assert not w.study.masks[REMOVE_LAYER].any()


def _check_edit_result(w, source_values: np.ndarray):
    r = w.compare.result
    assert r is not None and r.is_edit
    assert r.image.shape == SHAPE and r.values.shape == SHAPE and r.changed.shape == SHAPE
    assert r.changed.any() and not r.changed.all()
    outside = ~r.changed
    assert np.array_equal(r.values[outside], source_values[outside])
    assert np.array_equal(r.image[outside], w.compare.reference[outside])
    assert "edit window" in w.compare.generated.caption.text()
    # source | edited | difference, zoomed together
    c = w.compare
    shown = [v for v in c.views if v.holder.isVisibleTo(c)]
    assert shown == [c.truth, c.generated, c.difference]
    assert c.difference.item is not None and "×" in c.difference.title.text()
    words = c.difference.item.pixels.array
    assert (words[outside] == 0xFFFFFFFF).all()  # white: identical
    assert (words[r.changed] != 0xFFFFFFFF).any()
    assert not c.show_condition.isVisibleTo(c) and c.zoom_edits_button.isVisibleTo(c)
    assert c.generated.transform().m11() == c.truth.transform().m11() > 0
    return r


def test_edit_a_12bit_png_keeps_every_other_pixel_and_saves_a_png(qtbot, window, tmp_path,
                                                                  edit_model, shared_engine):
    w = window
    w.gen.engine = shared_engine
    path = png12(tmp_path / "chest.png")
    open_and_wait(qtbot, w, path)
    lungs(w)
    w.gen.add_model_folder(edit_model)
    w.set_tool(next(t for t in w.tools if t.name == "Nodule"))
    click(w, 60, 100)
    assert w.nodules.statuses() == {w.study.masks.nodules[0].id: "painted"}
    generate(w, qtbot)
    r = _check_edit_result(w, w.study.image.values)
    assert r.provenance["changed_pixels"] == int(r.changed.sum())
    written = w.results.save_to(tmp_path / "out" / "edited.png")
    assert [p.name for p in written] == ["edited.png", "edited.json"]
    saved = read_image(written[0])
    assert saved.metadata["dtype"] == "uint16" and saved.shape == SHAPE
    assert np.array_equal(saved.values[~r.changed], w.study.image.values[~r.changed])
    assert np.array_equal(saved.values, r.values)
    assert json.loads(written[1].read_text())["parameters"]["mode"] == "edit"


def test_edit_a_dicom_saves_a_dicom_and_survives_reopening_the_project(
        qtbot, window, tmp_path, edit_model, shared_engine):
    w = window
    w.gen.engine = shared_engine
    (tmp_path / "sources").mkdir()
    dcm = make_dicom(tmp_path / "sources" / "chest.dcm", chest_like(*SHAPE, bits=12),
                     imager_spacing=(0.5, 0.5))
    assert w.switch.new_project(tmp_path / "proj")
    open_and_wait(qtbot, w, dcm)
    lungs(w)
    w.gen.add_model_folder(edit_model)
    w.study.masks.add_nodule(140, 110, 12)
    generate(w, qtbot)
    source = w.study.image.values.copy()
    r = _check_edit_result(w, source)
    qtbot.waitUntil(lambda: not w.projects.staging and None not in w.strip.result_ids,
                    timeout=30_000)
    assert w.results.save_suffix() == ".dcm"
    written = w.results.save_to(tmp_path / "out" / "edited.dcm")
    assert [p.name for p in written] == ["edited.dcm", "edited.png", "edited.json"]
    ds = pydicom.dcmread(written[0])
    original = pydicom.dcmread(dcm)
    assert ds.BitsStored == original.BitsStored and ds.pixel_array.dtype == original.pixel_array.dtype
    outside = ~r.changed
    assert np.array_equal(ds.pixel_array[outside], original.pixel_array[outside])
    assert not np.array_equal(ds.pixel_array[r.changed], original.pixel_array[r.changed])
    with Image.open(written[1]) as im:
        assert np.asarray(im).dtype == np.uint16

    # the project keeps the exact edit: reopened, the result saves the same DICOM pixels
    rid = w.strip.result_ids[0]
    assert w.projects.project.edit_path(rid).is_file()
    w.projects.close()
    assert w.switch.open_project(tmp_path / "proj")
    qtbot.waitUntil(lambda: w.study is not None and w.strip.count() == 1, timeout=30_000)
    qtbot.waitUntil(lambda: w.compare.result is not None, timeout=10_000)
    again = w.compare.result
    assert again.is_edit and np.array_equal(again.values, r.values)
    assert np.array_equal(again.changed, r.changed)
    assert "edit window" in w.compare.generated.caption.text()
    second = w.results.save_to(tmp_path / "again" / "edited.dcm")
    assert np.array_equal(pydicom.dcmread(second[0]).pixel_array, ds.pixel_array)

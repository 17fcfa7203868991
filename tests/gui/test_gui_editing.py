"""Open, look, paint, undo, stamp: the editing workflow through real widgets and input events."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
from dicom_factory import make_dicom
from gui_helpers import SHAPE, click, drag, key, open_and_wait, to_view
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QMessageBox

from xraystudio.gui.canvas.overlay import COLORS
from xraystudio.io.masks_io import save_masks
from xraystudio.masks import MaskStack


def test_empty_window_says_how_to_start(window):
    assert window.study is None
    assert not window.generator.generate.isEnabled()
    image = window.canvas.grab().toImage()
    assert image.width() > 0  # the hint is painted without a study


def test_open_png_shows_image_layers_and_windows(opened, settings, radiograph):
    w = opened
    assert w.study.shape == SHAPE
    assert "chest" in w.windowTitle()
    assert w.layers.names()[:2] == ["right_lung", "left_lung"]
    assert w.window_combo.count() >= 1
    assert settings.recent_files == [str(radiograph.resolve())]
    assert w.generator.generate.isEnabled()


def test_open_dicom_reads_spacing_and_status_bar_shows_mm(qtbot, window, tmp_path):
    path = make_dicom(tmp_path / "dx.dcm", imager_spacing=(0.5, 0.5))
    open_and_wait(qtbot, window, path)
    assert window.study.spacing_mm == (0.5, 0.5)
    QTest.mouseMove(window.canvas.viewport(), to_view(window, 10.5, 20.5))
    text = window.position.text()
    assert "x 10, y 20 px" in text and "5.0, 10.0 mm" in text and "value" in text


def test_broken_file_shows_an_error_dialog(qtbot, window, tmp_path):
    bad = tmp_path / "notes.txt"
    bad.write_text("not an image")
    window.open_file(bad)
    qtbot.waitUntil(lambda: window.last_error is not None, timeout=10_000)
    assert window.last_error.text()
    assert window.study is None


def test_masks_beside_the_image_open_with_it(qtbot, window, radiograph):
    masks = MaskStack(SHAPE)
    masks.fill_polygon("heart", [(80, 100), (120, 100), (120, 160)])
    save_masks(masks, radiograph.with_name("chest.masks.npz"))
    open_and_wait(qtbot, window, radiograph)
    assert window.study.masks["heart"].sum() == masks["heart"].sum()
    assert not window.undo_action.isEnabled()  # loaded masks are the base state


def drop(window, path: Path) -> None:
    """Drag ``path`` over the canvas and drop it, as a file manager does."""
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path))])
    args = (Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
            Qt.KeyboardModifier.NoModifier)
    with warnings.catch_warnings():  # PySide6 marks the QPoint constructor as deprecated
        warnings.simplefilter("ignore", DeprecationWarning)
        enter = QDragEnterEvent(QPoint(50, 50), *args)
    QApplication.sendEvent(window.canvas.viewport(), enter)
    assert enter.isAccepted()
    QApplication.sendEvent(window.canvas.viewport(), QDropEvent(QPointF(50, 50), *args))


def test_drop_a_file_opens_it(qtbot, window, radiograph):
    drop(window, radiograph)
    qtbot.waitUntil(lambda: window.study is not None, timeout=10_000)


def test_drop_masks_on_an_open_study_loads_them(opened, tmp_path):
    masks = MaskStack(SHAPE)
    masks.fill_polygon("heart", [(80, 100), (120, 100), (120, 160)])
    save_masks(masks, tmp_path / "other.npz")
    drop(opened, tmp_path / "other.npz")
    assert opened.study.masks["heart"].sum() == masks["heart"].sum()


def test_brush_stroke_paints_active_layer_and_overlay_then_undo_redo(opened):
    w = opened
    key(w, Qt.Key.Key_B)
    key(w, Qt.Key.Key_3)  # heart
    assert w.canvas.tool_settings.layer == "heart"
    drag(w, [(60, 100), (80, 110), (100, 120)])
    heart = w.study.masks["heart"]
    assert heart[110, 80] and not heart[10, 10]
    assert w.study.masks.undo_label == "Brush"
    # the overlay shows the heart's colour where painted, nothing elsewhere
    word = int(w.canvas.overlay.pixels.array[110, 80])
    r, g, b = (word >> 16) & 255, (word >> 8) & 255, word & 255
    assert r > g and r > b and (word >> 24) > 0
    assert w.canvas.overlay.pixels.array[10, 10] == 0
    assert COLORS["heart"][0] > COLORS["heart"][1]

    key(w, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert not w.study.masks["heart"].any()
    assert w.canvas.overlay.pixels.array[110, 80] == 0
    key(w, Qt.Key.Key_Y, Qt.KeyboardModifier.ControlModifier)
    assert w.study.masks["heart"][110, 80]
    key(w, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    assert w.study.masks["heart"][110, 80]  # nothing left to redo


def test_eraser_and_brush_size_keys(opened):
    w = opened
    size = w.brush_size.value()
    key(w, Qt.Key.Key_BracketRight)
    assert w.brush_size.value() > size
    assert w.canvas.tool_settings.brush_mm == w.brush_size.value()
    key(w, Qt.Key.Key_BracketLeft)
    key(w, Qt.Key.Key_BracketLeft)
    assert w.brush_size.value() < size
    w.brush_size.setValue(10.0)
    drag(w, [(50, 50), (150, 50)])
    assert w.study.masks["right_lung"][50, 100]
    key(w, Qt.Key.Key_E)
    drag(w, [(100, 50)])
    assert not w.study.masks["right_lung"][50, 100]
    assert w.study.masks["right_lung"][50, 60]


def test_polygon_and_fill_tools(opened):
    w = opened
    key(w, Qt.Key.Key_P)
    for x, y in [(20, 20), (80, 20), (80, 80), (20, 80)]:
        click(w, x, y)
    key(w, Qt.Key.Key_Return)
    lung = w.study.masks["right_lung"]
    assert lung[50, 50] and not lung[100, 100]
    # Escape throws an unfinished polygon away
    click(w, 120, 120)
    click(w, 160, 120)
    key(w, Qt.Key.Key_Escape)
    key(w, Qt.Key.Key_Return)
    assert not w.study.masks["right_lung"][121, 140]
    # the bucket fills an enclosed region of the active layer
    key(w, Qt.Key.Key_2)
    square = [(120, 120), (180, 120), (180, 180), (120, 180), (120, 120)]
    w.study.masks.paint("left_lung", square, 1)
    key(w, Qt.Key.Key_G)
    click(w, 150, 150)
    assert w.study.masks["left_lung"][150, 150]
    assert not w.study.masks["left_lung"][10, 10]


def test_nodule_stamp_list_move_resize_delete(opened, qtbot):
    w = opened
    key(w, Qt.Key.Key_N)
    w.nodules.stamp_size.setValue(8.0)
    click(w, 60, 100)
    masks = w.study.masks
    assert len(masks.nodules) == 1 and masks.nodules[0].diameter_mm == 8.0
    assert masks["nodule"][100, 60]
    assert w.nodules.table.rowCount() == 1
    assert w.nodules.selected_id() == masks.nodules[0].id
    # drag it somewhere else
    drag(w, [(60, 100), (90, 110), (120, 120)])
    n = masks.nodules[0]
    assert math.isclose(n.x, 120, abs_tol=2) and math.isclose(n.y, 120, abs_tol=2)
    assert masks["nodule"][120, 120] and not masks["nodule"][100, 60]
    assert w.nodules.table.item(0, 1).text() == f"{n.x:.0f}"
    # resize by editing the table
    w.nodules.table.item(0, 3).setText("20")
    assert masks.nodules[0].diameter_mm == 20.0
    # undo restores the size, then delete
    key(w, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert masks.nodules[0].diameter_mm == 8.0
    w.nodules.table.selectRow(0)
    w.nodules.delete_button.click()
    assert masks.nodules == [] and not masks["nodule"].any()
    assert w.nodules.table.rowCount() == 0


def test_layer_visibility_outline_and_opacity(opened):
    w = opened
    w.study.masks.fill_polygon("heart", [(60, 60), (140, 60), (140, 140), (60, 140)])
    overlay = w.canvas.overlay
    assert overlay.pixels.array[100, 100] != 0
    key(w, Qt.Key.Key_C)  # outline: the inside clears, the edge stays
    assert overlay.pixels.array[100, 100] == 0 and overlay.pixels.array[60, 100] != 0
    key(w, Qt.Key.Key_C)
    heart_row = w.layers.names().index("heart")
    w.layers.list.item(heart_row).setCheckState(Qt.CheckState.Unchecked)
    assert overlay.pixels.array[100, 100] == 0
    w.layers.opacity.setValue(25)
    assert overlay.style.opacity == 0.25
    key(w, Qt.Key.Key_H)
    assert not overlay.style.visible


def test_zoom_fit_and_window_level_drag(opened):
    w = opened
    canvas = w.canvas
    fitted = canvas.scale_factor
    key(w, Qt.Key.Key_1, Qt.KeyboardModifier.ControlModifier)
    assert canvas.scale_factor == 1.0
    key(w, Qt.Key.Key_F)
    assert math.isclose(canvas.scale_factor, fitted)
    before = canvas.image.window
    drag(w, [(100, 100), (140, 60)], button=Qt.MouseButton.RightButton)
    QApplication.processEvents()
    after = canvas.image.window
    assert after.width > before.width and after.center != before.center
    assert w.window_combo.currentText() == after.label
    w.window_combo.setCurrentIndex(0)
    w.window_combo.activated.emit(0)
    assert canvas.image.window == w.study.image.windows[0]


def test_help_lists_the_shortcuts(opened):
    rows = dict(opened.shortcut_rows())
    keys = " ".join(rows)
    for k in ("B", "E", "N", "P", "G", "[", "]", "Ctrl+Z", "Ctrl+Y", "F"):
        assert k in keys
    opened.show_help()


def test_settings_persist_between_runs(qtbot, window, settings):
    window.brush_size.setValue(17.0)
    window.generator.steps.setValue(33)
    window.generator.n_images.setValue(3)
    window.close()
    again = type(window)(settings)
    qtbot.addWidget(again)
    assert again.brush_size.value() == 17.0
    assert again.generator.steps.value() == 33
    assert again.generator.n_images.value() == 3


def test_save_masks_beside_the_image(opened, radiograph: Path):
    opened.study.masks.paint("heart", [(100, 100)], 10)
    opened.mask_files.save_masks()
    saved = radiograph.with_name("chest.masks.npz")
    assert saved.is_file()
    data = np.load(saved)
    assert data["layer_heart"][100, 100]


def test_unsaved_masks_are_offered_for_saving(opened, radiograph, monkeypatch):
    w = opened
    assert not w.isWindowModified()
    w.study.masks.paint("heart", [(100, 100)], 10)
    assert w.isWindowModified()
    answers = []

    def ask(answer):
        def question(*args, **kwargs):
            answers.append(answer)
            return answer
        monkeypatch.setattr(QMessageBox, "question", question)

    ask(QMessageBox.StandardButton.Cancel)
    assert not w.close() and w.isVisible()  # Cancel keeps the window and the masks
    ask(QMessageBox.StandardButton.Save)
    assert w.close()
    assert radiograph.with_name("chest.masks.npz").is_file()
    assert len(answers) == 2

"""Suggest nodules: one click adds a sampled layout inside the lungs, in one undo step."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from gui_helpers import chest_png, open_and_wait
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest

from xraystudio.masks import LUNGS

SHAPE = (1000, 900)  # at the default 0.2 mm: lungs about 58 x 120 mm


def _paint_lungs(window) -> None:
    h, w = SHAPE
    yy, xx = np.mgrid[0:h, 0:w]
    for name, cx in zip(LUNGS, (w * 0.3, w * 0.7)):
        window.canvas.masks.set_layer(
            name, (((xx - cx) / (w * 0.16)) ** 2 + ((yy - h * 0.5) / (h * 0.3)) ** 2) < 1)


def test_suggest_nodules_adds_undoable_nodules_inside_the_lungs(qtbot, window, tmp_path: Path):
    button = window.nodules.suggest_button
    assert not button.isEnabled()  # no study yet
    open_and_wait(qtbot, window, chest_png(tmp_path / "big.png", SHAPE))
    assert button.isEnabled(), button.toolTip()

    QTest.mouseClick(button, Qt.MouseButton.LeftButton)  # no lung masks yet: a message, no nodules
    assert "no lung masks" in window.statusBar().currentMessage()
    assert window.canvas.masks.nodules == []

    _paint_lungs(window)
    QTest.mouseClick(button, Qt.MouseButton.LeftButton)
    masks = window.canvas.masks
    assert len(masks.nodules) >= 1
    assert masks["nodule"].any() and not np.any(masks["nodule"] & ~masks.union(LUNGS))
    assert window.nodules.table.rowCount() == len(masks.nodules)
    assert set(window.nodules.statuses().values()) == {"painted"}
    assert "Suggested" in window.statusBar().currentMessage()
    # Each suggestion carries a real nodule's contrast, shown in % and editable.
    from xraystudio.gui.panels.nodules import CONTRAST_COLUMN

    table = window.nodules.table
    assert all(n.contrast is not None and 0 <= n.contrast < 0.2 for n in masks.nodules)
    assert table.item(0, CONTRAST_COLUMN).text() == f"{100 * masks.nodules[0].contrast:.2f}"
    table.item(0, CONTRAST_COLUMN).setText("3")
    assert masks.nodules[0].contrast == pytest.approx(0.03)
    table.item(0, CONTRAST_COLUMN).setText("")  # blank: as the model draws it
    assert masks.nodules[0].contrast is None
    table.item(0, CONTRAST_COLUMN).setText("300")  # refused, the old value comes back
    assert masks.nodules[0].contrast is None and table.item(0, CONTRAST_COLUMN).text() == ""
    assert "Contrast not changed" in window.statusBar().currentMessage()
    window.undo_action.trigger()
    window.undo_action.trigger()  # the contrast edits, one step each

    window.undo_action.trigger()  # one step takes the whole suggestion back, lungs stay
    assert masks.nodules == [] and not masks["nodule"].any()
    assert masks["right_lung"].any()
    assert window.nodules.table.rowCount() == 0


def test_without_a_layout_sampler_the_button_says_why(qtbot, opened, tmp_path: Path):
    button = opened.nodules.suggest_button
    assert button.isEnabled()  # the built-in model ships one
    opened.generator.set_models([str(tmp_path)], current=str(tmp_path))
    assert not button.isEnabled()
    assert "layout_sampler.json" in button.toolTip()
    (tmp_path / "layout_sampler.json").write_text("{broken")
    opened.generator.set_models([], current="")
    opened.generator.set_models([str(tmp_path)], current=str(tmp_path))
    assert not button.isEnabled() and "cannot read" in button.toolTip()

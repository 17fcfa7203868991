"""Suggest nodules: one click adds a sampled layout inside the lungs, in one undo step."""

from __future__ import annotations

from pathlib import Path

import numpy as np
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

"""The nodule list never cuts a column's title or values ("Ø mm" was cut to "Ø mn"): each is as
wide as its contents, the list scrolls sideways in a narrow dock, and a window with room shows
every column."""

from __future__ import annotations

from gui_helpers import open_and_wait

from xraystudio.gui.main_window import MainWindow
from xraystudio.gui.panels.nodules import COLUMNS


def test_no_column_is_cut(opened, qtbot):
    w = opened
    w.study.masks.add_nodule(60, 100, 12.0, 0.0183)
    qtbot.wait(50)
    table = w.nodules.table
    header = table.horizontalHeader()
    fm = header.fontMetrics()
    for i, title in enumerate(COLUMNS):
        assert header.sectionSize(i) >= fm.horizontalAdvance(title), title
        assert header.sectionSize(i) >= table.fontMetrics().horizontalAdvance(
            table.item(0, i).text()), title


def test_a_wide_window_shows_every_column(qtbot, settings, radiograph):
    w = MainWindow(settings)
    qtbot.addWidget(w)
    w.resize(1600, 1000)
    w.show()
    qtbot.waitExposed(w)
    open_and_wait(qtbot, w, radiograph)
    w.study.masks.add_nodule(60, 100, 12.0, 0.0183)
    qtbot.wait(50)
    table = w.nodules.table
    assert table.horizontalHeader().length() <= table.viewport().width()
    w.setWindowModified(False)

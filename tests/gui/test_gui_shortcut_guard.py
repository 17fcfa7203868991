"""A single-key shortcut pressed while a text field has the focus is never lost silently."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtTest import QTest


def test_letter_in_a_number_field_reaches_its_shortcut(opened, qtbot):
    w = opened
    w.set_tool(next(t for t in w.tools if t.name == "Brush"))
    box = w.brush_size
    box.setFocus()
    qtbot.waitUntil(box.hasFocus)
    before = box.value()
    QTest.keyClick(box, Qt.Key.Key_N)  # the number field takes no letters
    assert w.canvas.tool.name == "Nodule" and box.value() == before
    QTest.keyClick(box, Qt.Key.Key_1)  # a digit is the field's own
    assert w.canvas.tool.name == "Nodule"


def test_letter_typed_into_a_text_field_says_where_it_went(opened, qtbot):
    w = opened
    w.set_tool(next(t for t in w.tools if t.name == "Brush"))
    w.show_gallery()
    field = w.gallery.parameters_filter
    field.setFocus()
    qtbot.waitUntil(field.hasFocus)
    QTest.keyClick(field, Qt.Key.Key_N)
    assert field.text() == "n" and w.canvas.tool.name == "Brush"
    message = w.statusBar().currentMessage()
    assert "typed into the text field" in message and "Nodule" in message

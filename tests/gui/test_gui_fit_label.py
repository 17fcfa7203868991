"""The gallery's preview shows a result whole in whatever room its dock leaves (it showed the
middle of the picture, cropped, when the dock was short)."""

from __future__ import annotations

from PySide6.QtGui import QColor, QImage

from xraystudio.gui.panels.fit_label import FitLabel


def test_picture_is_scaled_down_whole_never_cropped(qtbot):
    label = FitLabel()
    qtbot.addWidget(label)
    label.resize(300, 150)
    label.show()
    image = QImage(420, 600, QImage.Format.Format_RGB32)
    image.fill(QColor("grey"))
    label.set_image(image)
    shown = label.pixmap().size()
    assert shown.height() <= 150 and shown.width() == round(150 * 420 / 600)
    label.resize(800, 800)  # more room than the picture: shown at its own size
    qtbot.wait(10)
    assert label.pixmap().size() == image.size()
    label.set_image(None)
    assert label.pixmap().isNull()

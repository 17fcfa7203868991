"""A label that shows its picture whole, scaled down to the room it has.

A QLabel shows a pixmap at its own size and crops it when the label is smaller: the gallery's
preview showed the middle of a radiograph (the lungs, no edges) whenever its dock was short,
which reads as a different, zoomed image.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QImage, QPixmap, QResizeEvent
from PySide6.QtWidgets import QLabel, QSizePolicy, QWidget


class FitLabel(QLabel):
    def __init__(self, text: str = "", parent: QWidget | None = None) -> None:
        super().__init__(text, parent)
        self.image: QImage | None = None
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Ignored)

    def set_image(self, image: QImage | None) -> None:
        """Show ``image`` whole (None clears it)."""
        self.image = image
        self._fit()

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802 (Qt naming)
        super().resizeEvent(event)
        self._fit()

    def _fit(self) -> None:
        if self.image is None:
            self.setPixmap(QPixmap())
            return
        size = self.contentsRect().size()
        scaled = self.image
        if self.image.width() > size.width() or self.image.height() > size.height():
            scaled = self.image.scaled(size, Qt.AspectRatioMode.KeepAspectRatio,
                                       Qt.TransformationMode.SmoothTransformation)
        self.setPixmap(QPixmap.fromImage(scaled))

"""The status bar's cursor read-out: pixel, millimetres and the pixel's value in the file."""

from __future__ import annotations

import math

from PySide6.QtWidgets import QLabel

from xraystudio.study import Study


class PositionLabel(QLabel):
    def show_at(self, study: Study | None, x: float, y: float) -> None:
        """The cursor at image pixel (x, y) of ``study``; NaN: off the image."""
        if study is None or math.isnan(x):
            self.clear()
            return
        xi, yi = int(x), int(y)
        sy, sx = study.spacing_mm
        value = float(study.image.values[yi, xi])
        self.setText(f"x {xi}, y {yi} px  ·  {xi * sx:.1f}, {yi * sy:.1f} mm  ·  value {value:g}")

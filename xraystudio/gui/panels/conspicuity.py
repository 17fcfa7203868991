"""How conspicuous a stamped nodule is drawn: a JSRT subtlety grade, the typical contrast of its
size, or the model's own, turned into a target contrast by the chosen model's layout sampler.

Why: left blank, the contrast made the edit model draw a faint haze nobody saw, and nothing in
the window said how visible a nodule should be. The rule (which contrast a grade means at a
size) is the core's (``LayoutSampler.typical_contrast``), so the CLI gives the same numbers.
"""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QComboBox, QLabel, QVBoxLayout, QWidget

from xraystudio.synthesis.layout_sampler import (
    MODEL_OWN,
    TYPICAL,
    LayoutSampler,
    parse_stamp_contrast,
    stamp_contrast,
)

GRADES = ((TYPICAL, "Typical"), (1, "1 · extremely subtle"),
          (2, "2 · very subtle"), (3, "3 · subtle"), (4, "4 · relatively obvious"),
          (5, "5 · obvious"), (MODEL_OWN, "Model's own (no target)"))


def parse_contrast(text: str, sampler: LayoutSampler | None, diameter_mm: float) -> float | None:
    """A cell of the nodule list's C % column: a percentage, ``g1``-``g5`` (a JSRT grade at the
    nodule's size), ``typical``, or blank / ``model`` (the model's own). ValueError otherwise."""
    if not text.strip():
        return None
    return stamp_contrast(parse_stamp_contrast(text), sampler, diameter_mm)


class ConspicuityChooser(QWidget):
    """The grade new nodules are stamped at, and what contrast that is at the stamp size."""

    changed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.sampler: LayoutSampler | None = None
        self.diameter_mm = 12.0
        self.grade = QComboBox()
        self.grade.setObjectName("noduleGrade")
        for value, label in GRADES:
            self.grade.addItem(label, value)
        # As narrow as the dock allows (the longest label would widen the whole window).
        self.grade.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.grade.setMinimumContentsLength(6)
        self.grade.setToolTip("How conspicuous new nodules are drawn in edit mode: a JSRT "
                              "subtlety grade or the typical real nodule of their size, from "
                              "the model's layout sampler; the C % column changes one nodule")
        self.note = QLabel()
        self.note.setObjectName("gradeNote")
        self.note.setWordWrap(True)
        self.note.setStyleSheet("color: palette(mid);")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.grade)
        layout.addWidget(self.note)
        self.grade.currentIndexChanged.connect(self._update)
        self._update()

    def set_sampler(self, sampler: LayoutSampler | None) -> None:
        self.sampler = sampler
        self._update()

    def set_diameter(self, diameter_mm: float) -> None:
        self.diameter_mm = diameter_mm
        self._update()

    def contrast_for(self, diameter_mm: float) -> float | None:
        """The target contrast of a new nodule of ``diameter_mm`` (None: the model's own)."""
        value = self.grade.currentData()
        word = value if isinstance(value, str) else f"g{value}"
        return stamp_contrast(word, self.sampler, diameter_mm)

    def _update(self) -> None:
        contrast = self.contrast_for(self.diameter_mm)
        if contrast is not None:
            self.note.setText(f"{100 * contrast:.2f} % contrast at {self.diameter_mm:g} mm")
            self.note.setToolTip("The contrast real nodules of this size and grade have "
                                 "(the model's layout sampler); edit mode draws new ones to it")
        elif self.grade.currentData() == MODEL_OWN:
            self.note.setText("No target: often faint")
            self.note.setToolTip("New nodules are drawn as the model draws them")
        else:
            self.note.setText("No layout sampler: no target")
            self.note.setToolTip("The chosen model has no layout sampler: new nodules are drawn "
                                 "as the model draws them")
        self.changed.emit()

"""What the user must know about the open film, kept until read and recorded with its results.

Two warnings change what a result means: a pixel spacing the file does not give (every size in
mm, every nodule stamped, rests on the assumed value) and a film the chest check rejects (a
knee, a lateral view: the built-in models were made for frontal chests, so "nodules" stamped on
it and images made from it are cartoons). The controller shows them on the canvas's banner,
writes them into the provenance of every result made while the film is open, and asks before
generating, accepting or exporting work from a film that failed the chest check.
"""

from __future__ import annotations

from PySide6.QtCore import QObject
from PySide6.QtWidgets import QWidget

from xraystudio import chest_check
from xraystudio.gui.dialogs import chest_confirm
from xraystudio.gui.dialogs.chest_confirm import CHEST
from xraystudio.gui.panels.warning_banner import WarningBanner
from xraystudio.study import Study

SPACING = "assumed_spacing"


class FilmWarnings(QObject):
    """The warnings of the open film: shown on ``banner``, returned for provenance."""

    def __init__(self, banner: WarningBanner, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.banner = banner
        self.warnings: dict[str, str] = {}  # kind -> text, dismissed ones included
        self.image = None  # the film they are about

    def study_opened(self, study: Study | None) -> None:
        """A new film is shown: its own warnings replace the last one's (the same film with
        other masks keeps its warnings)."""
        image = study.image if study is not None else None
        if image is self.image:
            return
        self.image = image
        self.warnings = {}
        self.banner.clear()
        if study is None:
            return
        image = study.image
        if image.spacing_source == "default":
            self.add(SPACING, f"Pixel spacing assumed {study.spacing_mm[0]:g} mm: the file "
                     "records none, so every size in mm (nodules, brush, areas) rests on this "
                     "guess.")
        labels = chest_check.check(image)  # the file's own labels: cheap, no model
        if labels.warning:
            self.add(CHEST, labels.warning)

    def add(self, kind: str, text: str) -> None:
        self.warnings[kind] = text
        self.banner.set_warning(kind, text)

    @property
    def chest_warning(self) -> str | None:
        return self.warnings.get(CHEST)

    def records(self) -> list[dict[str, str]]:
        """The warnings as a result's provenance records them (``provenance["warnings"]``)."""
        return [{"kind": kind, "text": text} for kind, text in self.warnings.items()]

    def confirm(self, parent: QWidget | None, action: str) -> bool:
        """True when ``action`` may go on: the film passed the chest check, or the user says so."""
        reason = self.chest_warning
        return reason is None or chest_confirm.confirm_unsupported(parent, reason, action)

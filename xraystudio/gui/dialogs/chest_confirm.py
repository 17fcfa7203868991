"""The question asked before work goes on from a film the chest check rejected, and the test of
a result's provenance for it (shared by generation, the gallery's Accept and Export)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from PySide6.QtWidgets import QMessageBox, QWidget

#: The ``kind`` of the chest-check warning in a result's ``provenance["warnings"]``.
CHEST = "chest_check"


def failed_chest_check(provenance: Mapping[str, Any]) -> str | None:
    """The chest-check warning a result's provenance records, if its film failed the check."""
    for warning in provenance.get("warnings") or []:
        if isinstance(warning, Mapping) and warning.get("kind") == CHEST:
            return str(warning.get("text", ""))
    return None


def confirm_unsupported(parent: QWidget | None, reason: str, action: str) -> bool:
    """Ask before ``action`` ("Generate") on work from a film that failed the chest check.
    Module level, so tests and other front ends can answer without a user."""
    answer = QMessageBox.question(
        parent, "Not a frontal chest radiograph?",
        f"{reason}.\n\n{action} anyway? Images and nodules made from it are not realistic "
        "chest radiographs.",
        QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
        QMessageBox.StandardButton.No)
    return answer == QMessageBox.StandardButton.Yes

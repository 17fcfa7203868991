"""What a project records: its studies, its results with their curation, and the events a view
follows. Plain data, shared by the project, its exports and the GUI's views of it."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Mapping
from typing import Any, Literal, NamedTuple

#: Curation states of a result; "none" means not decided yet.
DECISIONS: tuple[str, ...] = ("none", "accepted", "rejected")

#: What changed, for :class:`ProjectEvent`.
EventKind = Literal[
    "study_added", "masks_updated", "result_added", "result_changed", "sweep_saved", "saved",
    "moved",
]


def now() -> str:
    """The time a record is stamped with: UTC, to the second, ISO 8601."""
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


@dataclasses.dataclass
class StudyRecord:
    """What a project keeps about a study: where its source is, and what it looked like."""

    id: str
    name: str
    source: str  # absolute path when last saved
    source_relative: str | None  # relative to the project folder (None across drives)
    format: str  # "DICOM", "PNG", ... as the image loader reported it
    shape: tuple[int, int]
    spacing_mm: tuple[float, float]
    pixel_hash: str
    added: str

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> StudyRecord:
        return cls(
            id=str(d["id"]), name=str(d["name"]), source=str(d["source"]),
            source_relative=d.get("source_relative"), format=str(d.get("format", "")),
            shape=(int(d["shape"][0]), int(d["shape"][1])),
            spacing_mm=(float(d["spacing_mm"][0]), float(d["spacing_mm"][1])),
            pixel_hash=str(d.get("pixel_hash", "")), added=str(d.get("added", "")),
        )

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["shape"], d["spacing_mm"] = list(self.shape), list(self.spacing_mm)
        return d


@dataclasses.dataclass
class ResultRecord:
    """A generated image's record: provenance plus the user's curation of it."""

    id: str
    study_id: str
    provenance: dict[str, Any]
    mask_hash: str
    created: str
    decision: str = "none"
    starred: bool = False
    note: str = ""

    @property
    def model(self) -> str | None:
        return (self.provenance.get("model") or {}).get("name")

    @property
    def parameters(self) -> dict[str, Any]:
        return dict(self.provenance.get("parameters") or {})

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ResultRecord:
        decision = str(d.get("decision", "none"))
        if decision not in DECISIONS:
            raise ValueError(f"unknown decision {decision!r}")
        return cls(
            id=str(d["id"]), study_id=str(d["study_id"]), provenance=dict(d["provenance"]),
            mask_hash=str(d["mask_hash"]), created=str(d.get("created", "")), decision=decision,
            starred=bool(d.get("starred", False)), note=str(d.get("note", "")),
        )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class ProjectEvent(NamedTuple):
    """A change a view may need to show; ``id`` is the study, result or sweep concerned (None
    for "saved" and "moved", which concern the whole project)."""

    kind: EventKind
    id: str | None = None


Listener = Callable[[ProjectEvent], None]

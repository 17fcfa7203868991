"""A project's sweeps of the conditioning explorer: one small JSON each (``sweeps/<swid>.json``).

A sweep record is rewritten atomically as its cells finish, so a sweep interrupted by a crash
reopens with the cells it had. Records are plain JSON (``explore.sweep.SweepRecord.to_dict()``);
they are handed out as copies, so a caller cannot change the stored one by accident.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from xraystudio.curation.project_folder import visible
from xraystudio.errors import ProjectError
from xraystudio.io.atomic import write_text
from xraystudio.io.json_files import copy_json, read_json_object

log = logging.getLogger(__name__)


class SweepStore:
    """The sweep records of a project's ``sweeps`` folder, read once and written through."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._records = _read_sweeps(folder)

    def save(self, record: Mapping[str, Any]) -> str:
        """Store (or update) ``record``; returns its id, given here when the record has none."""
        data = copy_json(dict(record))
        if not data.get("id"):
            numbers = [int(k[1:]) for k in self._records if k[1:].isdigit()]
            numbers += [int(p.stem[1:]) for p in self.folder.glob("s*.json")
                        if p.stem[1:].isdigit()]
            data["id"] = f"s{max(numbers, default=0) + 1:04d}"
        sweep_id = str(data["id"])
        if not re.fullmatch(r"[A-Za-z0-9_-]+", sweep_id):
            raise ProjectError(f"bad sweep id {sweep_id!r}")
        write_text(self.folder / f"{sweep_id}.json", json.dumps(data, indent=2) + "\n")
        self._records[sweep_id] = data
        return sweep_id

    def records(self, study: str | None = None) -> list[dict[str, Any]]:
        """Sweep records in creation order, of one study or all."""
        return [copy_json(d) for d in self._records.values()
                if study is None or d.get("study") == study]

    def record(self, sweep_id: str) -> dict[str, Any]:
        """A copy of the record ``sweep_id``; KeyError when there is none."""
        return copy_json(self._records[sweep_id])


def _read_sweeps(folder: Path) -> dict[str, dict[str, Any]]:
    sweeps: dict[str, dict[str, Any]] = {}
    for path in visible(folder, "*.json"):
        try:
            data = read_json_object(path)
        except (OSError, ValueError) as exc:
            log.warning("cannot read sweep record %s: %s", path, exc)
            continue
        if data.get("id") == path.stem:
            sweeps[path.stem] = data
        else:
            log.warning("skipped malformed sweep record %s", path)
    return sweeps

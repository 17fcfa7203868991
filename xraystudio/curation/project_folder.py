"""The project folder's format: where each part of a project lives and how it is read back.

Layout::

    PROJECT/project.json                      name, format version, the study records
    PROJECT/session.json                      exists while the project is open (pid, last action)
    PROJECT/studies/<sid>/masks.npz           the study's current masks and nodule layout
    PROJECT/studies/<sid>/masks/<hash>.npz    the masks a result was made from (content-addressed)
    PROJECT/results/<rid>.png                 the synthetic image, 16-bit grey
    PROJECT/results/<rid>.json                provenance, study, mask hash, decision, star, note
    PROJECT/results/<rid>.edit.npz            edit mode: which pixels changed and their values
    PROJECT/sweeps/<swid>.json                a sweep: axes, settings, its cells' figures and the
                                              result id of each finished cell (explore.sweep)

Why many small files: each user action rewrites only what it changes (one decision is one small
JSON) atomically, so saving after every action stays cheap with thousands of results, and a killed
process loses at most the action in flight. A result's JSON is written last (after its PNG and
masks): it is the commit point, so a PNG without a JSON is a leftover of an interrupted action,
never a half result. Names starting with a dot are temporaries of a write in progress
(:mod:`xraystudio.io.atomic`), never part of the project.

Source files are referenced by absolute path and by path relative to the project folder (the
relative one is tried first, so a project moved together with its sources still finds them).
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from xraystudio.curation.records import ResultRecord, StudyRecord, now
from xraystudio.errors import ProjectError
from xraystudio.io.atomic import write_text
from xraystudio.io.json_files import read_json_object

log = logging.getLogger(__name__)

FORMAT = "xraystudio-project"
VERSION = 1
PROJECT_JSON = "project.json"
STUDIES = "studies"
RESULTS = "results"
#: Sweeps of the conditioning explorer, one JSON each (``sweeps/<swid>.json``).
SWEEPS = "sweeps"


def read_project_file(folder: Path) -> tuple[dict[str, Any], dict[str, StudyRecord]]:
    """``project.json`` of ``folder``: its fields and its study records, checked."""
    path = folder / PROJECT_JSON
    meta = _read_json(path, what="project file")
    if meta.get("format") != FORMAT:
        raise ProjectError(f"{path} is not an xraystudio project file")
    if int(meta.get("version", 0)) > VERSION:
        raise ProjectError(
            f"{folder} was saved by a newer xraystudio (project version {meta['version']})"
        )
    try:
        studies = {s["id"]: StudyRecord.from_dict(s) for s in meta.get("studies", [])}
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise ProjectError(f"malformed study record in {path}: {exc}") from exc
    return meta, studies


def write_project_file(path: Path, name: str, created: str,
                       studies: Iterable[StudyRecord]) -> None:
    meta = {
        "format": FORMAT, "version": VERSION, "name": name, "created": created,
        "saved": now(), "studies": [s.to_dict() for s in studies],
    }
    write_text(path, json.dumps(meta, indent=2) + "\n")


def read_results(folder: Path, studies: Mapping[str, StudyRecord]
                 ) -> tuple[dict[str, ResultRecord], list[Path]]:
    """The result records in ``folder`` by id, and the records that could not be used."""
    results: dict[str, ResultRecord] = {}
    unreadable: list[Path] = []
    for path in visible(folder, "*.json"):
        try:
            record = ResultRecord.from_dict(read_json_object(path))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("cannot read result record %s: %s", path, exc)
            unreadable.append(path)
            continue
        if record.study_id not in studies:
            log.warning("result %s belongs to unknown study %s", record.id, record.study_id)
            unreadable.append(path)
            continue
        results[record.id] = record
    return dict(sorted(results.items())), unreadable


def write_result_record(folder: Path, record: ResultRecord) -> None:
    """A result's JSON: written last, it commits the result."""
    write_text(folder / f"{record.id}.json", json.dumps(record.to_dict(), indent=2) + "\n")


def masks_file(folder: Path, study_id: str, mask_hash: str | None = None) -> Path:
    """A study's current masks, or (with ``mask_hash``) the snapshot a result was made from."""
    base = folder / STUDIES / study_id
    return base / "masks.npz" if mask_hash is None else base / "masks" / f"{mask_hash}.npz"


def new_study_id(folder: Path, name: str, taken: set[str]) -> str:
    """A folder-safe id after ``name``, numbered where a study (or a leftover folder) has it."""
    base = re.sub(r"[^A-Za-z0-9_-]+", "_", name).strip("_-")[:40] or "study"
    taken = taken | {p.name for p in (folder / STUDIES).glob("*") if p.is_dir()}
    candidate, n = base, 2
    while candidate in taken:
        candidate, n = f"{base}-{n}", n + 1
    return candidate


def new_result_id(folder: Path, taken: Mapping[str, Any]) -> str:
    # Stems of stray PNGs count too: an id is never reused for a different image.
    numbers = [int(m.group(1)) for p in (folder / RESULTS).glob("r*.*")
               if (m := re.fullmatch(r"r(\d+)", p.stem))]
    numbers += [int(r[1:]) for r in taken if r[1:].isdigit()]
    return f"r{max(numbers, default=0) + 1:05d}"


def relative_to(path: Path, folder: Path) -> str | None:
    """``path`` relative to ``folder`` in POSIX form; None where there is no such path."""
    try:
        return Path(os.path.relpath(path, folder)).as_posix()
    except ValueError:  # another drive on Windows
        return None


def visible(folder: Path, pattern: str) -> Iterator[Path]:
    """The files of ``folder`` matching ``pattern``, sorted, without temporaries (dot files)."""
    return (p for p in sorted(folder.glob(pattern)) if not p.name.startswith("."))


def _read_json(path: Path, what: str) -> dict[str, Any]:
    if not path.is_file():
        raise ProjectError(f"{path.parent} is not an xraystudio project (no {path.name})")
    try:
        return read_json_object(path)
    except (OSError, ValueError) as exc:
        raise ProjectError(f"cannot read {what} {path}: {exc}") from exc

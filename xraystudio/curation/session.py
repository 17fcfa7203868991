"""The session mark of an open project: one process at a time, and crash recovery.

``session.json`` exists while a project is open, with the process that holds it and the last
action it saved. Closing removes it, so finding it on opening means either that another live
xraystudio holds the project (refused), or that the last session ended without closing (a
crash, a kill): then every action up to the mark's last one is in the project already, and what
an interrupted action left (temporaries, an image whose record was never written, masks of a
study never added) is listed for :func:`remove_leftovers`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from xraystudio.curation.project_folder import RESULTS, STUDIES, visible
from xraystudio.curation.records import ResultRecord, StudyRecord, now
from xraystudio.curation.result_files import EDIT_SUFFIX
from xraystudio.errors import ProjectError
from xraystudio.io.atomic import write_text
from xraystudio.io.json_files import read_json_object

log = logging.getLogger(__name__)

SESSION_JSON = "session.json"


@dataclasses.dataclass
class Recovery:
    """What opening a project that was not closed cleanly found.

    Every action up to ``last_action`` is in the project already; ``leftovers`` are files of an
    interrupted action (temporary files, an image whose record was never written, masks of a
    study never added) that :meth:`Project.restore` deletes; ``unreadable`` are result records
    that could not be parsed (skipped, left in place).
    """

    last_action: str | None
    last_time: str | None
    leftovers: list[Path]
    unreadable: list[Path]


def recover(folder: Path, studies: Mapping[str, StudyRecord],
            results: Mapping[str, ResultRecord], unreadable: list[Path]) -> Recovery | None:
    """None when the project was closed cleanly; else what its last session left.

    Raises :class:`ProjectError` when another live process on this machine has it open.
    """
    session_file = folder / SESSION_JSON
    if not session_file.exists():
        return None
    session = _read_session(session_file)
    pid = session.get("pid")
    if (session.get("host") == socket.gethostname() and isinstance(pid, int)
            and pid != os.getpid() and _pid_alive(pid)):
        raise ProjectError(
            f"{folder} is open in another xraystudio (process {pid}); close it there first"
        )
    recovery = Recovery(
        last_action=session.get("last_action"), last_time=session.get("time"),
        leftovers=_leftovers(folder, studies, results), unreadable=unreadable,
    )
    log.warning("project %s was not closed cleanly (last action: %s)",
                folder, recovery.last_action)
    return recovery


def remove_leftovers(recovery: Recovery) -> None:
    for path in recovery.leftovers:
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def write_session(folder: Path, action: str) -> None:
    """Mark ``folder`` as open by this process, ``action`` being the last one saved."""
    session = {"pid": os.getpid(), "host": socket.gethostname(), "last_action": action,
               "time": now()}
    write_text(folder / SESSION_JSON, json.dumps(session) + "\n")


def end_session(folder: Path) -> None:
    """Remove the mark: the project was closed cleanly."""
    (folder / SESSION_JSON).unlink(missing_ok=True)


def _pid_alive(pid: int) -> bool:
    # os.kill(pid, 0) only probes on POSIX; on Windows it would terminate the process.
    if os.name != "posix":
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _read_session(path: Path) -> dict[str, Any]:
    try:
        return read_json_object(path)
    except (OSError, ValueError):
        return {}


def _leftovers(folder: Path, studies: Mapping[str, StudyRecord],
               results: Mapping[str, ResultRecord]) -> list[Path]:
    """Files an interrupted action left: temporaries, unrecorded images, unrecorded studies."""
    found = [p for p in folder.rglob(".*.tmp*") if p.is_file()]
    found += [p for p in visible(folder / RESULTS, "*.png") if p.stem not in results]
    found += [p for p in visible(folder / RESULTS, f"*{EDIT_SUFFIX}")
              if p.name[: -len(EDIT_SUFFIX)] not in results]
    found += [p for p in visible(folder / STUDIES, "*") if p.is_dir() and p.name not in studies]
    return found

"""The small JSON records the app keeps (project, session, masks' nodules, results, sweeps)."""

from __future__ import annotations

import json
import os
from typing import Any


def read_json_object(path: str | os.PathLike) -> dict[str, Any]:
    """The JSON object stored in ``path``.

    Raises ``OSError`` when it cannot be read and ``ValueError`` when it is not JSON or holds
    something other than an object: every caller keeps its records in objects, so anything
    else is a damaged file, told apart in the message.
    """
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    if not isinstance(data, dict):
        raise ValueError(f"{os.fspath(path)} does not hold a JSON object")
    return data


def copy_json(data: Any) -> Any:
    """A deep copy of JSON data, as it would read back from its file: a record kept or handed
    out this way shares nothing with its caller's objects and holds only what JSON stores."""
    return json.loads(json.dumps(data))

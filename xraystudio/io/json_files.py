"""Reading the small JSON files the app keeps (project, session, mask and sweep records)."""

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

"""Where the built-in models and the sample study are.

An installed wheel carries them as package data, ``xraystudio/_resources`` (setup.py copies the
top-level ``resources/`` there at build time); a source checkout or editable install has them
at the top level beside the package. ``XRAYSTUDIO_RESOURCES`` overrides both.
"""

from __future__ import annotations

import os
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def resources_dir() -> Path:
    """The resources folder: $XRAYSTUDIO_RESOURCES, else the packaged copy, else the checkout's."""
    env = os.environ.get("XRAYSTUDIO_RESOURCES")
    if env:
        return Path(env)
    packaged = _PACKAGE / "_resources"
    if packaged.is_dir():
        return packaged
    return _PACKAGE.parent / "resources"

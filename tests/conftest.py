"""Shared fixtures. Tests make their own small data; those that use ../shared skip without it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

SHARED_DATA = Path(
    os.environ.get("XRAYSTUDIO_SHARED_DATA", Path(__file__).resolve().parents[1] / ".." / "shared" / "data")
).resolve()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data``, or a clean skip where this checkout has none."""
    if not (SHARED_DATA / "jsrt" / "cases.csv").is_file():
        pytest.skip(f"needs the shared data folder ({SHARED_DATA})")
    return SHARED_DATA

"""A small fixed-seed run of benchmarks/fuzz_open.py (the nightly-style harness runs thousands
of cases): every mutated file opens or gives ImageLoadError; no other exception, no hang, no
dead worker, bounded memory."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import fuzz_open  # noqa: E402


def test_mutations_are_deterministic() -> None:
    import numpy as np

    seeds = fuzz_open.make_seeds()
    assert len(seeds) >= 15
    a = fuzz_open.mutate(seeds[0][1], np.random.default_rng(5))
    b = fuzz_open.mutate(seeds[0][1], np.random.default_rng(5))
    assert a == b and a[0] != seeds[0][1]


@pytest.mark.slow
def test_fixed_seed_fuzz_run() -> None:
    summary = fuzz_open.fuzz(400, seed=14, timeout=20.0, memory_mb=3072, log=lambda *a: None)
    assert summary["bad"] == 0, summary["failures"][:5]
    assert summary["outcomes"].get("opened", 0) > 20  # the mutations are not all fatal
    assert summary["peak_rss_mb"] < 1500

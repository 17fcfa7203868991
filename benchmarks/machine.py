"""What machine a benchmark figure was measured on (the CPU model, not just 'x86_64')."""

from __future__ import annotations

import platform
from pathlib import Path


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo where there is one, with the bf16 flags that
    decide how fast torch runs on it."""
    info = Path("/proc/cpuinfo")
    if info.is_file():
        text = info.read_text(errors="replace")
        name = next((line.split(":", 1)[1].strip() for line in text.splitlines()
                     if line.startswith("model name")), "")
        flags = sorted({f for f in ("amx_bf16", "avx512_bf16") if f in text})
        if name:
            return name + (f" ({', '.join(flags)})" if flags else "")
    return platform.processor() or platform.machine()

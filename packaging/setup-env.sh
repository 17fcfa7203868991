#!/usr/bin/env bash
# Create (or reuse) .venv and install xraystudio into it. Used by run-app.sh and run-tests.sh.
# torch is installed first and pinned: on CPU machines an unpinned torch pulls several GB of CUDA.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
py="${PYTHON:-python3}"
extra="${1:-}"
if [ ! -x .venv/bin/python ]; then
    "$py" -m venv .venv
fi
stamp=".venv/.xraystudio-installed${extra:+-$extra}"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    .venv/bin/python -m pip install -q --upgrade pip
    .venv/bin/python -m pip install -q "torch==${XRAYSTUDIO_TORCH:-2.13.0}"
    .venv/bin/python -m pip install -q -e ".${extra:+[$extra]}"
    touch "$stamp"
fi

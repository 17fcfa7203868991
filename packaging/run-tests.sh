#!/usr/bin/env bash
# One command: install xraystudio with its test extras into .venv and run the test suite offscreen.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bash "$root/packaging/setup-env.sh" test
cd "$root"
export QT_QPA_PLATFORM="${QT_QPA_PLATFORM:-offscreen}" HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
exec .venv/bin/python -m pytest "$@"

#!/usr/bin/env bash
# One command: install xraystudio into .venv (first run only) and start the app.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bash "$root/packaging/setup-env.sh"
exec "$root/.venv/bin/xraystudio" "$@"

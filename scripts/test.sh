#!/usr/bin/env bash
# The test command: builds .venv (Python 3.10) when missing, then runs ruff and the pytest suite.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/venv.sh"
cd "$ROOT"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"
.venv/bin/ruff check .
.venv/bin/python -m pytest "$@"

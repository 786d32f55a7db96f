#!/usr/bin/env bash
# The main job: builds .venv (Python 3.10) when missing, then runs the embedded model through the whole chain.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/venv.sh"
cd "$ROOT"
exec .venv/bin/spikereg-run "$@"

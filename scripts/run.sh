#!/usr/bin/env bash
# The main job: builds .venv (Python 3.10) when missing, then runs the embedded model through the whole chain.
# Options are spikereg-run's, e.g. bash scripts/run.sh -o /tmp/run --engine reference --input-shape 16 16 16
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/venv.sh"
cd "$ROOT"
exec .venv/bin/spikereg-run "$@"

#!/usr/bin/env bash
# Create .venv with Python 3.10 (lava-nc 0.10 / lava-dl 0.6 fail on 3.11) and install the project into it.
# Idempotent: a .venv whose stamp matches pyproject.toml, scripts/requirements-nodeps.txt and this script is reused.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
STAMP="$VENV/.spikereg-stamp"

find_python310() {
    if command -v python3.10 >/dev/null 2>&1 && python3.10 -c 'import sys; assert sys.version_info[:2] == (3, 10)' 2>/dev/null; then
        command -v python3.10; return
    fi
    if command -v pyenv >/dev/null 2>&1; then
        local root; root="$(pyenv root)"
        for v in "$root"/versions/3.10.*; do
            if [ -x "$v/bin/python" ]; then echo "$v/bin/python"; return; fi
        done
    fi
    for v in "$HOME"/.pyenv/versions/3.10.*; do
        if [ -x "$v/bin/python" ]; then echo "$v/bin/python"; return; fi
    done
    echo "error: Python 3.10 not found (need python3.10 on PATH or pyenv's 3.10); lava-nc 0.10 requires >=3.10,<3.11" >&2
    return 2
}

want="$(cat "$ROOT/pyproject.toml" "$ROOT/scripts/requirements-nodeps.txt" "$ROOT/scripts/venv.sh" | sha256sum | cut -d' ' -f1)"
if [ -x "$VENV/bin/python" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ]; then
    exit 0
fi
PY="$(find_python310)"
echo "setting up $VENV with $PY (first run: about 2-5 minutes, 5.6 GB)" >&2
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet -e "$ROOT[test,partitioners]"
"$VENV/bin/python" -m pip install --quiet --no-deps -r "$ROOT/scripts/requirements-nodeps.txt"
echo "$want" > "$STAMP"

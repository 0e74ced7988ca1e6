#!/usr/bin/env bash
# Create .venv with everything Legion needs, pinned by constraints.txt. Safe to run again: it only adds
# what is missing. Used by the README's two commands and by CI.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if ! command -v uv >/dev/null 2>&1; then
  "$PYTHON" -m pip install --quiet uv
fi
if [ ! -x .venv/bin/python ]; then
  uv venv --quiet --python "$PYTHON" .venv
fi
uv pip install --quiet --python .venv/bin/python -c constraints.txt -e '.[dev]'

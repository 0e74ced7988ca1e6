#!/usr/bin/env bash
# Set up, then run every check CI runs: lint, types, import layers and the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
bash scripts/services.sh
.venv/bin/ruff check legion tests examples benchmarks
.venv/bin/ruff format --check legion tests examples benchmarks
.venv/bin/mypy
.venv/bin/lint-imports
.venv/bin/python -m pytest "$@"

#!/usr/bin/env bash
# The main job: set up, train the census income example on the UCI Adult data, and serve it.
# It prints the address and a ready-to-paste curl call; Ctrl-C stops the server.
#   bash scripts/quickstart.sh [--port N]   (default 5000; 0 picks a free port)
set -euo pipefail
cd "$(dirname "$0")/.."
PORT=5000
if [ "${1:-}" = "--port" ]; then PORT=$2; fi

bash scripts/setup.sh
.venv/bin/python examples/census_income/train.py --output examples/census_income/build/model
exec .venv/bin/legion serve examples/census_income/build/model --host 127.0.0.1 --port "$PORT"

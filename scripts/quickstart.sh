#!/usr/bin/env bash
# The main job: set up, then `legion up` — the management API with the local runtime, the census income example
# trained on the UCI Adult data, packaged and deployed with 2 replicas — and print a ready-to-paste curl call.
# Ctrl-C stops the platform (and its replicas).
#   bash scripts/quickstart.sh [legion up options, e.g. --port 0 --data-dir /tmp/legion --dev]
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
exec .venv/bin/legion up "$@"

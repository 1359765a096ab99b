#!/usr/bin/env bash
# Install (first time) and launch RLHF Lab at http://127.0.0.1:7860
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python app.py "$@"

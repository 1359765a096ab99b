#!/usr/bin/env bash
# Install (first time) and run the whole test suite: unit, integration (real default model), browser.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --dev
exec .venv/bin/python -m pytest "$@"

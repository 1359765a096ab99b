#!/usr/bin/env bash
# Style: ruff's lint and format check on the whole tree (configured in ruff.toml). Fix with
#   .venv/bin/ruff check --fix . && .venv/bin/ruff format .
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --dev
.venv/bin/ruff check .
.venv/bin/ruff format --check .

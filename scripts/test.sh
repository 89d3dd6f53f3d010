#!/usr/bin/env bash
# Set up .venv (idempotent) and run the whole check: lint, types, then the test suite on the
# real vLLM CPU engine. Extra arguments go to pytest (e.g. `-x -q -k stage2`).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash scripts/setup.sh
.venv/bin/ruff check src tests bench scripts
.venv/bin/ruff format --check src tests bench scripts
.venv/bin/mypy
exec .venv/bin/python -m pytest "$@"

#!/usr/bin/env bash
# Set up .venv (idempotent) and caption the bundled examples/ with the built-in tiny model.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash scripts/setup.sh
exec .venv/bin/vlmcap caption examples/ --model tiny-qwen2.5-vl --output-dir out/demo --overwrite "$@"

#!/usr/bin/env bash
# Train the tiny model into src/vlmcap/tiny/assets/tiny_vlm on 2 CPU threads, then
# score it on held-out synthetic media through vLLM (bench/results/tiny_eval.json).
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/python -m vlmcap.tiny.train "$@"
.venv/bin/python -m vlmcap.tiny.evaluate

#!/usr/bin/env bash
# Install Debian's Chromium (/usr/bin/chromium) for the browser test of the QA report page
# (tests/qa/test_report.py), which must not skip in CI. Idempotent and quiet: where Chromium is
# there it returns at once; otherwise apt's output is shown only if the install fails.
set -euo pipefail
chromium=/usr/bin/chromium
if [[ -x "$chromium" ]]; then
    exit 0
fi
as_root=()
if [[ "$(id -u)" -ne 0 ]]; then
    as_root=(sudo)
fi
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
export DEBIAN_FRONTEND=noninteractive
if ! { "${as_root[@]}" apt-get update -qq && "${as_root[@]}" apt-get install -y -qq chromium; } >"$log" 2>&1; then
    cat "$log" >&2
    echo "install_chromium: apt-get install chromium failed" >&2
    exit 1
fi
echo "install_chromium: $("$chromium" --version 2>/dev/null || echo "$chromium")"

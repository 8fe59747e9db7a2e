#!/usr/bin/env bash
# Set everything up, then run the two-tab demo headless: two Chromium tabs, each running the
# transport in Pyodide, exchange 600 frames of inputs over WebRTC (and the Socket.IO relay).
# Extra arguments go to the demo, e.g. `bash scripts/demo.sh --frames 1200`.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

bash scripts/setup.sh
exec scripts/netns.sh .venv/bin/python -m p2p_demo --headless --frames 600 \
    --json reports/demo.json "$@"

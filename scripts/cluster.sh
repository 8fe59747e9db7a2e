#!/usr/bin/env bash
# Several server processes behind nginx, each room on one of them (see p2p_server/cluster.py):
#   bash scripts/cluster.sh --processes 2 --port 8000 -- --token-secret-file secret.txt
# Ctrl-C stops every process it started.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/setup.sh
exec .venv/bin/python -m p2p_server.cluster "$@"

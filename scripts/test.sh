#!/usr/bin/env bash
# Set everything up, then run every check: lint, types, the CPython tests and the browser tests.
# The tests run inside a loopback-only network namespace (scripts/netns.sh), so the browsers,
# the server and coturn can only talk over 127.0.0.1.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

bash scripts/setup.sh

echo "== ruff" >&2
.venv/bin/ruff check py_src tests playwright_tests benchmarks
.venv/bin/ruff format --check py_src tests playwright_tests benchmarks
echo "== mypy" >&2
.venv/bin/mypy
echo "== pytest (CPython and browser tests)" >&2
exec scripts/netns.sh .venv/bin/python -m pytest "$@"

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
if [[ $# -gt 0 ]]; then
    echo "== pytest $*" >&2
    exec scripts/netns.sh .venv/bin/python -m pytest "$@"
fi
# The CPython tests (about 2.5 min) run beside the browser tests (about 9.5 min), each suite in
# its own namespace: the browser tests wait on pages and timers more than they compute, so the
# two together take little more than the browser tests alone. The CPython tests' output follows
# the browser tests'; either failing fails the run.
echo "== pytest: the CPython tests beside the browser tests" >&2
cpython_log="$(mktemp)"
scripts/netns.sh .venv/bin/python -m pytest tests >"$cpython_log" 2>&1 &
cpython_pid=$!
# An interrupted run stops both suites (a background job ignores the terminal's Ctrl-C).
trap 'kill "$cpython_pid" 2>/dev/null || true; rm -f "$cpython_log"' EXIT
browser_status=0
scripts/netns.sh .venv/bin/python -m pytest playwright_tests || browser_status=$?
cpython_status=0
wait "$cpython_pid" || cpython_status=$?
echo "== pytest tests (run beside the browser tests)" >&2
cat "$cpython_log"
if [[ $browser_status -ne 0 ]]; then
    exit "$browser_status"
fi
exit "$cpython_status"

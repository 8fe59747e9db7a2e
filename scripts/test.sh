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
# Three suites, each in its own namespace. The browser tests wait on pages and timers more than
# they compute, so they run in two halves: the first beside the CPython tests (about 4 min), the
# second once those are done, beside the rest of the first. Files not named in the first half
# run in the second. Each suite's output follows as it ends; any failing fails the run.
FIRST_HALF=(
    playwright_tests/test_failures.py
    playwright_tests/test_js_api.py
    playwright_tests/test_lossy.py
    playwright_tests/test_mesh.py
    playwright_tests/test_mug_server.py
    playwright_tests/test_ping_channel.py
    playwright_tests/test_reload.py
    playwright_tests/test_rollback.py
    playwright_tests/test_stall_rtt.py
)
second_half=(playwright_tests)
for file in "${FIRST_HALF[@]}"; do
    second_half+=("--ignore=$file")
done
echo "== pytest: the CPython tests and the first half of the browser tests" >&2
cpython_log="$(mktemp)"
first_log="$(mktemp)"
scripts/netns.sh .venv/bin/python -m pytest tests >"$cpython_log" 2>&1 &
cpython_pid=$!
scripts/netns.sh .venv/bin/python -m pytest "${FIRST_HALF[@]}" >"$first_log" 2>&1 &
first_pid=$!
# An interrupted run stops every suite (a background job ignores the terminal's Ctrl-C).
trap 'kill "$cpython_pid" "$first_pid" 2>/dev/null || true; rm -f "$cpython_log" "$first_log"' EXIT
cpython_status=0
wait "$cpython_pid" || cpython_status=$?
echo "== pytest tests" >&2
cat "$cpython_log"
echo "== pytest: the second half of the browser tests (beside the rest of the first)" >&2
second_status=0
scripts/netns.sh .venv/bin/python -m pytest "${second_half[@]}" || second_status=$?
first_status=0
wait "$first_pid" || first_status=$?
echo "== pytest: the first half of the browser tests" >&2
cat "$first_log"
for status in "$cpython_status" "$first_status" "$second_status"; do
    if [[ $status -ne 0 ]]; then
        exit "$status"
    fi
done

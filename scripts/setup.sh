#!/usr/bin/env bash
# Idempotent set-up of everything the demo and the tests need, from the package registries only:
# Debian's chromium and coturn, a project virtualenv with the three packages (editable) and the dev
# extra, the pinned npm browser assets, the micropip wheel Pyodide's lock pins, and the two wheels
# the pages install (p2p_transport, p2p_demo), built from this working tree.
# Re-running it is cheap: each step checks what is already there.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

PYTHON="${PYTHON:-python3}"
VENV="$ROOT/.venv"
WHEELS="$ROOT/build/wheels"
# Pinned to the version pyodide 314.0.7's pyodide-lock.json names; older micropip does not import
# under Pyodide's Python 3.14.
MICROPIP_VERSION="0.11.1"

log() { printf '[setup] %s\n' "$*" >&2; }

# Debian packages: the browser, coturn as the loopback STUN/TURN server of browser runs, and
# nginx in front of several server processes (p2p_server.cluster).
APT_MISSING=()
[[ -x /usr/bin/chromium ]] || APT_MISSING+=(chromium)
command -v turnserver >/dev/null || APT_MISSING+=(coturn)
[[ -x /usr/sbin/nginx ]] || APT_MISSING+=(nginx)
if [[ ${#APT_MISSING[@]} -gt 0 ]]; then
    log "installing Debian packages: ${APT_MISSING[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${APT_MISSING[@]}" >/dev/null
fi

if [[ ! -x "$VENV/bin/python" ]]; then
    log "creating $VENV"
    "$PYTHON" -m venv "$VENV"
fi
# Reinstall only when the dependency declaration changed.
STAMP="$VENV/.p2p_setup_stamp"
WANT="$(sha256sum pyproject.toml | cut -d' ' -f1)"
if [[ "$(cat "$STAMP" 2>/dev/null || true)" != "$WANT" ]]; then
    log "installing the packages (editable) with the dev extra"
    "$VENV/bin/python" -m pip install -q --upgrade pip
    "$VENV/bin/python" -m pip install -q hatchling
    "$VENV/bin/python" -m pip install -q -e ".[dev]"
    echo "$WANT" > "$STAMP"
fi

if ! node -e 'const p=require("./package.json").dependencies;for(const [n,v] of Object.entries(p)){if(require("./node_modules/"+n+"/package.json").version!==v)process.exit(1)}' 2>/dev/null; then
    log "installing pinned npm browser assets"
    if [[ -f package-lock.json ]]; then
        npm ci --no-audit --no-fund --loglevel=error
    else
        npm install --no-audit --no-fund --loglevel=error
    fi
fi

# The deployed interactive_gym / mug server, for the tests of the mug dialect against the real
# thing: pinned, in a venv of its own (it brings eventlet, gymnasium and pandas, and pins little).
MUG_VENV="$ROOT/.venv-mug"
MUG_SERVER="multi-user-gymnasium[server]==0.1.3"
if [[ "$(cat "$MUG_VENV/.p2p_setup_stamp" 2>/dev/null || true)" != "$MUG_SERVER" ]]; then
    log "installing $MUG_SERVER in $MUG_VENV"
    [[ -x "$MUG_VENV/bin/python" ]] || "$PYTHON" -m venv "$MUG_VENV"
    "$MUG_VENV/bin/python" -m pip install -q "$MUG_SERVER"
    echo "$MUG_SERVER" > "$MUG_VENV/.p2p_setup_stamp"
fi

mkdir -p "$WHEELS"
if [[ ! -f "$WHEELS/micropip-$MICROPIP_VERSION-py3-none-any.whl" ]]; then
    log "downloading micropip $MICROPIP_VERSION"
    "$VENV/bin/python" -m pip download -q "micropip==$MICROPIP_VERSION" --no-deps \
        --python-version 3.14 --only-binary=:all: -d "$WHEELS"
fi

# The pages install these wheels (a game page p2p_transport alone, the demo page both), so they are
# rebuilt from the working tree each time (about a second each) rather than trusted from an
# earlier run. The server's wheel is never served to a page; tests/test_packaging.py builds it.
log "building the p2p_transport and p2p_demo wheels"
rm -f "$WHEELS"/p2p_transport-*.whl "$WHEELS"/p2p_demo-*.whl
"$VENV/bin/python" -m pip wheel -q --no-deps --no-build-isolation -w "$WHEELS" . packaging/p2p_demo >/dev/null
log "ready"

#!/usr/bin/env bash
# Run a command in a fresh network namespace whose only interface is loopback.
# Browser runs go through here so that WebRTC, Socket.IO and TURN traffic can only use 127.0.0.1.
set -euo pipefail
if [[ $# -eq 0 ]]; then
    echo "usage: $0 COMMAND [ARG...]" >&2
    exit 2
fi
exec unshare --net -- sh -c 'ip link set lo up && exec "$@"' netns "$@"

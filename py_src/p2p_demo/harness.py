"""Running real browsers against the transport: a loopback TURN/STUN server, headless Chromium,
and two tabs of the demo page. Used by ``python -m p2p_demo --headless``, the browser
tests and the browser benchmark; never imported in the browser.

Every run is meant to happen inside a network namespace that has only loopback
(``scripts/netns.sh``): Chromium then has no interface but ``lo``, and with a STUN server on
127.0.0.1 it gathers a loopback candidate, so WebRTC traffic never leaves 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

__all__ = [
    "CHROMIUM",
    "CHROMIUM_ARGS",
    "QUIET_TAB",
    "TurnServer",
    "ice_servers_for",
    "launch_chromium",
    "netem_on_loopback",
    "open_tab",
    "quiet_page",
    "require_loopback_namespace",
    "wait_ready",
]

CHROMIUM: Final = os.environ.get("P2P_CHROMIUM", "/usr/bin/chromium")
#: Flags that work as root on these machines; the background-networking ones stop Chromium from
#: reaching for hosts this machine cannot reach. Loopback candidates are what the namespace has.
CHROMIUM_ARGS: Final = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--allow-loopback-in-peer-connection",
)
TURN_USER: Final = "p2p"
TURN_PASSWORD: Final = "p2p-loopback"
#: coturn needs a moment to bind; it is usually ready in well under a second.
TURN_START_TIMEOUT_S: Final = 10.0


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _turn_listening(port: int) -> bool:
    # A TCP connect shows the listener is up; coturn serves TCP and UDP on the same port.
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


@dataclass
class TurnServer:
    """A coturn process on 127.0.0.1, as STUN and TURN, for the length of a ``with`` block."""

    port: int = 0
    #: With a secret, coturn's TURN REST API mode (``use-auth-secret``): it accepts the
    #: credentials :class:`p2p_server.turn.TurnCredentials` mints with it, and no static user.
    auth_secret: str | None = None
    process: subprocess.Popen[bytes] | None = None
    _workdir: tempfile.TemporaryDirectory[str] | None = None

    def __enter__(self) -> TurnServer:
        binary = shutil.which("turnserver")
        if binary is None:
            raise RuntimeError("coturn's turnserver is not installed: run scripts/setup.sh")
        self.port = self.port or _free_udp_port()
        self._workdir = tempfile.TemporaryDirectory(prefix="p2p-turn-")
        config = Path(self._workdir.name) / "turnserver.conf"
        config.write_text(
            "\n".join(
                [
                    "listening-ip=127.0.0.1",
                    "relay-ip=127.0.0.1",
                    f"listening-port={self.port}",
                    *(
                        ["use-auth-secret", f"static-auth-secret={self.auth_secret}"]
                        if self.auth_secret is not None
                        else ["lt-cred-mech", f"user={TURN_USER}:{TURN_PASSWORD}"]
                    ),
                    "realm=p2p-transport.test",
                    # Both peers are on loopback, which coturn refuses to relay to by default.
                    "allow-loopback-peers",
                    "no-cli",
                    "no-tls",
                    "no-dtls",
                    "fingerprint",
                    f"pidfile={self._workdir.name}/turnserver.pid",
                    "log-file=stdout",
                    "simple-log",
                ]
            )
            + "\n"
        )
        self.process = subprocess.Popen(
            [binary, "-c", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + TURN_START_TIMEOUT_S
        while not _turn_listening(self.port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.__exit__()
                raise RuntimeError(f"coturn did not start on 127.0.0.1:{self.port}")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None
        if self._workdir is not None:
            self._workdir.cleanup()
            self._workdir = None

    @property
    def ice_servers(self) -> list[dict[str, Any]]:
        return ice_servers_for(self.port)


def ice_servers_for(port: int) -> list[dict[str, Any]]:
    """STUN and TURN entries for a :class:`TurnServer` on ``port``, in RTCIceServer form."""
    return [
        {"urls": f"stun:127.0.0.1:{port}"},
        {"urls": f"turn:127.0.0.1:{port}", "username": TURN_USER, "credential": TURN_PASSWORD},
    ]


def launch_chromium(playwright: Any, extra_args: Sequence[str] = ()) -> Any:
    """Debian's headless Chromium through Playwright (its own browser downloads fail here)."""
    return playwright.chromium.launch(
        executable_path=CHROMIUM, headless=True, args=[*CHROMIUM_ARGS, *extra_args]
    )


def open_tab(context: Any, base_url: str, options: dict[str, Any], query: str = "") -> Any:
    """Open the demo page with ``options`` (JSON in the URL fragment) and return the page.

    ``query`` is the page's own query string, e.g. ``"installer=archive"``.
    """
    page = context.new_page()
    # Quoted: the page decodes it with decodeURIComponent, and a '%' (a loss of "5%") is text.
    fragment = urllib.parse.quote(json.dumps(options, separators=(",", ":")), safe="")
    page.goto(f"{base_url}/{'?' + query if query else ''}#{fragment}", wait_until="commit")
    return page


#: A demo tab that boots and starts no game and no drawing: a page to run Python in.
QUIET_TAB: Final[dict[str, Any]] = {
    "game": "scripted",
    "autostart": False,
    "room": "bench",
    "ui": False,
}


def quiet_page(browser: Any, base_url: str) -> Any:
    """A booted :data:`QUIET_TAB` in a context of its own (benchmarks run code in it)."""
    page = open_tab(browser.new_context(), base_url, QUIET_TAB)
    wait_ready(page)
    return page


def wait_ready(page: Any, timeout_ms: float = 60_000) -> None:
    """Wait until the page's shim booted Pyodide and the package, or raise with its error."""
    page.wait_for_function(
        "() => window.p2pShim && (window.p2pShim.ready || window.p2pShim.error)",
        timeout=timeout_ms,
    )
    error = page.evaluate("() => window.p2pShim.error || null")
    if error:
        raise RuntimeError(f"page failed to boot: {error}")


def require_loopback_namespace() -> None:
    """Refuse to run browsers where WebRTC could pick an interface other than loopback."""
    interfaces = [name for _, name in socket.if_nameindex() if name != "lo"]
    if interfaces and not os.environ.get("P2P_ALLOW_HOST_NETWORK"):
        raise RuntimeError(
            "browser runs must be inside a loopback-only network namespace (scripts/netns.sh); "
            f"this one also has {', '.join(interfaces)}. Set P2P_ALLOW_HOST_NETWORK=1 to override."
        )


def netem_on_loopback(link: str) -> bool:
    """Put ``link`` (netem's words, e.g. ``delay 40ms 5ms loss 5%``) on this namespace's
    loopback with Linux netem; return whether it took. Kernels without netem (these machines')
    answer "Specified qdisc kind is unknown": the caller then emulates the link itself. Only
    inside a loopback-only namespace, whose ``lo`` nothing else uses."""
    require_loopback_namespace()
    tc = shutil.which("tc") or "/usr/sbin/tc"
    try:
        done = subprocess.run(
            [tc, "qdisc", "replace", "dev", "lo", "root", "netem", *link.split()],
            capture_output=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0

"""Tests of the reference server (p2p_server.server) over real loopback sockets.

The Socket.IO tests share one ServerThread on 127.0.0.1 port 0 (stopping one costs about 0.2 s of
uvicorn's shutdown ticks, which adds up over many tests); each test reads counter changes through
the ``delta`` fixture, and every test's clients have left (all rooms closed) before the next starts.
Clients are python-socketio's sync Client over WebSocket.
"""

from __future__ import annotations

import http.client
import json
import os
import queue
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import socketio

from p2p_server.server import MAX_TRANSPORT_PACKET_BYTES, ServerOptions, ServerThread
from p2p_transport.browser import shim_path
from p2p_transport.wire.signaling import MAX_RELAY_BYTES

# Long enough for loopback delivery on a loaded 2-core machine; only failing waits take this long.
EVENT_TIMEOUT_S = 5.0
# How long to wait before concluding that an event was NOT delivered. Relays arrive in about 1 ms
# on loopback, so 0.3 s is ample without making the suite slow.
SILENCE_S = 0.3

pytestmark = pytest.mark.timeout(60)


class Peer:
    """A Socket.IO client that records every event it receives, in order."""

    def __init__(self, url: str, name: str) -> None:
        self.name = name
        self.events: queue.Queue[tuple[str, Any]] = queue.Queue()
        self.client = socketio.Client(reconnection=False)
        self.client.on("*", self._record)
        self.client.connect(url, transports=["websocket"], wait_timeout=EVENT_TIMEOUT_S)

    def _record(self, event: str, *args: Any) -> None:
        self.events.put((event, args[0] if len(args) == 1 else args))

    def emit(self, event: str, *args: Any) -> None:
        # python-socketio's emit takes one payload; a tuple means several arguments.
        if not args:
            self.client.emit(event)
        elif len(args) == 1:
            self.client.emit(event, args[0])
        else:
            self.client.emit(event, args)

    def expect(self, event: str, timeout: float = EVENT_TIMEOUT_S) -> Any:
        """Return the payload of the next event; fail if it is a different event or none comes."""
        try:
            got, payload = self.events.get(timeout=timeout)
        except queue.Empty:
            pytest.fail(f"{self.name}: no {event!r} event within {timeout} s")
        assert got == event, f"{self.name}: expected {event!r}, got {got!r} {payload!r}"
        return payload

    def expect_silence(self, within: float = SILENCE_S) -> None:
        try:
            got, payload = self.events.get(timeout=within)
        except queue.Empty:
            return
        pytest.fail(f"{self.name}: unexpected {got!r} {payload!r}")

    def join(self, room: str | None) -> dict[str, Any]:
        self.emit("join", {} if room is None else {"room": room})
        joined: dict[str, Any] = self.expect("joined")
        return joined

    def close(self) -> None:
        self.client.disconnect()


Connect = Callable[[str], Peer]
Delta = Callable[[], dict[str, int]]


@pytest.fixture(scope="module")
def shared_server() -> Iterator[ServerThread]:
    with ServerThread() as srv:
        yield srv


@pytest.fixture
def server(shared_server: ServerThread) -> ServerThread:
    assert shared_server.stats.rooms_open == 0, "a previous test left a room open"
    return shared_server


def _counters(server: ServerThread) -> dict[str, int]:
    """The snapshot's numbers, the refusals by reason as ``refusals.REASON``."""
    flat: dict[str, int] = {}
    for key, value in server.stats.snapshot().items():
        if isinstance(value, dict):
            flat.update({f"{key}.{reason}": count for reason, count in value.items()})
        else:
            flat[key] = value
    return flat


@pytest.fixture
def delta(server: ServerThread) -> Delta:
    """``delta()`` -> how much each counter changed since the test started."""
    before = _counters(server)

    def changed() -> dict[str, int]:
        return {k: v - before.get(k, 0) for k, v in _counters(server).items()}

    return changed


@contextmanager
def peers_of(server: ServerThread) -> Iterator[Connect]:
    """Makes clients of ``server``; closes them at the end and waits for their rooms to go (the
    server sees the disconnects asynchronously: the next test starts with no room open)."""
    peers: list[Peer] = []

    def make(name: str) -> Peer:
        peer = Peer(server.url, name)
        peers.append(peer)
        return peer

    yield make
    for peer in peers:
        peer.close()
    wait_until(lambda: server.stats.rooms_open == 0 and server.stats.spectators == 0)


@pytest.fixture
def connect(server: ServerThread) -> Iterator[Connect]:
    with peers_of(server) as make:
        yield make


def paired(peer: Peer) -> dict[str, Any]:
    """The next event, which must be ``paired``, without its relay ticket (checked, then left out:
    it is random)."""
    detail: dict[str, Any] = peer.expect("paired")
    ticket = detail.pop("relay_ticket")
    assert isinstance(ticket, str) and len(ticket) >= 16
    return detail


def pair(connect: Connect, room: str) -> tuple[Peer, Peer]:
    """Two peers joined to ``room`` in a known order, with all pairing events consumed."""
    a, b = connect("a"), connect("b")
    assert a.join(room)["player_index"] == 0
    assert b.join(room)["player_index"] == 1
    a.expect("paired")
    b.expect("paired")
    return a, b


def wait_until(predicate: Callable[[], bool], timeout: float = EVENT_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


# --- pairing --------------------------------------------------------------------------------------


def test_first_joiner_is_player_0_second_is_player_1_and_both_are_paired(connect: Connect) -> None:
    a, b = connect("a"), connect("b")
    assert a.join("r") == {"room": "r", "player_index": 0}
    a.expect_silence()  # not paired while alone
    assert b.join("r") == {"room": "r", "player_index": 1}
    assert paired(a) == {"room": "r", "player_index": 0, "peer_index": 1}
    assert paired(b) == {"room": "r", "player_index": 1, "peer_index": 0}


def test_room_defaults_to_default(connect: Connect) -> None:
    assert connect("a").join(None) == {"room": "default", "player_index": 0}


def test_rooms_are_independent(connect: Connect, server: ServerThread) -> None:
    pair(connect, "one")
    c = connect("c")
    assert c.join("two")["player_index"] == 0
    assert server.stats.rooms_open == 2  # no other test's room is open


def test_third_joiner_is_refused_and_a_rejoin_gets_the_lowest_free_index(
    connect: Connect, delta: Delta
) -> None:
    a, b = pair(connect, "r")
    c = connect("c")
    c.emit("join", {"room": "r"})
    assert "full" in c.expect("error")["message"]
    assert delta()["errors"] == 1

    a.close()  # player 0 leaves: its index becomes free again
    assert b.expect("peer_left") == {"player_index": 0}
    assert c.join("r") == {"room": "r", "player_index": 0}
    assert paired(c) == {"room": "r", "player_index": 0, "peer_index": 1}
    assert paired(b) == {"room": "r", "player_index": 1, "peer_index": 0}


def test_a_player_joining_again_gets_the_slot_it_asks_for_when_it_is_free(
    connect: Connect,
) -> None:
    # As after a server restart: player 1 is back first, and asks for its old slot.
    b = connect("b")
    b.emit("join", {"room": "r", "player": 1})
    assert b.expect("joined") == {"room": "r", "player_index": 1}
    a = connect("a")
    a.emit("join", {"room": "r", "player": 1})  # taken: the lowest free one instead
    assert a.expect("joined") == {"room": "r", "player_index": 0}
    c = connect("c")
    c.emit("join", {"room": "q", "player": "nonsense"})
    assert c.expect("joined") == {"room": "q", "player_index": 0}


def test_a_socket_joins_at_most_one_room(connect: Connect) -> None:
    a = connect("a")
    a.join("r")
    a.emit("join", {"room": "other"})
    assert "already in room" in a.expect("error")["message"]


def test_peer_left_goes_to_the_remaining_member_and_empty_rooms_are_dropped(
    connect: Connect, server: ServerThread
) -> None:
    a, b = pair(connect, "r")
    b.close()
    assert a.expect("peer_left") == {"player_index": 1}
    a.close()
    wait_until(lambda: server.stats.rooms_open == 0)


# --- relaying -------------------------------------------------------------------------------------


def test_relay_goes_unchanged_to_the_peer_only(connect: Connect, delta: Delta) -> None:
    a, b = pair(connect, "r")
    outsider = connect("outsider")
    outsider.join("elsewhere")
    packet = bytes(range(256)) * 2

    a.emit("relay", packet)
    assert b.expect("relay") == packet
    b.emit("relay", b"\x04")
    assert a.expect("relay") == b"\x04"

    a.expect_silence()
    b.expect_silence()
    outsider.expect_silence(0)
    counters = delta()
    assert counters["relay_messages"] == 2
    assert counters["events_relayed"] == 2
    assert counters["bytes_relayed"] == len(packet) + 1
    assert counters["errors"] == 0


def test_relay_preserves_order(connect: Connect) -> None:
    a, b = pair(connect, "r")
    for i in range(200):
        a.emit("relay", i.to_bytes(2, "big"))
    assert [b.expect("relay") for _ in range(200)] == [i.to_bytes(2, "big") for i in range(200)]


def test_relay_of_exactly_the_maximum_size_is_accepted(connect: Connect) -> None:
    a, b = pair(connect, "r")
    a.emit("relay", b"\xab" * MAX_RELAY_BYTES)
    assert b.expect("relay") == b"\xab" * MAX_RELAY_BYTES


def test_relay_without_a_peer_is_dropped_quietly(connect: Connect, delta: Delta) -> None:
    a = connect("a")
    a.join("r")
    a.emit("relay", b"\x01")
    a.expect_silence()
    assert delta()["dropped_no_peer"] == 1
    assert delta()["errors"] == 0


@pytest.mark.parametrize("signal_type", ["offer", "answer", "ice-candidate"])
def test_webrtc_signal_goes_unchanged_to_the_peer_only(
    connect: Connect, delta: Delta, signal_type: str
) -> None:
    a, b = pair(connect, "r")
    outsider = connect("outsider")
    outsider.join("elsewhere")
    signal = {"type": signal_type, "sdp": "v=0\r\n...", "nested": {"candidate": "x", "n": [1, 2]}}

    a.emit("webrtc_signal", signal)
    assert b.expect("webrtc_signal") == signal
    a.expect_silence()
    outsider.expect_silence(0)
    assert delta()["signals_relayed"] == 1


# --- malformed input ------------------------------------------------------------------------------

MALFORMED_AFTER_JOIN = [
    pytest.param("relay", ("text, not bytes",), id="relay-str"),
    pytest.param("relay", ({"data": 1},), id="relay-dict"),
    pytest.param("relay", (b"",), id="relay-empty"),
    pytest.param("relay", (b"x" * (MAX_RELAY_BYTES + 1),), id="relay-oversized"),
    pytest.param("relay", (), id="relay-no-args"),
    pytest.param("webrtc_signal", ({"type": "bogus"},), id="signal-unknown-type"),
    pytest.param("webrtc_signal", ({"sdp": "no type"},), id="signal-missing-type"),
    pytest.param("webrtc_signal", ("offer",), id="signal-not-a-dict"),
    pytest.param("join", ({"room": "r"},), id="join-again"),
    pytest.param("no_such_event", ({"x": 1},), id="unknown-event"),
]

MALFORMED_BEFORE_JOIN = [
    pytest.param("relay", (b"\x01",), id="relay-before-join"),
    pytest.param("webrtc_signal", ({"type": "offer"},), id="signal-before-join"),
    pytest.param("join", ("r",), id="join-not-a-dict"),
    pytest.param("join", ({"room": 7},), id="join-room-not-str"),
    pytest.param("join", ({"room": ""},), id="join-room-empty"),
    pytest.param("join", ({"room": "x" * 65},), id="join-room-too-long"),
]


@pytest.mark.parametrize(("event", "args"), MALFORMED_AFTER_JOIN)
def test_malformed_event_after_join_gets_an_error_and_the_room_keeps_working(
    connect: Connect, delta: Delta, event: str, args: tuple[Any, ...]
) -> None:
    a, b = pair(connect, "r")
    a.emit(event, *args)
    error = a.expect("error")
    assert isinstance(error["message"], str)
    assert error["message"].startswith(event)
    b.expect_silence()  # nothing of the bad event reaches the peer
    assert delta()["errors"] == 1

    a.emit("relay", b"\x01ok")
    assert b.expect("relay") == b"\x01ok"
    b.emit("webrtc_signal", {"type": "answer"})
    assert a.expect("webrtc_signal") == {"type": "answer"}


@pytest.mark.parametrize(("event", "args"), MALFORMED_BEFORE_JOIN)
def test_malformed_event_before_join_gets_an_error_and_join_still_works(
    connect: Connect, delta: Delta, event: str, args: tuple[Any, ...]
) -> None:
    a = connect("a")
    a.emit(event, *args)
    assert isinstance(a.expect("error")["message"], str)
    assert delta()["errors"] == 1
    assert a.join("r")["player_index"] == 0


def test_a_binary_event_with_more_attachments_than_the_relay_uses_drops_its_sender(
    connect: Connect, delta: Delta
) -> None:
    a, b = pair(connect, "r")
    a.emit("relay", b"\x01", b"\x02")
    assert a.expect("error")["code"] == "malformed"
    assert b.expect("peer_left") == {"player_index": 0}
    assert delta()["refusals.attachments"] == 1


def test_a_packet_over_the_transport_limit_drops_only_that_client(connect: Connect) -> None:
    a, b = pair(connect, "r")
    c, d = connect("c"), connect("d")
    c.join("s")
    d.join("s")
    c.expect("paired")
    d.expect("paired")

    a.emit("relay", b"x" * (MAX_TRANSPORT_PACKET_BYTES + 1))
    assert b.expect("peer_left") == {"player_index": 0}

    c.emit("relay", b"\x01still here")
    assert d.expect("relay") == b"\x01still here"


# --- HTTP -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def assets(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project-root-like tree with one file of each served kind, plus a secret outside it."""
    tmp_path = tmp_path_factory.mktemp("assets")
    root = tmp_path / "root"
    files = {
        "static/index.html": "<!doctype html><title>t</title>",
        # A stale copy in the page's directory: the server must serve the installed one.
        "static/p2p_shim.js": "window.p2pShim = {};",
        "static/style.css": "body{}",
        "static/sub/page.html": "<p>sub</p>",
        "node_modules/pyodide/pyodide.js": "// js",
        "node_modules/pyodide/pyodide.asm.mjs": "// mjs",
        "node_modules/pyodide/pyodide.asm.wasm": "\0asm",
        "node_modules/pyodide/pyodide-lock.json": "{}",
        "node_modules/pyodide/python_stdlib.zip": "PK",
        "node_modules/pyodide/package.json": "{}",
        "node_modules/socket.io-client/dist/socket.io.min.js": "// io",
        "node_modules/socket.io-client/package.json": "{}",
        "build/wheels/micropip-0.11.1-py3-none-any.whl": "PK",
        "build/wheels/p2p_transport-0.1.0-py3-none-any.whl": "PK",
    }
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    (tmp_path / "secret.txt").write_text("secret")
    (root / "static" / "escape.txt").symlink_to(tmp_path / "secret.txt")
    return root


@pytest.fixture(scope="module")
def http_server(assets: Path) -> Iterator[ServerThread]:
    with ServerThread(assets_root=assets) as srv:
        yield srv


def fetch(srv: ServerThread, path: str, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    """Send ``path`` exactly as given (http.client does not normalise ``..``)."""
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=EVENT_TIMEOUT_S)
    try:
        conn.request(method, path)
        response = conn.getresponse()
        headers = {k.lower(): v for k, v in response.getheaders()}
        return response.status, headers, response.read()
    finally:
        conn.close()


@pytest.mark.parametrize(
    ("path", "media_type", "body"),
    [
        ("/", "text/html", b"<!doctype html><title>t</title>"),
        ("/static/index.html", "text/html", None),
        ("/static/sub/page.html", "text/html", b"<p>sub</p>"),
        ("/static/p2p_shim.js", "text/javascript", shim_path().read_bytes()),
        ("/static/style.css", "text/css", None),
        ("/pyodide/pyodide.js", "text/javascript", None),
        ("/pyodide/pyodide.asm.mjs", "text/javascript", None),
        ("/pyodide/pyodide.asm.wasm", "application/wasm", b"\0asm"),
        ("/pyodide/pyodide-lock.json", "application/json", None),
        ("/pyodide/python_stdlib.zip", "application/zip", None),
        ("/socket.io-client/socket.io.min.js", "text/javascript", b"// io"),
        ("/wheels/p2p_transport-0.1.0-py3-none-any.whl", "application/zip", b"PK"),
    ],
)
def test_static_files_have_the_right_media_type_and_are_not_cached(
    http_server: ServerThread, path: str, media_type: str, body: bytes | None
) -> None:
    status, headers, got = fetch(http_server, path)
    assert status == 200
    assert headers["content-type"].split(";")[0] == media_type
    assert headers["cache-control"] == "no-store"
    assert int(headers["content-length"]) == len(got)
    if body is not None:
        assert got == body


@pytest.mark.parametrize(
    "path",
    [
        "/static/../node_modules/pyodide/pyodide.js",
        "/static/%2e%2e/node_modules/pyodide/pyodide.js",
        "/static/..%2fnode_modules%2fpyodide%2fpyodide.js",
        "/pyodide/../../secret.txt",
        "/pyodide/%2e%2e/%2e%2e/secret.txt",
        "/static/./index.html",
        "/static//etc/passwd",
        "/static/..\\..\\secret.txt",
        "/static/escape.txt",  # a symlink pointing outside the static directory
        "/socket.io-client/../package.json",  # outside dist/, though inside node_modules
        "/static/",
        "/static/sub",
        "/static/missing.js",
        "/wheels/missing-0.0.0-py3-none-any.whl",
        "/nowhere",
    ],
)
def test_traversal_and_missing_files_are_404(http_server: ServerThread, path: str) -> None:
    status, headers, body = fetch(http_server, path)
    assert status == 404
    assert b"secret" not in body
    assert headers["cache-control"] == "no-store"


def test_head_has_headers_but_no_body_and_post_is_refused(http_server: ServerThread) -> None:
    status, headers, body = fetch(http_server, "/pyodide/pyodide.asm.wasm", "HEAD")
    assert (status, headers["content-type"], body) == (200, "application/wasm", b"")
    assert headers["content-length"] == "4"
    assert fetch(http_server, "/static/index.html", "POST")[0] == 405


def test_wheel_index_lists_the_served_wheels(http_server: ServerThread) -> None:
    status, headers, body = fetch(http_server, "/wheels/index.json")
    assert status == 200
    assert headers["content-type"] == "application/json"
    assert json.loads(body) == {
        "wheels": [
            "micropip-0.11.1-py3-none-any.whl",
            "p2p_transport-0.1.0-py3-none-any.whl",
        ]
    }


def test_stats_route_reports_the_counters(http_server: ServerThread) -> None:
    a = Peer(http_server.url, "a")
    try:
        a.join("r")
        a.emit("relay", "not bytes")
        a.expect("error")
    finally:
        a.close()

    def read() -> tuple[int, dict[str, str], dict[str, Any]]:
        status, headers, body = fetch(http_server, "/stats")
        return status, headers, json.loads(body)

    # The close reaches the server's handlers after this side returns: on a loaded machine the
    # first reading may still count the socket, so wait until it is handled, then check it all.
    wait_until(lambda: read()[2]["connected"] == 0)
    status, headers, stats = read()
    assert status == 200
    assert headers["content-type"] == "application/json"
    assert stats["joins"] == 1
    assert stats["errors"] == 1
    assert stats["events_relayed"] == 0
    assert set(stats) >= {"events_relayed", "bytes_relayed", "errors"}
    # What an operator reads: this process, what is open now, the relay's rates.
    assert stats["pid"] == os.getpid()  # a ServerThread: this test's own process
    assert stats["connected"] == 0 and stats["rooms_open"] == 0
    assert stats["relay_messages_per_s"] == 0.0


def test_stats_rates_are_over_the_last_seconds() -> None:
    from p2p_server.stats import ServerStats

    stats = ServerStats()
    stats.sample(now=100.0)
    stats.relay_messages, stats.bytes_relayed = 240, 5760
    stats.sample(now=102.0)
    assert stats.rates() == {"relay_messages_per_s": 120.0, "relay_bytes_per_s": 2880.0}
    for second in range(3, 10):  # the window forgets what is older than 5 s
        stats.sample(now=100.0 + second)
    assert stats.rates() == {"relay_messages_per_s": 0.0, "relay_bytes_per_s": 0.0}


# --- command line ---------------------------------------------------------------------------------


def test_module_entry_point_serves_on_the_printed_port(assets: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "p2p_server", "--port", "0", "--log-level", "warning"],
        cwd=assets,  # default directories are found relative to the working directory
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("p2p_server listening on http://127.0.0.1:"), line
        port = int(line.rsplit(":", 1)[1].strip().rstrip("/"))
        deadline = time.monotonic() + EVENT_TIMEOUT_S
        while True:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=EVENT_TIMEOUT_S)
                conn.request("GET", "/static/p2p_shim.js")
                response = conn.getresponse()
                break
            except ConnectionRefusedError:
                assert time.monotonic() < deadline
                time.sleep(0.05)
        assert response.status == 200
        assert response.getheader("content-type", "").startswith("text/javascript")
        conn.close()
        # Ctrl-C, as an operator stops it: a clean shutdown, no traceback.
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=10)
        assert out.strip() == "p2p_server stopped"
        assert "Traceback" not in err
        # Started without a token secret, it says so.
        assert "rooms are open" in err
        assert proc.returncode == 0
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=10)


# --- pages on other origins -------------------------------------------------------------------

STUDY_ORIGIN = "https://study.example.org"


def test_an_allowed_origin_may_load_the_assets_and_connect(assets: Path) -> None:
    with ServerThread(
        assets_root=assets, options=ServerOptions(allowed_origins=[STUDY_ORIGIN])
    ) as srv:
        own = f"http://127.0.0.1:{srv.port}"
        for origin, allowed in (
            (STUDY_ORIGIN, True),
            (own, True),  # the server's own pages still
            ("https://elsewhere.example", False),
        ):
            conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=EVENT_TIMEOUT_S)
            conn.request("GET", "/static/p2p_shim.js", headers={"Origin": origin})
            response = conn.getresponse()
            response.read()
            assert response.status == 200
            # Same-origin pages need no CORS headers; the allowed other origin gets them.
            expected = origin if origin == STUDY_ORIGIN else None
            assert response.getheader("access-control-allow-origin") == expected
            corp = response.getheader("cross-origin-resource-policy")
            assert corp == ("cross-origin" if expected else None)
            conn.close()
            # The Engine.IO handshake (the first request of every Socket.IO connection) is where
            # the origin is checked, for both transports alike.
            conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=EVENT_TIMEOUT_S)
            conn.request("GET", "/socket.io/?EIO=4&transport=polling", headers={"Origin": origin})
            handshake = conn.getresponse()
            body = handshake.read()
            conn.close()
            connected = handshake.status == 200 and b'"sid"' in body
            assert connected is allowed, origin


def test_an_origin_that_is_not_one_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    from p2p_server.server import main

    with pytest.raises(SystemExit) as exit_info:
        main(["--allowed-origin", "https://study.example.org/"])
    assert exit_info.value.code == 2
    assert "is not an origin like https://study.example.org" in capsys.readouterr().err

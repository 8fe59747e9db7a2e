"""A Python tab against a peer that speaks only the deployed peers' version 1 (``v1_peer.js``,
written from the documented layouts): it validates the channel both ways, the inputs cross
exactly once each way, pings are answered both ways, episode end, episode ready and state hashes
are understood both ways, and after the first seconds the test peer receives no message of a type
it does not know."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any, Final

from conftest import BOOT_TIMEOUT_MS, capture_console
from playwright.sync_api import BrowserContext
from test_transport import OPEN_TIMEOUT_MS, Tab, assert_no_page_errors

from p2p_demo.harness import TurnServer, open_tab, wait_ready
from p2p_server.server import ServerThread
from p2p_transport.protocol.negotiation import MAX_PROBES
from p2p_transport.timing import FRAME_MS

FRAMES: Final = 600
V1_PEER_JS: Final = Path(__file__).with_name("v1_peer.js")
#: The deployed peers give the validation 15 s; between two tabs here it takes about 0.1 s.
VALIDATION_LIMIT_MS: Final = 1_000.0
#: The acked-input probes, the only unknown type the Python side sends a version-1 peer, stop
#: after MAX_PROBES at 250 ms each once the peer's inputs are heard: a few seconds in all.
UNKNOWN_TYPES_ONLY_BEFORE_MS: Final = 5_000.0
ACKED_INPUT_TYPE: Final = 0x20
#: The first ping goes 500 ms after the channel opens; before pings went to the game channel too
#: while the ping channel was probed, the first answered one came after the three probes (2 s).
FIRST_RTT_WITHIN_MS: Final = 1_000.0


def start_v1_peer(context: BrowserContext, server: ServerThread, options: dict[str, Any]) -> Any:
    page = context.new_page()
    # The demo page without its boot: same origin as the server, with the Socket.IO client.
    page.goto(f"{server.url}/?autoboot=0", wait_until="load")
    page.add_script_tag(path=str(V1_PEER_JS))
    page.evaluate("options => v1Peer.start(options)", options)
    return page


def test_a_python_tab_plays_a_version_one_peer(
    context: BrowserContext, server: ServerThread, turn: TurnServer, console_messages: list[str]
) -> None:
    room = f"v1-{uuid.uuid4().hex}"
    python_page = open_tab(
        context,
        server.url,
        {"game": "scripted", "room": room, "ice_servers": turn.ice_servers, "frames": FRAMES},
    )
    capture_console(python_page, console_messages, prefix="python ")
    wait_ready(python_page, BOOT_TIMEOUT_MS)
    python_page.wait_for_function("() => window.p2pDemo !== undefined")
    python = Tab(python_page)
    # The Python tab joins first, so it is player 0 and offers, as the lower id does.
    python.wait_until("r.event_log.some((e) => e.event === 'joined')", OPEN_TIMEOUT_MS)
    v1_page = start_v1_peer(
        context, server, {"room": room, "iceServers": turn.ice_servers, "frames": FRAMES}
    )
    capture_console(v1_page, console_messages, prefix="v1 ")

    python.wait_game_done(FRAMES)
    v1_page.wait_for_function(
        f"() => v1Peer.report().framesReceived >= {FRAMES}", timeout=FRAMES * FRAME_MS + 10_000
    )
    # An episode's end both ways: the test peer's three messages, and the Python side's.
    digest = list(range(1, 9))
    v1_page.evaluate(
        "o => v1Peer.sendEpisodeMessages(o)",
        {"endFrame": 599, "episode": 0, "nextHash": "abcdef01", "hashFrame": 120, "digest": digest},
    )
    python_page.evaluate(
        "code => p2pShim.pyodide.runPython(code)",
        "import js\n"
        "t = js.p2pDemo.transport\n"
        f"t.record_state_hash(120, bytes({digest}))\n"
        "t.send_episode_end(599, 0)\n"
        "t.send_episode_ready(1, '12345678')\n",
    )
    python.wait_until("r.stats.desync_peer_hashes >= 1", OPEN_TIMEOUT_MS)
    python_page.wait_for_function("() => JSON.parse(p2pDemo.controls_json()).length >= 2")
    v1_page.wait_for_function(
        "() => { const r = v1Peer.report();"
        " return r.stateHashes.length >= 1 && r.episodeReadies.length >= 1; }"
    )
    controls = python_page.evaluate("() => JSON.parse(p2pDemo.controls_json())")
    v1 = v1_page.evaluate("() => v1Peer.report()")
    report = python.report()
    stats = report["stats"]
    print(f"python -> v1 peer, by type byte: {v1['receivedByType']}")
    print(f"v1 peer -> python, by type byte: {v1['sentByType']}")
    print(
        f"validated after: python {stats['validated_after_ms']} ms, "
        f"v1 peer {v1['validatedAtMs']:.1f} ms; text greetings {stats['text_messages']}"
    )

    # Both validated, well within the deployed peers' 15 s.
    assert stats["validated"] and stats["validated_after_ms"] < VALIDATION_LIMIT_MS, stats
    assert v1["validatedAtMs"] is not None and v1["validatedAtMs"] < VALIDATION_LIMIT_MS, v1
    # Every input crossed exactly once, each way.
    assert report["game"]["delivered_exactly_once"], report["game"]
    assert v1["framesReceived"] == FRAMES and v1["wrongActions"] == 0, v1
    # Pings answered both ways: the Python side's, on the game channel once its ping channel
    # went unanswered, and the test peer's.
    assert stats["rtt_samples"] > 0 and stats["ping_channel"] == "unanswered", stats
    assert len(v1["rtts"]) > 0
    # RTT from the first ping (500 ms after the channel opened): its copy on the game channel
    # was answered, though the ping channel never was.
    first_rtt_at = python_page.evaluate(
        "() => JSON.parse(p2pDemo.telemetry_json()).rtt.p2p.rows[0][0]"
    )
    assert first_rtt_at - report["channel_open_ms"] < FIRST_RTT_WITHIN_MS
    assert stats["pings_while_probing"] >= 1
    # The Python side took the peer for version 1 after its bounded probes, counted the text
    # greeting apart, and decoded everything else.
    assert stats["peer_protocol_version"] == 1
    assert stats["acked_probes_sent"] == MAX_PROBES
    assert stats["text_messages"] == 1
    assert stats["p2p_decode_errors"] == stats["handler_errors"] == 0
    # Episode end and ready reach the Python game as control messages (kind 1: episode 0 ended
    # at frame 599; kind 2: ready for episode 1), and the state hashes of frame 120 match.
    assert controls == [[1, "0000000000000257"], [2, "00000001"]], controls
    assert (stats["desync_matches"], stats["desync_mismatches"]) == (1, 0), stats
    assert v1["episodeEnds"] == [[599, 0]]
    assert v1["episodeReadies"][0] == [1, "12345678"]
    assert v1["stateHashes"] == [[120, digest]]
    # Nothing the test peer does not know, but the bounded probes in the first seconds.
    unknown = {t: n for t, n in v1["receivedByType"].items() if int(t) not in KNOWN_TYPES}
    assert unknown == {str(ACKED_INPUT_TYPE): MAX_PROBES}, unknown
    assert v1["lastUnknownAtMs"] < UNKNOWN_TYPES_ONLY_BEFORE_MS, v1
    assert_no_page_errors(console_messages)


#: What the test peer knows (its KNOWN set).
KNOWN_TYPES: Final = frozenset(
    {0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x10, 0x11, 0x12, 0x13, 0x14}
)

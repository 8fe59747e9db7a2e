"""The lifecycle events a page shows while the connection comes up, or does not."""

from __future__ import annotations

from typing import Any

import pytest

from p2p_transport.browser.options import TransportOptions
from p2p_transport.browser.pairing import Pairing
from p2p_transport.errors import UsageError
from p2p_transport.protocol.lifecycle import (
    MAX_CANDIDATE_ERRORS,
    REFUSAL_SENTENCES,
    WAITING_FIRST_MS,
    WAITING_REPEAT_MS,
    Lifecycle,
    candidate_type,
)
from p2p_transport.session import Callbacks
from p2p_transport.wire.signaling import ERROR_EVENT, PAIRED_EVENT
from tests.fakes import FakeClock, FakeScheduler, FakeSocket


class Harness:
    def __init__(self, **options: Any) -> None:
        self.clock = FakeClock(0.0)
        self.scheduler = FakeScheduler(self.clock)
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.lifecycle = Lifecycle(
            self.clock,
            self.scheduler,
            lambda name, detail: self.events.append((name, detail)),
            "r",
            **options,
        )

    def run_until(self, ms: float) -> None:
        self.scheduler.advance(max(0.0, ms - self.clock()))


def make(**options: Any) -> tuple[Lifecycle, Harness, list[tuple[str, dict[str, Any]]]]:
    harness = Harness(**options)
    return harness.lifecycle, harness, harness.events


def test_alone_in_the_room_is_said_and_repeated_until_a_peer_comes() -> None:
    lifecycle, h, events = make()
    lifecycle.joined()
    h.run_until(WAITING_FIRST_MS - 250)
    assert events == []
    h.run_until(WAITING_FIRST_MS + 2 * WAITING_REPEAT_MS)
    assert [name for name, _ in events] == ["waiting_for_peer"] * 3
    assert [detail["waited_ms"] for _, detail in events] == [3000.0, 8000.0, 13000.0]
    assert events[0][1]["room"] == "r"
    lifecycle.paired()
    assert lifecycle.timer_running  # now waiting for the DataChannel
    events.clear()
    lifecycle.channel_opened()
    assert not lifecycle.timer_running and not h.scheduler.active  # nothing left to wait for
    h.run_until(h.clock() + 60_000)
    assert events == []


def test_the_timer_runs_only_while_waiting_and_never_after_close() -> None:
    lifecycle, h, events = make(ice_timeout_ms=1000.0)
    assert not lifecycle.timer_running
    lifecycle.joined()
    lifecycle.paired()
    h.run_until(1000)
    assert [name for name, _ in events] == ["ice_failed", "p2p_unavailable"]
    assert not h.scheduler.active  # reported: nothing left to wait for
    lifecycle.peer_left()  # alone again: waiting for a peer
    assert lifecycle.timer_running
    lifecycle.close()
    assert not h.scheduler.active
    lifecycle.joined()
    assert not h.scheduler.active


def test_no_datachannel_within_the_timeout_is_ice_failed_with_what_ice_saw() -> None:
    lifecycle, h, events = make(relay_only=True, ice_timeout_ms=3000.0)
    lifecycle.joined()
    lifecycle.paired()
    lifecycle.local_candidate("candidate:1 1 udp 2122260223 10.0.0.2 54400 typ host generation 0")
    lifecycle.local_candidate("candidate:2 1 udp 1686052607 1.2.3.4 54400 typ srflx raddr 0.0.0.0")
    error = {"url": "turn:127.0.0.1:3478", "error_code": 401, "error_text": "Unauthorized"}
    lifecycle.candidate_error(error)
    h.run_until(2750)
    assert events == []
    h.run_until(10_000)
    assert events == [
        (
            "ice_failed",
            {
                "waited_ms": 3000.0,
                "candidate_errors": [error],
                "gathered": {"host": 1, "srflx": 1},
                "relay_only": True,
            },
        ),
        ("p2p_unavailable", {"reason": "ice_failed"}),
    ]


def test_a_new_peer_gets_a_fresh_ice_timeout_and_errors_are_bounded() -> None:
    lifecycle, h, events = make(ice_timeout_ms=1000.0)
    lifecycle.joined()
    lifecycle.paired()
    for _ in range(MAX_CANDIDATE_ERRORS + 5):
        lifecycle.candidate_error({"error_code": 701})
    h.run_until(1000)
    assert len(events[0][1]["candidate_errors"]) == MAX_CANDIDATE_ERRORS
    lifecycle.peer_left()
    lifecycle.paired()
    events.clear()
    h.run_until(h.clock() + 1000)
    assert [name for name, _ in events] == ["ice_failed", "p2p_unavailable"]
    assert events[0][1]["candidate_errors"] == []


def test_a_lost_server_stops_the_waiting_until_the_next_join() -> None:
    lifecycle, h, events = make()
    lifecycle.joined()
    lifecycle.server_lost("transport close")
    h.run_until(20_000)
    assert [name for name, _ in events] == ["server_unreachable"]
    lifecycle.joined()
    h.run_until(h.clock() + WAITING_FIRST_MS)
    assert [name for name, _ in events][-1] == "waiting_for_peer"


def test_server_errors_and_reachability() -> None:
    lifecycle, _, events = make()
    lifecycle.server_error({"message": "join: room 'r' is full", "code": "room_full"})
    lifecycle.server_error({"message": "relay: join a room first", "code": "refused"})
    lifecycle.server_error({"message": "join: Not enough segments", "code": "unauthorized"})
    lifecycle.connect_error("xhr poll error")
    lifecycle.connect_error("websocket error")
    lifecycle.server_lost("transport close")
    lifecycle.reconnect_failed()
    token = (
        "the server refused this page's room token (missing, forged, expired or for another "
        "room): the page needs a valid token from the experiment's backend (the server said: "
        "join: Not enough segments)"
    )
    assert events == [
        (
            "room_full",
            {
                "room": "r",
                "message": "room r is full: two players are in it already",
                "server_message": "join: room 'r' is full",
            },
        ),
        (
            "refused",
            {
                "message": "the server refused: relay: join a room first",
                "code": "refused",
                "server_message": "relay: join a room first",
            },
        ),
        (
            "refused",
            {
                "message": token,
                "code": "unauthorized",
                "server_message": "join: Not enough segments",
            },
        ),
        ("server_unreachable", {"reason": "xhr poll error", "attempt": 1}),
        ("server_unreachable", {"reason": "websocket error", "attempt": 2}),
        ("server_unreachable", {"reason": "connection lost: transport close"}),
        ("p2p_unavailable", {"reason": "reconnect_failed"}),
    ]


@pytest.mark.parametrize("code", [*REFUSAL_SENTENCES, "refused", "something_new"])
def test_each_refusal_is_one_event_whose_message_is_a_sentence(code: str) -> None:
    lifecycle, _, events = make()
    lifecycle.server_error({"message": "the server's words", "code": code})
    lifecycle.server_error({"message": "no such game"}, event="join_game_error")
    (name, detail), (dialect_name, dialect_detail) = events
    assert name == "refused" and detail["code"] == code
    assert detail["message"].startswith(REFUSAL_SENTENCES.get(code, "the server refused"))
    assert detail["message"].endswith(
        "the server's words" + (")" if code in REFUSAL_SENTENCES else "")
    )
    assert "{" not in detail["message"]  # words, never a JSON blob
    assert dialect_name == "join_game_error"
    assert dialect_detail["message"] == "the server refused (join_game_error): no such game"


def test_connect_gives_up_once_after_its_timeout_and_the_retries_go_on() -> None:
    lifecycle, h, events = make(connect_timeout_ms=5000.0)
    assert not lifecycle.timer_running
    lifecycle.connecting()
    assert lifecycle.timer_running
    for at, reason in ((1000, "xhr poll error"), (3000, "websocket error")):
        h.run_until(at)
        lifecycle.connect_error(reason)
    h.run_until(4750)
    assert [name for name, _ in events] == ["server_unreachable"] * 2
    h.run_until(5000)
    assert events[-1] == (
        "connect_failed",
        {
            "waited_ms": 5000.0,
            "attempts": 2,
            "reason": "websocket error",
            "message": "cannot reach the signaling server: no answer in 5 s (2 attempts, the "
            "last: websocket error); is it running, and is this page allowed to use it?",
        },
    )
    assert not lifecycle.timer_running  # said once
    lifecycle.connect_error("websocket error")  # the client's retries go on, and are told
    h.run_until(60_000)
    assert [name for name, _ in events].count("connect_failed") == 1
    assert events[-1][0] == "server_unreachable"


def test_a_server_that_answers_in_time_is_no_failure() -> None:
    lifecycle, h, events = make(connect_timeout_ms=5000.0)
    lifecycle.connecting()
    h.run_until(4000)
    lifecycle.server_reached()
    assert not lifecycle.timer_running
    h.run_until(60_000)
    assert events == []


def test_no_connect_timeout_waits_as_long_as_it_takes() -> None:
    lifecycle, h, events = make(connect_timeout_ms=None)
    lifecycle.connecting()
    assert not lifecycle.timer_running
    h.run_until(600_000)
    assert events == []
    with pytest.raises(ValueError, match="connect_timeout_ms"):
        make(connect_timeout_ms=0.0)


def test_a_closed_lifecycle_never_reports_the_server() -> None:
    lifecycle, h, events = make(connect_timeout_ms=1000.0)
    lifecycle.connecting()
    lifecycle.close()
    h.run_until(10_000)
    assert events == [] and not h.scheduler.active


def test_candidate_types_and_options() -> None:
    assert candidate_type("candidate:5 1 udp 41885439 127.0.0.1 51234 typ relay raddr 0.0.0.0") == (
        "relay"
    )
    assert candidate_type("not a candidate") is None
    with pytest.raises(ValueError, match="ice_timeout_ms must be positive"):
        make(ice_timeout_ms=0)


# --- through the browser edge's decisions (Pairing) and the options ---------------------------


def pairing_tab(**options: Any) -> tuple[Pairing, FakeScheduler, list[tuple[str, dict[str, Any]]]]:
    clock = FakeClock(0.0)
    scheduler = FakeScheduler(clock)
    events: list[tuple[str, dict[str, Any]]] = []
    pairing = Pairing(
        TransportOptions(room="r", **options),
        Callbacks(
            on_input=lambda frame, action: None,
            on_event=lambda name, detail: events.append((name, detail)),
        ),
        lambda action: None,
        clock=clock,
        scheduler=scheduler,
        new_relay=FakeSocket,
    )
    return pairing, scheduler, events


def test_a_server_refusal_reaches_the_page_as_one_event() -> None:
    pairing, _, events = pairing_tab()
    pairing.server_event(ERROR_EVENT, {"code": "unauthorized", "message": "Not enough segments"})
    ((name, detail),) = events
    assert name == "refused" and detail["code"] == "unauthorized"
    assert "room token" in detail["message"] and "Not enough segments" in detail["message"]


def test_connect_fails_after_the_options_timeout_unless_the_server_answers() -> None:
    pairing, scheduler, events = pairing_tab(connect_timeout_ms=2000.0)
    pairing.connecting()
    pairing.server_unreachable("websocket error")
    scheduler.advance(2000.0)
    assert [name for name, _ in events] == ["server_unreachable", "connect_failed"]
    answered, scheduler, events = pairing_tab(connect_timeout_ms=2000.0)
    answered.connecting()
    answered.socket_connected()
    scheduler.advance(10_000.0)
    assert "connect_failed" not in [name for name, _ in events]


TURN = {"urls": "turn:127.0.0.1:3478", "username": "u", "credential": "c"}


@pytest.mark.parametrize(
    "ice_servers",
    [({"urls": "stun:127.0.0.1:3478"},), ({"urls": ["stun:a:1", "stun:b:2"]},)],
)
def test_relay_only_without_a_turn_server_is_refused_where_the_options_are_made(
    ice_servers: tuple[dict[str, Any], ...],
) -> None:
    with pytest.raises(UsageError, match=r"relay_only \(relayOnly\) needs a TURN server"):
        TransportOptions(relay_only=True, ice_servers=ice_servers)
    TransportOptions(relay_only=True, ice_servers=(*ice_servers, TURN))
    TransportOptions(relay_only=True, ice_servers=({"urls": ["stun:a:1", "turns:b:5349"]},))


@pytest.mark.parametrize("minted", [False, True])
def test_relay_only_without_ice_servers_is_decided_at_pairing(minted: bool) -> None:
    pairing, scheduler, events = pairing_tab(relay_only=True)
    detail: dict[str, Any] = {"player_index": 0, "peer_index": 1, "peer_client": "b"}
    if minted:
        detail["ice_servers"] = [TURN]
    pairing.server_event(PAIRED_EVENT, detail)
    names = [name for name, _ in events]
    if minted:  # the server's TURN server: ICE goes on as usual
        assert "p2p_unavailable" not in names
        return
    # No TURN server from anyone: said at once, in words, not after the ICE timeout.
    assert names[-2:] == ["paired", "p2p_unavailable"]
    assert events[-1][1]["reason"] == "no_turn_server"
    assert "needs a TURN server" in events[-1][1]["message"]
    scheduler.advance(60_000.0)
    assert "ice_failed" not in [name for name, _ in events]

"""The lifecycle events a page shows while the connection comes up, or does not."""

from __future__ import annotations

from typing import Any

import pytest

from p2p_transport.protocol.lifecycle import (
    MAX_CANDIDATE_ERRORS,
    WAITING_FIRST_MS,
    WAITING_REPEAT_MS,
    Lifecycle,
    candidate_type,
)
from tests.fakes import FakeClock, FakeScheduler


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
    lifecycle.server_error({"message": "join: the token has expired", "code": "unauthorized"})
    lifecycle.connect_error("xhr poll error")
    lifecycle.connect_error("websocket error")
    lifecycle.server_lost("transport close")
    lifecycle.reconnect_failed()
    assert events == [
        ("room_full", {"room": "r", "message": "join: room 'r' is full"}),
        ("refused", {"message": "relay: join a room first", "code": "refused"}),
        ("refused", {"message": "join: the token has expired", "code": "unauthorized"}),
        ("server_unreachable", {"reason": "xhr poll error", "attempt": 1}),
        ("server_unreachable", {"reason": "websocket error", "attempt": 2}),
        ("server_unreachable", {"reason": "connection lost: transport close"}),
        ("p2p_unavailable", {"reason": "reconnect_failed"}),
    ]


def test_candidate_types_and_options() -> None:
    assert candidate_type("candidate:5 1 udp 41885439 127.0.0.1 51234 typ relay raddr 0.0.0.0") == (
        "relay"
    )
    assert candidate_type("not a candidate") is None
    with pytest.raises(ValueError, match="ice_timeout_ms must be positive"):
        make(ice_timeout_ms=0)

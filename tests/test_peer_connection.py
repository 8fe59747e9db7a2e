"""The peer-connection state machine under CPython: signals, generations, candidates that arrive
early or late, re-offers after a lost or silent channel, and bounded attempts with backoff.

One side alone (:class:`Side`) checks exact actions; two sides joined by a fake browser and a
signaling link (:class:`Pair`) replay whole reconnections.
"""

from __future__ import annotations

from typing import Any

import pytest

from p2p_transport.protocol.peer_connection import (
    AcceptOffer,
    Action,
    AddCandidate,
    ApplyAnswer,
    CloseConnection,
    Emit,
    OpenConnection,
    PeerConnectionMachine,
    SendSignal,
)
from p2p_transport.protocol.reconnect import ReconnectConfig
from tests.fakes import FakeClock, FakeScheduler

RECONNECT = ReconnectConfig()


class Side:
    """One machine with a fake clock; every action it asks for is kept in ``actions``."""

    def __init__(self, clock: FakeClock | None = None) -> None:
        self.clock = clock or FakeClock()
        self.scheduler = FakeScheduler(self.clock)
        self.actions: list[Action] = []
        self.machine = PeerConnectionMachine(self.execute, self.clock, self.scheduler, RECONNECT)

    def execute(self, action: Action) -> None:
        self.actions.append(action)

    def take(self) -> list[Action]:
        actions, self.actions = self.actions, []
        return actions

    def events(self) -> list[str]:
        return [a.event for a in self.actions if isinstance(a, Emit)]


def candidate(name: str) -> dict[str, Any]:
    return {"candidate": f"candidate:{name}", "sdpMid": "0", "sdpMLineIndex": 0}


def answerer() -> Side:
    side = Side()
    side.machine.paired(1, 0)
    assert side.take() == [OpenConnection(0, offerer=False)]
    return side


def offerer() -> Side:
    side = Side()
    side.machine.paired(0, 1)
    assert side.take() == [OpenConnection(0, offerer=True)]
    return side


# --- one side -------------------------------------------------------------------------------------


def test_the_lower_index_offers_and_every_signal_carries_the_generation() -> None:
    side = offerer()
    side.machine.local_description(0, "offer", "sdp-o")
    side.machine.local_candidate(0, candidate("o1"))
    assert side.take() == [
        SendSignal({"type": "offer", "sdp": "sdp-o", "generation": 0}),
        SendSignal({"type": "ice-candidate", "candidate": candidate("o1"), "generation": 0}),
    ]
    side.machine.on_signal({"type": "answer", "sdp": "sdp-a", "generation": 0})
    assert side.take() == [ApplyAnswer(0, "sdp-a")]


def test_candidates_before_the_description_wait_for_it_in_order() -> None:
    side = answerer()
    for name in ("a", "b"):
        side.machine.on_signal({"type": "ice-candidate", "candidate": candidate(name)})
    assert side.take() == []
    side.machine.on_signal({"type": "offer", "sdp": "sdp-o", "generation": 0})
    assert side.take() == [AcceptOffer(0, "sdp-o")]  # the connection opened at pairing is used
    side.machine.remote_description_set(0)
    assert side.take() == [AddCandidate(candidate("a")), AddCandidate(candidate("b"))]
    side.machine.on_signal({"type": "ice-candidate", "candidate": candidate("c"), "generation": 0})
    assert side.take() == [AddCandidate(candidate("c"))]


def test_the_answerer_tears_down_for_a_newer_offer_and_ignores_the_old_connection() -> None:
    side = answerer()
    side.machine.on_signal({"type": "offer", "sdp": "first", "generation": 0})
    side.machine.remote_description_set(0)
    side.take()
    side.machine.on_signal({"type": "offer", "sdp": "second", "generation": 1})
    assert side.take() == [
        CloseConnection(),
        OpenConnection(1, offerer=False),
        AcceptOffer(1, "second"),
    ]
    # The new connection's candidate waits for its description; the old connection's answer
    # and description finish late, and neither sends anything nor releases the candidate.
    side.machine.on_signal(
        {"type": "ice-candidate", "candidate": candidate("new"), "generation": 1}
    )
    side.machine.local_description(0, "answer", "old answer")
    side.machine.remote_description_set(0)
    side.machine.local_candidate(0, candidate("old"))
    assert side.take() == []
    assert side.machine.generation == 1
    side.machine.remote_description_set(1)
    assert side.take() == [AddCandidate(candidate("new"))]


def test_a_stale_generations_candidates_are_dropped_and_a_newer_ones_wait() -> None:
    side = answerer()
    side.machine.on_signal({"type": "offer", "sdp": "o1", "generation": 1})
    # A candidate of the next connection outruns its offer; one of the old connection comes late.
    side.machine.on_signal(
        {"type": "ice-candidate", "candidate": candidate("next"), "generation": 2}
    )
    side.machine.on_signal(
        {"type": "ice-candidate", "candidate": candidate("old"), "generation": 0}
    )
    side.machine.remote_description_set(0)
    assert side.take() == [AcceptOffer(0, "o1")]
    assert side.machine.stale_signals == 1
    side.machine.on_signal({"type": "offer", "sdp": "o2", "generation": 2})
    side.machine.remote_description_set(1)
    assert side.take() == [
        CloseConnection(),
        OpenConnection(1, offerer=False),
        AcceptOffer(1, "o2"),
        AddCandidate(candidate("next")),
    ]


def test_signals_that_do_not_belong_are_counted_and_dropped() -> None:
    side = offerer()
    side.machine.on_signal({"type": "offer", "sdp": "x", "generation": 0})  # only one side offers
    side.machine.on_signal({"type": "answer", "sdp": "x", "generation": 5})  # another connection
    assert side.take() == []
    assert side.machine.stale_signals == 2

    late = answerer()
    late.machine.on_signal({"type": "offer", "sdp": "o3", "generation": 3})
    late.take()
    late.machine.on_signal({"type": "offer", "sdp": "o2", "generation": 2})
    assert late.take() == []
    assert late.machine.stale_signals == 1


@pytest.mark.parametrize(
    "message",
    [
        "not a dict",
        None,
        {"type": "offer"},  # no sdp
        {"type": "offer", "sdp": 7},
        {"type": "ice-candidate", "candidate": "not a dict"},
        {"type": "bogus"},
        {},
    ],
)
def test_malformed_signals_change_nothing(message: object) -> None:
    side = answerer()
    side.machine.on_signal(message)
    assert side.take() == []
    assert side.machine.connection == 0


def test_a_generation_that_is_a_bool_is_treated_as_absent() -> None:
    side = answerer()
    side.machine.on_signal({"type": "offer", "sdp": "o", "generation": True})
    assert side.take() == [AcceptOffer(0, "o")]
    assert side.machine.generation == 0


def test_the_offerer_reconnects_after_the_backoff_with_a_new_generation() -> None:
    side = offerer()
    side.machine.channel_opened(0)
    assert side.events() == ["open", "connected"]
    side.take()
    side.machine.channel_closed(0)
    assert side.take() == [
        Emit("closed"),
        Emit("degraded", {"reason": "data channel closed"}),
    ]
    side.scheduler.advance(RECONNECT.first_delay_ms - 1)
    assert side.take() == []
    side.scheduler.advance(1)
    assert side.take() == [
        CloseConnection(),
        Emit("reconnecting", {"attempt": 1, "generation": 1}),
        OpenConnection(1, offerer=True),
    ]
    side.machine.local_description(1, "offer", "sdp-1")
    assert side.take() == [SendSignal({"type": "offer", "sdp": "sdp-1", "generation": 1})]
    side.scheduler.advance(30)
    side.machine.channel_opened(1)
    assert side.take() == [
        Emit("open"),
        Emit("reconnected", {"downtime_ms": 280.0, "attempts": 1, "generation": 1}),
    ]
    assert side.machine.stats()["reconnects"] == 1
    assert side.machine.stats()["reconnect_attempt_running"] is False


def test_attempts_are_bounded_and_back_off_then_the_machine_gives_up_once() -> None:
    side = offerer()
    side.machine.channel_opened(0)
    side.machine.connection_failed(0)
    side.take()
    started: list[float] = []
    for _ in range(40):  # 40 s of nothing connecting
        side.scheduler.advance(1000)
        started += [
            side.clock() for a in side.actions if isinstance(a, Emit) and a.event == "reconnecting"
        ]
        if "reconnect_failed" in side.events():
            break
        side.take()
    # Each attempt waits its backoff (250 ms doubling, at most 4 s) after the previous one timed
    # out (5 s); the clock here moves in whole seconds, so each start is seen at the next second.
    waits = [250.0, 500.0, 1000.0, 2000.0, 4000.0]
    expected, t = [], 0.0
    for wait in waits:
        t += wait
        expected.append(t)
        t += RECONNECT.attempt_timeout_ms
    assert len(started) == RECONNECT.max_attempts
    for seen, due in zip(started, expected, strict=True):
        assert due <= seen < due + 1000
    assert side.events().count("reconnect_failed") == 1
    stats = side.machine.stats()
    assert stats["reconnect_give_ups"] == 1
    assert stats["reconnect_timer_running"] is False
    side.take()
    side.scheduler.advance(60_000)
    assert side.take() == []  # given up: no more attempts until a channel opens


def test_the_answerer_never_reoffers_it_closes_a_dead_channel_instead() -> None:
    side = answerer()
    side.machine.on_signal({"type": "offer", "sdp": "o", "generation": 0})
    side.machine.channel_opened(0)
    side.take()
    side.machine.p2p_dead(3100.0)
    assert side.take() == [
        CloseConnection(),
        Emit("degraded", {"reason": "p2p open but silent for 3100 ms"}),
    ]
    side.scheduler.advance(60_000)
    assert side.take() == []  # it waits for the offerer's new offer
    side.machine.on_signal({"type": "offer", "sdp": "o1", "generation": 1})
    assert side.take() == [OpenConnection(1, offerer=False), AcceptOffer(1, "o1")]


def test_peer_left_stops_reconnecting_and_close_is_final() -> None:
    side = offerer()
    side.machine.channel_closed(0)
    side.take()
    side.machine.peer_left({"player_index": 1})
    assert side.take() == [
        CloseConnection(),
        Emit("peer_left", {"player_index": 1}),
        Emit("disconnected", {"reason": "peer left"}),
    ]
    side.scheduler.advance(10_000)
    assert side.take() == []
    assert side.scheduler.active == {}
    side.machine.close()
    side.machine.paired(0, 1)
    side.machine.on_signal({"type": "answer", "sdp": "a", "generation": 0})
    assert side.take() == []


def test_a_new_peer_starts_afresh_and_forgets_the_old_ones_candidates() -> None:
    side = answerer()
    side.machine.on_signal({"type": "ice-candidate", "candidate": candidate("old peer")})
    side.machine.paired(1, 0)  # the server paired this side again, with someone new
    side.machine.on_signal({"type": "offer", "sdp": "new peer", "generation": 0})
    side.machine.remote_description_set(1)
    assert side.take() == [
        CloseConnection(),
        OpenConnection(1, offerer=False),
        AcceptOffer(1, "new peer"),
    ]


# --- two sides ------------------------------------------------------------------------------------


class FakeBrowser:
    """What the browser would do with one side's actions: descriptions complete at once, signals
    queue on the link, and a channel opens on both sides once the offerer has applied the answer
    of the answerer's current connection."""

    def __init__(self, pair: Pair, side: Side, name: str) -> None:
        self.pair, self.side, self.name = pair, side, name
        self.connection: int | None = None
        self.channel_open = False
        self.candidates_added: list[dict[str, Any]] = []

    def execute(self, action: Action) -> None:
        machine = self.side.machine
        if isinstance(action, OpenConnection):
            self.connection, self.channel_open = action.connection, False
            self.candidates_added = []
            if action.offerer:
                machine.local_description(action.connection, "offer", f"{self.name}")
                machine.local_candidate(action.connection, candidate(self.name))
        elif isinstance(action, CloseConnection):
            was_open, self.connection, self.channel_open = self.channel_open, None, False
            if was_open:
                self.pair.other(self).close_channel()
        elif isinstance(action, SendSignal):
            self.pair.queue.append((self.pair.other(self), action.message))
        elif isinstance(action, AcceptOffer):
            machine.remote_description_set(action.connection)
            machine.local_description(action.connection, "answer", f"{self.name}")
            machine.local_candidate(action.connection, candidate(self.name))
        elif isinstance(action, ApplyAnswer):
            machine.remote_description_set(action.connection)
            self.pair.connected()
        elif isinstance(action, AddCandidate):
            self.candidates_added.append(action.candidate)

    def open_channel(self) -> None:
        assert self.connection is not None
        self.channel_open = True
        self.side.machine.channel_opened(self.connection)

    def close_channel(self) -> None:
        if self.channel_open and self.connection is not None:
            self.channel_open = False
            self.side.machine.channel_closed(self.connection)


class Pair:
    def __init__(self) -> None:
        clock = FakeClock()
        self.queue: list[tuple[FakeBrowser, Any]] = []
        self.a_side, self.b_side = Side(clock), Side(clock)
        self.a = FakeBrowser(self, self.a_side, "a")
        self.b = FakeBrowser(self, self.b_side, "b")
        for browser in (self.a, self.b):
            browser.side.machine = PeerConnectionMachine(
                self._recording(browser), clock, browser.side.scheduler, RECONNECT
            )
        self.clock = clock

    def _recording(self, browser: FakeBrowser) -> Any:
        def execute(action: Action) -> None:
            browser.side.actions.append(action)
            browser.execute(action)

        return execute

    def other(self, browser: FakeBrowser) -> FakeBrowser:
        return self.b if browser is self.a else self.a

    def connected(self) -> None:
        for browser in (self.a, self.b):
            if not browser.channel_open:
                browser.open_channel()

    def deliver(self) -> None:
        while self.queue:
            to, message = self.queue.pop(0)
            to.side.machine.on_signal(message)

    def run(self, ms: float, step: float = 10.0) -> None:
        end = self.clock() + ms
        while self.clock() < end:
            self.deliver()
            for side in (self.a_side, self.b_side):
                side.scheduler.advance(0)
            self.a_side.scheduler.advance(step / 2)
            self.b_side.scheduler.advance(step / 2)
        self.deliver()

    def start(self) -> None:
        self.a_side.machine.paired(0, 1)
        self.b_side.machine.paired(1, 0)
        self.run(10)


def test_two_sides_connect_and_each_adds_the_others_candidate() -> None:
    pair = Pair()
    pair.start()
    assert pair.a.channel_open and pair.b.channel_open
    assert pair.a.candidates_added == [candidate("b")]
    assert pair.b.candidates_added == [candidate("a")]
    assert pair.a_side.events().count("connected") == pair.b_side.events().count("connected") == 1


def test_both_sides_losing_the_channel_make_one_new_connection_offered_by_one_side() -> None:
    pair = Pair()
    pair.start()
    for browser in (pair.a, pair.b):
        browser.close_channel()
    pair.run(1000)
    assert pair.a.channel_open and pair.b.channel_open
    a_opened = [a for a in pair.a_side.actions if isinstance(a, OpenConnection)]
    b_opened = [a for a in pair.b_side.actions if isinstance(a, OpenConnection)]
    assert [o.offerer for o in a_opened] == [True, True]
    assert [o.offerer for o in b_opened] == [False, False]
    assert pair.a_side.machine.generation == pair.b_side.machine.generation == 1
    assert pair.b.candidates_added == [candidate("a")]  # only the new connection's candidate
    assert "reconnected" in pair.a_side.events()


def test_a_channel_dead_one_way_is_closed_by_the_answerer_and_reoffered_by_the_offerer() -> None:
    pair = Pair()
    pair.start()
    # The offerer hears nothing wrong; the answerer's watchdog finds the channel dead.
    pair.b_side.machine.p2p_dead(3100.0)
    assert not pair.a.channel_open  # closing its end closed the offerer's channel
    pair.run(RECONNECT.first_delay_ms + 50)
    assert pair.a.channel_open and pair.b.channel_open
    assert pair.a_side.machine.generation == 1
    assert pair.a_side.machine.stats()["reconnects"] == 1
    assert pair.b_side.machine.stats()["reconnects"] == 1

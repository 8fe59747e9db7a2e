"""Background tabs: a tab whose timers the browser throttles, or whose page it freezes, must not
blame its peer for its own sleep, and must go on answering pings.

The throttling here is simulated in the scheduler (:class:`BrowserLikeScheduler`): timers fire at
most once per ``min_gap_ms`` (Chromium's hidden-tab throttling: one wake-up a second), or not at
all while ``frozen`` (a frozen page, or a main thread blocked by a long step); an overdue interval
then fires once, late, as a browser's does, and the packets that reached the frozen side wait in a
queue delivered after that first late tick. Two sessions share one clock and a loss-free wire.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import pairwise
from typing import Any

import pytest

from p2p_transport import SessionConfig
from p2p_transport.protocol.health import HealthStatus, HealthThresholds
from p2p_transport.session import Callbacks, P2PSession, SessionEvent
from p2p_transport.session.watchdog import DEFAULT_KEEPALIVE_INTERVAL_MS, LOCAL_STALL_MS
from p2p_transport.wire.codec import decode
from p2p_transport.wire.messages import MessageType
from tests.fakes import FakeChannel, FakeClock, FakeScheduler

STEP_MS = 10.0
DISCONNECT = HealthThresholds().disconnect_silence_ms
WARNING = HealthThresholds().warning_silence_ms


class BrowserLikeScheduler(FakeScheduler):
    """Fires timers the way a browser tab does when the test calls :meth:`run_due`: an overdue
    interval fires once (never a burst of catch-up calls) and is next due an interval later;
    with ``min_gap_ms`` (throttled) no timer fires more often than that; while ``frozen`` none
    fires."""

    def __init__(self, clock: FakeClock, min_gap_ms: float = 0.0) -> None:
        super().__init__(clock)
        self.min_gap_ms = min_gap_ms
        self.frozen = False
        #: (handle, time it fired, how late it was in ms)
        self.fired: list[tuple[int, float, float]] = []

    def run_due(self) -> int:
        if self.frozen:
            return 0
        now = self.clock()
        due = sorted((t.next_due_ms, h) for h, t in self.active.items() if t.next_due_ms <= now)
        for due_ms, handle in due:
            timer = self.active.get(handle)
            if timer is None:
                continue  # cleared by an earlier callback
            timer.next_due_ms = now + max(timer.interval_ms, self.min_gap_ms)
            self.fired.append((handle, now, now - due_ms))
            timer.callback()
        return len(due)


class Side:
    """One tab: its session, its scheduler, and the queue of packets on their way to it."""

    def __init__(self, name: str, index: int, clock: FakeClock, min_gap_ms: float) -> None:
        self.name = name
        self.scheduler = BrowserLikeScheduler(clock, min_gap_ms)
        self.channel = FakeChannel()
        self.inbox: list[bytes] = []
        self.events: list[tuple[float, SessionEvent, dict[str, Any]]] = []
        self.statuses: list[HealthStatus] = []
        self.rtts: list[float] = []
        self.watchdog_handle: int | None = None
        self.session = P2PSession(
            index,
            1 - index,
            Callbacks(
                on_input=lambda frame, action: None,
                on_event=lambda event, detail: self.events.append((clock(), event, detail)),
                on_rtt=lambda rtt, path: self.rtts.append(rtt),
            ),
            clock=clock,
            scheduler=self.scheduler,
            channel=self.channel,
            config=SessionConfig(relay_inputs=False, relay_pings=False),
        )
        # Pings answered, and pongs sent, counted as each inbox delivery runs.
        self.pings_delivered = 0
        self.pongs_sent_while_delivering = 0

    def names(self) -> list[str]:
        return [event.value for _, event, _ in self.events]

    def deliver(self) -> None:
        """Hand the queued packets to the session, as the page's message events would."""
        inbox = list(self.inbox)
        self.inbox.clear()  # in place: the wire holds this list's append
        for data in inbox:
            is_ping = decode(data).type is MessageType.PING
            sent_before = len(self.channel.sent)
            self.session.edge.on_message(data)
            if is_ping:
                self.pings_delivered += 1
                # The pong left inside the message handler, before any timer could run.
                self.pongs_sent_while_delivering += sum(
                    decode(packet).type is MessageType.PONG
                    for packet in self.channel.sent[sent_before:]
                )


class Pair:
    """Two tabs joined by a loss-free DataChannel that delivers every 10 ms step."""

    def __init__(self, a_min_gap_ms: float = 0.0) -> None:
        self.clock = FakeClock(1000.0)
        self.a = Side("a", 0, self.clock, a_min_gap_ms)
        self.b = Side("b", 1, self.clock, 0.0)
        self.a.channel.on_send = self.b.inbox.append
        self.b.channel.on_send = self.a.inbox.append
        self.b_alive = True
        for side in (self.a, self.b):
            side.session.edge.on_open()
            side.session.edge.start_watchdog()
            # The timer start_watchdog() just started, to tell its ticks from the others'.
            side.watchdog_handle = side.scheduler.started[-1]
            assert side.scheduler.active[side.watchdog_handle].interval_ms == (
                DEFAULT_KEEPALIVE_INTERVAL_MS
            )

    def run(self, ms: float, each_step: Callable[[], None] | None = None) -> None:
        for _ in range(round(ms / STEP_MS)):
            self.clock.advance(STEP_MS)
            if self.b_alive:
                self.b.scheduler.run_due()
                self.b.deliver()
            else:
                self.b.inbox.clear()
            if not self.a.scheduler.frozen:
                # Timers first: after a freeze the first late tick runs before the queued
                # message events, the order that tests the silence verdict hardest.
                self.a.scheduler.run_due()
                self.a.deliver()
                self.a.statuses.append(self.a.session.parts.health.status)
            if each_step is not None:
                each_step()


def test_a_throttled_tab_keeps_its_peer_and_answers_every_ping() -> None:
    pair = Pair(a_min_gap_ms=1000.0)
    pair.run(30_000)
    a, b = pair.a, pair.b
    # Throttled: the watchdog (200 ms) and the ping timer (500 ms) wake once a second at most.
    ticks = [(at, late) for handle, at, late in a.scheduler.fired if handle == a.watchdog_handle]
    assert len(ticks) == pytest.approx(30, abs=1)
    assert min(t2 - t1 for (t1, _), (t2, _) in pairwise(ticks)) >= 1000
    assert a.events == [] and b.events == []
    assert set(a.statuses) == {HealthStatus.GOOD}
    stats = a.session.stats()
    assert stats["local_stalls"] == 0  # throttled, not stalled: every gap is 1000 ms or less
    assert stats["health_silence_ms"] < 200
    # Every one of the peer's pings (two a second) was answered inside the message handler.
    assert a.pings_delivered == pytest.approx(60, abs=1)
    assert a.pongs_sent_while_delivering == a.pings_delivered
    b_stats = b.session.stats()
    assert b_stats["p2p_pongs_received"] >= b_stats["p2p_pings_sent"] - 1
    assert max(b.rtts) <= 2 * STEP_MS  # answered at once, not at A's next (throttled) tick


def test_a_frozen_tab_that_resumes_does_not_report_its_peer_gone() -> None:
    pair = Pair()
    a, b = pair.a, pair.b
    pair.run(2_000)
    a.scheduler.frozen = True
    pair.run(10_000)  # B goes on sending: its pings and keepalives queue up for A
    queued = len(a.inbox)
    assert queued >= 45  # 20 pings and a keepalive in every idle 200 ms
    a.scheduler.frozen = False
    resumed_at = pair.clock()
    pair.run(5_000)
    # The first ticks after the freeze came 10 s late and judged before the queue was delivered.
    lateness = [late for _, at, late in a.scheduler.fired if at == resumed_at + STEP_MS]
    assert lateness and max(lateness) > 9_000
    assert a.events == []
    assert set(a.statuses) == {HealthStatus.GOOD}
    stats = a.session.stats()
    assert stats["local_stalls"] == 1
    assert stats["local_stall_max_ms"] == pytest.approx(10_000, abs=DEFAULT_KEEPALIVE_INTERVAL_MS)
    # The peer's queued pings were all answered when they were handled, in the handler.
    assert a.pongs_sent_while_delivering == a.pings_delivered
    # A's last ping before the freeze came back after it: flagged, not an RTT sample.
    assert stats["rtt_samples_after_local_stall"] == 1
    assert max(a.rtts) <= 2 * STEP_MS
    assert a.session.parts.rtt.snapshot()["rtt_max_ms"] <= 2 * STEP_MS
    # B, awake all along, really heard nothing from A for 10 s, and says so; then hears it again.
    assert b.names()[:2] == ["p2p_silent", "peer_silent"]
    assert "p2p_dead" in b.names() and b.names()[-1] == "peer_back"


def test_a_peer_that_left_during_the_freeze_is_reported_after_the_awake_silence() -> None:
    pair = Pair()
    a = pair.a
    pair.run(2_000)
    a.scheduler.frozen = True
    pair.run(1_000)
    pair.b_alive = False  # the peer vanishes (no close event) while A is frozen
    pair.b.session.close()
    pair.run(9_000)
    a.scheduler.frozen = False
    resumed_at = pair.clock()
    pair.run(5_000)
    assert a.names() == ["p2p_silent", "peer_silent", "p2p_dead", "peer_gone"]
    warned_at, dead_at = a.events[0][0], a.events[2][0]
    # Only the silence A was awake for counts: the 10 s freeze is left out (A heard B just before
    # it froze), so the verdicts come WARNING and DISCONNECT after the resume, not at its first
    # tick, which would have judged 10 s of silence.
    assert warned_at - resumed_at == pytest.approx(WARNING, abs=2 * DEFAULT_KEEPALIVE_INTERVAL_MS)
    assert dead_at - resumed_at == pytest.approx(DISCONNECT, abs=2 * DEFAULT_KEEPALIVE_INTERVAL_MS)
    assert a.session.stats()["local_stalls"] == 1


def test_a_throttled_tab_whose_peer_vanished_still_reports_it() -> None:
    pair = Pair(a_min_gap_ms=1000.0)
    a = pair.a
    pair.run(3_000)
    pair.b_alive = False
    pair.b.session.close()
    gone_at = pair.clock()
    pair.run(8_000)
    assert "peer_gone" in a.names()
    reported = next(at for at, event, _ in a.events if event is SessionEvent.PEER_GONE)
    # Gaps of 1000 ms are throttling, not stalls (LOCAL_STALL_MS is 1500): the whole silence
    # counts, judged at the next once-a-second tick.
    assert LOCAL_STALL_MS > 1000
    assert DISCONNECT < reported - gone_at <= DISCONNECT + 1000 + STEP_MS
    assert a.session.stats()["local_stalls"] == 0


def test_stalls_are_only_measured_while_the_watchdog_runs() -> None:
    clock = FakeClock(0.0)
    session = P2PSession(0, 1, lambda f, a: None, clock=clock, scheduler=FakeScheduler(clock))
    clock.advance(10_000)
    session.edge.on_message(b"\x04")  # a keepalive, after a long idle spell without a watchdog
    assert session.stats()["local_stalls"] == 0

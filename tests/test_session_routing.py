"""P2PSession routing: pinned paths, and p2p-first falling back to the relay and coming back."""

from __future__ import annotations

from collections import Counter

import pytest

from p2p_transport import P2PSession, SessionConfig
from p2p_transport.protocol.routing import Route, RouteChange, RouteMode, RoutingThresholds
from p2p_transport.timing import FRAME_MS
from p2p_transport.wire.codec import INPUT_RECORD_TYPE, decode
from p2p_transport.wire.messages import AckedInputPacket, InputPacket
from tests.fakes import FakeClock, FakeLink, FakeScheduler
from tests.test_session import make

T = RoutingThresholds()


def input_packets(sent: list[bytes]) -> int:
    # Input records (0x30) are the server's, which forwards none: not packets for the peer.
    return sum(
        1
        for data in sent
        if data[0] != INPUT_RECORD_TYPE and isinstance(decode(data), InputPacket | AckedInputPacket)
    )


class Game:
    """Two sessions over a FakeLink (relay 3 frames slower than P2P), stepping once a frame."""

    def __init__(self, config: SessionConfig) -> None:
        self.clock = FakeClock(0.0)
        self.scheduler = FakeScheduler(self.clock)
        self.link = FakeLink(relay_delay=3, seed=1)
        self.got: dict[str, list[tuple[int, int]]] = {"a": [], "b": []}
        self.sessions = {
            side: P2PSession(
                player,
                1 - player,
                lambda frame, action, side=side: self.got[side].append((frame, action)),
                clock=self.clock,
                scheduler=self.scheduler,
                channel=getattr(self.link, f"channel_{side}"),
                relay=getattr(self.link, f"socket_{side}"),
                config=config,
            )
            for side, player in (("a", 0), ("b", 1))
        }
        self.link.connect(self.sessions["a"], self.sessions["b"])
        self.frame = 0
        self.routes: list[Route] = []

    @property
    def a(self) -> P2PSession:
        return self.sessions["a"]

    def set_channels(self, state: str) -> None:
        self.link.channel_a.readyState = self.link.channel_b.readyState = state
        for session in self.sessions.values():
            if state == "open":
                session.edge.on_open()
            elif state == "closed":
                session.edge.on_close()

    def play(self, ms: float) -> None:
        end = self.clock() + ms
        while self.clock() < end:
            for side, player in (("a", 0), ("b", 1)):
                self.sessions[side].step(self.frame, (self.frame + player) % 256)
            self.routes.append(self.a.parts.inputs.router.route)
            self.frame += 1
            self.link.deliver()
            self.scheduler.advance(FRAME_MS)

    def assert_every_input_once(self) -> None:
        self.link.drain()
        for side, player in (("b", 0), ("a", 1)):
            assert Counter(f for f, _ in self.got[side]) == Counter(range(self.frame))
            assert all(action == (f + player) % 256 for f, action in self.got[side])


def test_p2p_first_falls_back_when_the_channel_closes_and_returns_after_the_dwell() -> None:
    game = Game(SessionConfig(route_mode=RouteMode.P2P_FIRST))
    heard: list[RouteChange] = []
    game.a.parts.inputs.router.subscribe(heard.append)
    # Before the DataChannel opens, the relay carries the inputs alone.
    game.set_channels("connecting")
    game.play(500)
    assert set(game.routes) == {Route.RELAY}
    assert input_packets(game.link.channel_a.sent) == 0
    # It opens: both for the overlap, then P2P alone.
    game.set_channels("open")
    game.play(2000)
    assert game.routes[-1] is Route.P2P
    relay_before = len(game.link.socket_a.emitted)
    game.play(1000)
    assert input_packets([data for _, data in game.link.socket_a.emitted[relay_before:]]) == 0
    # The channel closes: the next step already sends on the relay.
    closed_at = game.clock()
    game.set_channels("closed")
    game.play(2000)
    assert game.routes[-1] is Route.RELAY
    leave = next(c for c in heard if c.reason == "p2p channel not open")
    assert leave.at_ms - closed_at <= FRAME_MS
    # A new connection opens and stays healthy: after the dwell time and the overlap, P2P again.
    reopened_at = game.clock()
    game.set_channels("open")
    game.play(T.min_dwell_ms + T.overlap_ms + 500)
    assert game.routes[-1] is Route.P2P
    back = next(c for c in heard if c.reason.startswith("p2p healthy for"))
    assert back.at_ms - reopened_at == pytest.approx(T.min_dwell_ms, abs=2 * FRAME_MS)
    assert [(c.previous, c.route) for c in heard] == [
        (Route.RELAY, Route.BOTH),
        (Route.BOTH, Route.P2P),
        (Route.P2P, Route.BOTH),
        (Route.BOTH, Route.RELAY),
        (Route.RELAY, Route.BOTH),
        (Route.BOTH, Route.P2P),
    ]
    assert game.a.route_changes() == [change.as_dict() for change in heard]
    stats = game.a.stats()
    assert stats["route"] == "p2p"
    assert stats["route_mode"] == "p2p-first"
    assert stats["route_changes"] == 6
    assert stats["acked_inputs_in_use"]  # the relay carried the same acked packets
    game.assert_every_input_once()


def test_p2p_first_leaves_a_silent_channel_and_comes_back_when_it_carries_again() -> None:
    game = Game(SessionConfig(route_mode="p2p-first"))
    game.set_channels("open")
    game.play(2000)
    assert game.routes[-1] is Route.P2P
    game.link.p2p_loss = 1.0  # open, but nothing gets through
    game.play(1500)
    assert game.a.parts.inputs.router.target is Route.RELAY
    # The unacknowledged backlog (32 frames, 533 ms) shows it before the silence (1 s) does.
    assert game.a.parts.inputs.router.last_change.reason == "32 inputs unacknowledged over p2p"
    assert game.a.parts.inputs.acked.counters.inputs_abandoned == 0
    game.play(1500)
    assert game.routes[-1] is Route.RELAY
    game.link.p2p_loss = 0.0
    # With both sides' inputs on the relay, the DataChannel carries only pings: the first one
    # after the recovery can take a ping interval (500 ms), then the dwell time and the overlap.
    game.play(500 + T.min_dwell_ms + T.overlap_ms + 100)
    assert game.routes[-1] is Route.P2P
    game.assert_every_input_once()


def test_parallel_is_the_default_and_sends_every_input_both_ways() -> None:
    game = Game(SessionConfig())
    game.set_channels("open")
    game.play(1000)
    assert set(game.routes) == {Route.BOTH}
    on_p2p = input_packets(game.link.channel_a.sent)
    assert on_p2p == input_packets([data for _, data in game.link.socket_a.emitted])
    assert on_p2p == game.frame + game.a.stats()["acked_probes_sent"]
    assert game.a.stats()["route_changes"] == 0


@pytest.mark.parametrize(("mode", "on_p2p", "on_relay"), [("p2p", 1, 0), ("relay", 0, 1)])
def test_a_pinned_route_uses_one_path_only(mode: str, on_p2p: int, on_relay: int) -> None:
    a = make(config=SessionConfig(route_mode=mode))
    for frame in range(5):
        a.session.step(frame, 1)
    assert len(a.channel.sent) == 5 * on_p2p
    assert len(a.socket.emitted) == 5 * on_relay
    assert a.session.stats()["route"] == mode


def test_relay_inputs_off_means_p2p_only_and_conflicts_with_a_relay_route() -> None:
    a = make(config=SessionConfig(relay_inputs=False))
    assert a.session.parts.inputs.router.mode is RouteMode.P2P
    for mode in ("relay", "p2p-first"):
        with pytest.raises(ValueError, match="needs relay_inputs"):
            SessionConfig(relay_inputs=False, route_mode=mode)
    with pytest.raises(ValueError, match="is not a valid RouteMode"):
        SessionConfig(route_mode="sideways")


def test_p2p_first_leaves_a_channel_dead_one_way_before_any_input_is_given_up() -> None:
    """a's DataChannel packets stop arriving; b's still reach a, so a hears no silence. b's acks,
    on the relay once b has left the silent channel, stop moving: a leaves P2P on the backlog
    while every input is still pending, and nothing is lost."""
    game = Game(SessionConfig(route_mode=RouteMode.P2P_FIRST))
    game.set_channels("open")
    game.play(2000)
    assert game.routes[-1] is Route.P2P
    forward = game.link.channel_a.on_send
    game.link.channel_a.on_send = lambda data: None  # a -> b over P2P: dropped
    dead_at = game.clock()
    game.play(3000)
    leave = next(c for c in game.a.route_changes() if c["at_ms"] >= dead_at)
    assert leave["reason"] == f"{T.max_unacked_inputs} inputs unacknowledged over p2p"
    assert leave["target"] == Route.RELAY.value
    assert (leave["at_ms"] - dead_at) / FRAME_MS == pytest.approx(T.max_unacked_inputs, abs=2)
    assert game.a.parts.inputs.router.route is Route.RELAY
    assert game.a.parts.inputs.acked.counters.inputs_abandoned == 0
    assert game.a.parts.health.silence_ms < T.silence_ms  # silence alone would not have shown it
    game.link.channel_a.on_send = forward
    game.play(500 + T.min_dwell_ms + T.overlap_ms + 100)
    assert game.routes[-1] is Route.P2P
    game.assert_every_input_once()

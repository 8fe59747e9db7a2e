"""P2PSession's control messages: the game's kinds, episode messages, state hashes, paths, stats."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from p2p_transport import P2PSession
from p2p_transport.protocol.control import ControlChannelClosed, ControlWindowFull
from p2p_transport.protocol.desync import Desync
from p2p_transport.session import Callbacks
from p2p_transport.wire.codec import decode
from p2p_transport.wire.control_payloads import (
    decode_episode_end_payload,
    decode_episode_ready_payload,
)
from p2p_transport.wire.messages import (
    GAME_KIND_MAX,
    GAME_KIND_MIN,
    ControlAck,
    ControlKind,
    ControlMessage,
    MessageType,
)
from tests.fakes import FakeClock, FakeLink, FakeScheduler


class Pair:
    """Two sessions joined by a :class:`FakeLink`, recording control messages and desyncs."""

    def __init__(self, p2p_loss: float = 0.0, relay_loss: float = 0.0, seed: int = 1) -> None:
        self.clock = FakeClock(0.0)
        self.scheduler = FakeScheduler(self.clock)
        self.link = FakeLink(p2p_loss=p2p_loss, relay_loss=relay_loss, seed=seed)
        self.control: dict[str, list[tuple[int, bytes]]] = {"a": [], "b": []}
        self.desyncs: dict[str, list[Desync]] = {"a": [], "b": []}
        self.sessions = {
            side: P2PSession(
                player,
                1 - player,
                Callbacks(
                    on_input=lambda frame, action: None,
                    on_control=lambda kind, payload, side=side: self.control[side].append(
                        (kind, payload)
                    ),
                    on_desync=self.desyncs[side].append,
                ),
                clock=self.clock,
                scheduler=self.scheduler,
                channel=getattr(self.link, f"channel_{side}"),
                relay=getattr(self.link, f"socket_{side}"),
            )
            for side, player in (("a", 0), ("b", 1))
        }
        self.a, self.b = self.sessions["a"], self.sessions["b"]
        self.link.connect(self.a, self.b)
        for session in self.sessions.values():
            session.edge.on_open()

    def run(self, ms: float, step_ms: float = 10.0) -> None:
        for _ in range(int(ms / step_ms)):
            self.link.deliver()
            self.scheduler.advance(step_ms)


def control_packets(sent: list[bytes]) -> list[ControlMessage | ControlAck]:
    return [
        decode(p)  # type: ignore[misc]
        for p in sent
        if p[0] in (MessageType.CONTROL, MessageType.CONTROL_ACK)
    ]


def test_game_control_message_arrives_on_both_paths_once() -> None:
    pair = Pair()
    assert pair.a.send_control(GAME_KIND_MIN, b"hello") == 0
    # Both paths carry it: the DataChannel and the relay.
    assert control_packets(pair.link.channel_a.sent) == [ControlMessage(0, 0x80, b"hello")]
    assert [decode(d) for _, d in pair.link.socket_a.emitted] == [ControlMessage(0, 0x80, b"hello")]
    pair.run(100)
    assert pair.control["b"] == [(0x80, b"hello")]
    assert pair.b.parts.control.counters.duplicates == 1  # the relay's copy
    assert pair.a.parts.control.in_flight == 0 and not pair.a.parts.control.timer_running


def test_only_open_paths_carry_control() -> None:
    pair = Pair()
    pair.link.socket_a.connected = False
    pair.a.send_control(GAME_KIND_MAX)
    assert pair.link.socket_a.emitted == []
    assert pair.a.stats()["relay_skipped_closed"] == 0
    pair.link.channel_a.readyState = "closed"
    pair.link.socket_a.connected = True
    pair.run(2000)  # the retransmit timer finds the relay
    assert pair.control["b"] == [(GAME_KIND_MAX, b"")]


@pytest.mark.parametrize("kind", [0, ControlKind.EPISODE_END, GAME_KIND_MIN - 1, 256, -1])
def test_game_kinds_only(kind: int) -> None:
    pair = Pair()
    with pytest.raises(ValueError, match=r"game control kinds are 128\.\.255"):
        pair.a.send_control(kind)
    with pytest.raises(ValueError, match="kind must be an int"):
        pair.a.send_control(True)


def test_episode_messages() -> None:
    pair = Pair()
    pair.a.send_episode_end(600, 3)
    pair.a.send_episode_ready(4)
    pair.run(100)
    (end_kind, end), (ready_kind, ready) = pair.control["b"]
    assert (end_kind, decode_episode_end_payload(end)) == (ControlKind.EPISODE_END, (600, 3))
    assert (ready_kind, decode_episode_ready_payload(ready)) == (ControlKind.EPISODE_READY, 4)


def test_reset_episode_keeps_control_messages_in_flight() -> None:
    pair = Pair(p2p_loss=1.0, relay_loss=1.0)
    for frame in range(5):
        pair.a.step(frame, 1)
    pair.a.send_episode_end(4, 0)
    pair.a.reset_episode()
    assert pair.a.parts.control.in_flight == 1 and pair.a.parts.control.timer_running
    pair.link.p2p_loss = pair.link.relay_loss = 0.0
    pair.run(2000)
    assert [kind for kind, _ in pair.control["b"]] == [ControlKind.EPISODE_END]
    assert pair.a.parts.control.in_flight == 0


def test_state_hashes_find_the_first_desync() -> None:
    pair = Pair(p2p_loss=0.3, relay_loss=0.3, seed=7)
    for frame in range(0, 200, 10):
        pair.a.parts.desync.add_local_hash(frame, frame.to_bytes(4, "big"))
        pair.b.parts.desync.add_local_hash(frame, (frame if frame < 120 else 0).to_bytes(4, "big"))
        pair.run(50)
    pair.run(3000)
    assert pair.desyncs["a"] == [Desync(0, 120, bytes.fromhex("00000078"), bytes(4))]
    assert pair.b.parts.desync.first_desync == Desync(0, 120, bytes(4), bytes.fromhex("00000078"))
    assert pair.control == {"a": [], "b": []}  # state hashes are not the game's messages
    stats = pair.a.stats()
    assert stats["desync_first_desync_frame"] == 120
    assert stats["desync_matches"] == 12 and stats["desync_mismatches"] == 8


def test_stats_keys_and_json() -> None:
    pair = Pair()
    pair.a.send_control(GAME_KIND_MIN)
    pair.run(100)
    stats = pair.a.stats()
    json.dumps(stats)
    for key in ("sent", "retransmits", "duplicates", "delivered", "in_flight", "rto_ms"):
        assert f"control_{key}" in stats
    assert stats["control_sent"] == 1
    assert stats["control_delivery_p50_ms"] == stats["control_delivery_p99_ms"] is not None
    assert pair.b.stats()["control_delivered"] == 1


def test_window_full_and_close() -> None:
    pair = Pair(p2p_loss=1.0, relay_loss=1.0)
    for _ in range(pair.a.parts.control.window):
        pair.a.send_control(GAME_KIND_MIN)
    with pytest.raises(ControlWindowFull):
        pair.a.send_control(GAME_KIND_MIN)
    pair.a.close()
    pair.b.close()
    assert pair.scheduler.active == {}
    with pytest.raises(ControlChannelClosed):
        pair.a.send_episode_ready(1)


def test_a_raising_on_control_is_contained() -> None:
    pair = Pair()

    def broken(kind: int, payload: bytes) -> None:
        raise RuntimeError("game bug")

    pair.b.parts.delivery.callbacks = replace(pair.b.parts.delivery.callbacks, on_control=broken)
    pair.a.send_control(GAME_KIND_MIN)
    pair.a.send_control(GAME_KIND_MIN + 1)
    pair.run(100)
    assert pair.b.parts.control.counters.callback_errors == 2
    assert pair.b.stats()["callback_errors"] == 2
    assert pair.b.parts.control.counters.delivered == 2
    assert pair.a.parts.control.in_flight == 0

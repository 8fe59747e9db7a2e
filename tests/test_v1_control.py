"""Episode end, episode ready and state hashes with a version-1 peer: the deployed layouts out
(exact bytes), theirs in as control messages, nothing unknown sent once the peer is known, and a
game's own control kinds refused with a clear error."""

from __future__ import annotations

from typing import Any

import pytest

from p2p_transport.protocol.desync import Desync
from p2p_transport.protocol.negotiation import MAX_PROBES, MAX_UNANSWERED_CONTROL_SENDS
from p2p_transport.protocol.v1_control import NO_STATE_HASH, VersionOneError
from p2p_transport.session import Callbacks, P2PSession
from p2p_transport.timing import FRAME_MS
from p2p_transport.wire.codec import (
    encode_input_packet,
    encode_v1_episode_end,
    encode_v1_episode_ready,
    encode_v1_state_hash,
)
from p2p_transport.wire.control_payloads import (
    decode_episode_end_payload,
    decode_episode_ready_payload,
)
from p2p_transport.wire.messages import GAME_KIND_MIN, ControlKind, MessageType
from tests.fakes import FakeChannel, FakeClock, FakeScheduler


class VersionOnePeer:
    """A session (player 0) whose peer (player 1) sends only version-1 input packets and never
    answers anything else; what the session sends is in ``channel.sent``."""

    def __init__(self) -> None:
        self.clock = FakeClock()
        self.scheduler = FakeScheduler(self.clock)
        self.channel = FakeChannel()
        self.controls: list[tuple[int, bytes]] = []
        self.desyncs: list[Desync] = []
        self.session = P2PSession(
            0,
            1,
            Callbacks(
                on_input=lambda frame, action: None,
                on_control=lambda kind, payload: self.controls.append((kind, payload)),
                on_desync=self.desyncs.append,
            ),
            clock=self.clock,
            scheduler=self.scheduler,
            channel=self.channel,
        )
        self.frame = 0

    def play(self, frames: int) -> None:
        for _ in range(frames):
            self.session.edge.on_message(encode_input_packet(1, self.frame, [(self.frame, 1)]))
            self.session.step(self.frame, 2)
            self.frame += 1
            self.scheduler.advance(FRAME_MS)

    def sent(self, kind: MessageType) -> list[bytes]:
        return [packet for packet in self.channel.sent if packet[0] == kind]


def known_version_one() -> VersionOnePeer:
    peer = VersionOnePeer()
    peer.play(180)  # 3 s: the peer's inputs are heard at once, 8 probes go unanswered in 2 s
    stats = peer.session.stats()
    assert stats["peer_protocol_version"] == 1
    assert stats["acked_probes_sent"] == MAX_PROBES
    return peer


def test_episode_messages_go_out_in_the_deployed_layouts() -> None:
    peer = known_version_one()
    assert peer.session.send_episode_end(300, 2) is None
    assert peer.session.send_episode_ready(3, "0a1b2c3d") is None
    peer.session.send_episode_ready(4)
    peer.session.parts.desync.add_local_hash(60, bytes(range(32)))
    assert peer.sent(MessageType.EPISODE_END) == [encode_v1_episode_end(300, 2)]
    assert peer.sent(MessageType.EPISODE_READY) == [
        encode_v1_episode_ready(3, "0a1b2c3d"),
        encode_v1_episode_ready(4, NO_STATE_HASH),
    ]
    assert peer.sent(MessageType.STATE_HASH) == [encode_v1_state_hash(60, bytes(range(8)))]
    assert peer.sent(MessageType.CONTROL) == []


def test_a_games_own_control_kinds_are_refused_for_a_version_one_peer() -> None:
    peer = known_version_one()
    with pytest.raises(VersionOneError, match=r"version 1 .* no control messages of kind 128"):
        peer.session.send_control(GAME_KIND_MIN, b"x")
    with pytest.raises(VersionOneError, match="compares 8-byte state hashes"):
        peer.session.parts.desync.add_local_hash(61, b"short")
    with pytest.raises(ValueError, match="8 ASCII characters"):
        peer.session.send_episode_ready(2, "not hex")


def test_what_was_in_flight_moves_to_the_deployed_layouts_and_nothing_unknown_goes_on() -> None:
    peer = VersionOnePeer()
    peer.session.edge.on_open()
    peer.session.send_episode_end(10, 1)
    peer.session.send_control(GAME_KIND_MIN, b"hello")
    peer.play(60)
    in_flight = len(peer.sent(MessageType.CONTROL))
    assert in_flight >= 2  # sent, and resent while the peer's version was not yet known
    peer.play(120)
    stats = peer.session.stats()
    assert stats["peer_protocol_version"] == 1
    assert peer.sent(MessageType.EPISODE_END) == [encode_v1_episode_end(10, 1)]
    assert stats["control_undeliverable"] == 1  # the game's own kind: no layout for it
    sent_when_known = len(peer.sent(MessageType.CONTROL))
    peer.play(600)
    unknown = [
        p for p in peer.channel.sent if p[0] in (MessageType.CONTROL, MessageType.ACKED_INPUT)
    ]
    assert len(peer.sent(MessageType.CONTROL)) == sent_when_known  # none after the switch
    assert len(unknown) == sent_when_known + MAX_PROBES
    assert not peer.session.parts.control.timer_running


def test_the_deployed_messages_arrive_as_control_messages_once_each() -> None:
    peer = known_version_one()
    peer.session.send_episode_ready(5, "00ff00ff")
    for _ in range(2):
        peer.session.edge.on_message(encode_v1_episode_end(900, 4))
        peer.session.edge.on_message(encode_v1_episode_ready(5, "12345678"))
    kinds = [kind for kind, _ in peer.controls]
    assert kinds == [ControlKind.EPISODE_END, ControlKind.EPISODE_READY]
    assert decode_episode_end_payload(peer.controls[0][1]) == (900, 4)
    assert decode_episode_ready_payload(peer.controls[1][1]) == 5
    # The peer's readiness arrived after this side's: this side's goes again, once, as the
    # deployed peers' acknowledgement.
    assert peer.sent(MessageType.EPISODE_READY) == [encode_v1_episode_ready(5, "00ff00ff")] * 2
    assert peer.session.stats()["v1_control_duplicates"] == 2


def test_the_deployed_peers_state_hashes_feed_the_desync_check() -> None:
    peer = known_version_one()
    digest = bytes(range(8))
    peer.session.parts.desync.add_local_hash(60, digest + b"rest of a sha-256")
    peer.session.edge.on_message(encode_v1_state_hash(60, digest))
    peer.session.parts.desync.add_local_hash(120, b"A" * 8)
    peer.session.edge.on_message(encode_v1_state_hash(120, b"B" * 8))
    stats: dict[str, Any] = peer.session.stats()
    assert stats["desync_peer_hashes"] == 2
    assert len(peer.desyncs) == 1 and peer.desyncs[0].frame == 120


def test_a_peer_of_this_package_with_acked_inputs_off_keeps_reliable_control() -> None:
    peer = VersionOnePeer()
    peer.session.edge.on_open()
    peer.play(30)
    # Its control ack says it is no version-1 peer, though it never answers the probes.
    peer.session.edge.on_message(b"\x23\xff\xff\xff\xff")
    peer.play(180)
    assert peer.session.stats()["peer_protocol_version"] == 2
    assert peer.session.send_episode_end(10, 1) == 0  # a sequence number: reliable control


def test_a_peer_that_sends_no_inputs_gets_a_control_message_a_bounded_number_of_times() -> None:
    """No inputs, so no probes: the control message's own unanswered sends tell the version."""
    peer = VersionOnePeer()
    peer.session.edge.on_open()
    peer.session.send_episode_ready(1, "0a1b2c3d")
    for _ in range(60 * 60):  # a minute, the peer only keeping its channel alive
        peer.session.edge.on_message(b"\x04")
        peer.scheduler.advance(FRAME_MS)
    sends = peer.sent(MessageType.CONTROL)
    assert len(sends) == MAX_UNANSWERED_CONTROL_SENDS
    assert peer.session.stats()["peer_protocol_version"] == 1
    assert peer.sent(MessageType.EPISODE_READY) == [encode_v1_episode_ready(1, "0a1b2c3d")]
    assert peer.sent(MessageType.ACKED_INPUT) == []

"""P2PSession with acked inputs: negotiation, compatibility with version-1 peers, the resend
timer, the stalled peer."""

from __future__ import annotations

from p2p_transport import SessionConfig
from p2p_transport.protocol.acked_sender import PENDING_LIMIT, RESEND_INTERVAL_MS
from p2p_transport.protocol.health import HealthStatus
from p2p_transport.protocol.negotiation import MAX_PROBES, PROBE_INTERVAL_MS
from p2p_transport.session.pinger import DEFAULT_PING_INTERVAL_MS as PING_INTERVAL_MS
from p2p_transport.timing import FRAME_MS
from p2p_transport.wire.codec import decode, encode_acked_input_packet, encode_input_packet
from p2p_transport.wire.messages import AckedInputPacket, InputPacket, MessageType
from tests.fakes import FakeClock, FakeScheduler
from tests.test_session import Side, make

P2P_ONLY = SessionConfig(relay_inputs=False, relay_pings=False)


def kinds(side: Side) -> list[MessageType]:
    return [decode(data).type for data in side.channel.sent]


class Pair:
    """Two sessions whose DataChannels a test drains by hand, so it decides what gets through."""

    def __init__(self, config_a: SessionConfig = P2P_ONLY, config_b: SessionConfig = P2P_ONLY):
        self.clock = FakeClock(0.0)
        self.scheduler = FakeScheduler(self.clock)
        self.a = make(0, 1, self.clock, self.scheduler, config_a)
        self.b = make(1, 0, self.clock, self.scheduler, config_b)
        self._read = {"a": 0, "b": 0}

    def deliver(self, *, a_to_b: bool = True, b_to_a: bool = True) -> None:
        """Hand over (or drop) everything sent since the last call, each way."""
        for name, sender, receiver, keep in (
            ("a", self.a, self.b, a_to_b),
            ("b", self.b, self.a, b_to_a),
        ):
            new = sender.channel.sent[self._read[name] :]
            self._read[name] = len(sender.channel.sent)
            if keep:
                for data in new:
                    receiver.session.edge.on_message(data)

    def play(self, frames: range, **deliver: bool) -> None:
        for frame in frames:
            self.a.session.step(frame, frame % 256)
            self.b.session.step(frame, (frame + 1) % 256)
            self.deliver(**deliver)
            self.scheduler.advance(FRAME_MS)

    def input_packets_since(self, side: Side, start: int) -> list[InputPacket | AckedInputPacket]:
        messages = [decode(data) for data in side.channel.sent[start:]]
        return [m for m in messages if isinstance(m, InputPacket | AckedInputPacket)]


# --- negotiation --------------------------------------------------------------------------------


def test_version_one_until_the_peer_is_heard_then_a_probe_per_interval() -> None:
    clock = FakeClock(0.0)
    a = make(clock=clock, config=P2P_ONLY)
    for frame in range(3):
        a.session.step(frame, 7)
    assert a.channel.sent == [
        encode_input_packet(0, 0, [(0, 7)]),
        encode_input_packet(0, 1, [(0, 7), (1, 7)]),
        encode_input_packet(0, 2, [(0, 7), (1, 7), (2, 7)]),
    ]
    a.session.edge.on_message(encode_input_packet(1, 0, [(0, 9)]))  # the peer's inputs arrive
    a.session.step(3, 7)
    # The version-1 packet as before, then a probe with every pending input and the ack.
    assert a.channel.sent[3:] == [
        encode_input_packet(0, 3, [(1, 7), (2, 7), (3, 7)]),
        encode_acked_input_packet(0, 3, 0, [(0, 7), (1, 7), (2, 7), (3, 7)]),
    ]
    clock.advance(PROBE_INTERVAL_MS - 1)
    a.session.step(4, 7)
    assert kinds(a)[5:] == [MessageType.INPUT]
    a.session.edge.on_message(encode_input_packet(1, 1, [(0, 9), (1, 9)]))
    clock.advance(1)
    a.session.step(5, 7)
    assert kinds(a)[6:] == [MessageType.INPUT, MessageType.ACKED_INPUT]
    # Nothing of the peer's since that probe (a cut, say): no probe is spent on it.
    clock.advance(PROBE_INTERVAL_MS)
    a.session.step(6, 7)
    assert kinds(a)[8:] == [MessageType.INPUT]
    assert a.session.stats()["acked_probes_sent"] == 2
    assert not a.session.stats()["acked_inputs_in_use"]


def test_a_stalled_game_still_probes_so_inputs_version_one_lost_come_back() -> None:
    # Both games stop stepping (each waits for an input of the other's) after every packet of
    # frames 1 to 5 was lost, the probes among them too: version 1 resends nothing, so only a
    # probe from the ping timer settles acked inputs and brings the lost inputs back.
    pair = Pair()
    for side in (pair.a, pair.b):
        side.session.edge.on_open()
    pair.play(range(1))
    pair.play(range(1, 6), a_to_b=False, b_to_a=False)
    assert (1, 1) not in pair.b.inputs and (1, 2) not in pair.a.inputs
    for _ in range(4):
        pair.scheduler.advance(PING_INTERVAL_MS)
        pair.deliver()
    assert pair.b.inputs == [(frame, frame % 256) for frame in range(6)]
    assert pair.a.inputs == [(frame, (frame + 1) % 256) for frame in range(6)]
    for side in (pair.a, pair.b):
        assert side.session.stats()["acked_inputs_in_use"]


def test_games_that_never_heard_each_other_send_their_last_inputs_again_until_they_do() -> None:
    # Every packet of frames 0 to 9 both ways lost: neither side heard the other, so neither
    # can probe; both games stall. The ping timer sends the last version-1 inputs again (at most
    # once a probe interval) and both get every input.
    pair = Pair()
    for side in (pair.a, pair.b):
        side.session.edge.on_open()
    pair.play(range(10), a_to_b=False, b_to_a=False)
    assert pair.a.inputs == pair.b.inputs == []
    sent_before = len(pair.a.channel.sent)
    for _ in range(3):
        pair.scheduler.advance(PING_INTERVAL_MS)
    resent = [decode(d) for d in pair.a.channel.sent[sent_before:] if d[0] == MessageType.INPUT]
    assert resent and all(
        p == InputPacket(0, 9, tuple((f, f % 256) for f in range(10))) for p in resent
    )
    assert len(resent) <= 3 * PING_INTERVAL_MS / PROBE_INTERVAL_MS + 1
    pair.deliver()
    assert pair.b.inputs == [(frame, frame % 256) for frame in range(10)]
    assert pair.a.inputs == [(frame, (frame + 1) % 256) for frame in range(10)]


def test_a_version_one_peer_gets_the_same_version_one_stream_and_everything_arrives() -> None:
    # b stands for a deployed peer: it never sends 0x20, and drops any 0x20 it is sent.
    pair = Pair(config_b=SessionConfig(relay_inputs=False, relay_pings=False, acked_inputs=False))
    dropped_probes = 0
    for frame in range(300):
        pair.a.session.step(frame, frame % 256)
        pair.b.session.step(frame, (frame + 1) % 256)
        for data in pair.a.channel.sent[pair._read["a"] :]:
            if data[0] == MessageType.ACKED_INPUT:
                dropped_probes += 1
            else:
                pair.b.session.edge.on_message(data)
        pair._read["a"] = len(pair.a.channel.sent)
        pair.deliver(a_to_b=False)
        pair.scheduler.advance(FRAME_MS)
    v1 = [decode(d) for d in pair.a.channel.sent if d[0] == MessageType.INPUT]
    assert v1 == [
        InputPacket(0, f, tuple((g, g % 256) for g in range(max(0, f - 2), f + 1)))
        for f in range(300)
    ]
    assert pair.b.inputs == [(f, f % 256) for f in range(300)]
    # One probe per 250 ms until MAX_PROBES went unanswered (300 frames are 5 s), then none: the
    # peer is taken for version 1, and a never switched.
    assert dropped_probes == pair.a.session.stats()["acked_probes_sent"] == MAX_PROBES
    stats = pair.a.session.stats()
    assert stats["peer_protocol_version"] == 1
    assert not stats["acked_inputs_in_use"]
    assert not stats["resend_timer_running"]
    assert stats["acked_stalls"] == stats["acked_inputs_abandoned"] == 0
    assert pair.a.session.parts.health.status is HealthStatus.GOOD


def test_a_session_with_acked_inputs_off_delivers_them_but_never_sends_them() -> None:
    pair = Pair(config_b=SessionConfig(relay_inputs=False, relay_pings=False, acked_inputs=False))
    pair.play(range(60))
    assert pair.b.inputs == [(f, f % 256) for f in range(60)]
    assert set(kinds(pair.b)) <= {MessageType.INPUT}
    assert not pair.b.session.stats()["acked_inputs_in_use"]


def test_two_new_sessions_switch_to_acked_inputs_within_a_few_frames() -> None:
    pair = Pair()
    pair.play(range(10))
    for side in (pair.a, pair.b):
        stats = side.session.stats()
        assert stats["acked_inputs_in_use"]
        assert stats["resend_timer_running"]
        assert kinds(side)[-3:] == [MessageType.ACKED_INPUT] * 3
        assert stats["acked_probes_sent"] == 1
        assert stats["peer_protocol_version"] == 2
    assert pair.a.inputs == [(f, (f + 1) % 256) for f in range(10)]
    assert pair.b.inputs == [(f, f % 256) for f in range(10)]
    # One resend timer each, started once, besides no ping timer (on_open was not called).
    assert len(pair.scheduler.started) == len(pair.scheduler.active) == 2
    # With every packet delivered at once, each acks the other's previous frame: packets carry
    # the three most recent inputs, as fixed redundancy 3 does.
    last = decode(pair.a.channel.sent[-1])
    assert isinstance(last, AckedInputPacket)
    assert [f for f, _ in last.inputs] == [7, 8, 9]
    assert last.ack_frame == 8


def test_an_acked_packet_from_another_player_settles_nothing() -> None:
    a = make(config=P2P_ONLY)
    a.session.edge.on_message(encode_acked_input_packet(5, 0, None, [(0, 1)]))
    assert not a.session.stats()["acked_inputs_in_use"]
    assert a.session.stats()["wrong_player"] == 1
    assert a.inputs == []


# --- the resend timer ---------------------------------------------------------------------------


def test_a_paused_game_resends_pending_inputs_then_goes_quiet() -> None:
    pair = Pair()
    pair.play(range(10))
    pair.a.session.step(10, 10)  # a's last input before the pause: lost
    pair.deliver(a_to_b=False)
    assert (10, 10) not in pair.b.inputs
    a_before, b_before = len(pair.a.channel.sent), len(pair.b.channel.sent)
    # Resent within two intervals (the first check may still see the last step), and only what
    # is pending: frames 9 (b's ack of it never came, b did not step again) and 10.
    for _ in range(2):
        pair.scheduler.advance(RESEND_INTERVAL_MS)
        pair.deliver()
    resent = pair.input_packets_since(pair.a, a_before)
    assert resent[0].inputs == ((9, 9), (10, 10))
    assert pair.b.inputs[-1] == (10, 10)
    # The acks then settle it (b also resends its own frame 9, whose ack a's lost packet held):
    # a packet carrying inputs is answered, with a pure ack if nothing is pending, and a pure ack
    # goes unanswered.
    for _ in range(3):
        pair.scheduler.advance(RESEND_INTERVAL_MS)
        pair.deliver()
    last = pair.input_packets_since(pair.b, b_before)[-1]
    assert (last.inputs, last.ack_frame) == ((), 10)
    for side, start in ((pair.a, a_before), (pair.b, b_before)):
        assert side.session.stats()["acked_pending"] == 0
        resends = side.session.stats()["input_resends"]
        assert resends == len(pair.input_packets_since(side, start)) <= 3
    quiet_from = (len(pair.a.channel.sent), len(pair.b.channel.sent))
    for _ in range(50):
        pair.scheduler.advance(RESEND_INTERVAL_MS)
        pair.deliver()
    assert (len(pair.a.channel.sent), len(pair.b.channel.sent)) == quiet_from


def test_no_resend_while_the_game_is_stepping() -> None:
    pair = Pair()
    pair.play(range(10))
    pair.play(range(10, 200), a_to_b=False)  # b hears nothing from a: a's inputs stay pending
    assert pair.a.session.stats()["input_resends"] == 0
    assert pair.a.session.stats()["acked_pending"] == PENDING_LIMIT


# --- the stalled peer ---------------------------------------------------------------------------


def test_past_the_pending_bound_the_peer_is_stalled_and_recovers_when_acks_return() -> None:
    pair = Pair()
    pair.play(range(10))
    pair.play(range(10, 110), b_to_a=False)  # a gets no ack for 100 frames
    stats = pair.a.session.stats()
    assert stats["acked_stalled"]
    assert stats["acked_stalls"] == 1
    assert stats["acked_pending"] == PENDING_LIMIT
    # Frame 9 was pending too when the acks stopped (b acks a frame in its next step).
    assert stats["acked_inputs_abandoned"] == 101 - PENDING_LIMIT
    assert pair.a.session.parts.health.status is HealthStatus.WARNING
    assert max(len(d) for d in pair.a.channel.sent) == 12 + 5 * PENDING_LIMIT
    # b got them all anyway (only the acks were lost): its ack moves on, and a recovers.
    assert pair.b.inputs == [(f, f % 256) for f in range(110)]
    pair.play(range(110, 115))
    stats = pair.a.session.stats()
    assert not stats["acked_stalled"]
    assert stats["acked_pending"] <= 3
    assert pair.a.session.parts.health.status is HealthStatus.GOOD


def test_an_outage_past_the_bound_loses_only_what_fell_out_and_the_ack_moves_past_it() -> None:
    pair = Pair()
    pair.play(range(10))
    pair.play(range(10, 110), a_to_b=False, b_to_a=False)  # both ways down for 100 frames
    pair.play(range(110, 120))
    # a gave up the oldest beyond 64 pending until b's first ack came back, in the step of frame
    # 110: frames 9..46, of which b had 9 already; everything else arrived.
    gave_up = range(10, 111 - PENDING_LIMIT)
    assert [f for f, _ in pair.b.inputs] == [f for f in range(120) if f not in gave_up]
    assert pair.b.session.parts.inputs.receiver.ack_frame == 119  # not stuck at frame 9
    assert pair.a.session.stats()["acked_pending"] <= 3


# --- episodes and teardown ----------------------------------------------------------------------


def test_reset_episode_clears_pending_and_keeps_acked_inputs() -> None:
    pair = Pair()
    pair.play(range(10))
    pair.play(range(10, 20), a_to_b=False)
    pair.a.session.reset_episode()
    pair.b.session.reset_episode()
    assert pair.a.session.stats()["acked_pending"] == 0
    pair.play(range(3))
    assert kinds(pair.a)[-1] is MessageType.ACKED_INPUT
    assert pair.b.inputs[-3:] == [(0, 0), (1, 1), (2, 2)]


def test_close_stops_the_resend_timer() -> None:
    pair = Pair()
    pair.play(range(10))
    pair.a.session.close()
    pair.b.session.close()
    assert pair.scheduler.active == {}
    assert sorted(pair.scheduler.cleared) == sorted(pair.scheduler.started)

"""The confirmed inputs of a room routed P2P, sent to the relay server's record: the input record
(0x30) on the wire, the session's upload (:mod:`p2p_transport.protocol.input_upload`), and the
server that records it and forwards it to no one."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from p2p_demo.pong import PongGame
from p2p_server.server import ServerOptions, ServerThread
from p2p_transport import P2PSession, SessionConfig
from p2p_transport.protocol.input_upload import (
    MAX_UPLOAD_BACKLOG,
    UPLOAD_INTERVAL_MS,
    InputUpload,
)
from p2p_transport.protocol.routing import Route
from p2p_transport.rollback import read_input_record, replay, replay_episode
from p2p_transport.wire.codec import (
    INPUT_RECORD_TYPE,
    MAX_INPUTS_PER_RECORD,
    MAX_PACKET_BYTES,
    DecodeError,
    decode,
    decode_input_record,
    encode_input_record,
    encode_input_response,
)
from p2p_transport.wire.dialects import DeployedDialect, ReferenceDialect
from p2p_transport.wire.messages import AckedInputPacket, InputPacket, InputRecord, MessageType
from p2p_transport.wire.signaling import RELAY_EVENT
from tests.codec_helpers import check_decode_error, check_encode_error, h
from tests.test_input_record import game_inputs, record_files
from tests.test_server import Peer, wait_until
from tests.test_session_routing import Game

# --- the wire -------------------------------------------------------------------------------


def test_exact_bytes() -> None:
    wire = h("30 | 0001 | 0002 | 00000005 02 | 00000100 ff")
    assert encode_input_record(1, [(5, 2), (256, 255)]) == wire
    assert decode_input_record(wire) == InputRecord(1, ((5, 2), (256, 255)))
    assert decode_input_record(bytearray(wire)) == InputRecord(1, ((5, 2), (256, 255)))
    assert InputRecord(0, ()).type is MessageType.INPUT_RECORD == INPUT_RECORD_TYPE == 0x30
    assert encode_input_record(0, []) == h("30 0000 0000")
    # The input response's layout under another type byte.
    assert wire[1:] == encode_input_response(1, [(5, 2), (256, 255)])[1:]


def test_a_full_record_fits_every_bound() -> None:
    full = encode_input_record(0, [(f, 1) for f in range(MAX_INPUTS_PER_RECORD)])
    assert len(full) == 5 + 5 * 256 == 1285 <= MAX_PACKET_BYTES
    assert decode_input_record(full).inputs[-1] == (255, 1)


@pytest.mark.parametrize(
    ("data", "text"),
    [
        (b"", "not an input record: type missing"),
        (h("13 0000 0000"), "not an input record: type 0x13"),
        (h("30 0000"), "input record truncated: 3 bytes, header needs 5"),
        (h("30 0000 0002 | 00000005 02"), "input record truncated: 10 bytes, 2 inputs need 15"),
        (h("30 0000 0001 | 00000005 02 | 00"), "input record has 1 trailing bytes after 1"),
        (h("30 0000 0101"), "input record count 257 over the limit of 256"),
        (h("30 0000 0002 | 00000005 02 | 00000005 03"), "not strictly increasing: 5 after 5"),
    ],
)
def test_decode_errors(data: bytes, text: str) -> None:
    with pytest.raises(DecodeError, match=text):
        decode_input_record(data)


def test_peers_do_not_read_it() -> None:
    """decode() is what a session reads with: an input record is an unknown type there."""
    check_decode_error(h("30 0000 0000"), "unknown message type 0x30")


def test_encode_errors() -> None:
    check_encode_error(lambda: encode_input_record(0x10000, []), "player_index")
    check_encode_error(
        lambda: encode_input_record(0, [(f, 0) for f in range(257)]),
        "at most 256 inputs per input record, got 257",
    )
    check_encode_error(lambda: encode_input_record(0, [(3, 0), (3, 1)]), "strictly increasing")
    check_encode_error(lambda: encode_input_record(0, [(3, 256)]), "action")


@given(
    st.integers(0, 0xFFFF),
    st.lists(st.tuples(st.integers(0, 0xFFFF_FFFF), st.integers(0, 255)), max_size=40),
)
def test_round_trip(player: int, entries: list[tuple[int, int]]) -> None:
    inputs = tuple(sorted(dict(entries).items()))
    assert decode_input_record(encode_input_record(player, inputs)) == InputRecord(player, inputs)


@given(st.binary(max_size=60))
def test_garbage_after_the_type_byte_decodes_canonically_or_raises(tail: bytes) -> None:
    data = b"\x30" + tail
    try:
        record = decode_input_record(data)
    except DecodeError as error:
        assert str(error)
        return
    assert encode_input_record(record.player_index, record.inputs) == data


def test_only_the_reference_servers_relay_carries_it() -> None:
    packet = encode_input_record(0, [(1, 2)])
    assert ReferenceDialect().relay(packet) == (RELAY_EVENT, packet)
    assert DeployedDialect("game", "p0").relay(packet) is None


# --- the upload, alone ----------------------------------------------------------------------


def test_an_upload_takes_what_is_acknowledged_once_a_second_in_bounded_packets() -> None:
    upload = InputUpload(1)
    kept = [(f, f % 7) for f in range(300)]
    upload.collect(kept[:10], None, False, 0)
    assert upload.backlog == 0  # nothing acknowledged yet
    upload.collect(kept[:64], 40, False, 0)
    upload.collect(kept[:64], 30, False, 0)  # an older ack changes nothing
    assert upload.backlog == 41
    first = upload.packet(0.0)
    assert first == encode_input_record(1, kept[:41])
    upload.sent(0.0)
    # More than a record holds: 256 now (a second later), the rest a second after that.
    upload.collect(kept, 299, False, 0)
    assert upload.packet(UPLOAD_INTERVAL_MS - 1) is None
    second = upload.packet(UPLOAD_INTERVAL_MS)
    assert second == encode_input_record(1, kept[41:297])
    upload.sent(UPLOAD_INTERVAL_MS)
    assert upload.packet(UPLOAD_INTERVAL_MS + 1) is None
    # Closing sends at once.
    assert upload.packet(UPLOAD_INTERVAL_MS + 1, final=True) == encode_input_record(1, kept[297:])
    upload.sent(UPLOAD_INTERVAL_MS + 1)
    assert (upload.counters.input_uploads, upload.counters.inputs_uploaded) == (3, 300)
    assert upload.backlog == 0
    assert upload.packet(10 * UPLOAD_INTERVAL_MS, final=True) is None


def test_a_packet_not_taken_stays_for_the_next_try() -> None:
    upload = InputUpload(0)
    upload.collect([(0, 1), (1, 2)], 1, False, 0)
    assert upload.packet(0.0) is not None  # the relay did not take it: no sent()
    assert upload.packet(1.0) == encode_input_record(0, [(0, 1), (1, 2)])
    assert upload.counters.input_uploads == 0


def test_the_backlog_is_bounded_while_the_relay_takes_nothing() -> None:
    upload = InputUpload(0)
    frame = 0
    while frame < MAX_UPLOAD_BACKLOG + 100:
        batch = [(f, 1) for f in range(frame, frame + 50)]
        frame += 50
        upload.collect(batch, frame - 1, False, 0)
    assert upload.backlog == MAX_UPLOAD_BACKLOG
    assert upload.counters.input_upload_dropped == frame - MAX_UPLOAD_BACKLOG
    record = decode_input_record(upload.packet(0.0) or b"")
    assert record.inputs[0][0] == frame - MAX_UPLOAD_BACKLOG  # the oldest went


def test_inputs_acknowledged_while_the_relay_carries_every_input_are_not_sent_again() -> None:
    upload = InputUpload(0)
    kept = [(f, 1) for f in range(100)]
    # A route on the relay from the start (changed 0 times): nothing to send.
    upload.collect(kept, 9, True, 0)
    assert upload.backlog == 0
    # It moves to P2P: what is acknowledged from then on is sent.
    upload.collect(kept, 19, False, 1)
    assert upload.backlog == 10
    # Back on both paths: the tick of the change and the next one still take what is
    # acknowledged (it may have gone on P2P alone); then the relay is known to carry it.
    upload.collect(kept, 29, True, 2)
    upload.collect(kept, 39, True, 2)
    assert upload.backlog == 30
    upload.collect(kept, 49, True, 2)
    assert upload.backlog == 30


# --- two sessions ---------------------------------------------------------------------------


class Uploads:
    """Stands in for the server on a :class:`Game`'s relay: input records are kept (per player)
    and go no further, everything else goes on to the peer."""

    def __init__(self, game: Game) -> None:
        self.records: dict[int, list[InputRecord]] = {0: [], 1: []}
        self.relayed: dict[int, list[bytes]] = {0: [], 1: []}
        for player, socket in enumerate((game.link.socket_a, game.link.socket_b)):
            forward = socket.on_emit
            assert forward is not None

            def emit(event: str, data: bytes, player: int = player, forward=forward) -> None:
                if data[0] == INPUT_RECORD_TYPE:
                    self.records[player].append(decode_input_record(data))
                else:
                    self.relayed[player].append(data)
                    forward(event, data)

            socket.on_emit = emit

    def frames(self, player: int) -> list[int]:
        return [frame for record in self.records[player] for frame, _ in record.inputs]

    def relayed_frames(self, player: int) -> set[int]:
        frames: set[int] = set()
        for data in self.relayed[player]:
            message = decode(data)
            if isinstance(message, InputPacket | AckedInputPacket):
                frames.update(frame for frame, _ in message.inputs)
        return frames


def test_a_p2p_room_uploads_every_confirmed_input_exactly_once() -> None:
    game = Game(SessionConfig(route_mode="p2p"))
    game.link.p2p_loss = 0.2  # acks come late and out of step; the link is seeded
    uploads = Uploads(game)
    game.set_channels("open")
    game.play(5000)
    sessions = game.sessions["a"], game.sessions["b"]
    # Once a second, each input in the one record that carried it.
    for player, session in enumerate(sessions):
        stats = session.stats()
        assert 4 <= stats["input_uploads"] <= 6
        assert uploads.relayed_frames(player) == set()  # the relay carried no input
        assert stats["relay_decode_errors"] == 0  # and the peer got no input record
        assert all(len(record.inputs) <= 70 for record in uploads.records[player])
    game.link.drain()
    for session in sessions:
        session.close()  # sends what was confirmed since the last
    for player, session in enumerate(sessions):
        acked_through = session.parts.inputs.acked.acked_through
        assert acked_through is not None and acked_through > game.frame - 10
        assert uploads.frames(player) == list(range(acked_through + 1))
        actions = [a for record in uploads.records[player] for _, a in record.inputs]
        assert actions == [(f + player) % 256 for f in range(acked_through + 1)]
        assert {r.player_index for r in uploads.records[player]} == {player}
        stats = session.stats()
        assert stats["inputs_uploaded"] == acked_through + 1
        assert (stats["input_upload_dropped"], stats["input_upload_backlog"]) == (0, 0)


def test_p2p_first_uploads_what_the_relay_did_not_carry() -> None:
    """The relay carries every input until the channel opens; then the upload takes over, and
    between them every confirmed input reaches the server."""
    game = Game(SessionConfig(route_mode="p2p-first"))
    uploads = Uploads(game)
    game.set_channels("connecting")
    game.play(1500)
    assert set(game.routes) == {Route.RELAY}
    assert uploads.records == {0: [], 1: []}
    game.set_channels("open")
    game.play(5000)
    assert game.routes[-1] is Route.P2P
    game.link.drain()
    for player, side in enumerate("ab"):
        session = game.sessions[side]
        session.close()
        acked_through = session.parts.inputs.acked.acked_through
        assert acked_through is not None
        uploaded = uploads.frames(player)
        assert len(uploaded) == len(set(uploaded))
        assert set(range(acked_through + 1)) <= set(uploaded) | uploads.relayed_frames(player)
        assert uploaded[0] > 60  # the relay carried the first second and a half


def test_the_parallel_route_uploads_nothing() -> None:
    game = Game(SessionConfig())
    uploads = Uploads(game)
    game.set_channels("open")
    game.play(3000)
    for session in game.sessions.values():
        session.close()
    assert uploads.records == {0: [], 1: []}


def test_the_parallel_route_uploads_what_the_relay_skipped_while_it_was_down() -> None:
    """With its relay socket down for 3 s, a parallel session's inputs cross on P2P alone and are
    acknowledged there: they reach the server as uploads once the relay is back, so between the
    relay and the uploads every confirmed input is recorded."""
    game = Game(SessionConfig())
    uploads = Uploads(game)
    game.set_channels("open")
    game.play(1500)
    game.link.socket_a.connected = False
    game.play(3000)
    game.link.socket_a.connected = True
    game.play(2000)
    game.link.drain()
    session = game.sessions["a"]
    session.close()
    acked_through = session.parts.inputs.acked.acked_through
    assert acked_through is not None and acked_through > game.frame - 10
    uploaded = uploads.frames(0)
    assert len(uploaded) == len(set(uploaded))
    assert set(range(acked_through + 1)) <= set(uploaded) | uploads.relayed_frames(0)
    assert session.stats()["input_uploads"] >= 1


def test_a_version_1_peer_confirms_nothing_so_nothing_is_uploaded() -> None:
    game = Game(SessionConfig(route_mode="p2p"))
    # b speaks version 1: no acked packets, no acks.
    b = P2PSession(
        1,
        0,
        lambda frame, action: None,
        clock=game.clock,
        scheduler=game.scheduler,
        channel=game.link.channel_b,
        relay=game.link.socket_b,
        config=SessionConfig(route_mode="p2p", acked_inputs=False),
    )
    game.sessions["b"].close()
    game.sessions["b"] = b
    game.link.connect(game.sessions["a"], b)
    uploads = Uploads(game)
    game.set_channels("open")
    game.play(3000)
    game.sessions["a"].close()
    stats = game.sessions["a"].stats()
    assert stats["peer_protocol_version"] == 1
    assert stats["input_uploads"] == stats["inputs_uploaded"] == 0
    assert uploads.records == {0: [], 1: []}


# --- the server -----------------------------------------------------------------------------


def test_the_server_records_uploads_feeds_only_spectators_and_replays_them(
    tmp_path: Path, peers: list[Peer]
) -> None:
    frames = 150
    inputs = game_inputs(frames, seed=3)
    with ServerThread(options=ServerOptions(record_dir=tmp_path / "records")) as server:
        a, b = Peer(server.url, "a"), Peer(server.url, "b")
        watcher = Peer(server.url, "watcher")
        peers += [a, b, watcher]
        watcher.emit("join", {"room": "p2p room", "spectator": True})
        watcher.expect("joined")
        for peer in (a, b):
            peer.join("p2p room")
        a.expect("paired")
        b.expect("paired")
        watcher.expect("room_ready")
        for player, peer in enumerate((a, b)):
            actions = [(f, inputs[f][player]) for f in range(frames)]
            # In pieces, one repeated (a session's record sent again after a lost ack): each
            # input is recorded once. The packet's own player index is not believed.
            for start in (0, 60, 100):
                peer.emit("relay", encode_input_record(7, actions[start : start + 60]))
        wait_until(lambda: server.stats.inputs_recorded == 2 * frames)
        assert server.stats.input_uploads == 6
        for peer in (a, b):
            peer.expect_silence()  # forwarded to no player
        # The spectator gets what each upload brought that was new, in the feed's envelope.
        fed = sorted(watcher.expect("relay") for _ in range(6))
        assert fed == sorted(
            bytes((p,)) + encode_input_record(p, [(f, inputs[f][p]) for f in range(lo, hi)])
            for p in (0, 1)
            for lo, hi in ((0, 60), (60, 120), (120, 150))
        )
        watcher.expect_silence()
        # A spectator's is refused; a malformed one is counted, not recorded.
        watcher.emit("relay", encode_input_record(0, [(frames, 1)]))
        assert watcher.expect("error")["code"] == "spectator_input"
        a.emit("relay", b"\x30\x00\x00\x00\x09")
        wait_until(lambda: server.stats.refusals.get("record_malformed") == 1)
        assert server.stats.relay_messages == 0
        assert server.stats.inputs_recorded == 2 * frames
        for peer in peers:
            peer.close()
        wait_until(lambda: server.stats.rooms_open == 0)
    (path,) = record_files(tmp_path, "p2p%20room")
    (episode,) = read_input_record(path)["episodes"]
    assert episode["frames"] == frames
    assert replay_episode(lambda: PongGame(seed=3), episode) == replay(PongGame(seed=3), inputs)


def test_a_server_that_keeps_no_records_drops_uploads_and_counts_them(peers: list[Peer]) -> None:
    with ServerThread() as server:
        a, b = Peer(server.url, "a"), Peer(server.url, "b")
        peers += [a, b]
        a.join("r")
        b.join("r")
        a.expect("paired")
        b.expect("paired")
        a.emit("relay", encode_input_record(0, [(0, 1)]))
        wait_until(lambda: server.stats.refusals.get("record_off") == 1)
        b.expect_silence()
        a.expect_silence()
        assert server.stats.input_uploads == server.stats.relay_messages == 0

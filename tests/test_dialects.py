"""The signaling dialects: the reference server's events, and the deployed server's shapes (game
ids, participant ids sorted into player indices, a JSON relay of single inputs)."""

from __future__ import annotations

from typing import Any

import pytest

from p2p_transport.wire.codec import (
    decode,
    encode_acked_input_packet,
    encode_input_packet,
    encode_ping,
)
from p2p_transport.wire.dialects import (
    DEPLOYED_ACTION_EVENT,
    DEPLOYED_GAME_READY_EVENT,
    DEPLOYED_PEER_ACTION_EVENT,
    DeployedDialect,
    Joined,
    Paired,
    PeerLeft,
    ReferenceDialect,
    RelayPacket,
    ServerError,
    Signal,
)
from p2p_transport.wire.messages import InputPacket
from p2p_transport.wire.signaling import MAX_CLIENT_ID_CHARS, relay_socket_url

OFFER = {"type": "offer", "sdp": "v=0...", "generation": 2}
CANDIDATE = {"type": "ice-candidate", "candidate": {"candidate": "candidate:1", "sdpMid": "0"}}


def test_the_reference_dialect_is_the_reference_servers_events() -> None:
    d = ReferenceDialect("room-7")
    # The same client id in every join of this transport, another for another transport.
    assert d.join() == [("join", {"room": "room-7", "client": d.client})] == d.join()
    assert 0 < len(d.client) <= MAX_CLIENT_ID_CHARS
    assert ReferenceDialect("room-7").client != d.client
    # Once given a slot, a join (after the server restarted, say) asks for it again.
    d.incoming("joined", {"room": "room-7", "player_index": 1})
    assert d.join() == [("join", {"room": "room-7", "client": d.client, "player": 1})]
    assert d.incoming("joined", {"room": "room-7", "player_index": 0}) == Joined(
        {"room": "room-7", "player_index": 0}
    )
    paired = {"room": "room-7", "player_index": 1, "peer_index": 0}
    assert d.incoming("paired", paired) == Paired(1, 0, paired)
    assert d.incoming("webrtc_signal", OFFER) == Signal(OFFER)
    assert d.incoming("relay", b"\x04") == RelayPacket(b"\x04")
    assert d.incoming("peer_left", {"player_index": 0}) == PeerLeft({"player_index": 0})
    assert d.incoming("error", {"message": "no"}) == ServerError({"message": "no"})
    assert d.incoming("something_else", {}) is None
    assert d.signal(OFFER) == ("webrtc_signal", OFFER)
    assert d.relay(b"\x04") == ("relay", b"\x04")
    assert set(d.binary_events) <= set(d.events)


def ready(d: DeployedDialect, players: list[Any]) -> Paired | None:
    incoming = d.incoming(DEPLOYED_GAME_READY_EVENT, {"players": players, "game_id": d.game_id})
    assert incoming is None or isinstance(incoming, Paired)
    return incoming


def test_deployed_players_are_indexed_by_their_sorted_ids() -> None:
    bob, alice = DeployedDialect("g1", "bob"), DeployedDialect("g1", "alice")
    assert ready(bob, ["bob", "alice"]) == Paired(
        1, 0, {"players": ["bob", "alice"], "game_id": "g1"}
    )
    assert ready(alice, ["bob", "alice"]).player_index == 0  # type: ignore[union-attr]
    assert (bob.peer_id, alice.peer_id) == ("alice", "bob")
    assert ready(DeployedDialect("g1", 7), [12, 7]).player_index == 1  # type: ignore[union-attr]
    assert ready(DeployedDialect("g1", "carol"), ["bob", "alice"]) is None  # not in the game
    assert ready(DeployedDialect("g1", "bob"), ["bob"]) is None


def forwarded(sender: DeployedDialect, message: dict[str, Any]) -> dict[str, Any]:
    """What the deployed server sends the target for ``sender``'s signal."""
    event, out = sender.signal(message)
    assert event == "webrtc_signal"
    return {
        "type": out["type"],
        "from_player_id": sender.player_id,
        "game_id": out["game_id"],
        "payload": out["payload"],
    }


@pytest.mark.parametrize("message", [OFFER, {"type": "answer", "sdp": "v=0..."}, CANDIDATE])
def test_deployed_signals_go_out_addressed_and_come_back_the_same(message: dict[str, Any]) -> None:
    alice, bob = DeployedDialect("g1", "alice"), DeployedDialect("g1", "bob")
    for d in (alice, bob):
        ready(d, ["alice", "bob"])
    _, out = alice.signal(message)
    assert out["game_id"] == "g1" and out["target_player_id"] == "bob"
    if message["type"] == "ice-candidate":
        assert out["payload"]["candidate"] == "candidate:1"
    else:
        assert out["payload"]["type"] == message["type"] and out["payload"]["sdp"] == "v=0..."
    assert bob.incoming("webrtc_signal", forwarded(alice, message)) == Signal(message)


def test_deployed_signals_of_another_game_or_player_are_ignored() -> None:
    alice, bob = DeployedDialect("g1", "alice"), DeployedDialect("g1", "bob")
    for d in (alice, bob):
        ready(d, ["alice", "bob"])
    signal = forwarded(alice, OFFER)
    assert bob.incoming("webrtc_signal", {**signal, "game_id": "g2"}) is None
    assert bob.incoming("webrtc_signal", {**signal, "from_player_id": "mallory"}) is None
    assert bob.incoming("webrtc_signal", {**signal, "type": "bogus"}) is None
    assert bob.incoming("webrtc_signal", {**signal, "payload": "not an object"}) is None


def test_the_deployed_relay_carries_each_packets_newest_input_as_json() -> None:
    alice = DeployedDialect("g1", "alice")
    ready(alice, ["alice", "bob"])
    v1 = encode_input_packet(0, 41, [(39, 5), (40, 6), (41, 7)])
    acked = encode_acked_input_packet(0, 41, 10, [(40, 6), (41, 7)])
    for packet in (v1, acked):
        event, payload = alice.relay(packet)  # type: ignore[misc]
        assert event == DEPLOYED_ACTION_EVENT
        assert payload["game_id"] == "g1" and payload["player_id"] == "alice"
        assert (payload["frame_number"], payload["action"]) == (41, 7)
    # Pings, garbage and empty packets have no place on that relay.
    assert alice.relay(encode_ping(1.0)) is None
    assert alice.relay(b"\xff") is None
    assert alice.relay(encode_input_packet(0, 41, [])) is None


def test_the_peers_json_inputs_come_back_as_input_packets() -> None:
    bob = DeployedDialect("g1", "bob")
    action = {"player_id": "alice", "action": 7, "frame_number": 41, "timestamp": 1.5}
    assert bob.incoming(DEPLOYED_PEER_ACTION_EVENT, action) is None  # not paired yet
    ready(bob, ["alice", "bob"])
    incoming = bob.incoming(DEPLOYED_PEER_ACTION_EVENT, action)
    assert isinstance(incoming, RelayPacket)
    assert decode(incoming.packet) == InputPacket(0, 41, ((41, 7),))
    for bad in ({"player_id": "bob"}, {"action": 256}, {"action": "7"}, {"frame_number": -1}):
        assert bob.incoming(DEPLOYED_PEER_ACTION_EVENT, {**action, **bad}) is None


def test_the_lean_relay_socket_url_follows_the_server_url() -> None:
    assert relay_socket_url("http://127.0.0.1:8000", "t-1", "room 7") == (
        "ws://127.0.0.1:8000/relay?ticket=t-1&room=room+7"
    )
    assert relay_socket_url("https://study.example.org/game/", "t", "r") == (
        "wss://study.example.org/relay?ticket=t&room=r"
    )
    with pytest.raises(ValueError, match="not an http"):
        relay_socket_url("ftp://x", "t", "r")

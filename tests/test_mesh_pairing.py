"""A room of more than two players under CPython (:class:`MeshPairing`): four tabs joined through
a fake server that routes signals by ``to``/``from`` and relay packets by their envelope, as the
reference server does; every input crosses to every other player exactly once; a peer that
leaves ends its link only; what cannot be routed is counted, not raised.
"""

from __future__ import annotations

from typing import Any

import pytest

from p2p_transport.browser.mesh_pairing import MeshCallbacks, MeshPairing
from p2p_transport.browser.options import TransportOptions
from p2p_transport.browser.pairing import (
    CloseRelaySocket,
    EdgeAction,
    OpenRelaySocket,
    Pairing,
    SendToServer,
)
from p2p_transport.errors import UsageError
from p2p_transport.protocol.peer_connection import CloseConnection, OpenConnection
from p2p_transport.protocol.routing import RouteMode
from p2p_transport.session import SessionState
from p2p_transport.wire.dialects import MugDialect, ReferenceDialect
from p2p_transport.wire.signaling import (
    JOIN_EVENT,
    JOINED_EVENT,
    PEER_LEFT_EVENT,
    RELAY_EVENT,
    ROOM_READY_EVENT,
    SIGNAL_EVENT,
    WAITING_EVENT,
)
from tests.fakes import FakeClock, FakeScheduler, FakeSocket

ROOM = "mesh-test"
PLAYERS = 4


class Tab:
    """One tab's mesh pairing; what it asks of the edge is kept, per link or for the server."""

    def __init__(self, room: Room, index: int) -> None:
        self.room = room
        self.index = index
        self.relay = FakeSocket()
        self.relay.on_emit = self._relayed
        self.link_actions: list[tuple[int, EdgeAction]] = []
        self.server_actions: list[EdgeAction] = []
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.inputs: list[tuple[int, int, int]] = []
        self.scheduler = FakeScheduler(room.clock)
        self.mesh = MeshPairing(
            TransportOptions(room=ROOM, players=PLAYERS),
            MeshCallbacks(
                on_input=lambda frame, action, player: self.inputs.append((frame, action, player)),
                on_event=lambda name, detail: self.events.append((name, detail)),
            ),
            self._execute,
            clock=room.clock,
            scheduler=self.scheduler,
            new_relay=lambda: self.relay,
        )

    def _execute(self, action: EdgeAction, link: Pairing | None) -> None:
        if link is None:
            self.server_actions.append(action)
            if isinstance(action, SendToServer) and action.event == SIGNAL_EVENT:
                self.room.signal(self.index, action.payload)
        else:
            assert link.peer_index is not None
            self.link_actions.append((link.peer_index, action))

    def _relayed(self, event: str, data: bytes) -> None:
        assert event == RELAY_EVENT
        self.room.relay(self.index, data)

    def event_names(self) -> list[str]:
        return [name for name, _ in self.events]


class Room:
    """The server's routing of a room of :data:`PLAYERS` (see ``p2p_server.rooms``)."""

    def __init__(self) -> None:
        self.clock = FakeClock()
        self.tabs = [Tab(self, index) for index in range(PLAYERS)]
        self.clients = {index: f"client-{index}" for index in range(PLAYERS)}

    def fill(self) -> None:
        for tab in self.tabs:
            tab.mesh.socket_connected()
            tab.mesh.server_event(
                JOINED_EVENT, {"room": ROOM, "player_index": tab.index, "players": PLAYERS}
            )
        for tab in self.tabs:
            self.ready(tab)

    def ready(self, tab: Tab) -> None:
        peers = [
            {"player_index": index, "client": self.clients[index]}
            for index in range(PLAYERS)
            if index != tab.index
        ]
        tab.mesh.server_event(
            ROOM_READY_EVENT,
            {
                "room": ROOM,
                "player_index": tab.index,
                "players": PLAYERS,
                "peers": peers,
                "relay_ticket": f"ticket-{tab.index}",
            },
        )

    def signal(self, sender: int, payload: dict[str, Any]) -> None:
        to = payload["to"]
        self.tabs[to].mesh.server_event(SIGNAL_EVENT, {**payload, "from": sender})

    def relay(self, sender: int, data: bytes) -> None:
        to, packet = data[0], data[1:]
        self.tabs[to].mesh.server_event(RELAY_EVENT, bytes((sender,)) + packet)


def test_the_join_asks_for_the_room_size_and_a_two_player_join_is_unchanged() -> None:
    tab = Room().tabs[0]
    tab.mesh.socket_connected()
    (join,) = tab.server_actions
    assert isinstance(join, SendToServer) and join.event == JOIN_EVENT
    assert join.payload["players"] == PLAYERS and join.payload["room"] == ROOM
    two = ReferenceDialect(ROOM).join()
    assert two == [(JOIN_EVENT, {"room": ROOM, "client": two[0][1]["client"]})]
    assert ROOM_READY_EVENT not in ReferenceDialect(ROOM).events
    assert {ROOM_READY_EVENT, WAITING_EVENT} <= set(ReferenceDialect(ROOM, players=3).events)


def test_each_tab_offers_to_every_higher_index_and_answers_every_lower_one() -> None:
    room = Room()
    room.fill()
    for tab in room.tabs:
        opened = {
            peer: action.offerer
            for peer, action in tab.link_actions
            if isinstance(action, OpenConnection)
        }
        assert opened == {p: p > tab.index for p in range(PLAYERS) if p != tab.index}
        assert sorted(tab.mesh.sessions) == [p for p in range(PLAYERS) if p != tab.index]
        assert OpenRelaySocket(f"ticket-{tab.index}") in tab.server_actions
        ready = [detail for name, detail in tab.events if name == "room_ready"]
        assert ready == [
            {"player_index": tab.index, "players": PLAYERS, "peers": sorted(tab.mesh.sessions)}
        ]
        for session in tab.mesh.sessions.values():
            assert session.parts.inputs.router.mode is RouteMode.PARALLEL  # the options' own


def test_signals_reach_the_link_of_their_sender_only() -> None:
    room = Room()
    room.fill()
    offerer, answerer = room.tabs[1], room.tabs[3]
    connection = next(
        action.connection
        for peer, action in offerer.link_actions
        if peer == 3 and isinstance(action, OpenConnection)
    )
    before = len(answerer.link_actions)
    offerer.mesh.links[3].description_ready(connection, "offer", "v=0 sdp of 1 for 3")
    sent = [a for a in offerer.server_actions if isinstance(a, SendToServer)][-1]
    assert sent.event == SIGNAL_EVENT and sent.payload["to"] == 3
    assert sent.payload["type"] == "offer"
    # Only the link to player 1 took it: the answerer opens a fresh connection for the offer.
    taken = answerer.link_actions[before:]
    assert taken and {peer for peer, _ in taken} == {1}


def test_every_input_crosses_to_every_other_player_exactly_once() -> None:
    room = Room()
    room.fill()
    frames = 30
    for frame in range(frames):
        for tab in room.tabs:
            assert tab.mesh.step(frame, (tab.index * 16 + frame) % 256)
    for tab in room.tabs:
        expected = sorted(
            (frame, (player * 16 + frame) % 256, player)
            for player in range(PLAYERS)
            if player != tab.index
            for frame in range(frames)
        )
        assert sorted(tab.inputs) == expected
        # Addressed, no channel open: every packet went behind its peer's envelope.
        assert {data[0] for _, data in tab.relay.emitted} == set(tab.mesh.sessions)
        assert not tab.mesh.unrouted


def test_what_no_link_can_take_is_counted_and_dropped() -> None:
    room = Room()
    room.fill()
    mesh = room.tabs[0].mesh
    mesh.server_event(RELAY_EVENT, bytes((6, 1, 2, 3)))  # no player 6 in the room
    mesh.server_event(RELAY_EVENT, bytes((2,)))  # an envelope with nothing in it
    mesh.server_event(SIGNAL_EVENT, {"type": "offer", "sdp": "x"})  # no sender named
    mesh.server_event(SIGNAL_EVENT, {"type": "offer", "sdp": "x", "from": 7})
    assert mesh.unrouted == {"relay": 2, "signal": 2}


def test_a_peer_that_leaves_ends_its_link_and_a_newcomer_in_its_seat_gets_a_new_one() -> None:
    room = Room()
    room.fill()
    tab = room.tabs[0]
    gone = tab.mesh.links[2]
    gone_session = gone.session
    assert gone_session is not None
    tab.mesh.server_event(PEER_LEFT_EVENT, {"player_index": 2})
    assert gone_session.state is SessionState.SHUT_DOWN
    assert sorted(tab.mesh.sessions) == [1, 3]
    assert (2, CloseConnection()) in tab.link_actions
    assert ("peer_left", {"player_index": 2}) in tab.events
    kept = {peer: tab.mesh.links[peer].session for peer in (1, 3)}
    room.clients[2] = "client-2-after-reload"
    room.ready(tab)
    assert tab.mesh.links[2] is not gone
    assert tab.mesh.links[2].session is not gone_session
    # The players who stayed are the same peers back through the server: their links go on.
    assert {peer: tab.mesh.links[peer].session for peer in (1, 3)} == kept
    rejoined = sorted(d["peer"] for name, d in tab.events if name == "rejoined")
    assert rejoined == [1, 3]
    # The lean relay socket is the edge's to keep while it is open: no close is asked for.
    assert CloseRelaySocket() not in tab.server_actions
    assert tab.server_actions.count(OpenRelaySocket("ticket-0")) == 2


def test_closing_closes_every_link_and_leaves_no_timer() -> None:
    room = Room()
    room.fill()
    tab = room.tabs[2]
    sessions = list(tab.mesh.sessions.values())
    assert tab.scheduler.active  # the links' sessions ran timers
    tab.mesh.close()
    assert not tab.scheduler.active
    assert all(session.state is SessionState.SHUT_DOWN for session in sessions)
    tab.mesh.close()  # idempotent


def test_room_sizes_and_dialects_a_mesh_cannot_use_are_refused() -> None:
    with pytest.raises(UsageError, match=r"players must be in 2\.\.8"):
        TransportOptions(players=9)
    with pytest.raises(UsageError, match=r"players must be in 2\.\.8"):
        TransportOptions(players=1)
    with pytest.raises(UsageError, match="needs the reference server"):
        TransportOptions(players=3, dialect=MugDialect("subject"))


def test_a_link_reconnecting_when_the_room_is_readied_again_goes_on() -> None:
    # Another player's socket came back, so the server readies the room again while this tab's
    # DataChannel to player 1 is down (its machine reconnecting): that link must go on, or the
    # rollback layer would take player 1 for gone.
    room = Room()
    room.fill()
    tab = room.tabs[0]
    link = tab.mesh.links[1]
    session = link.session
    assert session is not None
    session.edge.on_open()
    session.edge.on_close()
    assert session.state is SessionState.CLOSED
    room.ready(tab)
    assert tab.mesh.links[1] is link and link.session is session
    assert session.state is SessionState.CLOSED

"""A spectator's tab under CPython (:class:`SpectatorPairing`): it joins to watch, learns the
room's size at ``room_ready``, opens the lean relay socket with its ticket, and hands on every
feed packet from then on; nothing before it is taken, and nothing is left running at the end."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from p2p_transport.browser.options import TransportOptions
from p2p_transport.browser.pairing import (
    CloseRelaySocket,
    EdgeAction,
    OpenRelaySocket,
    SendToServer,
)
from p2p_transport.browser.spectator_pairing import MAX_EARLY_PACKETS, SpectatorPairing
from p2p_transport.errors import UsageError
from p2p_transport.wire.dialects import MugDialect
from p2p_transport.wire.signaling import (
    JOIN_EVENT,
    JOINED_EVENT,
    PEER_LEFT_EVENT,
    RELAY_EVENT,
    ROOM_READY_EVENT,
    WAITING_EVENT,
)
from tests.fakes import FakeClock, FakeScheduler

ROOM = "watched"


class Watcher:
    def __init__(self, on_packet: Callable[[bytes], None] | None = None, **options: Any) -> None:
        self.clock = FakeClock()
        self.scheduler = FakeScheduler(self.clock)
        self.actions: list[EdgeAction] = []
        self.packets: list[bytes] = []
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.pairing = SpectatorPairing(
            TransportOptions(room=ROOM, spectator=True, **options),
            on_packet or self.packets.append,
            lambda name, detail: self.events.append((name, detail)),
            self.actions.append,
            clock=self.clock,
            scheduler=self.scheduler,
        )


def test_the_join_watches_and_names_no_room_size_unless_given() -> None:
    watcher = Watcher()
    watcher.pairing.socket_connected()
    (join,) = watcher.actions
    assert isinstance(join, SendToServer) and join.event == JOIN_EVENT
    assert join.payload == {"room": ROOM, "client": join.payload["client"], "spectator": True}
    sized = Watcher(players=4)
    sized.pairing.socket_connected()
    assert sized.actions[0].payload["players"] == 4  # type: ignore[union-attr]


def test_feed_packets_are_handed_on_once_the_room_is_ready_those_before_it_first() -> None:
    watcher = Watcher()
    pairing = watcher.pairing
    pairing.connecting()
    pairing.socket_connected()
    pairing.server_event(JOINED_EVENT, {"room": ROOM, "spectator": True, "players": None})
    pairing.server_event(WAITING_EVENT, {"room": ROOM, "players": 3, "present": [0], "missing": 2})
    # A player's first inputs can come before the spectator's room_ready: they wait for it.
    pairing.server_event(RELAY_EVENT, b"\x00early")
    assert watcher.packets == [] and pairing.dropped == 0
    ready = {
        "room": ROOM,
        "spectator": True,
        "players": 3,
        "peers": [{"player_index": p} for p in range(3)],
        "relay_ticket": "t-1",
    }
    pairing.server_event(ROOM_READY_EVENT, ready)
    assert pairing.players == 3
    assert watcher.actions[-1] == OpenRelaySocket("t-1")
    pairing.server_event(RELAY_EVENT, b"\x02feed")
    pairing.relay_packet(b"\x01lean")  # from the lean socket
    assert watcher.packets == [b"\x00early", b"\x02feed", b"\x01lean"]
    pairing.server_event(PEER_LEFT_EVENT, {"player_index": 1})
    # The room refilled: readied again, the same room and feed (the edge keeps an open socket).
    pairing.server_event(ROOM_READY_EVENT, {**ready, "relay_ticket": "t-2"})
    assert watcher.actions[-1] == OpenRelaySocket("t-2")
    assert CloseRelaySocket() not in watcher.actions
    names = [name for name, _ in watcher.events]
    assert names == ["joined", "waiting_for_peer", "room_ready", "peer_left"]
    assert watcher.events[2][1] == {"players": 3, "spectator": True}


def test_past_the_bound_packets_before_the_room_is_ready_are_counted_and_dropped() -> None:
    watcher = Watcher()
    for index in range(MAX_EARLY_PACKETS + 3):
        watcher.pairing.relay_packet(bytes((0, index % 256)))
    assert watcher.pairing.dropped == 3
    watcher.pairing.server_event(
        ROOM_READY_EVENT, {"room": ROOM, "spectator": True, "players": 2, "peers": []}
    )
    assert len(watcher.packets) == MAX_EARLY_PACKETS


def test_a_callback_that_raises_is_counted_and_the_next_packet_still_arrives() -> None:
    seen: list[bytes] = []

    def on_packet(data: bytes) -> None:
        seen.append(data)
        if len(seen) == 1:
            raise RuntimeError("the page's bug")

    watcher = Watcher(on_packet)
    watcher.pairing.server_event(
        ROOM_READY_EVENT, {"room": ROOM, "spectator": True, "players": 2, "peers": []}
    )
    watcher.pairing.relay_packet(b"\x00a")
    watcher.pairing.relay_packet(b"\x01b")
    assert seen == [b"\x00a", b"\x01b"] and watcher.pairing.callback_errors == 1


def test_closing_leaves_no_timer_and_closes_the_relay_socket() -> None:
    watcher = Watcher()
    watcher.pairing.connecting()
    assert watcher.scheduler.active  # the connect timeout runs
    watcher.pairing.close()
    watcher.pairing.close()
    assert not watcher.scheduler.active
    assert watcher.actions == [CloseRelaySocket()]


def test_a_spectator_watches_only_through_the_reference_server() -> None:
    with pytest.raises(UsageError, match="reference server"):
        TransportOptions(spectator=True, dialect=MugDialect("subject"))

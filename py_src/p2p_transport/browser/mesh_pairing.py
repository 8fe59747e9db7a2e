"""What one tab decides in a room of more than two players, with no browser in sight.

A room of N players is a full mesh: this tab holds one :class:`~.pairing.Pairing` per other
player (a *link*: its own peer-connection machine, DataChannel, reconnection and
:class:`~p2p_transport.session.P2PSession`), all over the one signaling socket. Each link is
paired exactly as a two-player tab is; :class:`MeshPairing` is the server's side of that: it
joins the room, creates a link for each peer when ``room_ready`` says every player is in,
addresses each link's signals and relay packets to its peer (``to`` on a signal, the one-byte
envelope on a relay packet) and hands what the server delivers to the link it came from.

Each link's input packets go to its peer addressed, on the relay too: a link's input packet
carries that link's acknowledgement and the inputs its peer has not acknowledged, so the packets
for two peers differ, and one packet to the whole room would have to carry the slowest link's
window to everyone. Each link follows the session's route mode as a pair does; with the default
(``parallel``) a player of N sends the server N - 1 packets a frame (the server scales a mesh
player's limits by its links), with ``p2p-first`` only those of links whose DataChannel is
down.

A peer that leaves the room ends its link (its session shuts down: the rollback layer then
idles its seat). A player who joins that seat again gets a new link, but a game under way plays
on without it: the rollback layer takes no new session for a seat (a refilled seat is a new
game's).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

from p2p_transport._guard import call_guarded
from p2p_transport.browser.options import TransportOptions
from p2p_transport.browser.pairing import (
    CloseRelaySocket,
    EdgeAction,
    OpenRelaySocket,
    Pairing,
    SendToServer,
)
from p2p_transport.browser.room_listener import RoomListener
from p2p_transport.protocol.relay import SocketIOLike
from p2p_transport.session import Callbacks, P2PSession, SessionState
from p2p_transport.timing import Clock, Scheduler
from p2p_transport.wire.dialects import (
    Incoming,
    Joined,
    Notice,
    Paired,
    PeerLeft,
    ReferenceDialect,
    RelayPacket,
    RoomReady,
    ServerError,
    Signal,
    TelemetrySaved,
)
from p2p_transport.wire.signaling import MAX_PLAYERS, SIGNAL_EVENT, SIGNAL_FROM, SIGNAL_TO

__all__ = ["AddressedRelay", "MeshCallbacks", "MeshPairing"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class MeshCallbacks:
    """A mesh tab's callbacks; only ``on_input`` is required. As with
    :class:`~p2p_transport.session.Callbacks`, one that raises is logged and counted, and the
    transport goes on."""

    #: ``(frame, action, player)``: once per input of each other player.
    on_input: Callable[[int, int, int], object]
    #: ``(name, detail)``: the room's events (``joined``, ``waiting_for_peer``, ``room_ready``,
    #: ``peer_left``, ``error``...) and each link's, whose detail then has ``peer``.
    on_event: Callable[[str, dict[str, Any]], object] | None = None
    #: ``(kind, payload, player)``: another player's control messages, in order per player.
    on_control: Callable[[int, bytes, int], object] | None = None


class AddressedRelay:
    """A link's relay path: the shared server socket, each packet behind the envelope byte of
    the peer it is for."""

    def __init__(self, socket: SocketIOLike, peer: int) -> None:
        self._socket = socket
        self._envelope = bytes((peer,))

    @property
    def connected(self) -> bool:
        return self._socket.connected

    def emit(self, event: str, data: bytes) -> object:
        return self._socket.emit(event, self._envelope + data)


class MeshPairing(RoomListener):
    """One tab's decisions in a room of ``options.players`` (more than two) players.

    ``execute(action, link)`` carries out an action: a peer connection's for ``link`` (that
    peer's :class:`Pairing`), or the server socket's (``link`` ``None``). ``new_relay()`` is the
    server socket as the links' shared relay path.
    """

    def __init__(
        self,
        options: TransportOptions,
        callbacks: MeshCallbacks,
        execute: Callable[[EdgeAction, Pairing | None], None],
        *,
        clock: Clock,
        scheduler: Scheduler,
        new_relay: Callable[[], SocketIOLike],
    ) -> None:
        super().__init__(
            options,
            ReferenceDialect(options.room, options.token, options.players),
            callbacks.on_event,
            lambda event, payload: execute(SendToServer(event, payload), None),
            clock=clock,
            scheduler=scheduler,
        )
        self._options = options
        self._game = callbacks
        self._execute = execute
        self._scheduler = scheduler
        self._new_relay = new_relay
        self._relay: SocketIOLike | None = None
        #: This side's player index, from ``joined`` on.
        self.player_index: int | None = None
        #: The room's number of players.
        self.player_count = options.players
        #: The link to each peer present, by the peer's index.
        self.links: dict[int, Pairing] = {}
        self._ready = False
        self._closed = False
        #: What the server delivered that no link could take (a peer not or no longer linked,
        #: a packet without its envelope), by kind.
        self.unrouted: Counter[str] = Counter()

    @property
    def sessions(self) -> dict[int, P2PSession]:
        """The session with each linked peer, by its index (what the rollback layer plays on)."""
        return {
            peer: link.session
            for peer, link in sorted(self.links.items())
            if link.session is not None
        }

    def step(self, frame: int, action: int) -> bool:
        """Send the local input for ``frame`` to every linked peer; whether any path took it."""
        sent = False
        for session in self.sessions.values():
            if session.state is not SessionState.SHUT_DOWN and session.step(frame, action):
                sent = True
        return sent

    def stats(self) -> dict[str, Any]:
        return {
            "player_index": self.player_index,
            "players": self.player_count,
            "peers_linked": sorted(self.links),
            "unrouted": dict(self.unrouted),
            "callback_errors": self.callback_errors
            + sum(link.callback_errors for link in self.links.values()),
            "lifecycle_timer_running": self._lifecycle.timer_running,
        }

    # --- the signaling server (the links' DataChannels go on if it is lost: the server readies
    # the room again when all are back) --------------------------------------------------------

    def _incoming(self, incoming: Incoming) -> None:
        if isinstance(incoming, RelayPacket):
            self.relay_packet(incoming.packet)
        elif isinstance(incoming, Signal):
            self._signal(incoming.message)
        elif isinstance(incoming, RoomReady):
            self._room_ready(incoming)
        elif isinstance(incoming, PeerLeft):
            self._peer_left(incoming.detail)
        elif isinstance(incoming, Joined):
            self._send_all(incoming.replies)
            index = incoming.detail.get("player_index")
            if isinstance(index, int) and not isinstance(index, bool):
                self.player_index = index
            # No lifecycle waiting timer: the server says who is missing (waiting_for_peer).
            self.emit("joined", incoming.detail)
        elif isinstance(incoming, Notice):
            self.emit(incoming.event, incoming.detail)
        elif isinstance(incoming, ServerError):
            self._server_error(incoming.detail, incoming.event)
        elif isinstance(incoming, TelemetrySaved):
            self._execute(incoming, None)
        elif isinstance(incoming, Paired):
            self.unrouted["paired"] += 1  # a two-player event: not this room's

    def relay_packet(self, packet: bytes) -> None:
        """A packet the relay brought (either socket): the envelope names its sender."""
        link = self.links.get(packet[0]) if len(packet) > 1 else None
        if link is None:
            self.unrouted["relay"] += 1
            return
        link.relay_packet(packet[1:])

    def _signal(self, message: Mapping[str, Any]) -> None:
        sender = message.get(SIGNAL_FROM)
        link = self.links.get(sender) if isinstance(sender, int) else None
        if link is None:
            self.unrouted["signal"] += 1
            return
        link.signal({k: v for k, v in message.items() if k not in (SIGNAL_FROM, SIGNAL_TO)})

    def _room_ready(self, ready: RoomReady) -> None:
        """Every player is in: a link to each peer not linked yet (or linked to a player who has
        since been replaced). The server readies the room again whenever a join fills it (a
        restart, anyone's socket back): a link to the same peer then goes on as it is, its
        DataChannel reconnecting or not (only its own machine decides that)."""
        if ready.players != self.player_count:
            self.emit(
                "error",
                {
                    "message": f"room_ready for {ready.players} players; this tab asked for "
                    f"{self.player_count}"
                },
            )
            return
        me = ready.player_index
        if me is None:
            self.unrouted["room_ready"] += 1  # a spectator's: not this tab's
            return
        self.player_index = me
        if self._relay is None:
            self._relay = self._new_relay()
        for peer, client in ready.peers:
            if not 0 <= peer < MAX_PLAYERS or peer == me:
                self.unrouted["room_ready_peer"] += 1
                continue
            link = self.links.get(peer)
            session = link.session if link is not None else None
            if (
                link is not None
                and session is not None
                and session.state is not SessionState.SHUT_DOWN
                and client is not None
                and client == link.peer_client
            ):
                self.emit("rejoined", {"peer": peer, "player_index": me, "peer_index": peer})
                continue
            if link is not None:
                link.close()
            link = self.links[peer] = self._new_link(peer)
            detail = {
                "room": ready.detail.get("room"),
                "peer_client": client,
                "ice_servers": ready.detail.get("ice_servers"),
            }
            link.paired(me, peer, detail)
        ticket = ready.detail.get("relay_ticket")
        if isinstance(ticket, str) and ticket:
            # The edge keeps a lean socket that is still open: what it has on the way stays.
            self._execute(OpenRelaySocket(ticket), None)
        self._lifecycle.paired()
        self._lifecycle.channel_opened()  # each link watches its own ICE
        if not self._ready:
            self._ready = True
            self.emit(
                "room_ready",
                {"player_index": me, "players": ready.players, "peers": sorted(self.links)},
            )

    def _new_link(self, peer: int) -> Pairing:
        options = replace(
            self._options,
            players=2,
            # Each link's faults draw from their own sequence, the same in every run.
            fault_seed=self._options.fault_seed * MAX_PLAYERS + peer,
        )
        game = self._game
        on_control = game.on_control
        assert self._relay is not None
        relay = AddressedRelay(self._relay, peer)
        link: Pairing
        link = Pairing(
            options,
            Callbacks(
                on_input=lambda frame, action: self._guarded(game.on_input, frame, action, peer),
                on_event=partial(self._link_event, peer),
                on_control=None
                if on_control is None
                else lambda kind, payload: self._guarded(on_control, kind, payload, peer),
            ),
            lambda action: self._link_action(link, peer, action),
            clock=self._clock,
            scheduler=self._scheduler,
            new_relay=lambda: relay,
        )
        return link

    def _link_action(self, link: Pairing, peer: int, action: EdgeAction) -> None:
        """A link's action: its signals addressed to its peer, its peer connection's to the
        edge; the relay socket is the room's, not the link's."""
        if isinstance(action, SendToServer):
            payload = action.payload
            if action.event == SIGNAL_EVENT and isinstance(payload, dict):
                payload = {**payload, SIGNAL_TO: peer}
            self._execute(SendToServer(action.event, payload), None)
        elif not isinstance(action, OpenRelaySocket | CloseRelaySocket):
            self._execute(action, link)

    def _peer_left(self, detail: dict[str, Any]) -> None:
        peer = detail.get("player_index")
        link = self.links.pop(peer, None) if isinstance(peer, int) else None
        if link is not None:
            link.close()
        self.emit("peer_left", detail)

    # --- events -------------------------------------------------------------------------------

    def _link_event(self, peer: int, name: str, detail: dict[str, Any]) -> None:
        self.emit(name, {**detail, "peer": peer})

    def _guarded(self, callback: Callable[..., object], *args: Any) -> None:
        if not call_guarded(callback, *args, what=getattr(callback, "__name__", "a callback")):
            self.callback_errors += 1

    # --- the end ------------------------------------------------------------------------------

    def close(self) -> None:
        """Every link closes, and no timer of this class's is left. Idempotent."""
        if self._closed:
            return
        self._closed = True
        for link in self.links.values():
            link.close()
        self._execute(CloseRelaySocket(), None)
        self._lifecycle.close()

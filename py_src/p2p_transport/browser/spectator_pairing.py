"""What a spectator's tab decides, with no browser in sight: it joins a room to watch, opens no
DataChannel and sends no input; the server sends it every player's inputs and episode ends
(the spectator feed, see :mod:`p2p_transport.rollback.spectator`) once the room is ready, on the
lean relay socket when it has one, else as Socket.IO events.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Final

from p2p_transport._guard import call_guarded
from p2p_transport.browser.options import TransportOptions
from p2p_transport.browser.pairing import (
    CloseRelaySocket,
    EdgeAction,
    OpenRelaySocket,
    SendToServer,
)
from p2p_transport.browser.room_listener import RoomListener
from p2p_transport.timing import Clock, Scheduler
from p2p_transport.wire.dialects import (
    Incoming,
    Joined,
    Notice,
    PeerLeft,
    ReferenceDialect,
    RelayPacket,
    RoomReady,
    ServerError,
)

__all__ = ["MAX_EARLY_PACKETS", "SpectatorPairing"]

#: Feed packets kept while ``room_ready`` is on its way: a second of a room of 8 at 60 Hz, far
#: more than the few the server can send a spectator before it.
MAX_EARLY_PACKETS: Final = 512

logger = logging.getLogger(__name__)


class SpectatorPairing(RoomListener):
    """A spectator's decisions: join to watch, take the room's size at ``room_ready``, and hand
    every packet the server sends to ``on_packet`` (whole, in the feed's envelope).

    ``on_event(name, detail)`` hears ``joined``, ``waiting_for_peer``, ``room_ready`` (the
    room's ``players``), ``peer_left`` (a player left; the feed goes on with the others),
    ``error`` and the refusals (``refused``, ``connect_failed``...) as a player's tab does.
    """

    def __init__(
        self,
        options: TransportOptions,
        on_packet: Callable[[bytes], object],
        on_event: Callable[[str, dict[str, Any]], object] | None,
        execute: Callable[[EdgeAction], None],
        *,
        clock: Clock,
        scheduler: Scheduler,
    ) -> None:
        super().__init__(
            options,
            ReferenceDialect(options.room, options.token, options.players, spectator=True),
            on_event,
            lambda event, payload: execute(SendToServer(event, payload)),
            clock=clock,
            scheduler=scheduler,
        )
        self._on_packet = on_packet
        self._execute = execute
        #: The room's number of players, from ``room_ready`` on (``None`` before).
        self.players: int | None = None
        #: Packets that came before the room was ready past :data:`MAX_EARLY_PACKETS`
        #: (counted, dropped); those before it wait in ``_early``.
        self.dropped = 0
        self._early: list[bytes] = []
        self._closed = False

    def _incoming(self, incoming: Incoming) -> None:
        if isinstance(incoming, RelayPacket):
            self.relay_packet(incoming.packet)
        elif isinstance(incoming, RoomReady):
            ticket = incoming.detail.get("relay_ticket")
            if isinstance(ticket, str) and ticket:
                # The edge keeps a lean socket that is still open: the feed does not resend.
                self._execute(OpenRelaySocket(ticket))
            if self.players is not None:
                return  # readied again (the room refilled): the same room, the same feed
            self.players = incoming.players
            self.emit("room_ready", {"players": incoming.players, "spectator": True})
            early, self._early = self._early, []
            for packet in early:
                self.relay_packet(packet)
        elif isinstance(incoming, Joined):
            self.emit("joined", incoming.detail)
        elif isinstance(incoming, Notice):
            self.emit(incoming.event, incoming.detail)
        elif isinstance(incoming, PeerLeft):
            self.emit("peer_left", incoming.detail)
        elif isinstance(incoming, ServerError):
            self._server_error(incoming.detail, incoming.event)

    def relay_packet(self, packet: bytes) -> None:
        """A feed packet from either of the server's sockets; one that comes before
        ``room_ready`` (the server readies spectators after the players, and the first inputs
        may be quicker) waits for it."""
        if self.players is None:
            if len(self._early) < MAX_EARLY_PACKETS:
                self._early.append(packet)
            else:
                self.dropped += 1
            return
        if not call_guarded(self._on_packet, packet, what="on_packet"):
            self.callback_errors += 1

    def close(self) -> None:
        """Stop watching: the relay socket closes, and no timer is left. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._execute(CloseRelaySocket())
        self._lifecycle.close()

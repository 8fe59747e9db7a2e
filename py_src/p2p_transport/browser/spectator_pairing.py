"""What a spectator's tab decides, with no browser in sight: it joins a room to watch, opens no
DataChannel and sends no input; the server sends it every player's inputs and episode ends
(the spectator feed, see :mod:`p2p_transport.rollback.spectator`) once the room is ready, on the
lean relay socket when it has one, else as Socket.IO events.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from typing import Any

from p2p_transport._guard import call_guarded
from p2p_transport.browser.options import TransportOptions
from p2p_transport.browser.pairing import (
    MAX_EVENT_LOG,
    CloseRelaySocket,
    EdgeAction,
    OpenRelaySocket,
    SendToServer,
)
from p2p_transport.protocol.lifecycle import Lifecycle
from p2p_transport.timing import Clock, Scheduler
from p2p_transport.wire.dialects import (
    Joined,
    Notice,
    PeerLeft,
    ReferenceDialect,
    RelayPacket,
    RoomReady,
    ServerError,
)

__all__ = ["SpectatorPairing"]

logger = logging.getLogger(__name__)


class SpectatorPairing:
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
        self._on_packet = on_packet
        self._on_event = on_event
        self._execute = execute
        self._clock = clock
        players = options.players
        self.dialect = ReferenceDialect(options.room, options.token, players, spectator=True)
        self._lifecycle = Lifecycle(
            clock,
            scheduler,
            self.emit,
            options.room,
            connect_timeout_ms=options.connect_timeout_ms,
        )
        #: The room's number of players, from ``room_ready`` on (``None`` before).
        self.players: int | None = None
        #: Packets that came before the room was ready, or that the callback raised on.
        self.dropped = 0
        self.callback_errors = 0
        self._event_log: deque[dict[str, Any]] = deque(maxlen=MAX_EVENT_LOG)
        self._closed = False

    def event_log(self) -> list[dict[str, Any]]:
        return list(self._event_log)

    # --- the signaling server -----------------------------------------------------------------

    def connecting(self) -> None:
        self._lifecycle.connecting()

    def socket_connected(self) -> None:
        self._lifecycle.server_reached()
        for event, payload in self.dialect.join():
            self._execute(SendToServer(event, payload))

    def server_unreachable(self, reason: str) -> None:
        self._lifecycle.connect_error(reason)

    def server_lost(self, reason: str) -> None:
        self._lifecycle.server_lost(reason)

    def unreadable(self, event: str, error: Exception) -> None:
        logger.error("could not read the server's %s event", event, exc_info=error)
        self.emit("error", {"message": f"unreadable {event} from the server: {error}"})

    def server_event(self, event: str, value: Any) -> None:
        try:
            incoming = self.dialect.incoming(event, value)
        except Exception as exc:
            self.unreadable(event, exc)
            return
        if isinstance(incoming, RelayPacket):
            self.relay_packet(incoming.packet)
        elif isinstance(incoming, RoomReady):
            self.players = incoming.players
            self._execute(CloseRelaySocket())
            ticket = incoming.detail.get("relay_ticket")
            if isinstance(ticket, str) and ticket:
                self._execute(OpenRelaySocket(ticket))
            self.emit("room_ready", {"players": incoming.players, "spectator": True})
        elif isinstance(incoming, Joined):
            self.emit("joined", incoming.detail)
        elif isinstance(incoming, Notice | PeerLeft):
            self.emit(
                incoming.event if isinstance(incoming, Notice) else "peer_left", incoming.detail
            )
        elif isinstance(incoming, ServerError):
            logger.warning("server reported %s: %s", incoming.event, incoming.detail)
            self._lifecycle.server_error(incoming.detail, incoming.event)

    def relay_packet(self, packet: bytes) -> None:
        """A feed packet from either of the server's sockets."""
        if self.players is None:
            self.dropped += 1
            return
        if not call_guarded(self._on_packet, packet, what="on_packet"):
            self.callback_errors += 1

    def emit(self, name: str, detail: dict[str, Any] | None = None) -> None:
        detail = detail or {}
        self._event_log.append({"at_ms": self._clock(), "event": name, **detail})
        if self._on_event is not None and not call_guarded(
            self._on_event, name, detail, what=f"on_event ({name})"
        ):
            self.callback_errors += 1

    def close(self) -> None:
        """Stop watching: the relay socket closes, and no timer is left. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._execute(CloseRelaySocket())
        self._lifecycle.close()

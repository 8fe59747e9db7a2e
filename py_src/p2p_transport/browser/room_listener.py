"""What every tab's pairing does with the signaling server, whatever it then decides: a two
players' :class:`~p2p_transport.browser.pairing.Pairing`, a mesh's
:class:`~p2p_transport.browser.mesh_pairing.MeshPairing`, a spectator's
:class:`~p2p_transport.browser.spectator_pairing.SpectatorPairing`.

Sans-IO: the server's socket (:class:`~p2p_transport.browser.server_sockets.ServerSocket`)
reports to a :class:`RoomListener`, which joins with its dialect, watches the connection's
lifecycle (:class:`~p2p_transport.protocol.lifecycle.Lifecycle`: timeouts, refusals) and tells
the game its events; a subclass decides what the server's events mean.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from typing import Any, Final

from p2p_transport._guard import call_guarded
from p2p_transport.browser.options import TransportOptions
from p2p_transport.protocol.lifecycle import Lifecycle
from p2p_transport.timing import Clock, Scheduler
from p2p_transport.wire.dialects import Dialect, Incoming

__all__ = ["MAX_EVENT_LOG", "RoomListener"]

logger = logging.getLogger(__name__)

#: Game events kept with their details for the report; older ones drop out.
MAX_EVENT_LOG: Final = 200


class RoomListener:
    """A tab's side of the signaling server: ``send(event, payload)`` emits on its socket,
    ``on_event(name, detail)`` is the game's (each event also goes into :meth:`event_log`)."""

    def __init__(
        self,
        options: TransportOptions,
        dialect: Dialect,
        on_event: Callable[[str, dict[str, Any]], object] | None,
        send: Callable[[str, Any], None],
        *,
        clock: Clock,
        scheduler: Scheduler,
    ) -> None:
        #: How this side's server spells its events.
        self.dialect = dialect
        self._on_event = on_event
        self._send = send
        self._clock = clock
        self._lifecycle = Lifecycle(
            clock,
            scheduler,
            self.emit,
            options.room,
            relay_only=options.relay_only,
            ice_timeout_ms=options.ice_timeout_ms,
            connect_timeout_ms=options.connect_timeout_ms,
        )
        #: ``on_event`` (or another of the game's callbacks) raised (logged; the tab went on).
        self.callback_errors = 0
        self._event_log: deque[dict[str, Any]] = deque(maxlen=MAX_EVENT_LOG)

    def event_log(self) -> list[dict[str, Any]]:
        """The last :data:`MAX_EVENT_LOG` events, each ``{at_ms, event, **detail}``."""
        return list(self._event_log)

    def connecting(self) -> None:
        """``connect()`` was called: the server has the connect timeout to answer."""
        self._lifecycle.connecting()

    def socket_connected(self) -> None:
        """The signaling socket (re)connected: join (again)."""
        self._lifecycle.server_reached()
        self._send_all(self.dialect.join())

    def server_unreachable(self, reason: str) -> None:
        """The socket could not reach the server (its client retries with backoff)."""
        self._lifecycle.connect_error(reason)

    def server_lost(self, reason: str) -> None:
        """The socket lost the server; what was set up between the peers goes on."""
        self._lifecycle.server_lost(reason)

    def unreadable(self, event: str, error: Exception) -> None:
        """A server event that could not be read: an ``error`` event, never an exception in JS."""
        logger.error("could not read the server's %s event", event, exc_info=error)
        self.emit("error", {"message": f"unreadable {event} from the server: {error}"})

    def server_event(self, event: str, value: Any) -> None:
        """One of the dialect's events, its payload as plain data (bytes for binary events)."""
        try:
            incoming = self.dialect.incoming(event, value)
        except Exception as exc:
            self.unreadable(event, exc)
            return
        if incoming is not None:
            self._incoming(incoming)

    def _incoming(self, incoming: Incoming) -> None:
        raise NotImplementedError

    def _send_all(self, outgoing: list[tuple[str, Any]] | tuple[tuple[str, Any], ...]) -> None:
        for event, payload in outgoing:
            self._send(event, payload)

    def _server_error(self, detail: dict[str, Any], event: str) -> None:
        logger.warning("server reported %s: %s", event, detail)
        # One event per refusal, its message a sentence (the lifecycle words it).
        self._lifecycle.server_error(detail, event)

    def emit(self, name: str, detail: dict[str, Any] | None = None) -> None:
        """Tell the game ``name`` (logged in :meth:`event_log`)."""
        detail = detail or {}
        self._event_log.append({"at_ms": self._clock(), "event": name, **detail})
        on_event = self._on_event
        if on_event is not None and not call_guarded(
            on_event, name, detail, what=f"on_event ({name})"
        ):
            self.callback_errors += 1

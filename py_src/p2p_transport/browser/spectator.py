"""A spectator's tab: :class:`SpectatorTransport` watches a room through the signaling server.

What happens is decided by :class:`~p2p_transport.browser.spectator_pairing.SpectatorPairing`
(sans-IO); this class holds the server's two sockets and the page's timers. It opens no peer
connection: the players send nothing for it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import js

from p2p_transport.browser.adapters import ProxyRegistry, ShimScheduler
from p2p_transport.browser.options import TransportOptions
from p2p_transport.browser.pairing import (
    EdgeAction,
)
from p2p_transport.browser.server_sockets import ServerConnection
from p2p_transport.browser.spectator_pairing import SpectatorPairing
from p2p_transport.errors import UsageError
from p2p_transport.timing import Clock, monotonic_ms

__all__ = ["SpectatorTransport"]


class SpectatorTransport:
    """A tab watching ``options.room`` (``options.spectator`` must be true).

    ``on_packet(data)`` gets every packet of the server's spectator feed, whole: what
    :meth:`SpectatorSession.on_packet <p2p_transport.rollback.spectator.SpectatorSession.on_packet>`
    takes. ``on_event(name, detail)`` hears the events of
    :class:`~p2p_transport.browser.spectator_pairing.SpectatorPairing`.
    """

    def __init__(
        self,
        options: TransportOptions,
        on_packet: Callable[[bytes], object],
        on_event: Callable[[str, dict[str, Any]], object] | None = None,
    ) -> None:
        if not options.spectator:
            raise UsageError("a SpectatorTransport watches: TransportOptions(spectator=True)")
        self.options = options
        self._proxies = ProxyRegistry()
        #: The page's timers and clock, for a game loop to share with the transport.
        self.scheduler = ShimScheduler(self._proxies, js.p2pShim)
        self.clock: Clock = monotonic_ms
        self._pairing = SpectatorPairing(
            options, on_packet, on_event, self._execute, clock=self.clock, scheduler=self.scheduler
        )
        self._server = ServerConnection(
            options, self._pairing, self._proxies, self._pairing.relay_packet
        )
        self._closed = False

    @property
    def players(self) -> int | None:
        """The room's number of players, from ``room_ready`` on."""
        return self._pairing.players

    @property
    def live_proxies(self) -> int:
        return self._proxies.live + self._server.live_proxies

    def connect(self) -> None:
        """Open the Socket.IO connection and join the room as a spectator."""
        self._pairing.connecting()
        self._server.open()

    def event_log(self) -> list[dict[str, Any]]:
        return self._pairing.event_log()

    def stats(self) -> dict[str, Any]:
        return {
            "players": self.players,
            "packets_dropped": self._pairing.dropped,
            "callback_errors": self._pairing.callback_errors,
            "relay_socket": self._server.relay_socket_state,
            "live_proxies": self.live_proxies,
        }

    def close(self) -> None:
        """Stop watching: sockets, timers and every proxy. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._pairing.close()
        self.scheduler.clear_all()
        self._server.close()
        self._proxies.destroy_all()

    def _execute(self, action: EdgeAction) -> None:
        self._server.carry_out(action)

"""One tab's end of a room of more than two players: :class:`MeshTransport`, the class a game
holds in a mesh.

What happens is decided by :class:`~p2p_transport.browser.mesh_pairing.MeshPairing` (sans-IO);
this class holds the browser's I/O objects, the way
:class:`~p2p_transport.browser.transport.BrowserTransport` does for two players: the signaling
server's sockets, one :class:`~p2p_transport.browser.rtc_connection.RtcLink` (peer connections
and DataChannels) per peer, and the page's timers.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from typing import Any

import js

from p2p_transport.browser.adapters import ProxyRegistry, ShimScheduler
from p2p_transport.browser.mesh_pairing import MeshCallbacks, MeshPairing
from p2p_transport.browser.options import TransportOptions
from p2p_transport.browser.pairing import (
    EdgeAction,
    Pairing,
)
from p2p_transport.browser.rtc_connection import RtcLink, SignalingSteps
from p2p_transport.browser.server_sockets import ServerConnection
from p2p_transport.browser.telemetry_saves import TelemetrySaves
from p2p_transport.errors import InvalidStateError, UsageError
from p2p_transport.protocol.faults import FaultConfig
from p2p_transport.session import P2PSession
from p2p_transport.timing import Clock, monotonic_ms
from p2p_transport.wire.dialects import TelemetrySaved
from p2p_transport.wire.signaling import PLAYERS_PER_ROOM

__all__ = ["MeshTransport"]

logger = logging.getLogger(__name__)


class MeshTransport:
    """One tab of a room of ``options.players`` players (3 to 8).

    ``callbacks`` is a :class:`~p2p_transport.browser.mesh_pairing.MeshCallbacks` (or just
    ``on_input(frame, action, player)``). Its ``on_event(name, detail)`` hears the room's events
    (``joined``, ``waiting_for_peer`` with ``present`` and ``missing``, ``room_ready`` once every
    player is in, ``peer_left``, ``error``, ``refused``...) and each link's events as
    :class:`~p2p_transport.browser.transport.BrowserTransport` names them, with the peer's index
    in ``detail["peer"]``. :attr:`sessions` holds a session per peer from ``room_ready`` on: what
    :class:`~p2p_transport.rollback.RollbackSession` plays a room on.
    """

    def __init__(
        self,
        options: TransportOptions,
        callbacks: MeshCallbacks | Any,
    ) -> None:
        if options.players == PLAYERS_PER_ROOM:
            raise UsageError("a room of two players is a BrowserTransport's, not a mesh's")
        self.options = options
        self._proxies = ProxyRegistry()
        self.scheduler = ShimScheduler(self._proxies, js.p2pShim)
        self.clock: Clock = monotonic_ms
        game = callbacks if isinstance(callbacks, MeshCallbacks) else MeshCallbacks(callbacks)
        self._pairing = MeshPairing(
            options,
            game,
            self._execute,
            clock=self.clock,
            scheduler=self.scheduler,
            new_relay=lambda: self._server.relay(),
        )
        self._server = ServerConnection(
            options, self._pairing, self._proxies, self._pairing.relay_packet
        )
        self._links: dict[int, RtcLink] = {}
        self._closed = False
        self._steps = SignalingSteps()
        self._saves = TelemetrySaves()

    @property
    def player_index(self) -> int | None:
        return self._pairing.player_index

    @property
    def player_count(self) -> int:
        return self._pairing.player_count

    @property
    def sessions(self) -> dict[int, P2PSession]:
        """The session with each peer, by its index (from ``room_ready`` on)."""
        return self._pairing.sessions

    @property
    def live_proxies(self) -> int:
        """Python functions the page still holds for this transport (0 after :meth:`close`)."""
        links = sum(link.proxies.live for link in self._links.values())
        return self._proxies.live + self._server.live_proxies + links

    def data_channel(self, peer: int) -> Any:
        """The game ``RTCDataChannel`` to ``peer`` (``None`` until there is one)."""
        link = self._links.get(peer)
        return link.data_channel if link is not None else None

    # --- what the game calls ------------------------------------------------------------------

    def connect(self) -> None:
        """Open the Socket.IO connection and join the room; the rest follows from events."""
        self._pairing.connecting()
        self._server.open()

    def step(self, frame: int, action: int) -> bool:
        """Send the local input for ``frame`` to every peer (see :meth:`P2PSession.step`)."""
        if not self._pairing.sessions:
            raise InvalidStateError("the room is not ready yet (wait for room_ready)")
        return self._pairing.step(frame, action)

    def event_log(self) -> list[dict[str, Any]]:
        return self._pairing.event_log()

    def route_changes(self) -> list[dict[str, Any]]:
        """Every link's route changes its telemetry kept, each with its ``peer``, in time order."""
        changes = [
            {**change, "peer": peer}
            for peer, session in self._pairing.sessions.items()
            for change in session.route_changes()
        ]
        return sorted(changes, key=lambda change: float(change["at_ms"]))

    def stats(self) -> dict[str, Any]:
        """The room's figures, and under ``links`` (keyed by the peer's index as a string) each
        peer's session's :meth:`~P2PSession.stats` with its peer connection's figures."""
        out = self._pairing.stats()
        links = self._pairing.links
        out["links"] = {
            str(peer): {**session.stats(), **links[peer].stats()}
            for peer, session in self._pairing.sessions.items()
        }
        out["live_proxies"] = self.live_proxies
        out["relay_socket"] = self._server.relay_socket_state
        return out

    def telemetry(self) -> dict[str, Any]:
        """Each peer's session's telemetry record, keyed by the peer's index as a string, and
        ``time_origin_unix_ms`` to anchor the page's clock to wall time."""
        return {
            "player_index": self.player_index,
            "players": self.player_count,
            "links": {
                str(peer): session.telemetry() for peer, session in self._pairing.sessions.items()
            },
            "time_origin_unix_ms": float(js.performance.timeOrigin),
        }

    def save_telemetry(self, extra: Any = None) -> asyncio.Future[dict[str, Any]]:
        """Hand the server this tab's :meth:`telemetry` record with ``extra``, as
        :meth:`BrowserTransport.save_telemetry
        <p2p_transport.browser.transport.BrowserTransport.save_telemetry>` does."""
        if self._server.socket is None or self._closed:
            raise InvalidStateError("connect() first: the record goes to the signaling server")
        record = {
            "time_origin_unix_ms": float(js.performance.timeOrigin),
            "saved_at_ms": self.clock(),
            "player_index": self.player_index,
            "telemetry": self.telemetry(),
            "extra": extra,
        }
        return self._saves.save(self._server.socket.emit, record)

    def set_faults(self, faults: FaultConfig | None, peer: int | None = None) -> None:
        """Impair what this tab sends to ``peer`` (every peer: ``None``) from now on."""
        if peer is None:
            self.options = replace(self.options, faults=faults)
        links = self._pairing.links
        for index, link in links.items():
            if peer is None or index == peer:
                link.set_faults(faults)

    def close_channel(self, peer: int) -> None:
        """Close only the DataChannel to ``peer`` (tests take a P2P path away with it)."""
        link = self._links.get(peer)
        if link is not None:
            link.close_channel()

    def close(self) -> None:
        """Tear everything down: links, timers, sockets and every proxy. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._pairing.close()
        for link in self._links.values():
            link.close()
        self.scheduler.clear_all()
        self._server.close()
        self._steps.cancel_all()
        self._saves.close()
        self._proxies.destroy_all()

    # --- carrying out the pairing's actions ---------------------------------------------------

    def _execute(self, action: EdgeAction, pairing: Pairing | None) -> None:
        if pairing is not None:
            self._link_for(pairing).carry_out(action)
        elif not self._server.carry_out(action) and isinstance(action, TelemetrySaved):
            self._saves.answered(action.detail)

    def _link_for(self, pairing: Pairing) -> RtcLink:
        """The peer connections of ``pairing``'s peer; a new link to that seat (its player was
        replaced) closes the old one's first."""
        peer = pairing.peer_index
        assert peer is not None  # a link acts only once paired
        link = self._links.get(peer)
        if link is None or link.pairing is not pairing:
            if link is not None:
                link.close()
            link = self._links[peer] = RtcLink(
                pairing, self.options, lambda coro, what: self._steps.spawn(pairing, coro, what)
            )
        return link

"""One tab's end of the transport: :class:`BrowserTransport`, the class a game holds.

What happens is decided by :class:`~p2p_transport.browser.pairing.Pairing` (sans-IO: pairing or
resuming, reconnection through the peer-connection machine, the session); this class holds the
browser's I/O objects, one adapter each: the signaling server's sockets
(:mod:`~p2p_transport.browser.server_sockets`), the current RTCPeerConnection with its channels
(:mod:`~p2p_transport.browser.rtc_connection`), and the page's timers
(:class:`~p2p_transport.browser.adapters.ShimScheduler`), and carries out the pairing's actions.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from typing import Any

import js

from p2p_transport.browser.adapters import ProxyRegistry, ShimScheduler, js_object
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
from p2p_transport.protocol.receiver import InputCallback
from p2p_transport.session import Callbacks, P2PSession
from p2p_transport.timing import Clock, monotonic_ms
from p2p_transport.wire.dialects import MugDialect, TelemetrySaved
from p2p_transport.wire.signaling import (
    TELEMETRY_SAVED_EVENT,
)

__all__ = ["BrowserTransport"]

logger = logging.getLogger(__name__)


class BrowserTransport:
    """One tab's end of the transport.

    ``callbacks`` is a :class:`~p2p_transport.session.Callbacks` (or just ``on_input``). Its
    ``on_event(name, detail)`` hears, for the game:

    - ``connected``: the first DataChannel opened (P2P is up);
    - ``degraded``: the P2P path was lost (its channel closed, its connection failed, or it went
      silent), or the peer went quiet on every path, while the peer is still in the room;
      ``detail["reason"]`` says which;
    - ``route_changed``: the router changed the inputs' route (``previous``, ``route``,
      ``target``, ``reason``);
    - ``reconnecting``: a fresh peer connection is being set up (``attempt``);
    - ``reconnected``: a fresh DataChannel opened after a loss (``downtime_ms``, ``attempts``),
      or a peer that had gone silent on every path was heard again;
    - ``reconnect_failed``: every attempt failed; the relay goes on carrying the game;
    - ``disconnected``: the peer left the room, or was silent on every path past the
      disconnect threshold;
    - ``peer_focus``: a deployed peer's tab gained or lost the foreground (``focused``,
      ``frame``);

    and the lower-level ``joined``, ``paired``, ``rejoined``, ``open``, ``closed``, ``failed``,
    ``peer_left`` and ``error``. The session exists from ``paired`` on; until then the methods
    that need it raise ``RuntimeError``. Reconnection is the peer-connection machine's (see its
    docstring); the relay carries the game meanwhile.
    """

    def __init__(self, options: TransportOptions, callbacks: Callbacks | InputCallback) -> None:
        self.options = options
        self._proxies = ProxyRegistry()
        #: The page's timers and clock, for a game loop to share with the transport.
        self.scheduler = ShimScheduler(self._proxies, js.p2pShim)
        self.clock: Clock = monotonic_ms
        self._pairing = Pairing(
            options,
            Callbacks.of(callbacks),
            self._execute,
            clock=self.clock,
            scheduler=self.scheduler,
            new_relay=lambda: self._server.relay(),
        )
        self._server = ServerConnection(
            options, self._pairing, self._proxies, self._pairing.relay_packet
        )
        # The peer connection's handlers live and die with it, so a reconnection frees the old ones.
        self._link = RtcLink(
            self._pairing,
            options,
            lambda coro, what: self._steps.spawn(self._pairing, coro, what),
        )
        self._closed = False
        self._steps = SignalingSteps()
        # save_telemetry()'s records, until the server answers.
        self._saves = TelemetrySaves()

    @property
    def session(self) -> P2PSession | None:
        """The session with the current peer (from ``paired`` on), for what this class does not
        pass through."""
        return self._pairing.session

    @property
    def player_index(self) -> int | None:
        return self._pairing.player_index

    @property
    def peer_index(self) -> int | None:
        return self._pairing.peer_index

    @property
    def live_proxies(self) -> int:
        """Python functions the page still holds for this transport (0 after :meth:`close`)."""
        return self._proxies.live + self._link.proxies.live + self._server.live_proxies

    @property
    def callback_errors(self) -> int:
        """``on_event`` or ``on_route_change`` raised (logged; the transport went on)."""
        return self._pairing.callback_errors

    @property
    def ice_candidate_errors(self) -> int:
        """ICE candidates the peer connections refused (one of an old connection, say)."""
        return self._pairing.ice_candidate_errors

    @property
    def peer_connection(self) -> Any:
        """The current ``RTCPeerConnection`` (``None`` between connections), to read, e.g. its
        ``getStats()``, or to tell a reconnection's new connection from the one before. The
        transport owns it: closing it or replacing its handlers breaks the transport."""
        rtc = self._link.rtc
        return rtc.raw if rtc is not None else None

    @property
    def data_channel(self) -> Any:
        """The current connection's game ``RTCDataChannel`` (``None`` until there is one), to
        read its ``readyState`` or send it raw bytes as a confused peer would. The transport owns
        it: :meth:`close_channel` is the way to close it."""
        return self._link.data_channel

    # --- what the game calls ------------------------------------------------------------------

    def connect(self, socket: Any = None) -> None:
        """Open the Socket.IO connection and join the room; the rest follows from events.

        ``socket``: a socket.io-client socket the page already has, to attach to instead (inside
        a deployed interactive_gym / mug page, whose socket is the participant: see
        :class:`~p2p_transport.wire.dialects.MugDialect`). The transport then adds its handlers
        to it, emits on it, and leaves it connected at :meth:`close`.
        """
        dialect = self._pairing.dialect
        if socket is not None and isinstance(dialect, MugDialect) and not dialect.attach:
            raise UsageError(
                "this mug dialect does the lobby on its own socket: MugDialect(attach=True) "
                "to use the page's"
            )
        entry = dialect.entry_path if isinstance(dialect, MugDialect) else None
        self._pairing.connecting()
        if socket is None and entry is not None:
            self._steps.spawn(self._pairing, self._enter_then_open(entry), "the participant's page")
        else:
            self._server.open(socket)

    async def _enter_then_open(self, path: str) -> None:
        """The deployed server serves the participant's page before it registers them: fetched
        (its answer unread: it is another origin's, and only its having been served counts),
        then the socket opens. A cross-origin-isolated page is refused the answer of another
        origin that does not allow it (``Cross-Origin-Embedder-Policy``), after the server has
        served it: a failure is not a sign the server lacks the participant, so the socket opens
        all the same (a server that cannot be reached is then the socket's to report)."""
        base = (self.options.server_url or str(js.location.origin)).rstrip("/")
        try:
            await js.fetch(base + path, js_object({"mode": "no-cors", "cache": "no-store"}))
        except Exception as error:
            logger.info(
                "GET %s: %s (the request went out; its answer is not this page's)", path, error
            )
        if not self._closed:
            self._server.open()

    def step(self, frame: int, action: int) -> bool:
        """Send the local input for ``frame`` (see :meth:`P2PSession.step`)."""
        return self._paired().step(frame, action)

    def reset_episode(self) -> None:
        """Forget inputs and frame numbers for a new episode; keep the connection."""
        self._paired().reset_episode()

    def send_control(self, kind: int, payload: bytes = b"") -> int | None:
        """Send the game's own control message reliably (see :meth:`P2PSession.send_control`)."""
        return self._paired().send_control(kind, payload)

    def send_episode_end(self, frame: int, episode: int) -> int | None:
        return self._paired().send_episode_end(frame, episode)

    def send_episode_ready(self, episode: int, state_hash: str | None = None) -> int | None:
        return self._paired().send_episode_ready(episode, state_hash)

    def record_state_hash(self, frame: int, hash_bytes: bytes) -> None:
        """Compare this confirmed frame's state hash with the peer's (``on_desync`` hears the
        first difference)."""
        self._paired().parts.desync.add_local_hash(frame, hash_bytes)

    def telemetry(self) -> dict[str, Any] | None:
        """The session's telemetry record, or ``None`` before pairing. Its times are on the
        page's clock; ``time_origin_unix_ms`` (the page's ``performance.timeOrigin``) anchors
        them to wall time, so two players' records line up."""
        session = self._pairing.session
        if session is None:
            return None
        return {**session.telemetry(), "time_origin_unix_ms": self._time_origin_unix_ms()}

    def save_telemetry(self, extra: Any = None) -> asyncio.Future[dict[str, Any]]:
        """Hand the server this tab's telemetry record, with ``extra`` (anything JSON can hold:
        the game's own data), to keep on disk. The future resolves with the server's answer
        (``{save_id, bytes, file}``) once the record is stored and flushed; it fails with the
        server's reason if it refused (a server started without ``--data-dir`` keeps none),
        or if the transport closes first. Records longer than one message go in parts."""
        if TELEMETRY_SAVED_EVENT not in self._pairing.dialect.events:
            raise InvalidStateError("this signaling server's dialect has no telemetry storage")
        if self._server.socket is None or self._closed:
            raise InvalidStateError("connect() first: the record goes to the signaling server")
        record = {
            "time_origin_unix_ms": self._time_origin_unix_ms(),
            "saved_at_ms": self.clock(),
            "player_index": self.player_index,
            "telemetry": self.telemetry(),
            "extra": extra,
        }
        return self._saves.save(self._server.socket.emit, record)

    def route_changes(self) -> list[dict[str, Any]]:
        """The route changes the session's telemetry kept, oldest first."""
        session = self._pairing.session
        return session.route_changes() if session is not None else []

    def event_log(self) -> list[dict[str, Any]]:
        """The last events (see :data:`~p2p_transport.browser.room_listener.MAX_EVENT_LOG`), each
        ``{at_ms, event, **detail}``."""
        return self._pairing.event_log()

    def stats(self) -> dict[str, Any]:
        """The session's :meth:`~P2PSession.stats` with the connection's own figures."""
        session = self._pairing.session
        out = session.stats() if session is not None else {}
        out["callback_errors"] = out.get("callback_errors", 0) + self.callback_errors
        out["live_proxies"] = self.live_proxies
        out["relay_socket"] = self._server.relay_socket_state
        out["live_pc_proxies"] = self._link.proxies.live
        out["proxies_created"] = self._proxies.created + self._link.proxies.created
        out["ice_candidate_errors"] = self.ice_candidate_errors
        out.update(self._pairing.stats())
        return out

    def set_faults(self, faults: FaultConfig | None) -> None:
        """Change what goes wrong with this tab's DataChannel packets, from now on and for later
        connections (tests use it to break a working link). Once set, the wrapper stays for the
        session, passing packets straight through when ``faults`` is ``None``."""
        self.options = replace(self.options, faults=faults)
        self._pairing.set_faults(faults)

    def close_channel(self) -> None:
        """Close only the DataChannel (tests use it to take the P2P path away)."""
        self._link.close_channel()

    def close(self) -> None:
        """Tear everything down: timers, peer connection, socket, and every proxy. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._pairing.close()
        self.scheduler.clear_all()
        self._server.close()
        self._steps.cancel_all()
        self._saves.close()
        self._proxies.destroy_all()

    @staticmethod
    def _time_origin_unix_ms() -> float:
        return float(js.performance.timeOrigin)

    def _paired(self) -> P2PSession:
        session = self._pairing.session
        if session is None:
            raise InvalidStateError("not paired with a peer yet")
        return session

    # --- carrying out the pairing's actions ---------------------------------------------------

    def _execute(self, action: EdgeAction) -> None:
        if self._link.carry_out(action) or self._server.carry_out(action):
            return
        if isinstance(action, TelemetrySaved):
            self._saves.answered(action.detail)

"""What one tab decides about its peer, with no browser in sight.

:class:`Pairing` decides whether a ``paired`` from the server is a new peer (a new session) or
the same peer coming back through the server (the session goes on), what a peer leaving or the
server going away changes, which of the session's silences call for a fresh peer connection,
what the DataChannel packets go through (the fault injection), and what the game hears of it all.
It holds the session, the peer-connection machine
(:class:`~p2p_transport.protocol.peer_connection.PeerConnectionMachine`, which decides when a
connection opens, closes or is replaced) and the page's lifecycle events
(:class:`~p2p_transport.protocol.lifecycle.Lifecycle`).

Sans-IO, like the pieces it holds: the browser edge
(:class:`~p2p_transport.browser.transport.BrowserTransport`) reports what its sockets and peer
connection saw and carries out the :data:`EdgeAction` objects handed to ``execute``; nothing here
imports ``js``, so the decisions run under CPython with a fake clock and scheduler.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, TypeAlias

from p2p_transport._guard import call_guarded
from p2p_transport.browser.options import IceServer, TransportOptions
from p2p_transport.browser.room_listener import RoomListener
from p2p_transport.errors import UsageError
from p2p_transport.protocol.faults import FaultConfig, FaultyChannel
from p2p_transport.protocol.peer_connection import (
    AcceptOffer,
    Action,
    AddCandidate,
    ApplyAnswer,
    CloseConnection,
    Emit,
    OpenConnection,
    PeerConnectionMachine,
    SendSignal,
)
from p2p_transport.protocol.relay import SocketIOLike
from p2p_transport.protocol.routing import RouteChange
from p2p_transport.protocol.sender import DataChannelLike
from p2p_transport.session import (
    Callbacks,
    P2PSession,
    PingChannelLike,
    SessionEvent,
    SessionState,
)
from p2p_transport.timing import Clock, Scheduler
from p2p_transport.wire.dialects import (
    Incoming,
    Joined,
    LinkReport,
    Notice,
    Paired,
    PeerLeft,
    ReferenceDialect,
    RelayPacket,
    ServerError,
    Signal,
    TelemetrySaved,
)

__all__ = [
    "FAULT_PUMP_INTERVAL_MS",
    "VALIDATION_POLL_MS",
    "CloseRelaySocket",
    "EdgeAction",
    "OpenRelaySocket",
    "Pairing",
    "SendToServer",
]

logger = logging.getLogger(__name__)

#: How often delayed packets of the fault injection are checked: 5 ms, under a third of a frame,
#: so an added delay is accurate to a few ms (browsers clamp intervals to 4 ms anyway).
FAULT_PUMP_INTERVAL_MS: Final = 5.0
#: How often a new DataChannel's validation is looked at until it is validated, for a server
#: that wants to hear it (the validation's own timer ticks about as often): a few ms added to
#: the ~100 ms the validation takes.
VALIDATION_POLL_MS: Final = 10.0


@dataclass(frozen=True, slots=True)
class SendToServer:
    """Emit ``event`` with ``payload`` (plain data) on the signaling socket, if it is there."""

    event: str
    payload: Any


@dataclass(frozen=True, slots=True)
class OpenRelaySocket:
    """Open the server's lean relay socket with the ticket ``paired`` gave (see
    ``RELAY_SOCKET_PATH``); the relay uses it while it is open."""

    ticket: str


@dataclass(frozen=True, slots=True)
class CloseRelaySocket:
    """Close the lean relay socket, if one is open: the relay goes back to Socket.IO events."""


#: What the edge carries out: the peer connection's I/O (the machine's actions, less the signals
#: and game events, which are decided here), the server's sockets, and the server's answer to a
#: telemetry record.
EdgeAction: TypeAlias = (
    OpenConnection
    | CloseConnection
    | AcceptOffer
    | ApplyAnswer
    | AddCandidate
    | SendToServer
    | OpenRelaySocket
    | CloseRelaySocket
    | TelemetrySaved
)


class Pairing(RoomListener):
    """One tab's decisions about its peer, from joining the room to closing.

    ``new_relay()`` gives each new session its relay path (the server's socket as a channel).
    Events go to ``callbacks.on_event`` and into :meth:`event_log` (see
    :class:`~p2p_transport.browser.transport.BrowserTransport` for their names).
    """

    def __init__(
        self,
        options: TransportOptions,
        callbacks: Callbacks,
        execute: Callable[[EdgeAction], None],
        *,
        clock: Clock,
        scheduler: Scheduler,
        new_relay: Callable[[], SocketIOLike],
    ) -> None:
        super().__init__(
            options,
            options.dialect or ReferenceDialect(options.room, options.token, options.players),
            callbacks.on_event,
            lambda event, payload: execute(SendToServer(event, payload)),
            clock=clock,
            scheduler=scheduler,
        )
        self._options = options
        self._game = callbacks
        self._execute = execute
        self._scheduler = scheduler
        self._new_relay = new_relay
        self._machine = PeerConnectionMachine(self._carry_out, clock, scheduler, options.reconnect)
        #: The session with the current peer, from ``paired`` on.
        self.session: P2PSession | None = None
        #: The peer's client id (see ``ReferenceDialect.client``) from the last new pairing.
        self.peer_client: object = None
        #: The TURN credentials the server minted for this player, from the last new pairing.
        self.ice_servers: tuple[IceServer, ...] = ()
        #: ICE candidates a peer connection refused (one of an old connection, say), counted
        #: here so a refusal that comes after its connection closed still counts.
        self.ice_candidate_errors = 0
        self._faults = options.faults
        # The fault-injecting wrapper the session sends through, once faults are configured: one
        # for the whole session, so its counters and random sequence span reconnections.
        self._faulty: FaultyChannel | None = None
        self._pump_timer: object | None = None
        # The current connection's game channel and whether it has a ping channel, as the edge
        # attached them.
        self._channel: DataChannelLike | None = None
        self._has_ping_channel = False
        #: The server asked for every connection of this pairing to go through TURN.
        self.force_relay = False
        # What the server was told of the DataChannel: the validation being watched (its timer),
        # whether a DataChannel of this pairing was validated, and since when it is lost.
        self._validation_timer: object | None = None
        self._lost_at: float | None = None
        self._closed = False

    @property
    def player_index(self) -> int | None:
        return self._machine.player_index

    @property
    def peer_index(self) -> int | None:
        return self._machine.peer_index

    @property
    def connection(self) -> int | None:
        """The current peer connection's id: an offer, answer or description step of an older
        one is stale (its connection was replaced meanwhile)."""
        return self._machine.connection

    def stats(self) -> dict[str, Any]:
        """The peer connection's figures, and the timers and faults decided here."""
        out = self._machine.stats()
        out["fault_pump_running"] = self._pump_timer is not None
        out["lifecycle_timer_running"] = self._lifecycle.timer_running
        if self._faulty is not None:
            out.update({f"fault_{k}": v for k, v in self._faulty.stats().items()})
        return out

    # --- the signaling server (the peer connection and the session go on if it is lost: the
    # server pairs the same peer again when both are back, see resumes) ----------------------

    def _incoming(self, incoming: Incoming) -> None:
        if isinstance(incoming, RelayPacket):
            self.relay_packet(incoming.packet)
        elif isinstance(incoming, Signal):
            self.signal(incoming.message)
        elif isinstance(incoming, Paired):
            self.paired(incoming.player_index, incoming.peer_index, incoming.detail)
        elif isinstance(incoming, Joined):
            self._send_all(incoming.replies)
            self.emit("joined", incoming.detail)
            self._lifecycle.joined()
        elif isinstance(incoming, Notice):
            self._send_all(incoming.replies)
            self.emit(incoming.event, incoming.detail)
        elif isinstance(incoming, PeerLeft):
            self.peer_left(incoming.detail)
        elif isinstance(incoming, ServerError):
            self._server_error(incoming.detail, incoming.event)
        elif isinstance(incoming, TelemetrySaved):
            self._execute(incoming)

    def resumes(self, player: int, peer: int, peer_client: object) -> bool:
        """Whether a ``paired`` is the same peer coming back through the server (it restarted,
        or either side's connection to it dropped and came back): no ``peer_left`` came, and the
        peer's client id and both indices are the ones this session has. A session whose
        DataChannel is closed starts over too: a reconnection is under way, and a fresh session
        and connection on both sides at once is quicker than waiting out its backoff."""
        session = self.session
        return (
            session is not None
            and session.state not in (SessionState.CLOSED, SessionState.SHUT_DOWN)
            and peer_client is not None
            and peer_client == self.peer_client
            and (player, peer) == (session.player_index, session.peer_index)
        )

    def relay_packet(self, packet: bytes) -> None:
        """A packet the relay brought from the peer (either of the server's sockets)."""
        if self.session is not None:
            self.session.edge.on_relay_message(packet)

    def signal(self, message: dict[str, Any]) -> None:
        """The peer's WebRTC signal, as the transport's own ``{type, ...}``."""
        self._machine.on_signal(message)

    def paired(self, player: int, peer: int, detail: dict[str, Any]) -> None:
        """The server paired this side (``player``) with ``peer``: a new session, or the same
        peer back (see :meth:`resumes`)."""
        peer_client = detail.get("peer_client")
        indices = {"player_index": player, "peer_index": peer}
        ticket = detail.get("relay_ticket")
        if self.resumes(player, peer, peer_client):
            # The DataChannel carried the game meanwhile; the relay resumes on the same socket.
            self._open_relay_socket(ticket)
            self.emit("rejoined", {**detail, **indices})
            self._lifecycle.rejoined()
            return
        self.peer_client = peer_client
        self.ice_servers = self._ice_servers_from(detail.get("ice_servers"))
        self.force_relay = detail.get("force_relay") is True
        self._stop_validation_watch()
        self._lost_at = None
        if self.session is not None:
            # A new peer in the room after the old one left: the old session is over.
            self.session.close()
        game = self._game
        session = self.session = P2PSession(
            player,
            peer,
            Callbacks(
                on_input=game.on_input,
                on_event=self._on_session_event,
                on_control=game.on_control,
                on_desync=game.on_desync,
                on_rtt=game.on_rtt,
                on_route_change=self._on_route_change,
            ),
            clock=self._clock,
            scheduler=self._scheduler,
            relay=self._new_relay(),
            config=self._options.session,
        )
        session.edge.start_watchdog()
        self._open_relay_socket(ticket)
        # The same detail whatever the dialect: the indices, beside what the server said.
        self.emit("paired", {**detail, **indices})
        self._lifecycle.paired()
        servers = (*self._options.ice_servers, *self.ice_servers)
        if self._options.relay_only and not any(IceServer.of(s).is_turn for s in servers):
            self._lifecycle.no_turn_server()
        self._machine.paired(player, peer)

    def peer_left(self, detail: dict[str, Any]) -> None:
        """The peer left the room: its session is over, and this side waits for the next."""
        self._stop_validation_watch()
        self._lost_at = None
        self._lifecycle.peer_left()
        self._execute(CloseRelaySocket())
        if self.session is not None:
            # The session with this peer is over (a new peer gets a new one): close it, which
            # also stops the timers that would otherwise keep running for nobody.
            self.session.close()
        self._machine.peer_left(detail)

    def _open_relay_socket(self, ticket: object) -> None:
        """The lean relay socket with ``paired``'s ticket, replacing any earlier one; without a
        ticket (another server, or none sent) the relay stays on Socket.IO events."""
        self._execute(CloseRelaySocket())
        if isinstance(ticket, str) and ticket:
            self._execute(OpenRelaySocket(ticket))

    def _ice_servers_from(self, entries: object) -> tuple[IceServer, ...]:
        """The TURN credentials the server minted for this player, if it sent any; entries it
        got wrong are reported (an ``error`` event) and left out."""
        if entries is None:
            return ()
        try:
            if not isinstance(entries, list | tuple):
                raise UsageError(f"a list of RTCIceServer entries, got {type(entries).__name__}")
            return tuple(IceServer.of(entry) for entry in entries)
        except (TypeError, ValueError) as error:
            self.emit("error", {"message": f"the server's ice_servers are unusable: {error}"})
            return ()

    # --- the peer connection ------------------------------------------------------------------

    def description_ready(self, connection: int, kind: str, sdp: str) -> None:
        """``connection`` has its own offer or answer."""
        self._machine.local_description(connection, kind, sdp)

    def remote_description_set(self, connection: int) -> None:
        self._machine.remote_description_set(connection)

    def candidate_gathered(self, connection: int, candidate: dict[str, Any]) -> None:
        """``connection`` gathered an ICE candidate (its JSON form)."""
        self._lifecycle.local_candidate(str(candidate.get("candidate", "")))
        self._machine.local_candidate(connection, candidate)

    def candidate_error(self, error: dict[str, Any]) -> None:
        """An ICE server answered with an error (``url``, ``error_code``, ``error_text``)."""
        self._lifecycle.candidate_error(error)

    def connection_failed(self, connection: int) -> None:
        if connection == self._machine.connection and self.session is not None:
            self.session.edge.on_failed()
            self._channel_lost()
        self._machine.connection_failed(connection)

    def step_failed(self, what: str, error: Exception) -> None:
        """A signaling step of the current connection (an offer, an answer) threw."""
        self.emit("error", {"message": f"{what} failed: {error}"})
        if self.session is not None:
            self.session.edge.on_failed()

    def channel_attached(self, channel: DataChannelLike) -> None:
        """The current connection has its game channel (not open yet)."""
        self._channel = channel
        if self.session is not None:
            self.session.edge.attach_channel(self._impaired(channel))

    def ping_channel_attached(self, channel: PingChannelLike) -> None:
        """The current connection has its worker-held ping channel."""
        self._has_ping_channel = True
        if self.session is not None:
            self.session.edge.attach_ping_channel(channel)

    def channel_opened(self, connection: int) -> None:
        self._lifecycle.channel_opened()
        if self.session is not None:
            self.session.edge.on_open()
            if self._lost_at is not None:
                downtime = self._clock() - self._lost_at
                self._lost_at = None
                self._report(LinkReport.RECOVERED, downtime)
            self._report(LinkReport.VALIDATING)
            self._watch_validation()
        self._machine.channel_opened(connection)

    def channel_closed(self, connection: int) -> None:
        if self.session is not None:
            self.session.edge.on_close()
            self._channel_lost()
        self._machine.channel_closed(connection)

    # --- what the server hears of the DataChannel ---------------------------------------------

    def _report(self, change: LinkReport, downtime_ms: float = 0.0) -> None:
        session = self.session
        window = session.parts.inputs.v1.window if session is not None else ()
        frame = window[-1][0] if window else None
        self._send_all(self.dialect.report(change, frame, downtime_ms))

    def _channel_lost(self) -> None:
        """The DataChannel is gone while the peer is still there: said once per loss."""
        self._stop_validation_watch()
        session = self.session
        over = session is None or session.state is SessionState.SHUT_DOWN
        # After the peer left (the server deleted the game) or this side closed, nobody to tell.
        if self._lost_at is None and not self._closed and not over:
            self._lost_at = self._clock()
            self._report(LinkReport.LOST)

    def _watch_validation(self) -> None:
        """Look at the new channel's validation until it is validated (or expired), and tell the
        server when it is: the validation has no callback of its own."""
        if self._validation_timer is None:
            self._validation_timer = self._scheduler.set_interval(
                self._check_validation, VALIDATION_POLL_MS
            )

    def _check_validation(self) -> None:
        session = self.session
        validation = session.parts.validation if session is not None else None
        if validation is None or validation.validated:
            self._stop_validation_watch()
            if validation is not None:
                self.emit("validated", {"after_ms": validation.stats()["validated_after_ms"]})
                self._report(LinkReport.VALIDATED)
        elif validation.expired:
            self._stop_validation_watch()

    def _stop_validation_watch(self) -> None:
        if self._validation_timer is not None:
            timer, self._validation_timer = self._validation_timer, None
            self._scheduler.clear_interval(timer)

    def _carry_out(self, action: Action) -> None:
        """The machine's actions: signals and events are decided here, the rest is the edge's."""
        if isinstance(action, SendSignal):
            event, payload = self.dialect.signal(action.message)
            self._execute(SendToServer(event, payload))
        elif isinstance(action, Emit):
            self.emit(action.event, action.detail)
            if action.event == "reconnect_failed":
                self._lifecycle.reconnect_failed()
        else:
            if isinstance(action, CloseConnection):
                self._connection_closing()
            self._execute(action)

    def _connection_closing(self) -> None:
        """The edge closes the connection without waiting for its events, so the session hears
        it here: it stops pinging, and the router sees no open channel."""
        self._cancel_pump()
        session = self.session
        if self._has_ping_channel:
            self._has_ping_channel = False
            if session is not None:
                session.edge.attach_ping_channel(None)
        if self._channel is not None:
            self._channel = None
            if session is not None and session.edge.channel is not None:
                session.edge.attach_channel(None)
                session.edge.on_close()

    # --- the session --------------------------------------------------------------------------

    def _on_session_event(self, event: str, detail: dict[str, Any]) -> None:
        """The watchdog's silences decide about the peer connection; the rest is the game's."""
        silence = float(detail.get("silence_ms", 0.0))
        machine = self._machine
        if event is SessionEvent.P2P_SILENT:
            machine.p2p_silent(silence)
        elif event is SessionEvent.P2P_DEAD:
            machine.p2p_dead(silence)
        elif event is SessionEvent.PEER_SILENT:
            machine.peer_silent(silence)
        elif event is SessionEvent.PEER_GONE:
            machine.peer_gone(silence)
        elif event is SessionEvent.PEER_BACK:
            machine.peer_back()
        else:
            self.emit(str(event), detail)

    def _on_route_change(self, change: RouteChange) -> None:
        self.emit("route_changed", change.as_dict())
        on_route_change = self._game.on_route_change
        if on_route_change is not None and not call_guarded(
            on_route_change, change, what="on_route_change"
        ):
            self.callback_errors += 1

    # --- faults -------------------------------------------------------------------------------

    def set_faults(self, faults: FaultConfig | None) -> None:
        """What goes wrong with the DataChannel's packets, from now on and for later connections.
        Once set, the wrapper stays for the session, passing packets straight through when
        ``faults`` is ``None``."""
        self._faults = faults
        if self._faulty is not None:
            self._faulty.config = faults or FaultConfig()
            if faults is not None and faults.holds_packets:
                self._start_pump()
        elif faults is not None and self._channel is not None and self.session is not None:
            self.session.edge.attach_channel(self._impaired(self._channel))

    def _impaired(self, channel: DataChannelLike) -> DataChannelLike:
        """``channel`` behind the fault injection, if configured."""
        faults = self._faults
        if self._faulty is None and faults is None:
            return channel
        faults = faults or FaultConfig()
        if self._faulty is None:
            seed = self._options.fault_seed * 1000 + (self.player_index or 0)
            self._faulty = FaultyChannel(channel, faults, self._clock, seed)
        else:
            self._faulty.replace_channel(channel)
        if faults.holds_packets:
            self._start_pump()
        return self._faulty

    def _start_pump(self) -> None:
        if self._pump_timer is None:
            self._pump_timer = self._scheduler.set_interval(self._pump, FAULT_PUMP_INTERVAL_MS)

    def _cancel_pump(self) -> None:
        if self._pump_timer is not None:
            timer, self._pump_timer = self._pump_timer, None
            self._scheduler.clear_interval(timer)

    def _pump(self) -> None:
        try:
            if self._faulty is not None:
                self._faulty.pump()
        except Exception:
            logger.exception("fault injection pump failed")

    # --- the end ------------------------------------------------------------------------------

    def close(self) -> None:
        """This side is done: the session ends, the relay socket and the peer connection close,
        and no timer of this class's is left. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._stop_validation_watch()
        if self.session is not None:
            self.session.close()
        self._execute(CloseRelaySocket())
        self._machine.close()
        self._lifecycle.close()

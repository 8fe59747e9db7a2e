"""One tab's end of the transport: Socket.IO signaling and relay, WebRTC, and the session.

:class:`BrowserTransport` carries out what the sans-IO pieces decide: the peer connection's
lifecycle (:class:`~p2p_transport.protocol.peer_connection.PeerConnectionMachine`) and the game's
traffic (:class:`~p2p_transport.session.P2PSession`), through ``js`` proxies.

Hot paths stay synchronous: a DataChannel message goes from the browser's event straight into
``P2PSession.on_message`` and a ping is answered inside that call, with no asyncio hop. Only the
one-off signaling steps (offer, answer) await promises.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections import deque
from collections.abc import Coroutine
from dataclasses import replace
from functools import partial
from typing import Any, Final

import js
from pyodide.ffi import jsnull

from p2p_transport.browser.adapters import (
    JsDataChannel,
    JsSocketIO,
    ProxyRegistry,
    ShimScheduler,
    WorkerChannel,
    js_object,
    payload_bytes,
)
from p2p_transport.browser.options import IceServer, TransportOptions
from p2p_transport.guard import call_guarded
from p2p_transport.protocol.faults import FaultConfig, FaultyChannel
from p2p_transport.protocol.lifecycle import Lifecycle
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
from p2p_transport.protocol.receiver import InputCallback
from p2p_transport.protocol.routing import RouteChange
from p2p_transport.protocol.sender import DataChannelLike
from p2p_transport.session import Callbacks, P2PSession, SessionEvent, SessionState
from p2p_transport.timing import Clock, monotonic_ms
from p2p_transport.wire.dialects import (
    Dialect,
    Joined,
    Paired,
    PeerLeft,
    ReferenceDialect,
    RelayPacket,
    ServerError,
    Signal,
    TelemetrySaved,
)
from p2p_transport.wire.signaling import (
    SAVE_TELEMETRY_EVENT,
    TELEMETRY_SAVED_EVENT,
    relay_socket_url,
    telemetry_parts,
)

__all__ = ["BrowserTransport", "DialectRelay"]


def _reason(error: Any) -> str:
    """A socket.io-client connect_error's message."""
    message = getattr(error, "message", None)
    return str(message) if message is not None else str(error)


logger = logging.getLogger(__name__)

#: The label and options deployed peers use: unordered and without retransmits, because a late
#: input is worth less than the next packet, which carries it again.
CHANNEL_LABEL: Final = "game"
#: The RTT channel: negotiated by both sides with a fixed id, far above the ids the browser
#: assigns to announced channels (0, 1, 2, ...), so the two can never collide.
PING_CHANNEL_LABEL: Final = "ping"
PING_CHANNEL_ID: Final = 1000
#: How often delayed packets of the fault injection are checked: 5 ms, under a third of a frame,
#: so an added delay is accurate to a few ms (browsers clamp intervals to 4 ms anyway).
FAULT_PUMP_INTERVAL_MS: Final = 5.0
#: Game events kept with their details for the report; older ones drop out.
MAX_EVENT_LOG: Final = 200


class DialectRelay:
    """The session's relay path as the dialect carries it: each packet translated (or left out,
    where the server's relay cannot carry it) and emitted on the socket, or sent as it is on the
    server's lean relay socket while one is open (see ``RELAY_SOCKET_PATH``)."""

    def __init__(self, socket: JsSocketIO, dialect: Dialect) -> None:
        self._socket = socket
        self._dialect = dialect
        #: The lean relay socket, set by the transport while it has one.
        self.lean: JsDataChannel | None = None

    @property
    def connected(self) -> bool:
        lean = self.lean
        # The lean socket's state is kept from its events; the Socket.IO socket's is read through
        # the proxy (about 1 us in Pyodide), so it is asked only when the lean socket is not open.
        return (lean is not None and lean.readyState == "open") or self._socket.connected

    def emit(self, event: str, data: bytes) -> object:
        lean = self.lean
        if lean is not None and lean.readyState == "open":
            lean.send(data)
            return None
        outgoing = self._dialect.relay(data)
        if outgoing is None:
            return None
        return self._socket.emit_data(*outgoing)


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

    and the lower-level ``joined``, ``paired``, ``open``, ``closed``, ``failed``, ``peer_left`` and
    ``error``. The session exists from ``paired`` on; until then the methods that need it raise
    ``RuntimeError``. Reconnection is the peer-connection machine's (see its docstring); the
    relay carries the game meanwhile.
    """

    def __init__(self, options: TransportOptions, callbacks: Callbacks | InputCallback) -> None:
        self.options = options
        self._callbacks = Callbacks.of(callbacks)
        self._proxies = ProxyRegistry()
        # The peer connection's handlers live and die with it, so a reconnection frees the old ones.
        self._pc_proxies = ProxyRegistry()
        # The lean relay socket's handlers live and die with it.
        self._relay_proxies = ProxyRegistry()
        self._relay_socket: JsDataChannel | None = None
        self._relay: DialectRelay | None = None
        self._shim = js.p2pShim
        #: The page's timers and clock, for a game loop to share with the transport.
        self.scheduler = ShimScheduler(self._proxies, self._shim)
        self.clock: Clock = monotonic_ms
        self._session: P2PSession | None = None
        self._socket: Any = None
        self._pc: Any = None
        self._channel: JsDataChannel | None = None
        self._ping_channel: WorkerChannel | None = None
        # The fault-injecting wrapper the session sends through, when faults are configured.
        self._faulty: FaultyChannel | None = None
        self._pump_timer: object | None = None
        self._closed = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._event_log: deque[dict[str, Any]] = deque(maxlen=MAX_EVENT_LOG)
        self._dialect = options.dialect or ReferenceDialect(options.room, options.token)
        self._machine = PeerConnectionMachine(
            self._execute, self.clock, self.scheduler, options.reconnect
        )
        self._lifecycle = Lifecycle(
            self.clock,
            self.scheduler,
            self._emit_event,
            options.room,
            relay_only=options.relay_only,
            ice_timeout_ms=options.ice_timeout_ms,
        )
        #: ``on_event`` raised (logged; the transport went on).
        self.callback_errors = 0
        self.ice_candidate_errors = 0
        # save_telemetry()'s futures by save id, until the server answers.
        self._saves: dict[str, asyncio.Future[dict[str, Any]]] = {}
        # The peer's client id (see ReferenceDialect.client), and the TURN credentials the server
        # minted for this player, from the last ``paired``.
        self._peer_client: object = None
        self._server_ice_servers: tuple[IceServer, ...] = ()

    @property
    def session(self) -> P2PSession | None:
        """The session with the current peer (from ``paired`` on), for what this class does not
        pass through."""
        return self._session

    @property
    def player_index(self) -> int | None:
        return self._machine.player_index

    @property
    def live_proxies(self) -> int:
        """Python functions the page still holds for this transport (0 after :meth:`close`)."""
        return self._proxies.live + self._pc_proxies.live + self._relay_proxies.live

    @property
    def peer_index(self) -> int | None:
        return self._machine.peer_index

    # --- what the game calls ------------------------------------------------------------------

    def connect(self) -> None:
        """Open the Socket.IO connection and join the room; the rest follows from events."""
        # The room in the URL lets a load balancer put both players on one server process
        # (p2p_server.cluster hashes it).
        opts = js_object(
            {"transports": ["websocket"], "forceNew": True, "query": {"room": self.options.room}}
        )
        url = self.options.server_url
        self._socket = js.io(url, opts) if url else js.io(opts)
        on = self._socket.on
        on("connect", self._proxies.create(self._on_socket_connect))
        # The client's own events: it could not reach the server (it retries with backoff), or
        # lost it (close() removes every handler first, so its own disconnect is not reported).
        lifecycle = self._lifecycle
        on(
            "connect_error",
            self._proxies.create(lambda err, *_: lifecycle.connect_error(_reason(err))),
        )
        on("disconnect", self._proxies.create(self._on_socket_disconnect))
        for event in self._dialect.events:
            on(event, self._proxies.create(partial(self._on_server_event, event)))

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
        self._paired().desync.add_local_hash(frame, hash_bytes)

    def telemetry(self) -> dict[str, Any] | None:
        """The session's telemetry record, or ``None`` before pairing. Its times are on the
        page's clock; ``time_origin_unix_ms`` (the page's ``performance.timeOrigin``) anchors
        them to wall time, so two players' records line up."""
        if self._session is None:
            return None
        return {**self._session.telemetry(), "time_origin_unix_ms": self._time_origin_unix_ms()}

    def save_telemetry(self, extra: Any = None) -> asyncio.Future[dict[str, Any]]:
        """Hand the server this tab's telemetry record, with ``extra`` (anything JSON can hold:
        the game's own data), to keep on disk. The future resolves with the server's answer
        (``{save_id, bytes, file}``) once the record is stored and flushed; it fails with the
        server's reason if it refused (a server started without ``--data-dir`` keeps none),
        or if the transport closes first. Records longer than one message go in parts."""
        if TELEMETRY_SAVED_EVENT not in self._dialect.events:
            raise RuntimeError("this signaling server's dialect has no telemetry storage")
        if self._socket is None or self._closed:
            raise RuntimeError("connect() first: the record goes to the signaling server")
        record = {
            "time_origin_unix_ms": self._time_origin_unix_ms(),
            "saved_at_ms": self.clock(),
            "player_index": self.player_index,
            "telemetry": self.telemetry(),
            "extra": extra,
        }
        try:
            text = json.dumps(record, allow_nan=False)
        except (TypeError, ValueError) as error:
            raise ValueError(f"extra must be what JSON can hold: {error}") from None
        save_id = uuid.uuid4().hex
        parts = telemetry_parts(save_id, text)  # ValueError if too long
        future: asyncio.Future[dict[str, Any]] = asyncio.get_event_loop().create_future()
        self._saves[save_id] = future
        for part in parts:
            self._socket.emit(SAVE_TELEMETRY_EVENT, js_object(part))
        return future

    def route_changes(self) -> list[dict[str, Any]]:
        """The route changes the session's telemetry kept, oldest first."""
        return self._session.route_changes() if self._session is not None else []

    def event_log(self) -> list[dict[str, Any]]:
        """The last :data:`MAX_EVENT_LOG` events, each ``{at_ms, event, **detail}``."""
        return list(self._event_log)

    def stats(self) -> dict[str, Any]:
        """The session's :meth:`~P2PSession.stats` with the connection's own figures."""
        out = self._session.stats() if self._session is not None else {}
        out["callback_errors"] = out.get("callback_errors", 0) + self.callback_errors
        out["live_proxies"] = self.live_proxies
        out["relay_socket"] = (
            self._relay_socket.readyState if self._relay_socket is not None else "none"
        )
        out["live_pc_proxies"] = self._pc_proxies.live
        out["proxies_created"] = self._proxies.created + self._pc_proxies.created
        out.update(self._machine.stats())
        out["ice_candidate_errors"] = self.ice_candidate_errors
        out["fault_pump_running"] = self._pump_timer is not None
        out["lifecycle_timer_running"] = self._lifecycle.timer_running
        if self._faulty is not None:
            out.update({f"fault_{k}": v for k, v in self._faulty.stats().items()})
        return out

    def set_faults(self, faults: FaultConfig | None) -> None:
        """Change what goes wrong with this tab's DataChannel packets, from now on and for later
        connections (tests use it to break a working link). Once set, the wrapper stays for the
        session, passing packets straight through when ``faults`` is ``None``."""
        self.options = replace(self.options, faults=faults)
        if self._faulty is not None:
            self._faulty.config = faults or FaultConfig()
            if faults is not None and faults.holds_packets:
                self._start_pump()
        elif faults is not None and self._channel is not None and self._session is not None:
            self._session.attach_channel(self._impaired(self._channel))

    def close_channel(self) -> None:
        """Close only the DataChannel (tests use it to take the P2P path away)."""
        if self._channel is not None:
            self._channel.raw.close()

    def close(self) -> None:
        """Tear everything down: timers, peer connection, socket, and every proxy. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._session is not None:
            self._session.close()
        self._close_relay_socket()
        self._machine.close()
        self._lifecycle.close()
        self.scheduler.clear_all()
        if self._socket is not None:
            self._socket.off()
            self._socket.disconnect()
            self._socket = None
        for task in list(self._tasks):
            task.cancel()
        for future in self._saves.values():
            if not future.done():
                future.set_exception(
                    RuntimeError("the transport closed before the server answered")
                )
        self._saves.clear()
        self._proxies.destroy_all()

    @staticmethod
    def _time_origin_unix_ms() -> float:
        return float(js.performance.timeOrigin)

    def _paired(self) -> P2PSession:
        if self._session is None:
            raise RuntimeError("not paired with a peer yet")
        return self._session

    # --- carrying out the machine's actions ---------------------------------------------------

    def _execute(self, action: Action) -> None:
        if isinstance(action, OpenConnection):
            self._open_connection(action.connection, action.offerer)
        elif isinstance(action, CloseConnection):
            self._close_connection()
        elif isinstance(action, SendSignal):
            if self._socket is not None:
                event, payload = self._dialect.signal(action.message)
                self._socket.emit(event, js_object(payload))
        elif isinstance(action, AcceptOffer):
            self._spawn(self._accept_offer(action.connection, action.sdp), "answering the offer")
        elif isinstance(action, ApplyAnswer):
            self._spawn(self._apply_answer(action.connection, action.sdp), "applying the answer")
        elif isinstance(action, AddCandidate):
            self._add_candidate(js_object(action.candidate))
        elif isinstance(action, Emit):
            self._emit_event(action.event, action.detail)
            if action.event == "reconnect_failed":
                self._lifecycle.reconnect_failed()

    def _open_connection(self, connection: int, offerer: bool) -> None:
        config = self.options.rtc_configuration(self._server_ice_servers)
        pc = self._pc = js.RTCPeerConnection.new(js_object(config))
        create = self._pc_proxies.create
        pc.onicecandidate = create(lambda event: self._on_ice_candidate(connection, event))
        pc.onconnectionstatechange = create(lambda *_: self._on_connection_state(connection))
        pc.onicecandidateerror = create(self._on_ice_candidate_error)
        self._open_ping_channel()
        if offerer:
            options = js_object({"ordered": False, "maxRetransmits": 0})
            self._attach_channel(pc.createDataChannel(CHANNEL_LABEL, options), connection)
            self._spawn(self._make_offer(connection), "creating the offer")
        else:
            pc.ondatachannel = create(lambda event: self._attach_channel(event.channel, connection))

    def _close_connection(self) -> None:
        self._cancel_pump()
        session = self._session
        if self._ping_channel is not None:
            if session is not None:
                session.attach_ping_channel(None)
            self._ping_channel.close()
            self._ping_channel = None
        if self._channel is not None:
            # Its close event will not come (the handler goes first), so tell the session here:
            # it stops pinging, and the router sees no open channel.
            self._channel.state_changed("closed")
            if session is not None and session.channel is not None:
                session.attach_channel(None)
                session.on_close()
            raw = self._channel.raw
            raw.onopen = raw.onclose = raw.onmessage = None
            raw.close()
            self._channel = None
        if self._pc is not None:
            self._pc.onicecandidate = self._pc.onconnectionstatechange = None
            self._pc.ondatachannel = None
            self._pc.close()
            self._pc = None
        self._pc_proxies.destroy_all()

    def _open_ping_channel(self) -> None:
        """The RTT's own channel, held by a worker that stamps arrivals and departures (see
        ``P2PSession.attach_ping_channel``); a peer without it simply never answers on it. A
        browser that cannot move a DataChannel into a worker goes without (the channel is closed):
        the peer's probes there go unanswered, and both measure RTT on the game channel."""
        raw = self._pc.createDataChannel(
            PING_CHANNEL_LABEL,
            js_object(
                {"negotiated": True, "id": PING_CHANNEL_ID, "ordered": False, "maxRetransmits": 0}
            ),
        )
        channel = WorkerChannel()
        channel.handle = self._shim.workerChannel(
            raw,
            self._pc_proxies.create(self._on_ping_channel_data),
            self._pc_proxies.create(channel.state_changed),
            self._pc_proxies.create(self._on_ping_left),
        )
        if channel.handle is None:
            raw.close()
            return
        self._ping_channel = channel
        if self._session is not None:
            self._session.attach_ping_channel(channel)

    def _attach_channel(self, raw: Any, connection: int) -> None:
        raw.binaryType = "arraybuffer"
        create = self._pc_proxies.create
        raw.onopen = create(lambda *_: self._on_channel_open(connection))
        raw.onclose = create(lambda *_: self._on_channel_close(connection))
        # The shim hands Python the event's data, not the event: reading ``event.data`` through
        # a proxy of the MessageEvent cost 12 us a message, measured.
        raw.onmessage = self._shim.forwardData(create(self._on_channel_data))
        self._channel = JsDataChannel(raw)
        if self._session is not None:
            self._session.attach_channel(self._impaired(self._channel))

    def _impaired(self, channel: JsDataChannel) -> DataChannelLike:
        """``channel`` behind the fault injection, if configured (one wrapper for the whole
        session, so its counters and random sequence span reconnections)."""
        faults = self.options.faults
        if self._faulty is None and faults is None:
            return channel
        faults = faults or FaultConfig()
        if self._faulty is None:
            seed = self.options.fault_seed * 1000 + (self.player_index or 0)
            self._faulty = FaultyChannel(channel, faults, self.clock, seed)
        else:
            self._faulty.replace_channel(channel)
        if faults.holds_packets:
            self._start_pump()
        return self._faulty

    def _start_pump(self) -> None:
        if self._pump_timer is None:
            self._pump_timer = self.scheduler.set_interval(self._pump, FAULT_PUMP_INTERVAL_MS)

    def _cancel_pump(self) -> None:
        if self._pump_timer is not None:
            timer, self._pump_timer = self._pump_timer, None
            self.scheduler.clear_interval(timer)

    def _pump(self) -> None:
        try:
            if self._faulty is not None:
                self._faulty.pump()
        except Exception:
            logger.exception("fault injection pump failed")

    async def _make_offer(self, connection: int) -> None:
        pc = self._pc
        offer = await pc.createOffer()
        if connection != self._machine.connection:
            return  # replaced meanwhile by a newer connection
        await pc.setLocalDescription(offer)
        self._machine.local_description(connection, "offer", str(pc.localDescription.sdp))

    async def _accept_offer(self, connection: int, sdp: str) -> None:
        pc = self._pc
        await pc.setRemoteDescription(js_object({"type": "offer", "sdp": sdp}))
        if connection != self._machine.connection:
            return
        self._machine.remote_description_set(connection)
        answer = await pc.createAnswer()
        if connection != self._machine.connection:
            return
        await pc.setLocalDescription(answer)
        self._machine.local_description(connection, "answer", str(pc.localDescription.sdp))

    async def _apply_answer(self, connection: int, sdp: str) -> None:
        await self._pc.setRemoteDescription(js_object({"type": "answer", "sdp": sdp}))
        self._machine.remote_description_set(connection)

    def _add_candidate(self, candidate: Any) -> None:
        pc = self._pc

        async def add() -> None:
            try:
                await pc.addIceCandidate(candidate)
            except Exception:
                # A candidate the connection cannot use (one of an old connection, say) is not a
                # failure of the connection: ICE goes on with the others.
                self.ice_candidate_errors += 1
                logger.debug("addIceCandidate failed", exc_info=True)

        self._spawn(add(), "adding an ICE candidate", fail_session=False)

    def _spawn(self, coro: Coroutine[Any, Any, None], what: str, fail_session: bool = True) -> None:
        async def guarded() -> None:
            try:
                await coro
            except Exception as exc:
                logger.exception("%s failed", what)
                self._emit_event("error", {"message": f"{what} failed: {exc}"})
                if fail_session and self._session is not None:
                    self._session.on_failed()

        task = asyncio.ensure_future(guarded())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _emit_event(self, name: str, detail: dict[str, Any] | None = None) -> None:
        detail = detail or {}
        self._event_log.append({"at_ms": self.clock(), "event": name, **detail})
        on_event = self._callbacks.on_event
        if on_event is not None and not call_guarded(
            on_event, name, detail, what=f"on_event ({name})"
        ):
            self.callback_errors += 1

    # --- browser events -----------------------------------------------------------------------

    def _on_socket_connect(self, *_: Any) -> None:
        for event, payload in self._dialect.join():
            self._socket.emit(event, js_object(payload))

    def _on_server_event(self, event: str, data: Any) -> None:
        """Any event of the dialect's, translated and handed to the piece it is for. A server
        event the dialect cannot read is an ``error`` event, never an exception in JS."""
        try:
            if event in self._dialect.binary_events:
                value: Any = payload_bytes(data)
            else:
                value = data.to_py() if hasattr(data, "to_py") else data
            incoming = self._dialect.incoming(event, value)
        except Exception as exc:
            logger.exception("could not read the server's %s event", event)
            self._emit_event("error", {"message": f"unreadable {event} from the server: {exc}"})
            return
        if isinstance(incoming, RelayPacket):
            if self._session is not None:
                self._session.on_relay_message(incoming.packet)
        elif isinstance(incoming, Signal):
            self._machine.on_signal(incoming.message)
        elif isinstance(incoming, Paired):
            self._on_paired(incoming.player_index, incoming.peer_index, incoming.detail)
        elif isinstance(incoming, Joined):
            self._emit_event("joined", incoming.detail)
            self._lifecycle.joined()
        elif isinstance(incoming, PeerLeft):
            self._on_peer_left(incoming.detail)
        elif isinstance(incoming, ServerError):
            logger.warning("server reported an error: %s", incoming.detail)
            self._emit_event("error", incoming.detail)
            self._lifecycle.server_error(incoming.detail)
        elif isinstance(incoming, TelemetrySaved):
            self._on_telemetry_saved(incoming.detail)

    def _on_telemetry_saved(self, detail: dict[str, Any]) -> None:
        future = self._saves.pop(str(detail.get("save_id")), None)
        if future is None or future.done():
            return
        if "error" in detail:
            future.set_exception(RuntimeError(f"the server did not keep it: {detail['error']}"))
        else:
            future.set_result(detail)

    def _resumes(self, player: int, peer: int, peer_client: object) -> bool:
        """Whether a ``paired`` is the same peer coming back through the server (it restarted,
        or either side's connection to it dropped and came back): no ``peer_left`` came, and the
        peer's client id and both indices are the ones this session has."""
        session = self._session
        return (
            session is not None
            and session.state is not SessionState.CLOSED
            and peer_client is not None
            and peer_client == self._peer_client
            and (player, peer) == (session.player_index, session.peer_index)
        )

    def _on_paired(self, player: int, peer: int, detail: dict[str, Any]) -> None:
        peer_client = detail.get("peer_client")
        indices = {"player_index": player, "peer_index": peer}
        ticket = detail.get("relay_ticket")
        if self._resumes(player, peer, peer_client):
            # The DataChannel carried the game meanwhile; the relay resumes on the same socket.
            self._open_relay_socket(ticket)
            self._emit_event("rejoined", {**detail, **indices})
            self._lifecycle.rejoined()
            return
        self._peer_client = peer_client
        self._server_ice_servers = self._ice_servers_from(detail.get("ice_servers"))
        if self._session is not None:
            # A new peer in the room after the old one left: the old session is over.
            self._session.close()
        game = self._callbacks
        session = self._session = P2PSession(
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
            clock=self.clock,
            scheduler=self.scheduler,
            relay=self._new_relay(),
            config=self.options.session,
        )
        session.start_watchdog()
        self._open_relay_socket(ticket)
        # The same detail whatever the dialect: the indices, beside what the server said.
        self._emit_event("paired", {**detail, **indices})
        self._lifecycle.paired()
        self._machine.paired(player, peer)

    def _new_relay(self) -> DialectRelay:
        self._relay = DialectRelay(JsSocketIO(self._socket), self._dialect)
        return self._relay

    def _open_relay_socket(self, ticket: object) -> None:
        """Open the server's lean relay socket with the ticket ``paired`` gave, replacing any
        earlier one; without a ticket (another server, or none sent) the relay stays on
        Socket.IO events."""
        self._close_relay_socket()
        if not isinstance(ticket, str) or not ticket:
            return
        base = self.options.server_url or str(js.location.origin)
        raw = js.WebSocket.new(relay_socket_url(base, ticket, self.options.room))
        raw.binaryType = "arraybuffer"
        channel = JsDataChannel(raw)
        channel.state_changed("connecting")
        create = self._relay_proxies.create
        raw.onopen = create(lambda *_: channel.state_changed("open"))
        raw.onclose = create(lambda *_: channel.state_changed("closed"))
        raw.onmessage = create(self._on_relay_socket_message)
        self._relay_socket = channel
        if self._relay is not None:
            self._relay.lean = channel

    def _close_relay_socket(self) -> None:
        channel, self._relay_socket = self._relay_socket, None
        if self._relay is not None:
            self._relay.lean = None
        if channel is not None:
            channel.state_changed("closed")
            raw = channel.raw
            raw.onopen = raw.onclose = raw.onmessage = None
            raw.close()
        self._relay_proxies.destroy_all()

    def _on_relay_socket_message(self, event: Any) -> None:
        if self._session is not None:
            self._session.on_relay_message(payload_bytes(event.data))

    def _ice_servers_from(self, entries: object) -> tuple[IceServer, ...]:
        """The TURN credentials the server minted for this player, if it sent any; entries it
        got wrong are reported (an ``error`` event) and left out."""
        if entries is None:
            return ()
        try:
            if not isinstance(entries, list | tuple):
                raise ValueError(f"a list of RTCIceServer entries, got {type(entries).__name__}")
            return tuple(IceServer.of(entry) for entry in entries)
        except (TypeError, ValueError) as error:
            self._emit_event(
                "error", {"message": f"the server's ice_servers are unusable: {error}"}
            )
            return ()

    def _on_socket_disconnect(self, reason: Any, *_: Any) -> None:
        # socket.io-client passes the reason and, for some reasons, a description.
        self._lifecycle.server_lost(str(reason))

    def _on_ice_candidate_error(self, event: Any) -> None:
        self._lifecycle.candidate_error(
            {
                "url": str(event.url),
                "error_code": int(event.errorCode),
                "error_text": str(event.errorText),
            }
        )

    def _on_ice_candidate(self, connection: int, event: Any) -> None:
        # Gathering ends with a null candidate, which arrives as ``jsnull``, not ``None``.
        raw = event.candidate
        if raw is not None and raw is not jsnull:
            self._lifecycle.local_candidate(str(raw.candidate))
            self._machine.local_candidate(connection, json.loads(js.JSON.stringify(raw)))

    def _on_connection_state(self, connection: int) -> None:
        state = str(self._pc.connectionState) if self._pc is not None else "closed"
        if state == "failed" and connection == self._machine.connection:
            if self._session is not None:
                self._session.on_failed()
            self._machine.connection_failed(connection)

    def _on_channel_open(self, connection: int) -> None:
        self._lifecycle.channel_opened()
        if self._channel is not None:
            self._channel.state_changed("open")
        if self._session is not None:
            self._session.on_open()
        self._machine.channel_opened(connection)

    def _on_channel_close(self, connection: int) -> None:
        if self._channel is not None:
            self._channel.state_changed("closed")
        if self._session is not None:
            self._session.on_close()
        self._machine.channel_closed(connection)

    def _on_channel_data(self, data: Any) -> None:
        session = self._session
        if session is None:
            return
        if isinstance(data, str):  # a JS string arrives as str: a text message, not a packet
            session.on_text_message(data)
        else:
            session.on_message(payload_bytes(data))

    def _on_ping_channel_data(self, data: Any, arrival_ms: float) -> None:
        session = self._session
        if session is not None:
            session.on_ping_channel_message(payload_bytes(data), arrival_ms)

    def _on_ping_left(self, timestamp_ms: float, left_ms: float) -> None:
        session = self._session
        if session is not None:
            session.on_ping_left(timestamp_ms, left_ms)

    def _on_peer_left(self, detail: dict[str, Any]) -> None:
        self._lifecycle.peer_left()
        self._close_relay_socket()
        if self._session is not None:
            # The session with this peer is over (a new peer gets a new one): close it, which
            # also stops the timers that would otherwise keep running for nobody.
            self._session.close()
        self._machine.peer_left(detail)

    def _on_route_change(self, change: RouteChange) -> None:
        self._emit_event("route_changed", change.as_dict())
        on_route_change = self._callbacks.on_route_change
        if on_route_change is not None and not call_guarded(
            on_route_change, change, what="on_route_change"
        ):
            self.callback_errors += 1

    def _on_session_event(self, event: str, detail: dict[str, Any]) -> None:
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
            self._emit_event(str(event), detail)

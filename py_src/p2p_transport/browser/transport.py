"""One tab's end of the transport: Socket.IO signaling and relay, WebRTC, and the session.

Hot paths stay synchronous: a DataChannel message goes from the browser's event straight into
``P2PSession.on_message`` and a ping is answered inside that call, with no asyncio hop. Only the
one-off signaling steps (offer, answer) await promises.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
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
from p2p_transport.protocol.control import ControlCallback
from p2p_transport.protocol.faults import FaultConfig, FaultyChannel
from p2p_transport.protocol.receiver import InputCallback
from p2p_transport.protocol.reconnect import ReconnectBackoff, ReconnectConfig
from p2p_transport.protocol.routing import RouteChange
from p2p_transport.protocol.sender import DataChannelLike
from p2p_transport.session.session import P2PSession, SessionConfig, SessionEvent
from p2p_transport.timing import Clock, monotonic_ms
from p2p_transport.wire.signaling import (
    DEFAULT_ROOM,
    ERROR_EVENT,
    JOIN_EVENT,
    JOINED_EVENT,
    PAIRED_EVENT,
    PEER_LEFT_EVENT,
    RELAY_EVENT,
    SIGNAL_EVENT,
)

__all__ = ["BrowserTransport", "IceServer", "TransportOptions"]

logger = logging.getLogger(__name__)

#: The label and options deployed peers use: unordered and without retransmits, because a late
#: input is worth less than the next packet, which carries it again.
CHANNEL_LABEL: Final = "game"
#: The RTT channel: negotiated by both sides with a fixed id, far above the ids the browser
#: assigns to announced channels (0, 1, 2, ...), so the two can never collide.
PING_CHANNEL_LABEL: Final = "ping"
PING_CHANNEL_ID: Final = 1000


@dataclass(frozen=True, slots=True)
class IceServer:
    urls: str | Sequence[str]
    username: str | None = None
    credential: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"urls": self.urls if isinstance(self.urls, str) else list(self.urls)}
        if self.username is not None:
            out["username"] = self.username
        if self.credential is not None:
            out["credential"] = self.credential
        return out


@dataclass(frozen=True, slots=True)
class TransportOptions:
    """How one tab connects. The defaults suit two tabs on one machine or one LAN."""

    server_url: str = ""
    room: str = DEFAULT_ROOM
    #: No ICE servers by default: peers on one host or LAN connect over host candidates, and a
    #: STUN server that cannot be reached only slows gathering down.
    ice_servers: tuple[IceServer, ...] = ()
    #: Force every packet through a TURN server (``iceTransportPolicy: "relay"``).
    relay_only: bool = False
    session: SessionConfig = field(default_factory=SessionConfig)
    #: Fresh peer connections after the DataChannel is lost (``max_attempts=0``: never).
    reconnect: ReconnectConfig = field(default_factory=ReconnectConfig)
    #: Impair what this tab sends over the DataChannel (tests and the demo); ``None``: nothing.
    faults: FaultConfig | None = None
    #: Seeds the fault injection's random sequence (with the player index, so the two
    #: directions differ and each is reproducible).
    fault_seed: int = 0


EventCallback = Callable[[str, dict[str, Any]], None]

#: How often delayed packets of the fault injection are checked: 5 ms, under a third of a frame,
#: so an added delay is accurate to a few ms (browsers clamp intervals to 4 ms anyway).
FAULT_PUMP_INTERVAL_MS: Final = 5.0
#: Game events kept with their details for the report; older ones drop out.
MAX_EVENT_LOG: Final = 200


class BrowserTransport:
    """One tab's end of the transport: Socket.IO signaling and relay, WebRTC, and the session.

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

    and the lower-level ``joined``, ``paired``, ``open``, ``closed``, ``failed``, ``peer_left`` and
    ``error``. The session exists from ``paired`` on.

    Reconnection: when the DataChannel closes, the peer connection fails, or the channel stays
    open but silent past the disconnect threshold, while the peer is still in the room, the peer
    with the lower player index tears the old connection down and offers a new one over
    signaling, with bounded attempts and backoff (:mod:`~.reconnect`); the other side accepts a
    new offer by tearing down its old connection. Every signal carries the connection's
    ``generation``, so late candidates of an old connection are dropped rather than given to the
    new one (signals without it, from deployed peers, are taken as they come). The relay carries
    the game meanwhile, and the router moves the inputs back to P2P once it is healthy again.
    """

    def __init__(
        self,
        options: TransportOptions,
        on_input: InputCallback,
        on_event: EventCallback | None = None,
        on_control: ControlCallback | None = None,
    ) -> None:
        self.options = options
        self._on_input = on_input
        self._on_event = on_event
        self._on_control = on_control
        self.proxies = ProxyRegistry()
        # The peer connection's handlers live and die with it, so a reconnection frees the old ones.
        self._pc_proxies = ProxyRegistry()
        self._shim = js.p2pShim
        self.scheduler = ShimScheduler(self.proxies, self._shim)
        self.clock: Clock = monotonic_ms
        self.session: P2PSession | None = None
        self.player_index: int | None = None
        self.peer_index: int | None = None
        self.socket: Any = None
        self.pc: Any = None
        self.channel: JsDataChannel | None = None
        self.ping_channel: WorkerChannel | None = None
        #: The fault-injecting wrapper the session sends through, when faults are configured.
        self.faulty: FaultyChannel | None = None
        self._pump_timer: object | None = None
        # (generation, candidate): candidates that arrived before their description.
        self._pending_candidates: list[tuple[int | None, Any]] = []
        self._remote_description_set = False
        self._closed = False
        self._tasks: set[asyncio.Task[None]] = set()
        #: The game events with their details (bounded), for reports.
        self.event_log: deque[dict[str, Any]] = deque(maxlen=MAX_EVENT_LOG)
        # Reconnection.
        self.generation = 0
        self.backoff = ReconnectBackoff(options.reconnect)
        self._peer_present = False
        self._offer_taken = False
        self._connected_once = False
        self._p2p_lost_at: float | None = None
        self._peer_gone = False
        self._reconnect_timer: object | None = None
        self._attempt_timer: object | None = None
        self.stale_signals = 0
        self.ice_candidate_errors = 0
        #: Times the P2P path was lost while the peer was in the room, and times a new
        #: DataChannel opened after such a loss.
        self.p2p_losses = 0
        self.reconnects = 0

    @property
    def offerer(self) -> bool:
        """This side makes the offers: it has the lower player index."""
        return (
            self.player_index is not None
            and self.peer_index is not None
            and self.player_index < self.peer_index
        )

    # --- setup --------------------------------------------------------------------------------

    def connect(self) -> None:
        """Open the Socket.IO connection and join the room; the rest follows from events."""
        opts = js_object({"transports": ["websocket"], "forceNew": True})
        url = self.options.server_url
        self.socket = js.io(url, opts) if url else js.io(opts)
        on = self.socket.on
        on("connect", self.proxies.create(self._on_socket_connect))
        on(JOINED_EVENT, self.proxies.create(self._on_joined))
        on(PAIRED_EVENT, self.proxies.create(self._on_paired))
        on(SIGNAL_EVENT, self.proxies.create(self._on_signal))
        on(RELAY_EVENT, self.proxies.create(self._on_relay))
        on(PEER_LEFT_EVENT, self.proxies.create(self._on_peer_left))
        on(ERROR_EVENT, self.proxies.create(self._on_server_error))

    def _emit_event(self, name: str, detail: dict[str, Any] | None = None) -> None:
        now = self.clock()
        detail = detail or {}
        self.event_log.append({"at_ms": now, "event": name, **detail})
        if self._on_event is not None:
            try:
                self._on_event(name, detail)
            except Exception:
                logger.exception("on_event callback failed for %s", name)

    def _spawn(self, coro: Any, what: str, fail_session: bool = True) -> None:
        async def guarded() -> None:
            try:
                await coro
            except Exception as exc:
                logger.exception("%s failed", what)
                self._emit_event("error", {"message": f"{what} failed: {exc}"})
                if fail_session and self.session is not None:
                    self.session.on_failed()

        task = asyncio.ensure_future(guarded())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _after(self, delay_ms: float, callback: Callable[[], None]) -> object:
        """Call ``callback`` once after ``delay_ms``: an interval timer that clears itself, so
        the shim counts it while it is pending and :meth:`close` clears it with the others."""
        handle: object | None = None

        def fire() -> None:
            self.scheduler.clear_interval(handle)
            try:
                callback()
            except Exception:
                logger.exception("timer callback failed")

        handle = self.scheduler.set_interval(fire, max(delay_ms, 1.0))
        return handle

    def _cancel(self, name: str) -> None:
        """Clear the one-shot timer in attribute ``name``, if any."""
        handle = getattr(self, name)
        if handle is not None:
            setattr(self, name, None)
            self.scheduler.clear_interval(handle)

    def _on_socket_connect(self, *_: Any) -> None:
        self.socket.emit(JOIN_EVENT, js_object({"room": self.options.room}))

    def _on_joined(self, data: Any) -> None:
        detail = data.to_py()
        self._emit_event("joined", detail)

    def _on_paired(self, data: Any) -> None:
        detail = data.to_py()
        player, peer = int(detail["player_index"]), int(detail["peer_index"])
        if self.session is not None:
            # A new peer in the room after the old one left: start the connection afresh.
            self._stop_reconnecting()
            self._close_peer_connection()
            self.session.close()
        self.player_index, self.peer_index = player, peer
        self._peer_present = True
        self._peer_gone = False
        self._connected_once = False
        self._p2p_lost_at = None
        self.generation = 0
        self._offer_taken = False
        self.backoff.reset()
        session = self.session = P2PSession(
            player,
            peer,
            on_input=self._on_input,
            clock=self.clock,
            scheduler=self.scheduler,
            relay=JsSocketIO(self.socket),
            config=self.options.session,
            on_event=self._on_session_event,
            on_control=self._on_control,
        )
        session.router.subscribe(self._on_route_change)
        session.start_watchdog()
        self._emit_event("paired", detail)
        self._open_peer_connection(offerer=player < peer)

    def _open_peer_connection(self, offerer: bool) -> None:
        config: dict[str, Any] = {
            "iceServers": [server.to_dict() for server in self.options.ice_servers]
        }
        if self.options.relay_only:
            config["iceTransportPolicy"] = "relay"
        self.pc = js.RTCPeerConnection.new(js_object(config))
        self._remote_description_set = False
        self.pc.onicecandidate = self._pc_proxies.create(self._on_ice_candidate)
        self.pc.onconnectionstatechange = self._pc_proxies.create(self._on_connection_state)
        self._open_ping_channel()
        if offerer:
            options = js_object({"ordered": False, "maxRetransmits": 0})
            self._attach_channel(self.pc.createDataChannel(CHANNEL_LABEL, options))
            self._spawn(self._make_offer(), "creating the offer")
        else:
            self.pc.ondatachannel = self._pc_proxies.create(self._on_datachannel)

    def _open_ping_channel(self) -> None:
        """The RTT's own channel, held by a worker that stamps arrivals and departures (see
        ``P2PSession.attach_ping_channel``); a peer without it simply never answers on it. A
        browser that cannot move a DataChannel into a worker goes without (the channel is closed):
        the peer's probes there go unanswered, and both measure RTT on the game channel."""
        raw = self.pc.createDataChannel(
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
        self.ping_channel = channel
        if self.session is not None:
            self.session.attach_ping_channel(channel)

    def _on_ping_channel_data(self, data: Any, arrival_ms: float) -> None:
        session = self.session
        if session is not None:
            session.on_ping_channel_message(payload_bytes(data), arrival_ms)

    def _on_ping_left(self, timestamp_ms: float, left_ms: float) -> None:
        session = self.session
        if session is not None:
            session.on_ping_left(timestamp_ms, left_ms)

    def _attach_channel(self, raw: Any) -> None:
        raw.binaryType = "arraybuffer"
        raw.onopen = self._pc_proxies.create(self._on_channel_open)
        raw.onclose = self._pc_proxies.create(self._on_channel_close)
        # The shim hands Python the event's data, not the event: reading ``event.data`` through
        # a proxy of the MessageEvent cost 12 us a message, measured.
        raw.onmessage = self._shim.forwardData(self._pc_proxies.create(self._on_channel_data))
        self.channel = JsDataChannel(raw)
        if self.session is not None:
            self.session.attach_channel(self._impaired(self.channel))

    def _impaired(self, channel: JsDataChannel) -> DataChannelLike:
        """``channel`` behind the fault injection, if configured (one wrapper for the whole
        session, so its counters and random sequence span reconnections)."""
        faults = self.options.faults
        if self.faulty is None and faults is None:
            return channel
        faults = faults or FaultConfig()
        if self.faulty is None:
            seed = self.options.fault_seed * 1000 + (self.player_index or 0)
            self.faulty = FaultyChannel(channel, faults, self.clock, seed)
        else:
            self.faulty.replace_channel(channel)
        if faults.holds_packets and self._pump_timer is None:
            self._pump_timer = self.scheduler.set_interval(self._pump, FAULT_PUMP_INTERVAL_MS)
        return self.faulty

    def set_faults(self, faults: FaultConfig | None) -> None:
        """Change what goes wrong with this tab's DataChannel packets, from now on and for later
        connections (tests use it to break a working link). Once set, the wrapper stays for the
        session, passing packets straight through when ``faults`` is ``None``."""
        self.options = replace(self.options, faults=faults)
        if self.faulty is not None:
            self.faulty.config = faults or FaultConfig()
            if faults is not None and faults.holds_packets and self._pump_timer is None:
                self._pump_timer = self.scheduler.set_interval(self._pump, FAULT_PUMP_INTERVAL_MS)
        elif faults is not None and self.channel is not None and self.session is not None:
            self.session.attach_channel(self._impaired(self.channel))

    def _pump(self) -> None:
        try:
            if self.faulty is not None:
                self.faulty.pump()
        except Exception:
            logger.exception("fault injection pump failed")

    def _signal(self, message: dict[str, Any]) -> None:
        message["generation"] = self.generation
        self.socket.emit(SIGNAL_EVENT, js_object(message))

    async def _make_offer(self) -> None:
        pc = self.pc
        offer = await pc.createOffer()
        if pc is not self.pc:
            return  # replaced meanwhile by a newer connection
        await pc.setLocalDescription(offer)
        if pc is self.pc:
            self._signal({"type": "offer", "sdp": pc.localDescription.sdp})

    async def _accept_offer(self, sdp: str) -> None:
        pc = self.pc
        await self._set_remote(pc, {"type": "offer", "sdp": sdp})
        if pc is not self.pc:
            return
        answer = await pc.createAnswer()
        if pc is not self.pc:
            return
        await pc.setLocalDescription(answer)
        if pc is self.pc:
            self._signal({"type": "answer", "sdp": pc.localDescription.sdp})

    async def _set_remote(self, pc: Any, description: dict[str, str]) -> None:
        await pc.setRemoteDescription(js_object(description))
        if pc is not self.pc:
            return
        self._remote_description_set = True
        # Candidates can outrun the description they belong to; they wait until it is set.
        pending, self._pending_candidates = self._pending_candidates, []
        for generation, candidate in pending:
            if generation is None or generation == self.generation:
                self._add_candidate(candidate)
            elif generation > self.generation:
                self._pending_candidates.append((generation, candidate))
            else:
                self.stale_signals += 1

    def _add_candidate(self, candidate: Any) -> None:
        pc = self.pc

        async def add() -> None:
            try:
                await pc.addIceCandidate(candidate)
            except Exception:
                # A candidate the connection cannot use (one of an old connection, say) is not a
                # failure of the connection: ICE goes on with the others.
                self.ice_candidate_errors += 1
                logger.debug("addIceCandidate failed", exc_info=True)

        self._spawn(add(), "adding an ICE candidate", fail_session=False)

    # --- browser events -----------------------------------------------------------------------

    def _on_signal(self, data: Any) -> None:
        if self._closed or not self._peer_present:
            return
        message = data.to_py()
        if not isinstance(message, dict):
            return
        kind = message.get("type")
        raw_generation = message.get("generation")
        generation = raw_generation if isinstance(raw_generation, int) else None
        if kind == "offer":
            if self.offerer:
                self.stale_signals += 1  # only the other side offers; never take one here
                return
            if generation is not None and generation < self.generation:
                self.stale_signals += 1
                return
            if self._offer_taken or self.pc is None:
                # A new connection: the old one goes, whatever state it is in.
                self._close_peer_connection()
                self._open_peer_connection(offerer=False)
            self._offer_taken = True
            if generation is not None:
                self.generation = generation
                self._pending_candidates = [
                    (g, c) for g, c in self._pending_candidates if g is None or g >= generation
                ]
            self._spawn(self._accept_offer(str(message["sdp"])), "answering the offer")
        elif self.pc is None:
            return
        elif kind == "answer":
            if generation is not None and generation != self.generation:
                self.stale_signals += 1
                return
            self._spawn(
                self._set_remote(self.pc, {"type": "answer", "sdp": str(message["sdp"])}),
                "applying the answer",
            )
        elif kind == "ice-candidate":
            if not isinstance(message.get("candidate"), dict):
                return  # a malformed signal; end-of-candidates is never sent
            if generation is not None and generation < self.generation:
                self.stale_signals += 1
                return
            candidate = js_object(message["candidate"])
            if self._remote_description_set and (
                generation is None or generation == self.generation
            ):
                self._add_candidate(candidate)
            else:
                self._pending_candidates.append((generation, candidate))

    def _on_ice_candidate(self, event: Any) -> None:
        # Gathering ends with a null candidate, which arrives as ``jsnull``, not ``None``.
        raw = event.candidate
        if raw is not None and raw is not jsnull and self.socket is not None:
            candidate = json.loads(js.JSON.stringify(raw))
            self._signal({"type": "ice-candidate", "candidate": candidate})

    def _on_connection_state(self, *_: Any) -> None:
        state = str(self.pc.connectionState) if self.pc is not None else "closed"
        if state == "failed" and self.session is not None:
            self.session.on_failed()
            self._emit_event("failed", {"state": state})
            self._p2p_lost("peer connection failed")

    def _on_datachannel(self, event: Any) -> None:
        self._attach_channel(event.channel)

    def _on_channel_open(self, *_: Any) -> None:
        if self.channel is not None:
            self.channel.state_changed("open")
        if self.session is not None:
            self.session.on_open()
        self._emit_event("open")
        self._cancel("_attempt_timer")
        self._cancel("_reconnect_timer")
        attempts = self.backoff.attempts
        self.backoff.reset()
        if self._p2p_lost_at is not None:
            downtime = self.clock() - self._p2p_lost_at
            self._p2p_lost_at = None
            self.reconnects += 1
            self._emit_event(
                "reconnected",
                {
                    "downtime_ms": round(downtime, 1),
                    "attempts": attempts,
                    "generation": self.generation,
                },
            )
        elif not self._connected_once:
            self._emit_event("connected", {"generation": self.generation})
        self._connected_once = True

    def _on_channel_close(self, *_: Any) -> None:
        if self.channel is not None:
            self.channel.state_changed("closed")
        if self.session is not None:
            self.session.on_close()
        self._emit_event("closed")
        self._p2p_lost("data channel closed")

    def _on_channel_data(self, data: Any) -> None:
        session = self.session
        if session is not None:
            session.on_message(payload_bytes(data))

    def _on_relay(self, data: Any) -> None:
        session = self.session
        if session is not None:
            session.on_relay_message(payload_bytes(data))

    def _on_peer_left(self, data: Any) -> None:
        self._peer_present = False
        self._stop_reconnecting()
        self._close_peer_connection()
        if self.session is not None:
            # The session with this peer is over (a new peer gets a new one): close it, which
            # also stops the timers that would otherwise keep running for nobody.
            self.session.close()
        detail = data.to_py() if hasattr(data, "to_py") else {}
        self._emit_event("peer_left", detail if isinstance(detail, dict) else {})
        self._emit_event("disconnected", {"reason": "peer left"})

    def _on_server_error(self, data: Any) -> None:
        detail = data.to_py() if hasattr(data, "to_py") else {"message": str(data)}
        logger.warning("server reported an error: %s", detail)
        self._emit_event("error", detail if isinstance(detail, dict) else {"message": str(detail)})

    def _on_route_change(self, change: RouteChange) -> None:
        self._emit_event("route_changed", change.as_dict())

    def _on_session_event(self, event: SessionEvent, detail: dict[str, Any]) -> None:
        silence = detail.get("silence_ms")
        if event is SessionEvent.P2P_SILENT:
            if self._p2p_lost_at is None:
                self._emit_event("degraded", {"reason": f"p2p silent for {silence:.0f} ms"})
        elif event is SessionEvent.P2P_DEAD:
            if not self.offerer and self.pc is not None and self._peer_present:
                # Only the other side makes offers, and it may hear nothing wrong (a channel
                # dead one way): closing this end closes its channel, which makes it re-offer.
                self._close_peer_connection()
            self._p2p_lost(f"p2p open but silent for {silence:.0f} ms")
        elif event is SessionEvent.PEER_SILENT:
            self._emit_event(
                "degraded", {"reason": f"peer silent on every path for {silence:.0f} ms"}
            )
        elif event is SessionEvent.PEER_GONE:
            self._peer_gone = True
            self._emit_event(
                "disconnected", {"reason": f"peer silent on every path for {silence:.0f} ms"}
            )
        elif event is SessionEvent.PEER_BACK and self._peer_gone:
            self._peer_gone = False
            self._emit_event("reconnected", {"reason": "peer heard again"})

    # --- reconnection -------------------------------------------------------------------------

    def _p2p_lost(self, reason: str) -> None:
        """The P2P path is gone while the peer may still be in the room: report it once, and
        (on the offering side) schedule a fresh connection unless one is already under way."""
        if self._closed or not self._peer_present or self.session is None:
            return
        if self._p2p_lost_at is None:
            self._p2p_lost_at = self.clock()
            self.p2p_losses += 1
            self._emit_event("degraded", {"reason": reason})
        if self.offerer and self._reconnect_timer is None and not self.backoff.gave_up:
            self._schedule_reconnect()

    def _schedule_reconnect(self) -> None:
        self._cancel("_attempt_timer")
        delay = self.backoff.next_delay_ms()
        if delay is None:
            if self.options.reconnect.enabled:
                self._emit_event(
                    "reconnect_failed", {"attempts": self.options.reconnect.max_attempts}
                )
            return
        self._reconnect_timer = self._after(delay, self._attempt_reconnect)

    def _attempt_reconnect(self) -> None:
        self._reconnect_timer = None  # it fired (and cleared itself)
        if self._closed or not self._peer_present:
            return
        self._close_peer_connection()
        self.generation += 1
        self._emit_event(
            "reconnecting", {"attempt": self.backoff.attempts, "generation": self.generation}
        )
        self._attempt_timer = self._after(
            self.options.reconnect.attempt_timeout_ms, self._on_attempt_timeout
        )
        self._open_peer_connection(offerer=True)

    def _on_attempt_timeout(self) -> None:
        self._attempt_timer = None
        self._p2p_lost(f"reconnection attempt {self.backoff.attempts} timed out")

    def _stop_reconnecting(self) -> None:
        self._cancel("_reconnect_timer")
        self._cancel("_attempt_timer")

    # --- what the game calls ------------------------------------------------------------------

    def step(self, frame: int, action: int) -> bool:
        if self.session is None:
            raise RuntimeError("not paired with a peer yet")
        return self.session.step(frame, action)

    def route_changes(self) -> list[dict[str, Any]]:
        """The route changes the session's telemetry kept, oldest first."""
        if self.session is None:
            return []
        return self.session.route_changes()

    def stats(self) -> dict[str, Any]:
        out = self.session.stats() if self.session is not None else {}
        out["live_proxies"] = self.proxies.live + self._pc_proxies.live
        out["live_pc_proxies"] = self._pc_proxies.live
        out["proxies_created"] = self.proxies.created + self._pc_proxies.created
        out["generation"] = self.generation
        out["p2p_losses"] = self.p2p_losses
        out["reconnects"] = self.reconnects
        out["stale_signals"] = self.stale_signals
        out["ice_candidate_errors"] = self.ice_candidate_errors
        out["reconnect_timer_running"] = self._reconnect_timer is not None
        out["reconnect_attempt_running"] = self._attempt_timer is not None
        out.update(self.backoff.stats())
        out["fault_pump_running"] = self._pump_timer is not None
        if self.faulty is not None:
            out.update({f"fault_{k}": v for k, v in self.faulty.stats().items()})
        return out

    def _close_peer_connection(self) -> None:
        self._cancel("_pump_timer")
        if self.ping_channel is not None:
            if self.session is not None:
                self.session.attach_ping_channel(None)
            self.ping_channel.close()
            self.ping_channel = None
        if self.channel is not None:
            # Its close event will not come (the handler goes first), so tell the session here:
            # it stops pinging, and the router sees no open channel.
            self.channel.state_changed("closed")
            if self.session is not None:
                self.session.attach_channel(None)
                self.session.on_close()
            raw = self.channel.raw
            raw.onopen = raw.onclose = raw.onmessage = None
            raw.close()
            self.channel = None
        if self.pc is not None:
            self.pc.onicecandidate = self.pc.onconnectionstatechange = None
            self.pc.ondatachannel = None
            self.pc.close()
            self.pc = None
        self._remote_description_set = False
        self._pc_proxies.destroy_all()

    def close_channel(self) -> None:
        """Close only the DataChannel (tests use it to take the P2P path away)."""
        if self.channel is not None:
            self.channel.raw.close()

    def close(self) -> None:
        """Tear everything down: timers, peer connection, socket, and every proxy. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._stop_reconnecting()
        if self.session is not None:
            self.session.close()
        self._close_peer_connection()
        self.scheduler.clear_all()
        if self.socket is not None:
            self.socket.off()
            self.socket.disconnect()
            self.socket = None
        for task in list(self._tasks):
            task.cancel()
        self.proxies.destroy_all()

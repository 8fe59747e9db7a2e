"""The object a game holds: one peer connection, its relay, and everything measured about them."""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any, Final, Protocol

from p2p_transport.checks import check_positive
from p2p_transport.protocol.acked_sender import RESEND_INTERVAL_MS, AckedInputSender
from p2p_transport.protocol.control import (
    ControlCallback,
    ReliableControlChannel,
    encode_episode_end,
    encode_episode_ready,
)
from p2p_transport.protocol.desync import DesyncCallback, DesyncChecker
from p2p_transport.protocol.health import ConnectionHealthMonitor, HealthThresholds
from p2p_transport.protocol.negotiation import AckNegotiation
from p2p_transport.protocol.receiver import DEFAULT_HISTORY_FRAMES, InputCallback, InputReceiver
from p2p_transport.protocol.relay import RelayChannel, SocketIOLike
from p2p_transport.protocol.routing import (
    LinkSignals,
    Path,
    Route,
    RouteMode,
    Router,
    RoutingThresholds,
)
from p2p_transport.protocol.rtt import DEFAULT_RTT_WINDOW, RTTTracker
from p2p_transport.protocol.sender import (
    DEFAULT_BUFFER_THRESHOLD,
    DEFAULT_REDUNDANCY,
    DEFAULT_WINDOW,
    DataChannelLike,
    P2PInputSender,
    SenderCounters,
    try_send,
)
from p2p_transport.session.telemetry import SCHEMA, SCHEMA_VERSION, TelemetryRecorder
from p2p_transport.timing import Clock, Scheduler
from p2p_transport.wire.codec import (
    GAME_KIND_MAX,
    GAME_KIND_MIN,
    HELD_PONG_HOLD_OFFSET,
    MAX_HOLD_MS,
    AckedInputPacket,
    ControlAck,
    ControlKind,
    ControlMessage,
    DecodeError,
    HeldPong,
    InputPacket,
    Keepalive,
    Message,
    MessageType,
    Ping,
    Pong,
    decode,
    encode_held_pong,
    encode_keepalive,
    encode_ping,
    encode_pong,
)
from p2p_transport.wire.signaling import RELAY_EVENT

__all__ = [
    "DEFAULT_KEEPALIVE_INTERVAL_MS",
    "P2PSession",
    "Path",
    "PingChannelLike",
    "SessionConfig",
    "SessionEvent",
    "SessionState",
]

logger = logging.getLogger(__name__)

#: The seed design pings every 500 ms: two RTT samples a second keep the 10-sample window at the
#: last 5 s, and cost 18 bytes each way, nothing beside 60 input packets a second.
DEFAULT_PING_INTERVAL_MS: Final = 500.0
#: Pings remembered until their pong comes back: 32 is 16 s of pings, longer than any pong that
#: still says something about the link. A pong matching none of them is counted and ignored.
MAX_OUTSTANDING_PINGS: Final = 32
#: The watchdog's period (:meth:`P2PSession.start_watchdog`): a keepalive goes out over the
#: DataChannel when nothing else did for this long, and the peer's silence is checked. GGPO and GGRS
#: send keepalives every 200 ms too; at 60 Hz a running game never needs one, a paused game sends
#: five a second (one byte each), so the peer's silence thresholds measure the link, not the game.
DEFAULT_KEEPALIVE_INTERVAL_MS: Final = 200.0
#: ``performance.now()`` resolves 0.1 ms in Chromium without cross-origin isolation.
CLOCK_RESOLUTION_MS: Final = 0.1
#: Pings sent on the ping channel before it counts as unanswered: a peer without one (a deployed
#: JavaScript peer) never answers there, and three pings (1.5 s) is long enough to tell.
PING_CHANNEL_PROBES: Final = 3
#: A pong handled this long after it arrived was handled late by this side (a stalled main
#: thread): its sample is still right, measured from the arrival, but is counted. 20 ms is more
#: than a frame of ordinary event-loop delay at 60 Hz.
LATE_HANDLING_MS: Final = 20.0
#: While the watchdog runs, a gap this long in which no entry point of the session ran (no timer,
#: no message, no step) is a local stall: the page was frozen, or its main thread blocked, and
#: whatever the peer sent meanwhile waits in the event queue. The session leaves such a gap out of
#: the peer's silence (it measures silence only over time this side was awake), so neither the
#: watchdog's events nor the health status blame the peer for it, and a pong handled after it is
#: not an RTT sample. Why 1500 ms: the watchdog alone runs every 200 ms, and Chromium throttles a
#: hidden tab's timers to at most one wake-up a second (aligned to whole seconds), so an awake
#: page, however throttled, runs something at least every ~1000 ms; 1500 ms is half as much again
#: for wake-up jitter. A throttled tab whose peer went silent (gaps of 1000 ms) is therefore still
#: judged on the full silence and reports the peer gone after 3 s. A stall shorter than 1500 ms is
#: not excused, but alone it cannot reach the 3000 ms disconnect threshold. Not covered: Chromium's
#: intensive throttling (one wake-up a minute after 5 minutes hidden; pages with an open
#: RTCDataChannel are exempt from it) would make every gap a stall and hide a peer that vanished
#: without a close event or the server's ``peer_left``.
LOCAL_STALL_MS: Final = 1500.0


#: Called with each round-trip sample and the path it was measured on.
RTTCallback = Callable[[float, Path], None]


class PingChannelLike(DataChannelLike, Protocol):
    """The ping channel (:meth:`P2PSession.attach_ping_channel`): a DataChannel whose holder can
    take a time at the very moment a packet leaves. In the browser a worker holds it, so neither
    a busy main thread nor the hop to the worker counts as network delay."""

    def send_ping(self, data: bytes, timestamp_ms: float) -> None:
        """Send a ping, then report when it left: :meth:`P2PSession.on_ping_left` with
        ``timestamp_ms`` (the ping's own, to find it by) and the moment it left."""
        ...

    def send_held_pong(self, data: bytes, hold_offset: int, arrival_ms: float) -> None:
        """Send a held pong whose hold field (a big-endian u32 of microseconds at byte
        ``hold_offset``) is rewritten, as it leaves, to the time since the ping's ``arrival_ms``."""
        ...


class SessionEvent(StrEnum):
    """What the watchdog reports to ``on_event`` (each once per crossing of its threshold).

    Thresholds are the health monitor's silence thresholds (:class:`~.health.HealthThresholds`):
    ``warning_silence_ms`` and ``disconnect_silence_ms``.
    """

    #: The DataChannel is open but nothing came over it for the warning threshold.
    P2P_SILENT = "p2p_silent"
    #: ... nor for the disconnect threshold: the channel is open only in name.
    P2P_DEAD = "p2p_dead"
    #: Nothing came on any path for the warning threshold.
    PEER_SILENT = "peer_silent"
    #: Nothing came on any path for the disconnect threshold: the peer is gone (or the network).
    PEER_GONE = "peer_gone"
    #: A packet arrived after ``peer_silent`` or ``peer_gone``.
    PEER_BACK = "peer_back"


#: Called with a :class:`SessionEvent` and a detail dict (``silence_ms``).
SessionEventCallback = Callable[[SessionEvent, dict[str, Any]], None]


class SessionState(StrEnum):
    NEW = "new"
    OPEN = "open"
    CLOSED = "closed"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class SessionConfig:
    redundancy: int = DEFAULT_REDUNDANCY
    window: int = DEFAULT_WINDOW
    buffer_threshold: int = DEFAULT_BUFFER_THRESHOLD
    ping_interval_ms: float = DEFAULT_PING_INTERVAL_MS
    rtt_window: int = DEFAULT_RTT_WINDOW
    history_frames: int = DEFAULT_HISTORY_FRAMES
    health: HealthThresholds = field(default_factory=HealthThresholds)
    #: Send every input over the Socket.IO relay too (the seed's parallel mode); the receiving
    #: side delivers whichever copy comes first and drops the other.
    relay_inputs: bool = True
    #: Ping over the relay as well, so its RTT is known when the game has to fall back to it.
    relay_pings: bool = True
    relay_event: str = RELAY_EVENT
    #: Send inputs as acked packets (0x20) once the peer has shown it understands them: every
    #: input rides in each packet until acknowledged, so no burst shorter than the pending bound
    #: loses one. Until then, and always when False, version-1 packets with fixed ``redundancy``.
    acked_inputs: bool = True
    #: Which path inputs take (:mod:`p2p_transport.protocol.routing`). With ``relay_inputs`` False,
    #: ``parallel`` means the DataChannel only, as it always has.
    route_mode: RouteMode = RouteMode.PARALLEL
    routing: RoutingThresholds = field(default_factory=RoutingThresholds)
    #: The watchdog's period: keepalives when idle, silence checks (see
    #: :data:`DEFAULT_KEEPALIVE_INTERVAL_MS`).
    keepalive_interval_ms: float = DEFAULT_KEEPALIVE_INTERVAL_MS
    #: Send control messages and their acks over the relay as well as the DataChannel (see
    #: ``_transmit_control``). False keeps them on the DataChannel: less server traffic, but they
    #: wait while the DataChannel is down.
    control_on_relay: bool = True

    def __post_init__(self) -> None:
        check_positive(self, "ping_interval_ms", "keepalive_interval_ms")
        # Accept the mode's string value ("p2p-first"), as a command line or JS caller passes it.
        object.__setattr__(self, "route_mode", RouteMode(self.route_mode))
        if not self.relay_inputs and self.route_mode not in (RouteMode.PARALLEL, RouteMode.P2P):
            raise ValueError(f"route_mode {self.route_mode.value!r} needs relay_inputs")


@dataclass(slots=True)
class _PathStats:
    """What crossed one path, in each direction."""

    sent: SenderCounters = field(default_factory=SenderCounters)
    packets_received: int = 0
    bytes_received: int = 0
    decode_errors: int = 0
    pings_sent: int = 0
    pings_received: int = 0
    pongs_received: int = 0
    #: Peer inputs that reached the game through this path first.
    inputs_delivered: int = 0


@dataclass(slots=True)
class _SessionCounters:
    inputs_sent: int = 0
    #: Pongs answering no ping this side has outstanding (a duplicate, or a peer making them up).
    unmatched_pongs: int = 0
    #: Exceptions inside message handling: a bug, logged and counted, never raised to the caller.
    handler_errors: int = 0
    #: Acked packets the resend timer sent while the game produced no input.
    input_resends: int = 0
    #: Keepalives the watchdog sent over an idle DataChannel.
    keepalives_sent: int = 0
    #: Local stalls (:data:`LOCAL_STALL_MS`): gaps in which this side ran nothing, left out of the
    #: peer's silence; the longest one, and their total.
    local_stalls: int = 0
    local_stall_max_ms: float = 0.0
    local_stalled_ms: float = 0.0
    #: Pongs handled after a local stall that began after their ping went out: their round trip
    #: is mostly this side's stall, so they are not RTT samples (the health verdict never sees
    #: them).
    rtt_samples_after_local_stall: int = 0
    #: Pongs carrying the responder's hold time that this side sent and received.
    held_pongs_sent: int = 0
    held_pongs_received: int = 0
    #: Pongs this side handled :data:`LATE_HANDLING_MS` or more after they arrived.
    rtt_samples_handled_late: int = 0
    #: Messages on the ping channel that are neither pings nor pongs (dropped).
    ping_channel_unexpected: int = 0


class P2PSession:
    """Wires sender, receiver, RTT tracking and health to a DataChannel and a Socket.IO relay.

    ``on_rtt(rtt_ms, path)`` hears every round-trip sample as it is taken; ``router.subscribe``
    hears every route change; ``on_event(event, detail)`` hears the watchdog's
    :class:`SessionEvent` reports once :meth:`start_watchdog` has started it.

    Every entry point that the browser calls (``on_open``, ``on_message``, ``on_relay_message``,
    ``on_close``, ``on_failed``, the ping and resend timers) counts bad input and never raises, so
    nothing a peer sends can stop the game loop. Arguments the game passes wrongly (``step`` with
    a frame that is not new) raise ``ValueError`` at once.
    """

    def __init__(
        self,
        player_index: int,
        peer_index: int,
        *,
        on_input: InputCallback,
        clock: Clock,
        scheduler: Scheduler,
        channel: DataChannelLike | None = None,
        relay: SocketIOLike | None = None,
        config: SessionConfig | None = None,
        on_rtt: RTTCallback | None = None,
        on_event: SessionEventCallback | None = None,
        on_control: ControlCallback | None = None,
        on_desync: DesyncCallback | None = None,
    ) -> None:
        if player_index == peer_index:
            raise ValueError(f"player_index and peer_index must differ, both are {player_index}")
        self.config = config or SessionConfig()
        self.player_index = player_index
        self.peer_index = peer_index
        self._clock = clock
        self._scheduler = scheduler
        self.on_rtt = on_rtt
        self.on_event = on_event
        cfg = self.config
        self.sender = P2PInputSender(
            channel, player_index, cfg.redundancy, cfg.window, cfg.buffer_threshold
        )
        self.receiver = InputReceiver(peer_index, on_input, cfg.history_frames)
        self.acked_sender = AckedInputSender(player_index, cfg.redundancy)
        self.negotiation = AckNegotiation(clock, cfg.acked_inputs)
        self.router = Router(
            cfg.route_mode if cfg.relay_inputs else RouteMode.P2P, clock, cfg.routing
        )
        self.rtt = RTTTracker(clock, cfg.rtt_window)
        self.relay_rtt = RTTTracker(clock, cfg.rtt_window)
        #: Round trips as a naive pinger would see them on the ping channel (from handling time,
        #: with the responder's hold left in), kept beside the corrected ones to show the gap.
        self.naive_rtt = RTTTracker(clock, cfg.rtt_window)
        self._ping_channel: PingChannelLike | None = None
        self._ping_channel_proven = False
        self._ping_channel_probes = 0
        self.health = ConnectionHealthMonitor(clock, self.rtt, cfg.health)
        self._relay = RelayChannel(relay, cfg.relay_event) if relay is not None else None
        self.state = SessionState.NEW
        self._paths = {Path.P2P: _PathStats(sent=self.sender.counters), Path.RELAY: _PathStats()}
        self._counters = _SessionCounters()
        # Pings awaiting their pong, each with the moment it left when its channel reports one.
        self._outstanding: OrderedDict[tuple[Path, float], float | None] = OrderedDict()
        self._ping_timer: object | None = None
        # Resends pending acked inputs while the game sends none; runs from negotiation to close().
        self._resend_timer: object | None = None
        self._stepped_since_resend_check = False
        # The peer sent inputs that no packet of this side has acknowledged yet.
        self._ack_owed = False
        # Set by close(): unlike a closed channel, which a reconnection reopens, it is final, so a
        # late open event cannot start a timer nothing would stop.
        self._shut_down = False
        # The watchdog (keepalives, silence checks) and what it has already reported.
        self._watchdog_timer: object | None = None
        self._p2p_sent_at_last_check = 0
        self._p2p_alarm: SessionEvent | None = None
        self._peer_alarm: SessionEvent | None = None
        # When the watchdog started, and the last packet that came through the relay: with the
        # health monitor's last DataChannel packet, they say how long the peer has been silent.
        self._watch_since_ms = clock()
        self._relay_heard_ms: float | None = None
        # When an entry point last ran, and when the last local stall ended (see _note_awake).
        self._awake_at_ms = clock()
        self._last_stall_end_ms: float | None = None
        self._handlers: dict[int, Callable[[Any, Path], None]] = {
            MessageType.INPUT: self._on_input_packet,
            MessageType.PING: self._on_ping,
            MessageType.PONG: self._on_pong,
            MessageType.KEEPALIVE: self._on_keepalive,
            MessageType.ACKED_INPUT: self._on_acked_input_packet,
        }
        # Reliable control messages (:meth:`send_control`) and the desync check riding on them.
        self.on_control = on_control
        self.control = ReliableControlChannel(
            self._transmit_control,
            self._on_control_message,
            clock=clock,
            scheduler=scheduler,
            rtt_hint=self._ping_rtt,
        )
        self.desync = DesyncChecker(
            lambda payload: self.control.send(ControlKind.STATE_HASH, payload), on_desync
        )
        self._handlers[MessageType.CONTROL] = self._on_control_packet
        self._handlers[MessageType.CONTROL_ACK] = self._on_control_ack
        # What the experiment keeps (:meth:`telemetry`): time series, bounded.
        self._telemetry = TelemetryRecorder((path.value for path in Path), clock())
        self.router.subscribe(self._telemetry.record_route_change)
        self._observe_health()

    # --- the channel's events ---------------------------------------------------------------

    @property
    def channel(self) -> DataChannelLike | None:
        return self.sender.channel

    def attach_channel(self, channel: DataChannelLike | None) -> None:
        """Use ``channel`` for the peer-to-peer path (a new connection after a failure)."""
        self.sender.channel = channel

    @property
    def ping_timer_running(self) -> bool:
        return self._ping_timer is not None

    def on_open(self) -> None:
        """The DataChannel opened: start measuring it. Ignored once :meth:`close` was called."""
        if self._shut_down:
            return
        self.state = SessionState.OPEN
        # The channel opening is the peer answering: it counts as hearing from it.
        self._watch_since_ms = self._clock()
        self.health.reset()
        if self._ping_timer is None:
            self._ping_timer = self._scheduler.set_interval(
                self._on_ping_timer, self.config.ping_interval_ms
            )

    def on_close(self) -> None:
        """The DataChannel closed; the relay, if any, keeps carrying inputs."""
        self._stop_pinging()
        if self.state is not SessionState.FAILED:
            self.state = SessionState.CLOSED

    def on_failed(self) -> None:
        """The peer connection failed (ICE failure, or the channel reported an error)."""
        self._stop_pinging()
        self.state = SessionState.FAILED

    def on_message(self, data: bytes | bytearray | memoryview) -> None:
        """A packet arrived on the DataChannel."""
        self._receive(data, Path.P2P)

    def attach_ping_channel(self, channel: PingChannelLike | None) -> None:
        """Measure RTT on ``channel``, whose messages come with their arrival time.

        In the browser it is a second DataChannel held by a worker, which notes when each message
        arrived and when each ping and pong left, even while the page's main thread is busy.
        Pings there are answered with a pong that carries the hold time (arrival to departure),
        and a round trip runs from the ping's departure to the pong's arrival, so neither side's
        stalls count as network delay. It is used once the peer has answered on it; a peer
        without one gets the pings on the DataChannel as before.
        """
        self._ping_channel = channel
        self._ping_channel_proven = False
        self._ping_channel_probes = 0

    def on_ping_channel_message(
        self, data: bytes | bytearray | memoryview, arrival_ms: float
    ) -> None:
        """A packet arrived on the ping channel at ``arrival_ms`` (this session's clock)."""
        stats = self._paths[Path.P2P]
        message = self._decode_counted(data, stats)
        if message is None:
            return
        try:
            # Not counted as the DataChannel heard: the ping channel can be alive while the game
            # channel is dead one way, and that is what the silence checks must see.
            if isinstance(message, Ping):
                stats.pings_received += 1
                self._answer_on_ping_channel(message.timestamp_ms, arrival_ms)
            elif isinstance(message, HeldPong | Pong):
                self._ping_channel_proven = True
                hold_ms = message.hold_ms if isinstance(message, HeldPong) else None
                self._counters.held_pongs_received += isinstance(message, HeldPong)
                self._take_pong(message.timestamp_ms, Path.P2P, arrival_ms, hold_ms)
            else:
                self._counters.ping_channel_unexpected += 1
        except Exception:
            self._counters.handler_errors += 1
            logger.exception("handling a %s message on the ping channel failed", message.type.name)

    def on_relay_message(self, data: bytes | bytearray | memoryview) -> None:
        """A packet arrived through the Socket.IO relay."""
        self._receive(data, Path.RELAY)

    # --- what the game calls ------------------------------------------------------------------

    def step(self, frame: int, action: int) -> bool:
        """Send the local input for ``frame`` on the route the router picks (by default over P2P
        and, in parallel, over the relay).

        Every path carries the same packet; the peer delivers whichever copy arrives first.
        Returns whether any path took it.
        """
        self._note_awake()
        negotiation = self.negotiation
        acked = self.acked_sender
        if negotiation.use_acked:
            acked.record(action, frame)
            packet = acked.packet(self.receiver.ack_frame)
        else:
            packet = self.sender.record(action, frame)
            if negotiation.enabled:
                # Kept from the start, so what version 1 lost goes out again once negotiated.
                acked.record(action, frame)
        self._counters.inputs_sent += 1
        route = self._route()
        sent = self._send_input(packet, route)
        if negotiation.probe_due():
            self._send_input(acked.packet(self.receiver.ack_frame), route)
            negotiation.probe_sent()
        self._stepped_since_resend_check = True
        self._ack_owed = False
        self._set_peer_stalled(acked.stalled)
        return sent

    def start_watchdog(self) -> None:
        """Start the watchdog timer: every ``keepalive_interval_ms`` it sends a keepalive over the
        DataChannel if nothing else went out on it since the last check, and reports the peer's
        silence through ``on_event``. Runs until :meth:`close`; calling it again does nothing."""
        if self._shut_down or self._watchdog_timer is not None:
            return
        self._watch_since_ms = self._clock()
        self._awake_at_ms = self._watch_since_ms
        self._p2p_sent_at_last_check = self._paths[Path.P2P].sent.packets_sent
        self._watchdog_timer = self._scheduler.set_interval(
            self._on_watchdog, self.config.keepalive_interval_ms
        )

    @property
    def watchdog_running(self) -> bool:
        return self._watchdog_timer is not None

    @property
    def peer_silence_ms(self) -> float:
        """Time since a packet last arrived on any path (or since the watchdog started)."""
        last = self._watch_since_ms
        for heard in (self.health.last_packet_at_ms, self._relay_heard_ms):
            if heard is not None and heard > last:
                last = heard
        return max(0.0, self._clock() - last)

    def ping(self) -> None:
        """Ping the peer over the DataChannel now (the timer does this every interval)."""
        self._ping(Path.P2P)

    def ping_relay(self) -> None:
        """Ping the peer through the relay now."""
        self._ping(Path.RELAY)

    def send_keepalive(self) -> bool:
        return self._send_control(Path.P2P, encode_keepalive())

    def send_control(self, kind: int, payload: bytes = b"") -> int:
        """Send the game's own control message reliably; return its sequence number.

        The peer's ``on_control(kind, payload)`` hears it exactly once, after every earlier control
        message. ``kind`` is in ``GAME_KIND_MIN..GAME_KIND_MAX`` (the kinds below are the
        transport's), ``payload`` at most :data:`~.codec.MAX_CONTROL_PAYLOAD` bytes. Raises
        :class:`~.control.ControlWindowFull` when too many messages are unacknowledged.
        """
        if isinstance(kind, bool) or not isinstance(kind, int):
            raise ValueError(f"kind must be an int, got {type(kind).__name__}")
        if not GAME_KIND_MIN <= kind <= GAME_KIND_MAX:
            raise ValueError(f"game control kinds are {GAME_KIND_MIN}..{GAME_KIND_MAX}, got {kind}")
        return self.control.send(kind, payload)

    def send_episode_end(self, frame: int, episode: int) -> int:
        """Tell the peer reliably that ``episode`` ended at ``frame`` (``EPISODE_END``)."""
        return self.control.send(ControlKind.EPISODE_END, encode_episode_end(episode, frame))

    def send_episode_ready(self, episode: int) -> int:
        """Tell the peer reliably that this side is ready for ``episode`` (``EPISODE_READY``)."""
        return self.control.send(ControlKind.EPISODE_READY, encode_episode_ready(episode))

    def reset_episode(self) -> None:
        """Forget inputs and frame numbers for a new episode; keep the connection and RTT."""
        self.sender.reset()
        self.acked_sender.reset()
        self.receiver.reset()
        # The health monitor forgets its last packet; the peer's silence must not.
        last = self.health.last_packet_at_ms
        if last is not None and last > self._watch_since_ms:
            self._watch_since_ms = last
        self.health.reset()
        self._ack_owed = False
        # The control channel is left alone: its messages in flight announce the episode change.

    def close(self) -> None:
        """Stop all timers and let go of the channel and relay. Safe to call more than once."""
        self._shut_down = True
        self._stop_pinging()
        for name in ("_resend_timer", "_watchdog_timer"):
            timer = getattr(self, name)
            if timer is not None:
                setattr(self, name, None)
                self._scheduler.clear_interval(timer)
        self.sender.channel = None
        self._ping_channel = None
        self._relay = None
        self._outstanding.clear()
        self.control.close()
        self.state = SessionState.CLOSED

    def stats(self) -> dict[str, Any]:
        """Every counter and RTT figure as a flat, JSON-serialisable dict."""
        self._note_awake()
        out: dict[str, Any] = {
            "player_index": self.player_index,
            "peer_index": self.peer_index,
            "state": self.state.value,
            "ping_timer_running": self.ping_timer_running,
            "resend_timer_running": self._resend_timer is not None,
            "watchdog_running": self._watchdog_timer is not None,
            "peer_silence_ms": self.peer_silence_ms,
            "acked_inputs_in_use": self.negotiation.use_acked,
            "acked_probes_sent": self.negotiation.probes_sent,
            "acked_pending": len(self.acked_sender.pending),
            "acked_stalled": self.acked_sender.stalled,
        }
        out.update(asdict(self._counters))
        for path, stats in self._paths.items():
            for key, value in asdict(stats).items():
                if key == "sent":
                    for sent_key, sent_value in value.items():
                        out[f"{path.value}_{sent_key}"] = sent_value
                else:
                    out[f"{path.value}_{key}"] = value
        out["pings_sent"] = sum(s.pings_sent for s in self._paths.values())
        out["pongs_received"] = sum(s.pongs_received for s in self._paths.values())
        out.update(self.receiver.stats())
        out["inputs_received"] = self.receiver.counters.inputs_delivered
        out.update(self.rtt.snapshot())
        out.update({f"relay_{k}": v for k, v in self.relay_rtt.snapshot().items()})
        out.update({f"naive_{k}": v for k, v in self.naive_rtt.snapshot().items()})
        out["ping_channel"] = (
            "none"
            if self._ping_channel is None
            else "closed"
            if self._ping_channel.readyState in ("closing", "closed")
            else "in use"
            if self._ping_channel_proven
            else "probing"
            if self._ping_channel_probes < PING_CHANNEL_PROBES
            else "unanswered"
        )
        out.update(self.health.snapshot())
        self._observe_health()
        out.update({f"acked_{k}": v for k, v in self.acked_sender.stats().items()})
        out.update(self.router.stats())
        out.update({f"control_{k}": v for k, v in self.control.stats().items()})
        out.update({f"desync_{k}": v for k, v in self.desync.stats().items()})
        return out

    def route_changes(self) -> list[dict[str, Any]]:
        """The route changes telemetry kept (:meth:`~.routing.RouteChange.as_dict`), oldest
        first."""
        return self._telemetry.routes.records()

    def telemetry(self) -> dict[str, Any]:
        """What the experiment keeps: a JSON-serialisable record of this session so far.

        Time series (bounded, oldest rows dropped first and counted, see
        :mod:`~.telemetry`): RTT samples per path with their times (an hour of pings at the
        default interval), health status transitions, route changes with reasons, P2P loss
        estimates, control-message delivery times. Totals: packets and bytes per path and
        direction, inputs recovered by redundancy, duplicates, conflicts, gaps and losses, the
        control channel's counters. Every ``at_ms`` is a reading of the session's clock.
        """
        self._note_awake()
        now = self._clock()
        self._observe_health()
        paths: dict[str, Any] = {}
        for path, stats in self._paths.items():
            sent = stats.sent
            paths[path.value] = {
                "packets_sent": sent.packets_sent,
                "bytes_sent": sent.bytes_sent,
                "packets_received": stats.packets_received,
                "bytes_received": stats.bytes_received,
                "decode_errors": stats.decode_errors,
                "skipped_closed": sent.skipped_closed,
                "skipped_congested": sent.skipped_congested,
                "send_errors": sent.send_errors,
                "pings_sent": stats.pings_sent,
                "pongs_received": stats.pongs_received,
                "inputs_delivered_first": stats.inputs_delivered,
            }
        rtt_now = {Path.P2P: self.rtt, Path.RELAY: self.relay_rtt}
        record = self._telemetry.to_dict(rtt_interval_ms=self.config.ping_interval_ms)
        for path, tracker in rtt_now.items():
            record["rtt"][path.value]["summary"] = tracker.snapshot()
        return {
            "schema": SCHEMA,
            "schema_version": SCHEMA_VERSION,
            "player_index": self.player_index,
            "peer_index": self.peer_index,
            "clock": {
                "unit": "ms",
                "origin": (
                    "the session's clock: performance.now() in the browser (ms since the page "
                    "loaded), not wall-clock time; every at_ms is on it"
                ),
                "session_created_at_ms": round(self._telemetry.started_at_ms, 2),
                "recorded_at_ms": round(now, 2),
            },
            "state": self.state.value,
            "health_status": self.health.status.value,
            "route_mode": self.router.mode.value,
            "route": self.router.route.value,
            "route_changes_total": self.router.change_count,
            "paths": paths,
            "inputs": {
                "sent": self._counters.inputs_sent,
                "resends": self._counters.input_resends,
                **self.receiver.stats(),
            },
            "loss_estimate_p2p": self.health.loss_estimate,
            "control": {
                **asdict(self.control.counters),
                "delivery_p50_ms": self.control.delivery_p50_ms,
                "delivery_p99_ms": self.control.delivery_p99_ms,
            },
            **record,
        }

    # --- internals ----------------------------------------------------------------------------

    def _set_peer_stalled(self, stalled: bool) -> None:
        """Tell the health monitor whether the peer leaves this side's inputs unacknowledged; a
        change moves the status at once, and a stall shorter than a watchdog tick (a route switch
        moving the acks to the relay) is recorded too."""
        if self.health.peer_stalled is not stalled:
            self.health.peer_stalled = stalled
            self._observe_health()

    def _observe_health(self) -> None:
        """Evaluate the health status and let telemetry record it if it changed. Called where
        the status's inputs change or time has passed: the watchdog and ping ticks (silence), each
        P2P RTT sample, the peer's stall starting or ending, and whenever :meth:`stats` or
        :meth:`telemetry` reads it."""
        self._telemetry.observe_health(self._clock(), self.health.status)

    def _channel(self, path: Path) -> DataChannelLike | None:
        return self.sender.channel if path is Path.P2P else self._relay

    def _send(self, path: Path, packet: bytes) -> bool:
        return try_send(
            self._channel(path), packet, self.config.buffer_threshold, self._paths[path].sent
        )

    def _send_input(self, packet: bytes, route: Route) -> bool:
        sent = False
        for path in route.paths:
            sent = self._send(path, packet) or sent
        return sent

    def _route(self) -> Route:
        router = self.router
        if router.mode is not RouteMode.P2P_FIRST:
            return router.route  # fixed: nothing to measure
        channel = self.sender.channel
        if channel is None:
            p2p_open = congested = False
        else:
            p2p_open = channel.readyState == "open"
            congested = p2p_open and channel.bufferedAmount > self.config.buffer_threshold
        relay = self._relay
        return router.update(
            LinkSignals(
                p2p_open=p2p_open,
                p2p_congested=congested,
                p2p_silence_ms=self.health.silence_ms,
                p2p_rtt_ms=self.rtt.last_sample_ms,
                relay_open=relay is not None and relay.readyState == "open",
                relay_rtt_ms=self.relay_rtt.last_sample_ms,
                unacked_inputs=(
                    self.acked_sender.pending_count if self.negotiation.use_acked else 0
                ),
            )
        )

    def _on_resend_timer(self) -> None:
        """Resend pending inputs (and an owed ack) when the game sent no input since the last
        check: a paused game's last inputs still reach the peer."""
        try:
            self._note_awake()
            if self._stepped_since_resend_check:
                self._stepped_since_resend_check = False
                return
            acked = self.acked_sender
            if not (acked.has_pending or self._ack_owed):
                return
            if self._send_input(acked.pending_packet(self.receiver.ack_frame), self._route()):
                self._counters.input_resends += 1
            self._ack_owed = False
        except Exception:
            self._counters.handler_errors += 1
            logger.exception("resend timer failed")

    def _on_watchdog(self) -> None:
        try:
            self._note_awake()
            self._keepalive_if_idle()
            self._check_silence()
            self._observe_health()
        except Exception:
            self._counters.handler_errors += 1
            logger.exception("watchdog failed")

    def _note_awake(self) -> None:
        """An entry point runs: if nothing ran for :data:`LOCAL_STALL_MS` while the watchdog was
        running, count a local stall and leave it out of the peer's silence on every path."""
        if self._watchdog_timer is None:
            # Without the watchdog nothing has to run while the page is awake, so a gap says
            # nothing about this side.
            return
        now = self._clock()
        gap = now - self._awake_at_ms
        self._awake_at_ms = now
        if gap <= LOCAL_STALL_MS:
            return
        counters = self._counters
        counters.local_stalls += 1
        counters.local_stalled_ms += gap
        counters.local_stall_max_ms = max(counters.local_stall_max_ms, gap)
        self._last_stall_end_ms = now
        # Every packet was heard before the stall began (hearing one is an entry point), so
        # moving each reference point forward by the gap subtracts exactly the stall.
        self.health.excuse(gap)
        self._watch_since_ms = min(self._watch_since_ms + gap, now)
        if self._relay_heard_ms is not None:
            self._relay_heard_ms = min(self._relay_heard_ms + gap, now)
        logger.info("local stall of %.0f ms left out of the peer's silence", gap)

    def _keepalive_if_idle(self) -> None:
        sent = self._paths[Path.P2P].sent
        channel = self.sender.channel
        if (
            sent.packets_sent == self._p2p_sent_at_last_check
            and channel is not None
            and channel.readyState == "open"
            and self.send_keepalive()
        ):
            self._counters.keepalives_sent += 1
        self._p2p_sent_at_last_check = sent.packets_sent

    def _check_silence(self) -> None:
        thresholds = self.health.thresholds
        warning, disconnect = thresholds.warning_silence_ms, thresholds.disconnect_silence_ms
        channel = self.sender.channel
        if channel is not None and channel.readyState == "open":
            silence = self.health.silence_ms
            if silence > disconnect:
                self._p2p_alarm = self._raise(self._p2p_alarm, SessionEvent.P2P_DEAD, silence)
            elif silence > warning:
                if self._p2p_alarm is None:
                    self._p2p_alarm = self._raise(None, SessionEvent.P2P_SILENT, silence)
            else:
                self._p2p_alarm = None
        else:
            # A closed channel is reported by its own close event; a new one starts afresh.
            self._p2p_alarm = None
        silence = self.peer_silence_ms
        if silence > disconnect:
            self._peer_alarm = self._raise(self._peer_alarm, SessionEvent.PEER_GONE, silence)
        elif silence > warning:
            if self._peer_alarm is None:
                self._peer_alarm = self._raise(None, SessionEvent.PEER_SILENT, silence)
        elif self._peer_alarm is not None:
            self._peer_alarm = None
            self._report(SessionEvent.PEER_BACK, silence)

    def _raise(
        self, current: SessionEvent | None, event: SessionEvent, silence_ms: float
    ) -> SessionEvent:
        """Report ``event`` unless it is the alarm already raised; return the alarm now up."""
        if current is not event:
            self._report(event, silence_ms)
        return event

    def _report(self, event: SessionEvent, silence_ms: float) -> None:
        if self.on_event is None:
            return
        try:
            self.on_event(event, {"silence_ms": round(silence_ms, 1)})
        except Exception:
            self._counters.handler_errors += 1
            logger.exception("on_event callback failed for %s", event.value)

    def _send_control(self, path: Path, packet: bytes) -> bool:
        """Pings, pongs and keepalives go out even when the channel is congested: they are 9
        bytes, and a pong that waits in the queue reports the queueing delay the inputs really
        suffer, where a skipped one would make a congested link look silent."""
        return try_send(self._channel(path), packet, None, self._paths[path].sent)

    def _ping(self, path: Path) -> None:
        now = self._clock()
        channel = self._ping_channel_to_use() if path is Path.P2P else None
        if channel is not None:
            sent = try_send(
                channel,
                encode_ping(now),
                None,
                self._paths[path].sent,
                send=lambda data: channel.send_ping(data, now),
            )
            self._ping_channel_probes += not self._ping_channel_proven
        else:
            sent = self._send_control(path, encode_ping(now))
        if sent:
            self._paths[path].pings_sent += 1
            self._outstanding[(path, now)] = None
            while len(self._outstanding) > MAX_OUTSTANDING_PINGS:
                self._outstanding.popitem(last=False)

    def _ping_channel_to_use(self) -> PingChannelLike | None:
        """The ping channel, if it is open and either answered or still being probed."""
        channel = self._ping_channel
        if (
            channel is not None
            and channel.readyState == "open"
            and (self._ping_channel_proven or self._ping_channel_probes < PING_CHANNEL_PROBES)
        ):
            return channel
        return None

    def on_ping_left(self, timestamp_ms: float, left_ms: float) -> None:
        """The ping channel's report that the ping stamped ``timestamp_ms`` left at ``left_ms``
        (this session's clock): its round trip is timed from then."""
        key = (Path.P2P, timestamp_ms)
        if key in self._outstanding:
            self._outstanding[key] = left_ms

    def _answer_on_ping_channel(self, timestamp_ms: float, arrival_ms: float) -> None:
        channel = self._ping_channel
        if channel is None:  # let go of (close(), or detached) while the ping was on its way
            return
        # The hold so far, which the channel brings up to date as the pong leaves.
        hold_ms = min(max(0.0, self._clock() - arrival_ms), MAX_HOLD_MS)
        pong = encode_held_pong(timestamp_ms, hold_ms)
        sent = try_send(
            channel,
            pong,
            None,
            self._paths[Path.P2P].sent,
            send=lambda data: channel.send_held_pong(data, HELD_PONG_HOLD_OFFSET, arrival_ms),
        )
        self._counters.held_pongs_sent += sent

    def _on_ping_timer(self) -> None:
        try:
            self._note_awake()
            now = self._clock()
            self._telemetry.record_loss(now, self.health.loss_estimate)
            self._observe_health()
            if self.sender.channel is not None and self.sender.channel.readyState == "open":
                self.ping()
            if (
                self.config.relay_pings
                and self._relay is not None
                and self._relay.readyState == "open"
            ):
                self.ping_relay()
        except Exception:
            self._counters.handler_errors += 1
            logger.exception("ping timer failed")

    def _stop_pinging(self) -> None:
        if self._ping_timer is not None:
            timer, self._ping_timer = self._ping_timer, None
            self._scheduler.clear_interval(timer)

    def _decode_counted(
        self, data: bytes | bytearray | memoryview, stats: _PathStats
    ) -> Message | None:
        """Count the packet on its path and decode it; garbage is counted and gives None."""
        try:
            # Before the packet is recorded: a stall that ends here is left out of the silence.
            self._note_awake()
            stats.packets_received += 1
            stats.bytes_received += len(data)
            return decode(data)
        except (DecodeError, TypeError):
            stats.decode_errors += 1
            return None

    def _receive(self, data: bytes | bytearray | memoryview, path: Path) -> None:
        message = self._decode_counted(data, self._paths[path])
        if message is None:
            return
        try:
            if path is Path.P2P:
                self.health.record_packet(
                    message.current_frame
                    if isinstance(message, InputPacket | AckedInputPacket)
                    else None
                )
            else:
                self._relay_heard_ms = self._clock()
            self._handlers[message.type](message, path)
        except Exception:
            self._counters.handler_errors += 1
            logger.exception("handling a %s message failed", message.type.name)

    def _on_input_packet(self, packet: InputPacket | AckedInputPacket, path: Path) -> None:
        if packet.player_index == self.peer_index:
            self.negotiation.heard_peer_inputs()
        gaps_before = self.receiver.counters.gaps
        self._paths[path].inputs_delivered += self.receiver.receive(packet)
        self.health.record_gaps(self.receiver.counters.gaps - gaps_before)

    def _on_acked_input_packet(self, packet: AckedInputPacket, path: Path) -> None:
        if packet.player_index == self.peer_index:
            if self.negotiation.heard_acked_inputs():
                self.acked_sender.acks_expected = True
                if self._resend_timer is None and not self._shut_down:
                    self._resend_timer = self._scheduler.set_interval(
                        self._on_resend_timer, RESEND_INTERVAL_MS
                    )
            if self.negotiation.use_acked:
                self.acked_sender.on_ack(packet.ack_frame)
                self._set_peer_stalled(self.acked_sender.stalled)
                # Answered by the next packet: the game's next step, or the resend timer's if the
                # game sends nothing. A pure ack (no inputs) is not answered, or two idle peers
                # would echo acks forever.
                self._ack_owed = self._ack_owed or bool(packet.inputs)
        self._on_input_packet(packet, path)

    def _on_ping(self, ping: Ping, path: Path) -> None:
        # Answered here, inside the message handler, so the pong's delay is the network's and
        # not the game loop's.
        self._paths[path].pings_received += 1
        self._send_control(path, encode_pong(ping.timestamp_ms))

    def _on_pong(self, pong: Pong, path: Path) -> None:
        self._take_pong(pong.timestamp_ms, path, None, None)

    def _take_pong(
        self, timestamp_ms: float, path: Path, arrival_ms: float | None, hold_ms: float | None
    ) -> None:
        """A pong for the ping sent at ``timestamp_ms``; ``arrival_ms`` is when it arrived, if
        known (the ping channel), and ``hold_ms`` how long the peer held the ping, if it says."""
        key = (path, timestamp_ms)
        if key not in self._outstanding:
            self._counters.unmatched_pongs += 1
            return
        left_ms = self._outstanding.pop(key)
        self._paths[path].pongs_received += 1
        now = self._clock()
        naive_ms = max(now - timestamp_ms, CLOCK_RESOLUTION_MS)
        handled_late = False
        if arrival_ms is None:
            stall_end = self._last_stall_end_ms
            if stall_end is not None and stall_end > timestamp_ms:
                # This side stalled while the ping was out (the ping timer ran when it was sent,
                # so the stall began after): the round trip measures the stall, not the link.
                self._counters.rtt_samples_after_local_stall += 1
                return
            arrival_ms = now
        else:
            self.naive_rtt.add_sample(naive_ms)
            handled_late = now - arrival_ms >= LATE_HANDLING_MS
            self._counters.rtt_samples_handled_late += handled_late
        tracker = self.rtt if path is Path.P2P else self.relay_rtt
        # A matched pong is a real answer even when a coarse clock reads its round trip as 0.
        start_ms = timestamp_ms if left_ms is None else left_ms
        rtt_ms = max(arrival_ms - start_ms - (hold_ms or 0.0), CLOCK_RESOLUTION_MS)
        tracker.add_sample(rtt_ms)
        self._telemetry.record_rtt(now, path.value, rtt_ms, naive_ms, hold_ms, handled_late)
        if path is Path.P2P:
            self._observe_health()  # the RTT is one of the status's inputs
        if self.on_rtt is not None:
            self.on_rtt(rtt_ms, path)

    def _on_keepalive(self, _message: Keepalive, path: Path) -> None:
        """Nothing to do beyond the health bookkeeping every packet gets."""

    def _transmit_control(self, packet: bytes) -> bool:
        """Control messages and their acks go out on every open path, DataChannel and relay.

        They are a few small packets per episode, so a second copy costs nothing, while a lost one
        costs a retransmission timeout (50 ms and a few round trips, or more) at an episode
        boundary, where both games wait for it; the copies' losses are independent, so at 30% loss
        on each path 9% of sends are lost instead of 30%. And a DataChannel that is open but dead
        (what the router leaves P2P for) cannot hold them up. The receiver drops whichever copy
        comes second.
        """
        sent = False
        for path in Path:
            if path is Path.RELAY and not self.config.control_on_relay:
                continue
            channel = self._channel(path)
            if channel is not None and channel.readyState == "open":
                sent = self._send_control(path, packet) or sent
        return sent

    def _ping_rtt(self) -> tuple[float, float] | None:
        """The DataChannel's ping SRTT and RTTVAR: the control channel's RTO until it measures."""
        rtt = self.rtt
        if rtt.srtt_ms is None or rtt.rttvar_ms is None:
            return None
        return rtt.srtt_ms, rtt.rttvar_ms

    def _on_control_message(self, kind: int, payload: bytes) -> None:
        if kind == ControlKind.STATE_HASH:
            self.desync.on_peer_hash(payload)
        elif self.on_control is not None:
            self.on_control(kind, payload)

    def _on_control_packet(self, message: ControlMessage, _path: Path) -> None:
        self.control.on_control(message)

    def _on_control_ack(self, message: ControlAck, _path: Path) -> None:
        control = self.control
        acked_before = control.counters.acked
        control.on_ack(message)
        newly = control.counters.acked - acked_before
        if newly:
            now = self._clock()
            for delivery_ms in control.delivery_times_ms[-newly:]:
                self._telemetry.record_control_delivery(now, delivery_ms)

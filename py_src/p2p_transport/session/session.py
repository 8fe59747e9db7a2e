"""The object a game holds: one peer, both paths, and everything measured about them.

:class:`P2PSession` wires the pieces, each a sans-IO module of its own: :mod:`.paths` (the
DataChannel and the relay, and what crossed each), :mod:`.inputs` (the game's inputs both ways),
:mod:`.pinger` (pings and RTT), :mod:`.watchdog` (keepalives, silence, local stalls), the control
channel and desync check (:mod:`p2p_transport.protocol.control`, :mod:`~.protocol.desync`) and
:mod:`.report` (``stats()`` and ``telemetry()``). The session owns the timers, decodes each packet
once where it comes in, and hands it to the piece it is for.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from enum import StrEnum
from typing import Any, Final

from p2p_transport.guard import call_guarded
from p2p_transport.protocol.acked_sender import RESEND_INTERVAL_MS
from p2p_transport.protocol.control import ReliableControlChannel
from p2p_transport.protocol.desync import Desync, DesyncChecker
from p2p_transport.protocol.health import ConnectionHealthMonitor
from p2p_transport.protocol.negotiation import MAX_UNANSWERED_CONTROL_SENDS
from p2p_transport.protocol.receiver import InputCallback
from p2p_transport.protocol.relay import SocketIOLike
from p2p_transport.protocol.routing import Link, RouteChange
from p2p_transport.protocol.rtt import RTTTracker
from p2p_transport.protocol.sender import DataChannelLike
from p2p_transport.protocol.v1_control import VersionOneControl, VersionOneError
from p2p_transport.protocol.validation import Validation
from p2p_transport.session.callbacks import Callbacks
from p2p_transport.session.config import SessionConfig
from p2p_transport.session.inputs import InputPath
from p2p_transport.session.paths import Paths, PathStats
from p2p_transport.session.pinger import PingChannelLike, Pinger
from p2p_transport.session.report import SessionReport
from p2p_transport.session.telemetry import TelemetryRecorder
from p2p_transport.session.watchdog import SessionEvent, Watchdog
from p2p_transport.timing import Clock, Scheduler
from p2p_transport.wire.codec import (
    ACKED_INPUT_TYPE,
    INPUT_TYPE,
    V1_HASH_SIZE,
    Buffer,
    ByteView,
    DecodeError,
    Inputs,
    byte_view,
    decode,
    decode_acked_input_fields,
    decode_input_fields,
    encode_keepalive,
    encode_validation_ping,
    encode_validation_pong,
)
from p2p_transport.wire.control_payloads import (
    encode_episode_end_payload,
    encode_episode_ready_payload,
)
from p2p_transport.wire.messages import (
    GAME_KIND_MAX,
    GAME_KIND_MIN,
    ControlAck,
    ControlKind,
    ControlMessage,
    EpisodeEnd,
    EpisodeReady,
    FocusState,
    InputResponse,
    Message,
    MessageType,
    StateHash,
    ValidationPing,
    ValidationPong,
)

__all__ = ["VALIDATION_TICK_MS", "P2PSession", "SessionState"]

logger = logging.getLogger(__name__)

# The paths, named for every packet: a member named through its enum class costs about 75 ns in
# CPython 3.11.
_P2P: Final = Link.P2P
_RELAY: Final = Link.RELAY

#: The validation timer's period while a new channel is being validated: fine enough that the
#: first ping leaves within a tick of the deployed peers' 100 ms, and stopped once it is done.
VALIDATION_TICK_MS: Final = 50.0


class SessionState(StrEnum):
    NEW = "new"
    OPEN = "open"
    CLOSED = "closed"
    FAILED = "failed"


class P2PSession:
    """One peer connection and its relay: the game's inputs both ways, RTT, health, control
    messages and desync checks.

    ``callbacks`` is a :class:`~.callbacks.Callbacks`, or just the ``on_input(frame, action)``
    function. ``channel`` is the DataChannel (or :meth:`attach_channel` it later), ``relay`` a
    Socket.IO client for the relay path.

    Every entry point that the browser calls (``on_open``, ``on_message``, ``on_relay_message``,
    ``on_close``, ``on_failed``, the timers) counts bad input and never raises, so nothing a peer
    sends can stop the game loop. Arguments the game passes wrongly (``step`` with a frame that is
    not new) raise ``ValueError`` at once. Reading :meth:`stats` or :meth:`telemetry` changes
    nothing.
    """

    def __init__(
        self,
        player_index: int,
        peer_index: int,
        callbacks: Callbacks | InputCallback,
        *,
        clock: Clock,
        scheduler: Scheduler,
        channel: DataChannelLike | None = None,
        relay: SocketIOLike | None = None,
        config: SessionConfig | None = None,
    ) -> None:
        if player_index == peer_index:
            raise ValueError(f"player_index and peer_index must differ, both are {player_index}")
        cfg = self.config = config or SessionConfig()
        self.player_index = player_index
        self.peer_index = peer_index
        #: What the game hears; replace it (``dataclasses.replace``) to change a callback.
        self.callbacks = Callbacks.of(callbacks)
        self._clock = clock
        self._scheduler = scheduler
        self.state = SessionState.NEW
        #: ``on_event`` and ``on_rtt`` raised (logged; the session went on). The other callbacks
        #: are counted by the piece that calls them; ``stats()["callback_errors"]`` is the total.
        self.callback_errors = 0
        #: Exceptions inside message handling or a timer: a bug, logged and counted, never raised.
        self.handler_errors = 0
        #: Text messages on the DataChannel (see :meth:`on_text_message`).
        self.text_messages = 0
        #: Control messages of the game's own kinds, unacknowledged when the peer turned out to
        #: be a version-1 peer, which has no such messages: dropped, with a warning logged.
        self.control_undeliverable = 0

        self.paths = Paths(relay, cfg.buffer_threshold)
        self.paths.p2p = channel
        self.rtt = RTTTracker(clock, cfg.rtt_window)
        self.relay_rtt = RTTTracker(clock, cfg.rtt_window)
        trackers = {Link.P2P: self.rtt, Link.RELAY: self.relay_rtt}
        self.health = ConnectionHealthMonitor(clock, self.rtt, cfg.health)
        self._telemetry = TelemetryRecorder((path.value for path in Link), clock())
        self.watchdog = Watchdog(
            clock, self.paths, self.health, self.send_keepalive, self._on_watchdog_event
        )
        self.pinger = Pinger(
            clock,
            self.paths,
            trackers,
            # Round trips as a naive pinger would see them on the ping channel (from handling
            # time, with the responder's hold left in), kept beside the corrected ones.
            RTTTracker(clock, cfg.rtt_window),
            self._telemetry,
            lambda: self.watchdog.last_stall_end_ms,
            self._on_rtt_sample,
        )
        self.inputs = InputPath(
            player_index,
            peer_index,
            self._deliver_input,
            clock,
            cfg,
            self.paths,
            self.health,
            trackers,
            self._observe_health,
        )
        self.inputs.router.subscribe(self._on_route_change)
        self.control = ReliableControlChannel(
            self._transmit_control,
            self._on_control_message,
            clock=clock,
            scheduler=scheduler,
            rtt_hint=self._ping_rtt,
        )
        self.desync = DesyncChecker(
            lambda payload: self._send_control(ControlKind.STATE_HASH, payload), self._on_desync
        )
        # The same messages for a version-1 peer, in its own layouts (from when it is known to
        # be one: see _check_peer_version).
        self.v1_control = VersionOneControl(
            lambda packet: self.paths.send_small(Link.P2P, packet),
            self._on_control_message,
            lambda: self.desync.episode,
        )
        self._peer_is_v1 = False
        self._peer_is_v2 = False
        #: The deployed peers' validation of each new DataChannel, run both ways.
        self.validation = Validation(clock)
        self._report = SessionReport(self, self._telemetry, clock)
        # The last input packet of the peer's handled, with its current frame and inputs: in the
        # default parallel route every packet comes twice, and the second copy only needs counting.
        self._last_input: tuple[bytes, int, Inputs] | None = None
        self._ping_timer: object | None = None
        # Resends pending acked inputs while the game sends none; runs from negotiation to close().
        self._resend_timer: object | None = None
        self._watchdog_timer: object | None = None
        # Sends this side's validation pings after a channel opens, until they are answered.
        self._validation_timer: object | None = None
        # Set by close(): unlike a closed channel, which a reconnection reopens, it is final, so a
        # late open event cannot start a timer nothing would stop.
        self._shut_down = False
        self._handlers: dict[int, Callable[[Any, Link], None]] = {
            MessageType.PING: self.pinger.on_ping,
            MessageType.PONG: self.pinger.on_pong,
            MessageType.KEEPALIVE: self._on_keepalive,
            MessageType.VALIDATION_PING: self._on_validation_ping,
            MessageType.VALIDATION_PONG: self._on_validation_pong,
            MessageType.INPUT_REQUEST: self.inputs.on_input_request,
            MessageType.INPUT_RESPONSE: self._on_input_response,
            MessageType.FOCUS_STATE: self._on_focus_state,
            MessageType.EPISODE_END: self._on_version_one_control,
            MessageType.EPISODE_READY: self._on_version_one_control,
            MessageType.STATE_HASH: self._on_version_one_control,
            MessageType.CONTROL: self._on_control_packet,
            MessageType.CONTROL_ACK: self._on_control_ack,
        }
        self._observe_health()

    # --- the channels' events -----------------------------------------------------------------

    @property
    def clock(self) -> Clock:
        """The clock the session was given (milliseconds), for layers built on it."""
        return self._clock

    @property
    def channel(self) -> DataChannelLike | None:
        return self.paths.p2p

    def attach_channel(self, channel: DataChannelLike | None) -> None:
        """Use ``channel`` for the peer-to-peer path (a new connection after a failure)."""
        self.paths.p2p = channel

    def attach_ping_channel(self, channel: PingChannelLike | None) -> None:
        """Measure RTT on ``channel``, whose messages come with their arrival time.

        In the browser it is a second DataChannel held by a worker, which notes when each message
        arrived and when each ping and pong left, even while the page's main thread is busy.
        Pings there are answered with a pong that carries the hold time (arrival to departure),
        and a round trip runs from the ping's departure to the pong's arrival, so neither side's
        stalls count as network delay. It is used once the peer has answered on it; a peer
        without one gets the pings on the DataChannel as before.
        """
        self.pinger.attach_ping_channel(channel)

    @property
    def ping_timer_running(self) -> bool:
        return self._ping_timer is not None

    @property
    def resend_timer_running(self) -> bool:
        return self._resend_timer is not None

    @property
    def watchdog_running(self) -> bool:
        return self._watchdog_timer is not None

    def on_open(self) -> None:
        """The DataChannel opened: start measuring it. Ignored once :meth:`close` was called."""
        if self._shut_down:
            return
        self.state = SessionState.OPEN
        # The channel opening is the peer answering: it counts as hearing from it.
        self.watchdog.heard_again()
        self.health.reset()
        if self._ping_timer is None:
            self._ping_timer = self._every(
                self.config.ping_interval_ms, self._ping_tick, "ping timer"
            )
        self.validation.opened()
        if self._validation_timer is None:
            self._validation_timer = self._every(
                VALIDATION_TICK_MS, self._validation_tick, "validation timer"
            )

    def on_close(self) -> None:
        """The DataChannel closed; the relay, if any, keeps carrying inputs."""
        self._clear_timer("_ping_timer")
        self._clear_timer("_validation_timer")
        if self.state is not SessionState.FAILED:
            self.state = SessionState.CLOSED

    def on_failed(self) -> None:
        """The peer connection failed (ICE failure, or the channel reported an error)."""
        self._clear_timer("_ping_timer")
        self._clear_timer("_validation_timer")
        self.state = SessionState.FAILED

    def on_message(self, data: Buffer) -> None:
        """A packet arrived on the DataChannel."""
        self._receive(data, _P2P)

    def on_relay_message(self, data: Buffer) -> None:
        """A packet arrived through the Socket.IO relay."""
        self._receive(data, _RELAY)

    def on_text_message(self, text: str) -> None:
        """A text (not binary) message arrived on the DataChannel: deployed peers send one JSON
        greeting after validating. Counted and otherwise ignored; the protocol is binary."""
        self.watchdog.note_awake()
        self.text_messages += 1

    def on_ping_channel_message(
        self, data: bytes | bytearray | memoryview, arrival_ms: float
    ) -> None:
        """A packet arrived on the ping channel at ``arrival_ms`` (this session's clock)."""
        stats = self.paths.stats[Link.P2P]
        view = self._arrived(data, stats, self._clock())
        message = None if view is None else self._decode_counted(view, stats)
        if message is None:
            return
        try:
            if message.type is MessageType.HELD_PONG:
                self.inputs.negotiation.heard_extension()
            self.pinger.on_ping_channel_message(message, arrival_ms)
        except Exception:
            self.handler_errors += 1
            logger.exception("handling a %s message on the ping channel failed", message.type.name)

    def on_ping_left(self, timestamp_ms: float, left_ms: float) -> None:
        """The ping channel's report that the ping stamped ``timestamp_ms`` left at ``left_ms``
        (this session's clock): its round trip is timed from then."""
        self.pinger.on_ping_left(timestamp_ms, left_ms)

    # --- what the game calls ------------------------------------------------------------------

    def step(self, frame: int, action: int) -> bool:
        """Send the local input for ``frame`` on the route the router picks (by default over P2P
        and, in parallel, over the relay).

        Every path carries the same packet; the peer delivers whichever copy arrives first.
        Returns whether any path took it.
        """
        self.watchdog.note_awake()
        sent = self.inputs.send_local_input(frame, action)
        self._check_peer_version()
        return sent

    def start_watchdog(self) -> None:
        """Start the watchdog timer: every ``keepalive_interval_ms`` it sends a keepalive over the
        DataChannel if nothing else went out on it since the last check, and reports the peer's
        silence through ``on_event``. Runs until :meth:`close`; calling it again does nothing."""
        if self._shut_down or self._watchdog_timer is not None:
            return
        self.watchdog.start()
        self._watchdog_timer = self._every(
            self.config.keepalive_interval_ms, self._watchdog_tick, "watchdog"
        )

    @property
    def peer_silence_ms(self) -> float:
        """Time since a packet last arrived on any path (or since the watchdog started)."""
        return self.watchdog.peer_silence_ms

    def ping(self) -> None:
        """Ping the peer over the DataChannel now (the timer does this every interval)."""
        self.pinger.ping(Link.P2P)

    def ping_relay(self) -> None:
        """Ping the peer through the relay now."""
        self.pinger.ping(Link.RELAY)

    def send_keepalive(self) -> bool:
        return self.paths.send_small(Link.P2P, encode_keepalive())

    def send_control(self, kind: int, payload: bytes = b"") -> int | None:
        """Send the game's own control message reliably; return its sequence number.

        The peer's ``on_control(kind, payload)`` hears it exactly once, after every earlier control
        message. ``kind`` is in ``GAME_KIND_MIN..GAME_KIND_MAX`` (the kinds below are the
        transport's), ``payload`` at most :data:`~p2p_transport.wire.codec.MAX_CONTROL_PAYLOAD`
        bytes. Raises :class:`~p2p_transport.protocol.control.ControlWindowFull` when too many
        messages are unacknowledged, and
        :class:`~p2p_transport.protocol.v1_control.VersionOneError` once the peer is known to be
        a version-1 peer (a deployed JavaScript peer), which has no such messages.
        """
        if isinstance(kind, bool) or not isinstance(kind, int):
            raise ValueError(f"kind must be an int, got {type(kind).__name__}")
        if not GAME_KIND_MIN <= kind <= GAME_KIND_MAX:
            raise ValueError(f"game control kinds are {GAME_KIND_MIN}..{GAME_KIND_MAX}, got {kind}")
        return self._send_control(kind, payload)

    def send_episode_end(self, frame: int, episode: int) -> int | None:
        """Tell the peer that ``episode`` ended at ``frame`` (``EPISODE_END``): reliably, with a
        sequence number returned, or to a version-1 peer in its own layout (``None``)."""
        payload = encode_episode_end_payload(frame, episode)
        return self._send_control(ControlKind.EPISODE_END, payload)

    def send_episode_ready(self, episode: int, state_hash: str | None = None) -> int | None:
        """Tell the peer that this side is ready for ``episode`` (``EPISODE_READY``), as
        :meth:`send_episode_end` does. ``state_hash``, 8 ASCII characters (the first 8 hex digits
        of the new episode's state hash), goes only to a version-1 peer, which stores it."""
        payload = encode_episode_ready_payload(episode)
        if state_hash is not None:
            self.v1_control.remember_ready_hash(episode, state_hash)
        return self._send_control(ControlKind.EPISODE_READY, payload)

    def send_time_sync(self, payload: bytes) -> int | None:
        """Send the rollback layer's frame-advantage report (``TIME_SYNC``) reliably; it reaches
        the peer's ``on_control``. Raises as :meth:`send_control` does."""
        return self._send_control(ControlKind.TIME_SYNC, payload)

    def reset_episode(self) -> None:
        """Forget inputs and frame numbers for a new episode; keep the connection and RTT."""
        self.inputs.reset()
        self.watchdog.keep_silence_across_reset()
        self.health.reset()
        # The control channel is left alone: its messages in flight announce the episode change.

    def close(self) -> None:
        """Stop all timers and let go of the channel and relay. Safe to call more than once."""
        self._shut_down = True
        for name in ("_ping_timer", "_validation_timer", "_resend_timer", "_watchdog_timer"):
            self._clear_timer(name)
        self.watchdog.stop()
        self.paths.close()
        self.pinger.close()
        self.control.close()
        self.state = SessionState.CLOSED

    def stats(self) -> dict[str, Any]:
        """Every counter and RTT figure as a flat, JSON-serialisable dict."""
        return self._report.stats()

    def telemetry(self) -> dict[str, Any]:
        """What the experiment keeps: a JSON-serialisable record of this session so far (see
        :meth:`.report.SessionReport.telemetry`)."""
        return self._report.telemetry()

    def route_changes(self) -> list[dict[str, Any]]:
        """The route changes telemetry kept (``RouteChange.as_dict``), oldest first."""
        return self._telemetry.routes.records()

    # --- timers -------------------------------------------------------------------------------

    def _every(self, interval_ms: float, tick: Callable[[], None], what: str) -> object:
        """Start a timer running ``tick``; an exception in it is a bug, logged and counted in
        ``handler_errors``, never raised into the scheduler."""

        def guarded() -> None:
            try:
                tick()
            except Exception:
                self.handler_errors += 1
                logger.exception("%s failed", what)

        return self._scheduler.set_interval(guarded, interval_ms)

    def _clear_timer(self, name: str) -> None:
        """Stop the timer held in attribute ``name``, if it runs."""
        timer = getattr(self, name)
        if timer is not None:
            setattr(self, name, None)
            self._scheduler.clear_interval(timer)

    def _ping_tick(self) -> None:
        self.watchdog.note_awake()
        self._telemetry.record_loss(self._clock(), self.health.loss_estimate)
        self._observe_health()
        if self.paths.is_open(Link.P2P):
            self.ping()
        if self.config.relay_pings and self.paths.is_open(Link.RELAY):
            self.ping_relay()
        self._check_peer_version()

    def _resend_tick(self) -> None:
        self.watchdog.note_awake()
        self.inputs.resend_if_idle()

    def _watchdog_tick(self) -> None:
        self.watchdog.tick()
        self._observe_health()

    def _validation_tick(self) -> None:
        self.watchdog.note_awake()
        validation = self.validation
        if validation.ping_due() and self.paths.is_open(Link.P2P):
            now = self._clock()
            if self.paths.send_small(Link.P2P, encode_validation_ping(now)):
                validation.ping_sent(now)
        if validation.finished:
            self._clear_timer("_validation_timer")

    # --- packets in ---------------------------------------------------------------------------

    def _arrived(self, data: Buffer, stats: PathStats, now: float) -> ByteView | None:
        """Count a packet on its path and return its bytes; anything that is not a buffer is
        counted as garbage and gives None."""
        # Before the packet is recorded: a stall that ends here is left out of the silence.
        self.watchdog.note_awake(now)
        stats.packets_received += 1
        try:
            stats.bytes_received += len(data)
            return byte_view(data)
        except (DecodeError, TypeError):
            stats.decode_errors += 1
            return None

    def _decode_counted(self, view: ByteView, stats: PathStats) -> Message | None:
        """Decode a packet; garbage is counted and gives None."""
        try:
            return decode(view)
        except DecodeError:
            stats.decode_errors += 1
            return None

    def _heard(self, path: Link, input_frame: int | None, now: float) -> None:
        """A packet of the peer's came on ``path`` (``input_frame``: an input packet's)."""
        if path is _P2P:
            self.health.record_packet(input_frame, now)
        else:
            self.watchdog.relay_heard(now)

    def _receive(self, data: Buffer, path: Link) -> None:
        # One clock reading for everything this packet records.
        now = self._clock()
        stats = self.paths.stats[path]
        view = self._arrived(data, stats, now)
        if view is None:
            return
        last = self._last_input
        if last is not None and view == last[0]:
            # The input packet just handled, again (the other path's copy, or a duplicate):
            # counted as handling it again would count it, without decoding and applying it.
            self._heard(path, last[1], now)
            self.inputs.receiver.count_repeat(last[2])
            return
        kind = view[0] if view else None
        if kind in (ACKED_INPUT_TYPE, INPUT_TYPE):
            self._receive_inputs(view, kind == ACKED_INPUT_TYPE, path, stats, now)
            return
        message = self._decode_counted(view, stats)
        if message is None:
            return
        try:
            self._heard(path, None, now)
            self._handlers[message.type](message, path)
        except Exception:
            self.handler_errors += 1
            logger.exception("handling a %s message failed", message.type.name)

    def _receive_inputs(
        self, view: ByteView, acked: bool, path: Link, stats: PathStats, now: float
    ) -> None:
        """An input packet, most of what arrives: read into its fields, with no message object."""
        ack: int | None = None
        try:
            if acked:
                player, frame, ack, inputs = decode_acked_input_fields(view)
            else:
                player, frame, inputs = decode_input_fields(view)
        except DecodeError:
            stats.decode_errors += 1
            return
        try:
            if player == self.peer_index:
                # Kept as bytes (bytes are kept as they are): a memoryview would change with the
                # buffer it looks into.
                self._last_input = (bytes(view), frame, inputs)
            self._heard(path, frame, now)
            if not acked:
                self.inputs.on_inputs(player, inputs, False, path)
            elif (
                self.inputs.on_acked_inputs(player, ack, inputs, path)
                and self._resend_timer is None
                and not self._shut_down
            ):
                self._resend_timer = self._every(
                    RESEND_INTERVAL_MS, self._resend_tick, "resend timer"
                )
        except Exception:
            self.handler_errors += 1
            logger.exception("handling an input packet failed")

    def _on_input_response(self, response: InputResponse, path: Link) -> None:
        self.inputs.on_inputs(response.player_index, response.inputs, False, path)

    def _on_keepalive(self, _message: Message, _path: Link) -> None:
        """Nothing to do beyond the health bookkeeping every packet gets."""

    def _on_validation_ping(self, ping: ValidationPing, path: Link) -> None:
        # Every one is answered, as deployed peers do: the pong is what validates the sender.
        self.validation.on_peer_ping()
        self.paths.send_small(path, encode_validation_pong(ping.timestamp_ms))

    def _on_validation_pong(self, pong: ValidationPong, _path: Link) -> None:
        self.validation.on_pong(pong.timestamp_ms)

    def _on_focus_state(self, focus: FocusState, _path: Link) -> None:
        self._on_watchdog_event(
            SessionEvent.PEER_FOCUS, {"focused": focus.focused, "frame": focus.frame}
        )

    # --- control messages ---------------------------------------------------------------------

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
        for path in Link:
            if path is Link.RELAY and not self.config.control_on_relay:
                continue
            if self.paths.is_open(path):
                sent = self.paths.send_small(path, packet) or sent
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
        elif self.callbacks.on_control is not None:
            self.callbacks.on_control(kind, payload)

    def _send_control(self, kind: int, payload: bytes) -> int | None:
        if self._peer_is_v1:
            self.v1_control.send(kind, payload)
            return None
        return self.control.send(kind, payload)

    def _check_peer_version(self) -> None:
        """Move control to the version-1 layouts once the peer is known to be version 1: its
        probes went unanswered, or (with no inputs to probe) its control messages did."""
        if self._peer_is_v1 or self._peer_is_v2:
            return
        negotiation = self.inputs.negotiation
        version = negotiation.peer_version
        # Version 2 is final: once the peer spoke it, nothing here can change again.
        self._peer_is_v2 = version == 2
        if (
            version is None
            and self.control.most_sends >= MAX_UNANSWERED_CONTROL_SENDS
            and self.health.last_packet_at_ms is not None
        ):
            negotiation.control_unanswered()
            version = 1
        if version == 1:
            self._control_to_version_one()

    def _control_to_version_one(self) -> None:
        """The peer is a version-1 peer: stop sending it control messages, which it drops, and
        send what it has not acknowledged in its own layouts where it has them."""
        self._peer_is_v1 = True
        self.desync.compared_bytes = V1_HASH_SIZE
        for kind, payload in self.control.take_unacknowledged():
            try:
                self.v1_control.send(kind, payload)
            except VersionOneError:
                self.control_undeliverable += 1
                logger.warning(
                    "control message of kind %d cannot be sent to a version-1 peer; dropped", kind
                )

    def _on_version_one_control(
        self, message: EpisodeEnd | EpisodeReady | StateHash, _path: Link
    ) -> None:
        self.v1_control.on_message(message)

    def _on_control_packet(self, message: ControlMessage, _path: Link) -> None:
        self.inputs.negotiation.heard_extension()
        self.control.on_control(message)

    def _on_control_ack(self, message: ControlAck, _path: Link) -> None:
        self.inputs.negotiation.heard_extension()
        control = self.control
        acked_before = control.counters.acked
        control.on_ack(message)
        newly = control.counters.acked - acked_before
        if newly:
            now = self._clock()
            for delivery_ms in control.delivery_times_ms[-newly:]:
                self._telemetry.record_control_delivery(now, delivery_ms)

    # --- the game's callbacks -----------------------------------------------------------------

    def _deliver_input(self, frame: int, action: int) -> None:
        self.callbacks.on_input(frame, action)

    def _on_desync(self, desync: Desync) -> None:
        if self.callbacks.on_desync is not None:
            self.callbacks.on_desync(desync)

    def _on_route_change(self, change: RouteChange) -> None:
        self._telemetry.record_route_change(change)
        if self.callbacks.on_route_change is not None:
            self.callbacks.on_route_change(change)

    def _on_rtt_sample(self, rtt_ms: float, path: Link) -> None:
        if path is Link.P2P:
            self._observe_health()  # the RTT is one of the status's inputs
        self._call_game(self.callbacks.on_rtt, rtt_ms, path, what="on_rtt")

    def _on_watchdog_event(self, event: SessionEvent, detail: dict[str, Any]) -> None:
        self._call_game(self.callbacks.on_event, event, detail, what=f"on_event ({event.value})")

    def _call_game(self, callback: Callable[..., Any] | None, *args: Any, what: str) -> None:
        if callback is not None and not call_guarded(callback, *args, what=what):
            self.callback_errors += 1

    def _observe_health(self) -> None:
        """Evaluate the health status and let telemetry record it if it changed. Called where
        the status's inputs change or time has passed: the watchdog and ping ticks (silence),
        each P2P RTT sample, and the peer's stall starting or ending."""
        self._telemetry.observe_health(self._clock(), self.health.status)

"""Packets in: each counted on its path, decoded once, and handed to the piece it is for.

Input packets, most of what arrives, are read into their fields with no message object; in the
default parallel route each comes twice (DataChannel and relay), and the second copy is only
counted. Everything else is decoded into a message and dispatched by its type. Nothing a peer
sends raises out of here: garbage is counted, and a handler's exception (a bug) is logged and
counted in ``handler_errors``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Final

from p2p_transport.protocol.health import ConnectionHealthMonitor
from p2p_transport.protocol.routing import Link
from p2p_transport.protocol.validation import Validation
from p2p_transport.session.control_routing import ControlRouting
from p2p_transport.session.counters import SessionCounters
from p2p_transport.session.inputs import InputPath
from p2p_transport.session.paths import Paths, PathStats
from p2p_transport.session.pinger import Pinger
from p2p_transport.session.watchdog import SessionEvent, SessionEventCallback, Watchdog
from p2p_transport.timing import Clock
from p2p_transport.wire.codec import (
    ACKED_INPUT_TYPE,
    INPUT_TYPE,
    Buffer,
    ByteView,
    DecodeError,
    Inputs,
    byte_view,
    decode,
    decode_acked_input_fields,
    decode_input_fields,
    encode_validation_pong,
)
from p2p_transport.wire.messages import (
    FocusState,
    InputResponse,
    Message,
    MessageType,
    ValidationPing,
    ValidationPong,
)

__all__ = ["Intake"]

logger = logging.getLogger(__name__)

# Named for every packet: a member named through its enum class costs about 75 ns in CPython 3.11.
_P2P: Final = Link.P2P


class Intake:
    """Takes one session's packets in (:meth:`receive`, :meth:`receive_on_ping_channel`).

    ``start_resend()`` is called when acked inputs are settled by a packet of the peer's;
    ``on_event`` hears the peer's focus changes.
    """

    def __init__(
        self,
        peer_index: int,
        clock: Clock,
        counters: SessionCounters,
        paths: Paths,
        health: ConnectionHealthMonitor,
        watchdog: Watchdog,
        pinger: Pinger,
        inputs: InputPath,
        validation: Validation,
        routing: ControlRouting,
        start_resend: Callable[[], None],
        on_event: SessionEventCallback,
    ) -> None:
        self._peer_index = peer_index
        self._clock = clock
        self._counters = counters
        self._paths = paths
        self._health = health
        self._watchdog = watchdog
        self._pinger = pinger
        self._inputs = inputs
        self._validation = validation
        self._start_resend = start_resend
        self._on_event = on_event
        #: The peer's last input packet handled, with its current frame and inputs: a packet
        #: equal to it (the other path's copy, or a duplicate) is only counted, as handling it
        #: again would count it. ``None`` makes the next one be handled in full.
        self.last_input: tuple[bytes, int, Inputs] | None = None
        self._handlers: dict[int, Callable[[Any, Link], None]] = {
            MessageType.PING: pinger.on_ping,
            MessageType.PONG: pinger.on_pong,
            MessageType.KEEPALIVE: self._on_keepalive,
            MessageType.VALIDATION_PING: self._on_validation_ping,
            MessageType.VALIDATION_PONG: self._on_validation_pong,
            MessageType.INPUT_REQUEST: inputs.on_input_request,
            MessageType.INPUT_RESPONSE: self._on_input_response,
            MessageType.FOCUS_STATE: self._on_focus_state,
            MessageType.EPISODE_END: routing.on_version_one_control,
            MessageType.EPISODE_READY: routing.on_version_one_control,
            MessageType.STATE_HASH: routing.on_version_one_control,
            MessageType.CONTROL: routing.on_control_packet,
            MessageType.CONTROL_ACK: routing.on_control_ack,
        }

    def receive(self, data: Buffer, path: Link) -> None:
        """A packet arrived on ``path``."""
        # One clock reading for everything this packet records.
        now = self._clock()
        stats = self._paths.stats[path]
        view = self._arrived(data, stats, now)
        if view is None:
            return
        last = self.last_input
        if last is not None and view == last[0]:
            # The input packet just handled, again: counted as handling it again would count it,
            # without decoding and applying it.
            self._heard(path, last[1], now)
            self._inputs.receiver.count_repeat(last[2])
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
            self._counters.handler_errors += 1
            logger.exception("handling a %s message failed", message.type.name)

    def receive_on_ping_channel(self, data: Buffer, arrival_ms: float) -> None:
        """A packet arrived on the ping channel at ``arrival_ms`` (the session's clock)."""
        stats = self._paths.stats[_P2P]
        view = self._arrived(data, stats, self._clock())
        message = None if view is None else self._decode_counted(view, stats)
        if message is None:
            return
        try:
            # Only a peer of this package opens the ping channel: whatever comes on it says so,
            # as early as its first ping (a deployed version-1 peer has none).
            negotiation = self._inputs.negotiation
            negotiation.last_heard_ms = arrival_ms
            negotiation.heard_extension()
            self._pinger.on_ping_channel_message(message, arrival_ms)
        except Exception:
            self._counters.handler_errors += 1
            logger.exception("handling a %s message on the ping channel failed", message.type.name)

    def _arrived(self, data: Buffer, stats: PathStats, now: float) -> ByteView | None:
        """Count a packet on its path and return its bytes; anything that is not a buffer is
        counted as garbage and gives None."""
        # Before the packet is recorded: a stall that ends here is left out of the silence.
        self._watchdog.note_awake(now)
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
        self._inputs.negotiation.last_heard_ms = now
        if path is _P2P:
            self._health.record_packet(input_frame, now)
        else:
            self._watchdog.relay_heard(now)

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
            if player == self._peer_index:
                # Kept as bytes (bytes are kept as they are): a memoryview would change with the
                # buffer it looks into.
                self.last_input = (bytes(view), frame, inputs)
            self._heard(path, frame, now)
            if not acked:
                self._inputs.on_inputs(player, inputs, False, path)
            elif self._inputs.on_acked_inputs(player, ack, inputs, path):
                self._start_resend()
        except Exception:
            self._counters.handler_errors += 1
            logger.exception("handling an input packet failed")

    # --- the messages no other piece takes ----------------------------------------------------

    def _on_input_response(self, response: InputResponse, path: Link) -> None:
        self._inputs.on_inputs(response.player_index, response.inputs, False, path)

    def _on_keepalive(self, _message: Message, _path: Link) -> None:
        """Nothing to do beyond the health bookkeeping every packet gets."""

    def _on_validation_ping(self, ping: ValidationPing, path: Link) -> None:
        # Every one is answered, as deployed peers do: the pong is what validates the sender.
        self._validation.on_peer_ping()
        self._paths.send_small(path, encode_validation_pong(ping.timestamp_ms))

    def _on_validation_pong(self, pong: ValidationPong, _path: Link) -> None:
        self._validation.on_pong(pong.timestamp_ms)

    def _on_focus_state(self, focus: FocusState, _path: Link) -> None:
        self._on_event(SessionEvent.PEER_FOCUS, {"focused": focus.focused, "frame": focus.frame})

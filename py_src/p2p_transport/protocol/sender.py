"""Sends the local player's inputs with redundancy, and holds back when the channel is congested."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Final, Protocol

from p2p_transport.errors import UsageError
from p2p_transport.protocol.recorded_inputs import RecordedInputs
from p2p_transport.wire.codec import (
    INPUT_SIZE,
    MAX_INPUTS_PER_PACKET,
    encode_input_packet,
    pack_input_head,
)

__all__ = [
    "DEFAULT_BUFFER_THRESHOLD",
    "DEFAULT_REDUNDANCY",
    "DEFAULT_WINDOW",
    "DataChannelLike",
    "P2PInputSender",
    "QueueBound",
    "RedundantInputs",
    "SenderCounters",
    "try_send",
]

logger = logging.getLogger(__name__)

#: Each input rides in its own packet and the next two: one lost packet in three loses nothing.
DEFAULT_REDUNDANCY: Final = 3
#: How many past inputs are kept; 10 frames (167 ms at 60 Hz) covers any redundancy up to 10.
DEFAULT_WINDOW: Final = 10
#: 16 KiB queued in the DataChannel is about 200 input packets, over 3 s of input at 60 Hz: the
#: link is not keeping up, and queueing more only adds delay to inputs that are already late.
DEFAULT_BUFFER_THRESHOLD: Final = 16 * 1024


class DataChannelLike(Protocol):
    """The part of the browser's RTCDataChannel the transport uses."""

    @property
    def readyState(self) -> str: ...

    @property
    def bufferedAmount(self) -> int: ...

    def send(self, data: bytes) -> None: ...


@dataclass(slots=True)
class SenderCounters:
    packets_sent: int = 0
    bytes_sent: int = 0
    skipped_closed: int = 0
    skipped_congested: int = 0
    #: ``send`` raised (the channel closed between the check and the send).
    send_errors: int = 0


class QueueBound:
    """An upper bound on what a channel has queued, so that the congestion check need not read
    ``bufferedAmount`` for every packet: in a page each read is a call into JavaScript, which
    from a 60 Hz game loop costs tens of microseconds (``benchmarks/bench_page_step.py``).

    A channel's queue grows only by this side's sends and shrinks as they leave, so the last
    reading plus every byte sent since bounds it. The channel is read again only once that bound
    passes the threshold; the check then decides exactly as reading every time would. With the
    default 16 KiB threshold and input packets of a few dozen bytes, that is a read every few
    hundred packets. Every send on the channel must be :meth:`sent` here (the session's all go
    through :func:`try_send`).
    """

    __slots__ = ("_bound", "_channel")

    def __init__(self) -> None:
        self._channel: DataChannelLike | None = None
        self._bound: int | None = None

    def over(self, channel: DataChannelLike, threshold: int) -> bool:
        """Whether ``channel`` has more than ``threshold`` bytes queued."""
        if channel is not self._channel:
            self._channel, self._bound = channel, None
        bound = self._bound
        if bound is not None and bound <= threshold:
            return False
        amount = channel.bufferedAmount
        self._bound = amount
        return amount > threshold

    def sent(self, channel: DataChannelLike, size: int) -> None:
        if channel is self._channel and self._bound is not None:
            self._bound += size


def try_send(
    channel: DataChannelLike | None,
    data: bytes,
    buffer_threshold: int | None,
    counters: SenderCounters,
    send: Callable[[bytes], None] | None = None,
    bound: QueueBound | None = None,
) -> bool:
    """Send ``data`` if the channel is open and not congested; count what happened either way.

    ``buffer_threshold=None`` skips the congestion check (for tiny control messages). ``send``
    replaces ``channel.send`` (for a channel with more than one way to send). ``bound``, if
    given, stands in for reading ``bufferedAmount`` (see :class:`QueueBound`) and learns of the
    send.
    """
    if channel is None or channel.readyState != "open":
        counters.skipped_closed += 1
        return False
    if buffer_threshold is not None and (
        bound.over(channel, buffer_threshold)
        if bound is not None
        else channel.bufferedAmount > buffer_threshold
    ):
        counters.skipped_congested += 1
        return False
    try:
        (channel.send if send is None else send)(data)
    except Exception:
        # The channel can close between the readyState check and the send; a failed send is a
        # lost packet, which redundancy already covers, never a crash of the game loop.
        counters.send_errors += 1
        logger.debug("DataChannel send failed", exc_info=True)
        return False
    counters.packets_sent += 1
    counters.bytes_sent += len(data)
    if bound is not None:
        bound.sent(channel, len(data))
    return True


class RedundantInputs:
    """The last ``window`` local inputs, and the version-1 packet carrying the last
    ``redundancy`` of them: the packet-building half of :class:`P2PInputSender`, which the
    session uses to send the same packet on whichever paths it routes to."""

    def __init__(
        self,
        player_index: int,
        redundancy: int = DEFAULT_REDUNDANCY,
        window: int = DEFAULT_WINDOW,
    ) -> None:
        if not 1 <= redundancy <= MAX_INPUTS_PER_PACKET:
            raise UsageError(f"redundancy must be in 1..{MAX_INPUTS_PER_PACKET}, got {redundancy}")
        if window < redundancy:
            raise UsageError(f"window ({window}) must be at least redundancy ({redundancy})")
        encode_input_packet(player_index, 0, ())  # validates player_index with the codec's message
        self.player_index = player_index
        self.redundancy = redundancy
        self._window = RecordedInputs(window)

    @property
    def window(self) -> tuple[tuple[int, int], ...]:
        """The remembered ``(frame, action)`` inputs, oldest first."""
        return tuple(self._window.inputs)

    def add_and_pack(self, target_frame: int, action: int) -> bytes:
        """Add an input to the window and return the packet that carries it and its predecessors."""
        window = self._window
        window.keep(target_frame, action)
        count = min(self.redundancy, len(window))
        head = pack_input_head(self.player_index, target_frame, count)
        return head + window.entries[-count * INPUT_SIZE :]

    def pack_recent(self) -> bytes | None:
        """The packet of the last inputs, as many as one carries; ``None`` before any."""
        window = self._window
        count = min(MAX_INPUTS_PER_PACKET, len(window))
        if count == 0:
            return None
        head = pack_input_head(self.player_index, window.inputs[-1][0], count)
        return head + window.entries[-count * INPUT_SIZE :]

    def reset(self) -> None:
        """Forget the window (a new episode)."""
        self._window.clear()


class P2PInputSender:
    """Keeps the last ``window`` local inputs and sends the last ``redundancy`` in each packet
    over one channel, skipping (and counting) sends while it is closed or congested."""

    def __init__(
        self,
        channel: DataChannelLike | None,
        player_index: int,
        redundancy: int = DEFAULT_REDUNDANCY,
        window: int = DEFAULT_WINDOW,
        buffer_threshold: int = DEFAULT_BUFFER_THRESHOLD,
    ) -> None:
        self._inputs = RedundantInputs(player_index, redundancy, window)
        if buffer_threshold < 0:
            raise UsageError(f"buffer_threshold must not be negative, got {buffer_threshold}")
        self.channel = channel
        self.player_index = player_index
        self.redundancy = redundancy
        self.buffer_threshold = buffer_threshold
        self.counters = SenderCounters()

    @property
    def window(self) -> tuple[tuple[int, int], ...]:
        """The remembered ``(frame, action)`` inputs, oldest first."""
        return self._inputs.window

    def record(self, action: int, target_frame: int) -> bytes:
        """Add an input to the window and return the packet that carries it and its predecessors."""
        return self._inputs.add_and_pack(target_frame, action)

    def send(self, packet: bytes) -> bool:
        """Send an already encoded packet over the channel, unless it is closed or congested."""
        return try_send(self.channel, packet, self.buffer_threshold, self.counters)

    def record_and_send(self, action: int, target_frame: int) -> bool:
        """Record the input, then send it with its predecessors. False if nothing was sent."""
        return self.send(self.record(action, target_frame))

    def reset(self) -> None:
        """Forget the window (a new episode); counters are kept."""
        self._inputs.reset()

    def stats(self) -> dict[str, int]:
        return asdict(self.counters)

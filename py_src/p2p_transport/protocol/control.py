"""Reliable, ordered control messages over the unreliable DataChannel and relay.

Inputs tolerate loss because every packet repeats the recent ones; an episode ending, a peer
being ready, or a state hash does not repeat by itself, and a lost one stalls both games. Here each
control message gets a sequence number (:class:`~.codec.ControlMessage`) and is sent again, with
exponential backoff, until the peer's cumulative ack (:class:`~.codec.ControlAck`) covers it. The
receiver acknowledges every control message it sees, holds early arrivals until the gap before
them fills, and hands each message to its callback exactly once, in sequence order.

The retransmission timeout is QUIC's probe timeout (RFC 9002, 6.2.1) on RFC 6298's estimator:
SRTT and RTTVAR from round trips measured on messages sent only once (Karn's rule), RTO = SRTT +
max(4 RTTVAR, 1 ms) + :data:`MAX_ACK_DELAY_MS`, at most :data:`MAX_RTO_MS`, doubled for each
further timeout of the same message. Until the channel has measured a round trip itself it uses
the session's ping RTT, if any.

A lost message is usually noticed before its timeout: the receiver acks every arrival, so an ack
that comes back more than a round trip (plus a quarter for jitter, RACK's reordering window,
RFC 8985) after the first unacknowledged message was sent, and still does not cover it, was sent
after that message should have arrived; the message is resent at once.

Sans-IO: the caller passes a ``transmit`` function that puts bytes on the wire, feeds in what
arrives (:meth:`ReliableControlChannel.on_control`, :meth:`ReliableControlChannel.on_ack`), and
the retransmit timer runs on the injected scheduler only while something is unacknowledged.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Final

from p2p_transport._guard import call_guarded
from p2p_transport.errors import InvalidStateError, RemoteError, UsageError
from p2p_transport.protocol.rtt import nearest_rank, rfc6298_update
from p2p_transport.timing import Clock, Scheduler
from p2p_transport.wire.codec import (
    MAX_CONTROL_SEQUENCE,
    decode,
    encode_control,
    encode_control_ack,
)
from p2p_transport.wire.messages import ControlAck, ControlMessage

__all__ = [
    "DEFAULT_SEND_WINDOW",
    "DELIVERY_SAMPLES",
    "INITIAL_RTO_MS",
    "MAX_ACK_DELAY_MS",
    "MAX_RTO_MS",
    "MIN_RTO_MS",
    "TIMER_TICK_MS",
    "ControlCallback",
    "ControlChannelClosed",
    "ControlCounters",
    "ControlWindowFull",
    "RTTHint",
    "ReliableControlChannel",
]

logger = logging.getLogger(__name__)

#: Unacknowledged messages one side may have in flight, and so also the early arrivals the other
#: side buffers. A game sends a few control messages per episode; 32 outstanding means the link has
#: been down for many round trips, and refusing more tells the game so instead of queueing without
#: bound. At the 1024-byte payload limit the two buffers stay under 64 KiB.
DEFAULT_SEND_WINDOW: Final = 32
#: RFC 6298 (2.1): before any round trip is measured, wait a second before the first resend.
INITIAL_RTO_MS: Final = 1000.0
#: How long the peer may hold an ack, added to every timeout (QUIC's max_ack_delay, 25 ms by
#: default there). This receiver acks at once, from its message handler, but that handler runs only
#: between the peer's game steps: 50 ms is three 60 Hz frames. A longer step (a slow environment
#: step) costs a spurious resend of a few dozen bytes, which the peer drops as a duplicate; a
#: floor high enough to avoid that (this channel had 200 ms, Linux TCP's) would cost every lost
#: message that much more delay at an episode boundary, where both games wait for it.
MAX_ACK_DELAY_MS: Final = 50.0
#: RFC 9002's timer granularity: the least that 4 RTTVAR counts for.
_GRANULARITY_MS: Final = 1.0
#: The smallest timeout the formula gives (a round trip of 0): the granularity plus the ack delay.
MIN_RTO_MS: Final = _GRANULARITY_MS + MAX_ACK_DELAY_MS
#: RFC 6298 allows a 60 s ceiling, to spare a congested path; a game waiting on an episode message
#: cannot wait that long, and these messages hardly load a path: even a full window of 32 maximal
#: messages resent once a second is 33 KB/s, and the usual one is a few dozen bytes. A message
#: resent at least every second reaches the peer within a second of a broken link coming back.
MAX_RTO_MS: Final = 1000.0
#: How often the retransmit timer looks for due messages: a resend goes out at most 10 ms late,
#: a fifth of the smallest RTO. It runs only while a message is unacknowledged.
TIMER_TICK_MS: Final = 10.0
#: Delivery times (send to ack) kept for the percentiles: the last 1000 messages, which at a few
#: control messages per episode covers a whole experiment session.
DELIVERY_SAMPLES: Final = 1000
# RFC 6298 section 2: the RTO is SRTT plus 4 RTTVAR.
_K: Final = 4

#: RFC 8985's reordering window: a quarter of the RTT.
_REORDER_FRACTION: Final = 1 / 4

#: Called with each received message's kind and payload, in order, exactly once.
ControlCallback = Callable[[int, bytes], None]
#: ``(SRTT, RTTVAR)`` in ms measured elsewhere (the session's pings), or ``None``.
RTTHint = Callable[[], tuple[float, float] | None]


class ControlWindowFull(RemoteError, RuntimeError):
    """:meth:`ReliableControlChannel.send` refused a message: the send window is full.

    A :class:`~p2p_transport.errors.RemoteError`: the window fills because the peer has not
    acknowledged what was sent (a lossy or broken link, a stalled peer), which a correct caller
    meets at run time; it can send again once acknowledgements come. Also a ``RuntimeError``.
    """


class ControlChannelClosed(InvalidStateError):
    """:meth:`ReliableControlChannel.send` after :meth:`ReliableControlChannel.close` (or once
    its sequence numbers are spent).

    An :class:`~p2p_transport.errors.InvalidStateError` (a usage error, and a ``RuntimeError``
    as it was): only the owner closes the channel (the session, in its ``close()``), so a send
    after it is a call at the wrong time.
    """


@dataclass(slots=True)
class ControlCounters:
    #: Distinct messages sent (each counted once however often it was resent).
    sent: int = 0
    #: Sends of a message beyond its first.
    retransmits: int = 0
    #: Messages the peer's acks acknowledged.
    acked: int = 0
    #: Messages handed to the callback (each exactly once, in order).
    delivered: int = 0
    #: Copies of a message already delivered or already buffered.
    duplicates: int = 0
    #: Messages too far ahead of the next expected one to buffer; the peer resends them.
    out_of_window: int = 0
    #: Acks sent, one for each control message received.
    acks_sent: int = 0
    #: Acks covering a sequence this side never sent (a corrupt packet or a confused peer).
    implausible_acks: int = 0
    #: Exceptions raised by the delivery callback: logged and counted, never raised.
    callback_errors: int = 0


@dataclass(slots=True)
class _InFlight:
    packet: bytes
    first_sent_ms: float
    last_sent_ms: float
    sends: int = 1
    #: Resends because the timeout expired: the backoff's exponent. A resend on an ack's evidence
    #: does not count, as TCP's fast retransmit does not back off: the link is answering.
    timeouts: int = 0


class ReliableControlChannel:
    """One direction's sender and the other direction's receiver of control messages.

    ``transmit(packet)`` puts a packet on the wire (on whatever paths the owner chooses) and
    returns whether any path took it; a packet it could not send is simply sent again when due.
    ``on_message(kind, payload)`` hears each of the peer's messages once, in order.
    """

    def __init__(
        self,
        transmit: Callable[[bytes], bool],
        on_message: ControlCallback,
        *,
        clock: Clock,
        scheduler: Scheduler,
        window: int = DEFAULT_SEND_WINDOW,
        rtt_hint: RTTHint | None = None,
    ) -> None:
        if window < 1:
            raise UsageError(f"window must be at least 1, got {window}")
        self._transmit = transmit
        self._on_message = on_message
        self._clock = clock
        self._scheduler = scheduler
        self._rtt_hint = rtt_hint
        self.window = window
        self.counters = ControlCounters()
        # Sending: the next sequence number and what the peer has not acknowledged, oldest first.
        self._next_sequence = 0
        self._in_flight: dict[int, _InFlight] = {}
        self._timer: object | None = None
        self._closed = False
        # RFC 6298 state; None until the first round trip is measured.
        self.srtt_ms: float | None = None
        self.rttvar_ms: float | None = None
        self._delivery_ms: deque[float] = deque(maxlen=DELIVERY_SAMPLES)
        # Receiving: the next sequence to deliver, and early arrivals waiting for it.
        self._expected = 0
        self._early: dict[int, tuple[int, bytes]] = {}

    # --- sending ------------------------------------------------------------------------------

    @property
    def in_flight(self) -> int:
        """Messages sent and not yet acknowledged."""
        return len(self._in_flight)

    @property
    def window_full(self) -> bool:
        """Whether :meth:`send` would refuse another message until an acknowledgement comes."""
        return len(self._in_flight) >= self.window

    @property
    def most_sends(self) -> int:
        """How many times the most-sent unacknowledged message went out (0 with none)."""
        return max((entry.sends for entry in self._in_flight.values()), default=0)

    @property
    def timer_running(self) -> bool:
        return self._timer is not None

    @property
    def rto_ms(self) -> float:
        """The retransmission timeout for a message's first resend."""
        estimate = self._rtt_estimate()
        if estimate is None:
            return INITIAL_RTO_MS
        srtt, rttvar = estimate
        return min(MAX_RTO_MS, srtt + max(_K * rttvar, _GRANULARITY_MS) + MAX_ACK_DELAY_MS)

    def _rtt_estimate(self) -> tuple[float, float] | None:
        if self.srtt_ms is not None and self.rttvar_ms is not None:
            return self.srtt_ms, self.rttvar_ms
        return self._rtt_hint() if self._rtt_hint is not None else None

    def send(self, kind: int, payload: bytes = b"") -> int:
        """Send one message; return its sequence number.

        Raises :class:`ControlWindowFull` when ``window`` messages are unacknowledged,
        :class:`ControlChannelClosed` after :meth:`close`, and ``ValueError`` for a kind outside
        0..255 or a payload over :data:`~.codec.MAX_CONTROL_PAYLOAD` bytes.
        """
        if self._closed:
            raise ControlChannelClosed("the control channel is closed")
        if self.window_full:
            raise ControlWindowFull(
                f"{len(self._in_flight)} control messages are unacknowledged, the window's "
                f"limit: the peer is not acknowledging (is the link down?)"
            )
        sequence = self._next_sequence
        if sequence > MAX_CONTROL_SEQUENCE:
            raise ControlChannelClosed("control sequence numbers are exhausted")
        packet = encode_control(sequence, kind, payload)  # validates kind and payload
        self._next_sequence += 1
        now = self._clock()
        self._in_flight[sequence] = _InFlight(packet, now, now)
        self.counters.sent += 1
        self._transmit(packet)
        if self._timer is None:
            self._timer = self._scheduler.set_interval(self._on_timer, TIMER_TICK_MS)
        return sequence

    def on_ack(self, ack: ControlAck) -> None:
        """The peer holds every message up to ``ack.ack``: stop resending those."""
        if not self._in_flight:
            return
        acked = -1 if ack.ack is None else ack.ack
        if acked >= self._next_sequence:
            self.counters.implausible_acks += 1
            return
        now = self._clock()
        newly = [seq for seq in self._in_flight if seq <= acked]
        if newly:
            # Karn's rule: a resent message's ack may answer any of its copies, so it says nothing
            # about the round trip; and if a resend filled a gap, later messages' acks waited.
            # Nor may anything have been sent after the newest acked message: its arrival may
            # be what this ack answers, late, after a gap closed (an ack carries no echo of what
            # triggered it, as TCP's timestamps would).
            if acked == self._next_sequence - 1 and all(
                self._in_flight[seq].sends == 1 for seq in newly
            ):
                self._add_rtt_sample(now - self._in_flight[newly[-1]].first_sent_ms)
            for seq in newly:
                self._delivery_ms.append(now - self._in_flight.pop(seq).first_sent_ms)
            self.counters.acked += len(newly)
        if not self._in_flight:
            self._stop_timer()
            return
        # Early loss detection (see the module's docstring): only the first unacknowledged
        # message is known missing, since a cumulative ack says nothing about those after it.
        sequence, first = next(iter(self._in_flight.items()))
        estimate = self._rtt_estimate()
        if (
            sequence == acked + 1
            and estimate is not None
            and now - first.last_sent_ms > estimate[0] * (1 + _REORDER_FRACTION)
        ):
            self._resend(first, now)

    def _add_rtt_sample(self, rtt_ms: float) -> None:
        self.srtt_ms, self.rttvar_ms = rfc6298_update(self.srtt_ms, self.rttvar_ms, rtt_ms)

    def _on_timer(self) -> None:
        try:
            now = self._clock()
            rto = self.rto_ms
            # A copy: a transmit can bring the peer's ack back before it returns (a link that
            # delivers at once), and the ack removes entries.
            for entry in list(self._in_flight.values()):
                # Exponential backoff per message: each resend waits twice as long, capped. The
                # wait follows the current RTO, so a first measurement speeds up older messages.
                if now - entry.last_sent_ms >= min(MAX_RTO_MS, rto * 2**entry.timeouts):
                    entry.timeouts += 1
                    self._resend(entry, now)
        except Exception:
            # A timer callback has no caller to raise to; a failed resend is retried next tick.
            logger.exception("control retransmit timer failed")

    def _resend(self, entry: _InFlight, now: float) -> None:
        entry.sends += 1
        entry.last_sent_ms = now
        self.counters.retransmits += 1
        self._transmit(entry.packet)

    def _stop_timer(self) -> None:
        if self._timer is not None:
            timer, self._timer = self._timer, None
            self._scheduler.clear_interval(timer)

    # --- receiving ----------------------------------------------------------------------------

    @property
    def ack(self) -> int | None:
        """The highest sequence up to which every peer message arrived (``None``: none yet)."""
        return self._expected - 1 if self._expected else None

    def on_control(self, message: ControlMessage) -> None:
        """A peer message arrived: acknowledge it, and deliver whatever is now in order."""
        if self._closed:
            return
        sequence = message.sequence
        if sequence < self._expected or sequence in self._early:
            self.counters.duplicates += 1
        elif sequence >= self._expected + self.window:
            # The peer never has more than its window (the same default on both sides) in
            # flight; this far ahead, it is not following the protocol, and holding the message
            # would let it grow our memory.
            self.counters.out_of_window += 1
        else:
            self._early[sequence] = (message.kind, message.payload)
            self._deliver_in_order()
        # Every copy is acknowledged, duplicates too: a duplicate means the last ack was lost.
        self.counters.acks_sent += 1
        self._transmit(encode_control_ack(self.ack))

    def _deliver_in_order(self) -> None:
        while (ready := self._early.pop(self._expected, None)) is not None:
            # Counted as delivered before the callback runs, so a callback that raises cannot
            # make a message delivered twice.
            self._expected += 1
            self.counters.delivered += 1
            kind, payload = ready
            if not call_guarded(self._on_message, kind, payload, what=f"control (kind {kind})"):
                self.counters.callback_errors += 1

    # --- lifetime and figures -----------------------------------------------------------------

    def take_unacknowledged(self) -> list[tuple[int, bytes]]:
        """Close the channel and hand back what the peer has not acknowledged, as ``(kind,
        payload)`` oldest first: for a peer that turned out to speak no control messages."""
        pending = []
        for sequence in sorted(self._in_flight):
            message = decode(self._in_flight[sequence].packet)
            assert isinstance(message, ControlMessage)  # only control messages are in flight
            pending.append((message.kind, message.payload))
        self.close()
        return pending

    def close(self) -> None:
        """Stop the retransmit timer and forget what is unacknowledged. Safe to call again."""
        self._closed = True
        self._stop_timer()
        self._in_flight.clear()
        self._early.clear()

    def delivery_percentile_ms(self, fraction: float) -> float | None:
        """Nearest-rank percentile of the delivery times (first send to ack), or ``None``."""
        return nearest_rank(self._delivery_ms, fraction) if self._delivery_ms else None

    @property
    def delivery_p50_ms(self) -> float | None:
        return self.delivery_percentile_ms(0.50)

    @property
    def delivery_p99_ms(self) -> float | None:
        return self.delivery_percentile_ms(0.99)

    @property
    def delivery_times_ms(self) -> tuple[float, ...]:
        """The kept delivery times, oldest first (the last :data:`DELIVERY_SAMPLES`)."""
        return tuple(self._delivery_ms)

    def stats(self) -> dict[str, float | int | None]:
        """Counters and figures as a flat, JSON-serialisable dict."""
        out: dict[str, float | int | None] = dict(asdict(self.counters))
        out.update(
            in_flight=self.in_flight,
            rto_ms=self.rto_ms,
            srtt_ms=self.srtt_ms,
            delivery_p50_ms=self.delivery_p50_ms,
            delivery_p99_ms=self.delivery_p99_ms,
        )
        return out

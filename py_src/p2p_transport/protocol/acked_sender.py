"""Acknowledged redundancy: each local input rides in every packet until the peer acknowledges it.

Fixed redundancy sends each input in a fixed number of packets and hopes one arrives; a burst
longer than that loses the input. Here the peer's packets (:class:`~.codec.AckedInputPacket`)
carry its ack, the highest frame up to which it holds every input, and everything after that frame
goes out again in each packet, so an input is lost only if the link stays down longer than the
pending bound. Acknowledged inputs drop out, so on a good link a packet carries about one round
trip's worth of inputs.

This class is sans-IO: it builds packets and takes acks; the session sends the packets on the
paths it routes to, and runs the resend timer.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from itertools import islice
from typing import Final

from p2p_transport.errors import UsageError
from p2p_transport.protocol.recorded_inputs import RecordedInputs
from p2p_transport.protocol.sender import DEFAULT_REDUNDANCY
from p2p_transport.wire.codec import (
    INPUT_SIZE,
    MAX_ACKED_INPUTS_PER_PACKET,
    encode_acked_input_packet,
    pack_acked_input_head,
)

__all__ = ["PENDING_LIMIT", "RESEND_INTERVAL_MS", "AckedInputSender", "AckedSenderCounters"]

#: Every pending input rides in each packet, so a packet's limit is the pending bound: 64 inputs,
#: about a second at 60 Hz. An input the peer has not acknowledged after that is given up, and the
#: peer reported as stalled, rather than let memory and packets grow with a dead link.
PENDING_LIMIT: Final = MAX_ACKED_INPUTS_PER_PACKET
#: When no new local input has gone out for this long (a paused game), pending inputs are sent
#: again on a timer. 100 ms is six frames at 60 Hz: a running game, even one stepping at 20 Hz,
#: sends sooner, so the timer adds no packet during play; a paused game's last inputs are retried
#: ten times a second, so at 30% loss they reach the peer within 200 ms with probability 0.97
#: (1 - 0.3^2) though the game sends nothing. Once all is acknowledged the timer sends nothing.
RESEND_INTERVAL_MS: Final = 100.0


@dataclass(slots=True)
class AckedSenderCounters:
    #: Inputs the peer's acks acknowledged.
    inputs_acked: int = 0
    #: Acks for a frame this side never recorded (a corrupt packet, or one from before a reset).
    implausible_acks: int = 0
    #: Unacknowledged inputs dropped at the pending bound while the peer was expected to ack.
    inputs_abandoned: int = 0
    #: Times the peer became stalled (the first input abandoned after an ack).
    stalls: int = 0


class AckedInputSender:
    """Keeps the local inputs the peer has not acknowledged and builds the packets carrying them.

    Acks are cumulative, so the pending inputs are always the newest ones recorded: the last
    :data:`PENDING_LIMIT` inputs recorded hold them, and the ``redundancy`` most recent inputs
    that every packet carries even when acknowledged (a little extra against loss at no memory
    cost).
    """

    def __init__(self, player_index: int, redundancy: int = DEFAULT_REDUNDANCY) -> None:
        if not 1 <= redundancy <= PENDING_LIMIT:
            raise UsageError(f"redundancy must be in 1..{PENDING_LIMIT}, got {redundancy}")
        encode_acked_input_packet(player_index, 0, None, ())  # validates player_index
        self.player_index = player_index
        self.redundancy = redundancy
        #: Whether the peer is known to send acks. A version-1 peer never does, so until it is
        #: known, inputs past the bound drop out quietly instead of reporting a stall.
        self.acks_expected = False
        #: An unacknowledged input was given up since the peer's last ack that moved forward.
        self.stalled = False
        self.counters = AckedSenderCounters()
        self._recorded = RecordedInputs(PENDING_LIMIT)
        self._inputs = self._recorded.inputs
        self._acked_through: int | None = None
        # How many of the newest inputs are unacknowledged: kept as inputs and acks come, not
        # counted again for every packet.
        self._pending = 0

    @property
    def acked_through(self) -> int | None:
        """The highest frame the peer has acknowledged, or ``None``."""
        return self._acked_through

    @property
    def pending(self) -> tuple[tuple[int, int], ...]:
        """The ``(frame, action)`` inputs not yet acknowledged, oldest first."""
        return tuple(islice(self._inputs, len(self._inputs) - self._pending, None))

    @property
    def recorded(self) -> tuple[tuple[int, int], ...]:
        """The last :data:`PENDING_LIMIT` inputs recorded, acknowledged or not, oldest first."""
        return tuple(self._inputs)

    @property
    def pending_count(self) -> int:
        """How many inputs are not yet acknowledged."""
        return self._pending

    @property
    def has_pending(self) -> bool:
        return self._pending > 0

    def add_pending(self, target_frame: int, action: int) -> None:
        """Add the local input for ``target_frame``; it stays pending until acknowledged."""
        dropped = self._recorded.keep(target_frame, action)
        if dropped is None:
            self._pending += 1
        elif self._is_pending(dropped):
            # The oldest input made room for this one while pending: it is abandoned, and this
            # one pending instead leaves the count as it was.
            if self.acks_expected:
                self.counters.inputs_abandoned += 1
                if not self.stalled:
                    self.stalled = True
                    self.counters.stalls += 1
        else:
            self._pending += 1

    def on_ack(self, ack_frame: int | None) -> int:
        """Take the peer's ack; return how many pending inputs it acknowledged."""
        if ack_frame is None or not self._inputs:
            return 0
        if ack_frame > self._inputs[-1][0]:
            self.counters.implausible_acks += 1
            return 0
        through = self._acked_through
        if through is not None and ack_frame <= through:
            return 0  # nothing new, or an older ack overtaken by a newer one
        self._acked_through = ack_frame
        inputs, pending_before = self._inputs, self._pending
        # Frames increase, so the acknowledged ones are the oldest pending ones.
        while self._pending and inputs[-self._pending][0] <= ack_frame:
            self._pending -= 1
        newly = pending_before - self._pending
        self.counters.inputs_acked += newly
        self.stalled = False
        return newly

    def packet(self, ack_frame: int | None) -> bytes:
        """The packet for a new input: every pending input, and at least ``redundancy`` recent."""
        count = self._pending
        if count < self.redundancy:
            count = min(self.redundancy, len(self._inputs))
        return self._encode(ack_frame, count)

    def pending_packet(self, ack_frame: int | None) -> bytes:
        """The packet the resend timer sends: only the pending inputs, so with none pending it is
        a pure ack, which the peer does not answer (an answered ack would echo forever)."""
        return self._encode(ack_frame, self._pending)

    def reset(self) -> None:
        """Forget every input and ack (a new episode restarts frame numbers); counters are kept."""
        self._recorded.clear()
        self._acked_through = None
        self._pending = 0
        self.stalled = False

    def stats(self) -> dict[str, int]:
        return asdict(self.counters)

    def _is_pending(self, frame: int) -> bool:
        return self._acked_through is None or frame > self._acked_through

    def _encode(self, ack_frame: int | None, count: int) -> bytes:
        inputs = self._inputs
        current_frame = inputs[-1][0] if inputs else 0
        head = pack_acked_input_head(self.player_index, current_frame, ack_frame, count)
        # The newest ``count`` entries (none for a pure ack: a slice from -0 would be all).
        return head + self._recorded.entries[-count * INPUT_SIZE :] if count else head

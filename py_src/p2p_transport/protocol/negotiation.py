"""Which input message to send: version 1 (0x01) until the peer shows it understands acked inputs.

Deployed peers speak only version 1 and drop a message type they do not know, so a session must keep
sending them 0x01 exactly as before. Each side therefore starts with 0x01 and, once it hears the
peer's inputs (a peer is there and playing) or a message only this package sends (a peer that has no
inputs to send yet, say one waiting for this side's), also sends the same inputs as one 0x20 packet
every :data:`PROBE_INTERVAL_MS`. A peer that understands it now knows this side does too and answers
in 0x20; the first 0x20 packet received settles it, on both sides, for the rest of the session. A
version-1 peer drops the probes and goes on receiving 0x01; after :data:`MAX_PROBES` unanswered
probes this side stops sending them and takes the peer for a version-1 peer
(:attr:`AckNegotiation.peer_version`). A probe goes out only once a packet of the peer's came since
the one before, and a control message's resend counts as unanswered only while the peer is heard:
while the link is cut (every packet lost for seconds at a game's start, before the two settled)
nothing unanswered says anything about the peer's version, and counting it would take a peer of this
package for version 1 for good.
"""

from __future__ import annotations

from typing import Final

from p2p_transport.errors import UsageError
from p2p_transport.timing import Clock

__all__ = [
    "HEARD_RECENTLY_MS",
    "MAX_PROBES",
    "MAX_UNANSWERED_CONTROL_SENDS",
    "PROBE_INTERVAL_MS",
    "AckNegotiation",
]

#: A probe every 250 ms. Until the peer answers, this side sends 0x01 and keeps its inputs pending
#: for at most 64 frames (1.07 s at 60 Hz), so the answer should come well within that: either
#: side's probe getting through is enough, so at 30% loss a round fails with probability 0.09 and
#: four rounds (1 s) all fail with probability 7e-5. Against a version-1 peer it costs four
#: dropped packets a second beside sixty inputs.
PROBE_INTERVAL_MS: Final = 250.0
#: Probes sent before giving up on a peer that never answers: 8 (2 s of its inputs heard, each
#: probe after the peer was heard since the one before). Each side probes, and one probe getting
#: through settles it for both, so two peers of this package at 30% loss both ways fail to settle
#: with probability (0.3^8)^2, about 4e-9. A deployed version-1 peer logs each probe as an
#: unknown message type; eight is all it ever gets.
MAX_PROBES: Final = 8
#: Sends of one control message left unacknowledged, while the peer is heard, after which a peer
#: that has shown nothing of this package (no acked inputs: it sent no inputs to probe, say) is
#: taken for version 1: a control message's round trip fails at 30% loss each way with
#: probability 0.51, twelve in a row with 3e-4. So a version-1 peer gets a control message at
#: most twelve times.
MAX_UNANSWERED_CONTROL_SENDS: Final = 12
#: A control message's send counts as unanswered only if the peer's packets came within this
#: long: the retransmissions made while the link is cut say nothing of its version. A peer that
#: plays or keeps its channel alive sends several packets a second.
HEARD_RECENTLY_MS: Final = 1000.0


class AckNegotiation:
    """Tracks whether the peer speaks acked inputs, and when to probe it.

    With ``enabled`` false this side never probes and never switches (it still understands 0x20
    packets it receives, and delivers their inputs).
    """

    def __init__(
        self, clock: Clock, enabled: bool = True, probe_interval_ms: float = PROBE_INTERVAL_MS
    ) -> None:
        if not probe_interval_ms > 0:
            raise UsageError(f"probe_interval_ms must be positive, got {probe_interval_ms}")
        self._clock = clock
        self.enabled = enabled
        self.probe_interval_ms = probe_interval_ms
        #: The peer sent a 0x20 packet: from now on this side sends 0x20 only.
        self.peer_speaks_acked = False
        self.probes_sent = 0
        self._heard_peer_inputs = False
        self._heard_extension = False
        #: When the peer's last packet came, on either path (the session's intake sets it).
        self.last_heard_ms: float | None = None
        self._control_unanswered = False
        self._control_sends_seen = 0
        self._control_sends_heard = 0
        self._last_probe_ms: float | None = None
        self._last_unheard_resend_ms: float | None = None

    @property
    def peer_version(self) -> int | None:
        """2 once the peer sent a 0x20 packet, 1 once :data:`MAX_PROBES` went unanswered,
        ``None`` until one or the other."""
        if self.peer_speaks_acked or self._heard_extension:
            return 2
        return 1 if self.probes_sent >= MAX_PROBES or self._control_unanswered else None

    def control_sends(self, most_sends: int) -> None:
        """The most-sent unacknowledged control message has gone out ``most_sends`` times: once
        :data:`MAX_UNANSWERED_CONTROL_SENDS` of those sends were made while the peer was heard,
        unless it shows otherwise, it is a version-1 peer."""
        new = most_sends - self._control_sends_seen
        self._control_sends_seen = most_sends
        heard = self.last_heard_ms
        if new > 0 and heard is not None and self._clock() - heard < HEARD_RECENTLY_MS:
            self._control_sends_heard += new
            self._control_unanswered = self._control_sends_heard >= MAX_UNANSWERED_CONTROL_SENDS

    @property
    def use_acked(self) -> bool:
        """Send acked inputs (0x20) rather than version 1."""
        return self.enabled and self.peer_speaks_acked

    def heard_peer_inputs(self) -> None:
        """The peer sent a version-1 input packet: it is there, and may understand a probe."""
        self._heard_peer_inputs = True

    def heard_extension(self) -> None:
        """The peer sent a message version 1 does not have (a control message or its ack): it is
        a peer of this package, even with acked inputs off, so it is not taken for version 1."""
        self._heard_extension = True

    def heard_acked_inputs(self) -> bool:
        """The peer sent a 0x20 packet. Returns whether this settled the negotiation just now."""
        if not self.enabled or self.peer_speaks_acked:
            return False
        self.peer_speaks_acked = True
        return True

    def probe_due(self) -> bool:
        """Whether to send a 0x20 probe beside the version-1 packet now."""
        if (
            not self.enabled
            or self.peer_speaks_acked
            or not (self._heard_peer_inputs or self._heard_extension)
            or self.probes_sent >= MAX_PROBES
        ):
            return False
        last = self._last_probe_ms
        if last is None:
            return True
        heard = self.last_heard_ms
        return heard is not None and heard > last and self._clock() - last >= self.probe_interval_ms

    def take_unheard_resend(self) -> bool:
        """Whether to send the last version-1 inputs again now (then not for another interval):
        the peer has sent nothing at all, so this side cannot probe it, and two games stalled on
        first inputs that every copy of was lost would otherwise wait for each other for
        good. A version-1 peer takes them as the copies they are."""
        if self.peer_speaks_acked or self._heard_peer_inputs or self._heard_extension:
            return False
        now = self._clock()
        last = self._last_unheard_resend_ms
        if last is not None and now - last < self.probe_interval_ms:
            return False
        self._last_unheard_resend_ms = now
        return True

    def probe_sent(self) -> None:
        self.probes_sent += 1
        self._last_probe_ms = self._clock()

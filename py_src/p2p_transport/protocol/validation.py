"""The pre-game validation deployed interactive_gym / mug peers run on every new DataChannel.

Their protocol: 100 ms after the channel opens each side sends a validation ping (0x10), answers
every validation ping with a validation pong (0x11) echoing its timestamp, and counts the channel
validated once it has sent its ping, received a pong, and seen the peer's ping. A deployed peer
starts its game pings, and tells its server the pairing worked, only then; 15 s without it and
its server re-pairs both participants with someone else. So this side answers every 0x10 at once,
and sends its own 0x10 until the peer's pong shows it arrived (a deployed peer sends its own only
once, so a pong of this side's that is lost cannot be helped).

Sans-IO: the session calls :meth:`Validation.ping_due` from a timer and reports what arrives.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Final

from p2p_transport.timing import Clock

__all__ = [
    "MAX_VALIDATION_PINGS",
    "VALIDATION_DELAY_MS",
    "VALIDATION_RESEND_MS",
    "VALIDATION_TIMEOUT_MS",
    "Validation",
    "ValidationCounters",
]

#: The deployed peers' delay between the channel opening and their validation ping.
VALIDATION_DELAY_MS: Final = 100.0
#: Resent while no pong has come back: a quarter of a second is several round trips on any link
#: a game can be played over, so a pong still on its way is rarely overtaken by a resend.
VALIDATION_RESEND_MS: Final = 250.0
#: At most 12 pings (3 s): at 30% loss each way a round trip fails with probability 0.51, twelve
#: with 0.0003, and the deployed peer waits 15 s. A peer that answers none in 3 s does not speak
#: the validation at all, and is not sent it again.
MAX_VALIDATION_PINGS: Final = 12
#: The deployed peers report a channel that has not validated 15 s after it opened as failed, and
#: their server re-pairs both participants: after that, this channel's validation is moot.
VALIDATION_TIMEOUT_MS: Final = 15_000.0


@dataclass(slots=True)
class ValidationCounters:
    pings_sent: int = 0
    pongs_received: int = 0
    #: The peer's validation pings, each answered.
    peer_pings: int = 0
    #: Pongs echoing no ping of this side's (a duplicate, or a confused peer).
    unmatched_pongs: int = 0


class Validation:
    """One channel's validation, from :meth:`opened` until it is validated or gives up."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self.counters = ValidationCounters()
        self._opened_at: float | None = None
        self._last_ping_at: float | None = None
        # This channel's pings, by timestamp (the counters span every channel of the session).
        self._sent: set[float] = set()
        self._got_pong = False
        self._seen_peer_ping = False
        #: When the channel counted as validated (this session's clock), if it has.
        self.validated_at_ms: float | None = None

    def opened(self) -> None:
        """A new channel opened: validation starts over."""
        self._opened_at = self._clock()
        self._last_ping_at = None
        self._sent.clear()
        self._got_pong = self._seen_peer_ping = False
        self.validated_at_ms = None

    @property
    def validated(self) -> bool:
        return self.validated_at_ms is not None

    @property
    def finished(self) -> bool:
        """Nothing more to send: the peer's pong came back, or every ping went unanswered."""
        return self._got_pong or len(self._sent) >= MAX_VALIDATION_PINGS

    @property
    def expired(self) -> bool:
        """Not validated within the deployed peers' limit: the peer has given up on this channel,
        so a validation completing later no longer counts (nothing watches for it). Validation
        can still complete after :attr:`finished` (this side's pong came back first, the peer's
        ping is still on its way) and count."""
        opened_at = self._opened_at
        return (
            not self.validated
            and opened_at is not None
            and self._clock() - opened_at >= VALIDATION_TIMEOUT_MS
        )

    def ping_due(self) -> bool:
        now = self._clock()
        if self._opened_at is None or self.finished or now - self._opened_at < VALIDATION_DELAY_MS:
            return False
        last = self._last_ping_at
        return last is None or now - last >= VALIDATION_RESEND_MS

    def ping_sent(self, timestamp_ms: float) -> None:
        self.counters.pings_sent += 1
        self._last_ping_at = self._clock()
        self._sent.add(timestamp_ms)
        self._check()

    def on_peer_ping(self) -> None:
        """The peer's validation ping arrived (the session answers it)."""
        self.counters.peer_pings += 1
        self._seen_peer_ping = True
        self._check()

    def on_pong(self, timestamp_ms: float) -> None:
        if timestamp_ms not in self._sent:
            self.counters.unmatched_pongs += 1
            return
        self.counters.pongs_received += 1
        self._got_pong = True
        self._check()

    def stats(self) -> dict[str, int | bool | float | None]:
        out: dict[str, int | bool | float | None] = {
            f"validation_{key}": value for key, value in asdict(self.counters).items()
        }
        out["validated"] = self.validated
        out["validated_after_ms"] = (
            None
            if self.validated_at_ms is None or self._opened_at is None
            else round(self.validated_at_ms - self._opened_at, 1)
        )
        return out

    def _check(self) -> None:
        if self.validated_at_ms is None and self._got_pong and self._seen_peer_ping and self._sent:
            self.validated_at_ms = self._clock()

"""When to try a fresh peer connection after the DataChannel was lost: bounded attempts with
exponential backoff.

Sans-IO: :class:`ReconnectBackoff` only counts and computes delays; the browser transport runs the
timers and builds the connections. Only the peer with the lower player index makes offers (as
deployed peers do for the first connection), so the two sides never offer at once and need no
random jitter against each other.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Final

from p2p_transport._checks import check_int, check_non_negative, check_positive
from p2p_transport.errors import UsageError

__all__ = ["ReconnectBackoff", "ReconnectConfig", "ReconnectCounters"]

#: Attempt delays with the defaults: 250, 500, 1000, 2000, 4000 ms (7.75 s in all, plus the time
#: the attempts that failed took).
_DEFAULT_ATTEMPTS: Final = 5


@dataclass(frozen=True, slots=True)
class ReconnectConfig:
    """How hard to try.

    ``first_delay_ms``: the first attempt waits 250 ms. A DataChannel also closes when the peer's
    tab closes, and the server's ``peer_left`` follows within tens of milliseconds; waiting a
    little spares a connection attempt to a peer that is leaving. Meanwhile the relay carries the
    inputs (in ``p2p-first`` and ``parallel``), so the game does not wait for it.

    ``backoff`` and ``max_delay_ms``: each failed attempt doubles the wait, up to 4 s, so a peer
    whose network is down costs a handful of signaling messages, not a stream of them.

    ``max_attempts``: 5 attempts span about 8 s of waiting, plus up to ``attempt_timeout_ms``
    each; a link that stays down longer is not coming back soon, and the game goes on over the
    relay. 0 turns reconnection off.

    ``attempt_timeout_ms``: an attempt whose channel has not opened after 5 s counts as failed.
    Over loopback the offer, answer and ICE take 30-150 ms; a TURN allocation across the
    internet takes a second or two.
    """

    max_attempts: int = _DEFAULT_ATTEMPTS
    first_delay_ms: float = 250.0
    backoff: float = 2.0
    max_delay_ms: float = 4000.0
    attempt_timeout_ms: float = 5000.0

    def __post_init__(self) -> None:
        check_int("max_attempts", self.max_attempts)
        check_non_negative(self, "first_delay_ms", "max_delay_ms")
        if not (math.isfinite(self.backoff) and self.backoff >= 1):
            raise UsageError(f"backoff must be at least 1, got {self.backoff}")
        check_positive(self, "attempt_timeout_ms")

    @property
    def enabled(self) -> bool:
        return self.max_attempts > 0


@dataclass(slots=True)
class ReconnectCounters:
    #: Attempts started, over the whole session.
    attempts: int = 0
    #: Outages in which every attempt failed.
    give_ups: int = 0


class ReconnectBackoff:
    """Counts the attempts of the current outage and says how long to wait before the next."""

    def __init__(self, config: ReconnectConfig | None = None) -> None:
        self.config = config or ReconnectConfig()
        self.counters = ReconnectCounters()
        #: Attempts started in the current outage.
        self.attempts = 0
        self._gave_up = False

    @property
    def gave_up(self) -> bool:
        """Every attempt of the current outage failed (until :meth:`reset`)."""
        return self._gave_up

    def next_delay_ms(self) -> float | None:
        """The wait before the next attempt, counting it as started; ``None`` once the attempts
        are used up (the first time, the outage is counted as given up)."""
        config = self.config
        if self.attempts >= config.max_attempts:
            if not self._gave_up:
                self._gave_up = True
                self.counters.give_ups += 1
            return None
        delay = min(config.first_delay_ms * config.backoff**self.attempts, config.max_delay_ms)
        self.attempts += 1
        self.counters.attempts += 1
        return delay

    def reset(self) -> None:
        """Start counting afresh (a new channel opened, or a new peer arrived); counters are
        kept."""
        self.attempts = 0
        self._gave_up = False

    def stats(self) -> dict[str, int]:
        out = {f"reconnect_{key}": value for key, value in asdict(self.counters).items()}
        out["reconnect_attempts_this_outage"] = self.attempts
        return out

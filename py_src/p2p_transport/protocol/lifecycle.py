"""What a page can show a person while the connection comes up, or does not.

Failures that used to look alike (a server that is down, a peer that never comes, a full room,
ICE that never connects) each become an event with a detail a person can read:

- ``server_unreachable``: the signaling server cannot be reached (``reason``, ``attempt``; the
  Socket.IO client retries with backoff), or the connection to it was lost (``reason``);
- ``waiting_for_peer``: joined, and still alone in the room (``room``, ``waited_ms``), repeated
  every :data:`WAITING_REPEAT_MS`;
- ``room_full``: the server refused the join because two players are in the room already;
- ``refused``: any other error the server sent (``message``);
- ``ice_failed``: paired, but no DataChannel opened within the ICE timeout: ``candidate_errors``
  (each ICE server's error, e.g. a TURN server's 401), ``gathered`` (how many local candidates
  of each type: host, srflx, relay), ``relay_only``;
- ``p2p_unavailable``: the relay alone carries the game (``reason``: ``ice_failed`` or
  ``reconnect_failed``).

Sans-IO: the transport reports what happens, the events go to ``emit(name, detail)``, and the
lifecycle's timer runs on the injected scheduler only while it waits for something (a peer, a
DataChannel), as the control channel's retransmit timer runs only while a message is unacked.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Callable
from typing import Any, Final

from p2p_transport._checks import check_positive
from p2p_transport.timing import Clock, Scheduler

__all__ = [
    "DEFAULT_ICE_TIMEOUT_MS",
    "MAX_CANDIDATE_ERRORS",
    "TICK_MS",
    "WAITING_FIRST_MS",
    "WAITING_REPEAT_MS",
    "Lifecycle",
    "candidate_type",
]

#: Alone in the room this long before the first ``waiting_for_peer``: pairing takes well under a
#: second when the other player is there, so three seconds means the other is not (yet).
WAITING_FIRST_MS: Final = 3_000.0
#: Then again this often, so a page can show how long it has waited.
WAITING_REPEAT_MS: Final = 5_000.0
#: Paired but no DataChannel after this long: ICE has failed. On loopback and LANs the channel
#: opens within a second; through TURN across the internet, within a few (WebRTC's own ICE
#: checks give up after about 30 s, which is far too long for a participant to watch).
DEFAULT_ICE_TIMEOUT_MS: Final = 10_000.0
#: ICE candidate errors kept for the detail: one per ICE server and address family is typical.
MAX_CANDIDATE_ERRORS: Final = 16
#: How often the timer looks at the time while waiting: a quarter of a second is precise enough
#: for events a person reads.
TICK_MS: Final = 250.0

logger = logging.getLogger(__name__)

_CANDIDATE_TYPE = re.compile(r"\btyp (\w+)")

Emit = Callable[[str, dict[str, Any]], None]


def candidate_type(candidate: str) -> str | None:
    """The type (host, srflx, prflx, relay) in an ICE candidate's SDP line."""
    match = _CANDIDATE_TYPE.search(candidate)
    return match.group(1) if match else None


class Lifecycle:
    """Watches joining, pairing and ICE, and turns silences into events."""

    def __init__(
        self,
        clock: Clock,
        scheduler: Scheduler,
        emit: Emit,
        room: str,
        *,
        relay_only: bool = False,
        ice_timeout_ms: float = DEFAULT_ICE_TIMEOUT_MS,
    ) -> None:
        self.ice_timeout_ms = ice_timeout_ms
        check_positive(self, "ice_timeout_ms")
        self._clock = clock
        self._scheduler = scheduler
        self._timer: object | None = None
        self._closed = False
        self._emit = emit
        self.room = room
        self.relay_only = relay_only
        self.connect_errors = 0
        self._joined_at: float | None = None
        self._next_waiting_at: float | None = None
        self._paired_at: float | None = None
        self._channel_opened = False
        self._ice_reported = False
        self._gathered: Counter[str] = Counter()
        self._candidate_errors: list[dict[str, Any]] = []

    # --- what the transport reports -----------------------------------------------------------

    def connect_error(self, reason: str) -> None:
        self.connect_errors += 1
        self._emit("server_unreachable", {"reason": reason, "attempt": self.connect_errors})

    def server_lost(self, reason: str) -> None:
        # No longer in a room to wait in: the join that follows the reconnection starts over.
        self._next_waiting_at = None
        self._sync_timer()
        self._emit("server_unreachable", {"reason": f"connection lost: {reason}"})

    def joined(self) -> None:
        self._joined_at = self._clock()
        self._next_waiting_at = self._joined_at + WAITING_FIRST_MS
        self._sync_timer()

    def rejoined(self) -> None:
        """The same peer is back in the room after the server connection was lost: nothing to
        wait for, and the connection between the peers goes on as it was."""
        self._next_waiting_at = None
        self._sync_timer()

    def paired(self) -> None:
        """A peer is here; a fresh connection attempt starts (a new peer gets a fresh one)."""
        self._next_waiting_at = None
        self._paired_at = self._clock()
        self._channel_opened = self._ice_reported = False
        self._gathered.clear()
        self._candidate_errors.clear()
        self._sync_timer()

    def peer_left(self) -> None:
        self._paired_at = None
        self.joined()

    def server_error(self, detail: dict[str, Any]) -> None:
        if detail.get("code") == "room_full":
            self._emit("room_full", {"room": self.room, "message": detail.get("message", "")})
        else:
            self._emit(
                "refused",
                {
                    "message": str(detail.get("message", detail)),
                    "code": str(detail.get("code", "refused")),
                },
            )

    def local_candidate(self, candidate: str) -> None:
        kind = candidate_type(candidate)
        if kind is not None:
            self._gathered[kind] += 1

    def candidate_error(self, error: dict[str, Any]) -> None:
        if len(self._candidate_errors) < MAX_CANDIDATE_ERRORS:
            self._candidate_errors.append(error)

    def channel_opened(self) -> None:
        self._channel_opened = True
        self._sync_timer()

    def reconnect_failed(self) -> None:
        self._emit("p2p_unavailable", {"reason": "reconnect_failed"})

    # --- time ---------------------------------------------------------------------------------

    @property
    def waiting(self) -> bool:
        """Whether there is anything to watch: a peer that has not come, or a DataChannel that
        has not opened. The timer runs only then."""
        return self._next_waiting_at is not None or (
            self._paired_at is not None and not self._channel_opened and not self._ice_reported
        )

    @property
    def timer_running(self) -> bool:
        return self._timer is not None

    def close(self) -> None:
        """Stop the timer for good (the transport closed)."""
        self._closed = True
        self._sync_timer()

    def _sync_timer(self) -> None:
        timer, wanted = self._timer, self.waiting and not self._closed
        if wanted and timer is None:
            self._timer = self._scheduler.set_interval(self._on_timer, TICK_MS)
        elif not wanted and timer is not None:
            self._timer = None
            self._scheduler.clear_interval(timer)

    def _on_timer(self) -> None:
        try:
            self.tick()
        except Exception:
            # A timer callback has no caller to raise to; the next tick tries again.
            logger.exception("lifecycle tick failed")
        self._sync_timer()

    def tick(self) -> None:
        now = self._clock()
        if self._next_waiting_at is not None and now >= self._next_waiting_at:
            assert self._joined_at is not None
            self._next_waiting_at = now + WAITING_REPEAT_MS
            self._emit("waiting_for_peer", {"room": self.room, "waited_ms": now - self._joined_at})
        paired_at = self._paired_at
        if (
            paired_at is not None
            and not self._channel_opened
            and not self._ice_reported
            and now - paired_at >= self.ice_timeout_ms
        ):
            self._ice_reported = True
            self._emit(
                "ice_failed",
                {
                    "waited_ms": now - paired_at,
                    "candidate_errors": list(self._candidate_errors),
                    "gathered": dict(self._gathered),
                    "relay_only": self.relay_only,
                },
            )
            self._emit("p2p_unavailable", {"reason": "ice_failed"})

"""What a page can show a person while the connection comes up, or does not.

Failures that used to look alike (a server that is down, a peer that never comes, a full room,
ICE that never connects) each become an event with a detail a person can read:

- ``server_unreachable``: the signaling server cannot be reached (``reason``, ``attempt``; the
  Socket.IO client retries with backoff), or the connection to it was lost (``reason``);
- ``connect_failed``: ``connect()`` has not reached the server within the connect timeout
  (``waited_ms``, ``attempts``, ``reason``: the last attempt's, ``message``: a sentence), once;
  ``p2pShim.connect()`` rejects with its message;
- ``waiting_for_peer``: joined, and still alone in the room (``room``, ``waited_ms``), repeated
  every :data:`WAITING_REPEAT_MS`;
- ``room_full``: the server refused the join because two players are in the room already;
- ``refused``: any other error the server sent: ``message`` a sentence that says what it means
  (a token problem named as one), ``code``, ``server_message`` (the server's own words).

A refusal is one event: the reference server's ``error`` becomes ``room_full`` or ``refused``; a
dialect's own refusal events (a deployed server's ``join_game_error``) keep their names, with the
same ``message``, ``code`` and ``server_message``.
- ``ice_failed``: paired, but no DataChannel opened within the ICE timeout: ``candidate_errors``
  (each ICE server's error, e.g. a TURN server's 401), ``gathered`` (how many local candidates
  of each type: host, srflx, relay), ``relay_only``;
- ``p2p_unavailable``: the relay alone carries the game (``reason``: ``ice_failed``,
  ``reconnect_failed``, or ``no_turn_server`` at pairing when ``relay_only`` has no TURN server
  from the page or the server, with a ``message``).

Sans-IO: the transport reports what happens, the events go to ``emit(name, detail)``, and the
lifecycle's timer runs on the injected scheduler only while it waits for something (a peer, a
DataChannel), as the control channel's retransmit timer runs only while a message is unacked.
"""

from __future__ import annotations

import json
import logging
import re
from collections import Counter
from collections.abc import Callable
from typing import Any, Final

from p2p_transport._checks import check_positive
from p2p_transport.timing import Clock, Scheduler

__all__ = [
    "DEFAULT_CONNECT_TIMEOUT_MS",
    "DEFAULT_ICE_TIMEOUT_MS",
    "MAX_CANDIDATE_ERRORS",
    "REFUSAL_SENTENCES",
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
#: ``connect()`` without reaching the signaling server for this long: ``connect_failed``. The
#: Socket.IO client's retries back off from 1 s to 5 s, so this is four or five attempts; a
#: server that is up answers the first within a second even across the internet.
DEFAULT_CONNECT_TIMEOUT_MS: Final = 10_000.0
#: What each refusal ``code`` of the reference server means, in words a participant's
#: experimenter can act on; the server's own message follows in brackets.
REFUSAL_SENTENCES: Final = {
    "unauthorized": "the server refused this page's room token (missing, forged, expired or for "
    "another room): the page needs a valid token from the experiment's backend",
    "rate_limited": "the server disconnected this page for sending too many messages",
    "slow_reader": "the server disconnected this page because it read too slowly",
    "join_timeout": "the server disconnected this page because it did not join a room in time",
    "malformed": "the server disconnected this page for sending messages it could not read",
    "replaced": "this player joined the room again from another tab or connection, which "
    "replaced this one",
}
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
        connect_timeout_ms: float | None = DEFAULT_CONNECT_TIMEOUT_MS,
    ) -> None:
        self.ice_timeout_ms = ice_timeout_ms
        check_positive(self, "ice_timeout_ms")
        #: ``None``: wait for the server as long as it takes (the retries go on, no event).
        self.connect_timeout_ms = connect_timeout_ms
        if connect_timeout_ms is not None:
            check_positive(self, "connect_timeout_ms")
        self._clock = clock
        self._scheduler = scheduler
        self._timer: object | None = None
        self._closed = False
        self._emit = emit
        self.room = room
        self.relay_only = relay_only
        self.connect_errors = 0
        self._last_connect_error = ""
        # Since when connect() waits for the server to answer at all (None: not waiting).
        self._connecting_since: float | None = None
        self._joined_at: float | None = None
        self._next_waiting_at: float | None = None
        self._paired_at: float | None = None
        self._channel_opened = False
        self._ice_reported = False
        self._gathered: Counter[str] = Counter()
        self._candidate_errors: list[dict[str, Any]] = []

    # --- what the transport reports -----------------------------------------------------------

    def connecting(self) -> None:
        """``connect()`` was called: the server has :attr:`connect_timeout_ms` to answer."""
        if self.connect_timeout_ms is not None and not self._closed:
            self._connecting_since = self._clock()
            self._sync_timer()

    def server_reached(self) -> None:
        """The signaling socket connected: ``connect()`` no longer waits for the server."""
        self._connecting_since = None
        self._sync_timer()

    def connect_error(self, reason: str) -> None:
        self.connect_errors += 1
        self._last_connect_error = reason
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

    def server_error(self, detail: dict[str, Any], event: str = "error") -> None:
        """The server refused something: one event, ``room_full`` or ``refused`` for the
        reference server's ``error``, else the dialect's own ``event``, whose ``message`` is a
        sentence (see :data:`REFUSAL_SENTENCES`)."""
        said = str(detail.get("message", "")) or json.dumps(detail, default=str)
        code = str(detail.get("code", "refused"))
        if event == "error" and code == "room_full":
            sentence = f"room {self.room} is full: two players are in it already"
            self._emit(
                "room_full", {"room": self.room, "message": sentence, "server_message": said}
            )
            return
        meaning = REFUSAL_SENTENCES.get(code)
        if meaning is None:
            # A refusal without a known code says what was refused in the server's own words.
            what = "the server refused" if event == "error" else f"the server refused ({event})"
            sentence = f"{what}: {said}"
        else:
            sentence = f"{meaning} (the server said: {said})"
        name = "refused" if event == "error" else event
        self._emit(name, {"message": sentence, "code": code, "server_message": said})

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

    def no_turn_server(self) -> None:
        """Paired with ``relay_only`` and no TURN server from the page or the server: nothing
        can connect, so say so at once instead of after the ICE timeout."""
        self._ice_reported = True
        self._sync_timer()
        self._emit(
            "p2p_unavailable",
            {
                "reason": "no_turn_server",
                "message": "relay_only needs a TURN server, and neither this page's ice_servers "
                "nor the signaling server's name one: the relay carries the game",
            },
        )

    def reconnect_failed(self) -> None:
        self._emit("p2p_unavailable", {"reason": "reconnect_failed"})

    # --- time ---------------------------------------------------------------------------------

    @property
    def waiting(self) -> bool:
        """Whether there is anything to watch: a peer that has not come, or a DataChannel that
        has not opened. The timer runs only then."""
        return (
            self._next_waiting_at is not None
            or self._connecting_since is not None
            or (self._paired_at is not None and not self._channel_opened and not self._ice_reported)
        )

    @property
    def timer_running(self) -> bool:
        return self._timer is not None

    def close(self) -> None:
        """Stop the timer for good (the transport closed)."""
        self._closed = True
        self._connecting_since = None
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
        since = self._connecting_since
        limit = self.connect_timeout_ms
        if since is not None and limit is not None and now - since >= limit:
            self._connecting_since = None  # said once; the client's retries go on
            self._emit("connect_failed", self._connect_failure(now - since))
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

    def _connect_failure(self, waited_ms: float) -> dict[str, Any]:
        attempts = self.connect_errors
        last = self._last_connect_error
        sentence = (
            f"cannot reach the signaling server: no answer in {waited_ms / 1000:.0f} s"
            f" ({attempts} attempt{'s' if attempts != 1 else ''}"
            + (f", the last: {last}" if last else "")
            + "); is it running, and is this page allowed to use it?"
        )
        return {"waited_ms": waited_ms, "attempts": attempts, "reason": last, "message": sentence}

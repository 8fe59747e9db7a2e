"""The peer connection's lifecycle as a sans-IO state machine: who offers, which signals belong to
which connection, and when to tear a connection down and set up a fresh one.

The browser edge feeds it what happens (the pairing, signals from the peer, descriptions set,
channels opening and closing, the session's silence reports) and carries out the
:data:`Action` objects it hands to ``execute``: open or close an ``RTCPeerConnection``, send a
signal, apply an offer or an answer, add an ICE candidate, tell the game an event. Everything here
runs under CPython with a fake clock and scheduler, so the races the browser produces can be
replayed in tests.

Connections and generations: each connection this side opens gets a new ``connection`` id, so a
late answer to an old ``createOffer`` or an old ``setRemoteDescription`` completing is ignored by
id. Signals carry the offerer's ``generation`` (bumped at each re-offer), so candidates of an old
connection that arrive late are dropped rather than given to the new one; signals without it
(deployed peers send none) are taken as they come. The peer with the lower player index offers;
the other side takes a new offer by tearing down whatever connection it had.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from p2p_transport.protocol.reconnect import ReconnectBackoff, ReconnectConfig
from p2p_transport.timing import Clock, Scheduler

__all__ = [
    "AcceptOffer",
    "Action",
    "AddCandidate",
    "ApplyAnswer",
    "CloseConnection",
    "Emit",
    "OpenConnection",
    "PeerConnectionMachine",
    "SendSignal",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class OpenConnection:
    """Create a peer connection (and the ping channel); the offerer also creates the game
    channel and an offer, and reports it with :meth:`PeerConnectionMachine.local_description`."""

    connection: int
    offerer: bool


@dataclass(frozen=True, slots=True)
class CloseConnection:
    """Close the current peer connection and its channels, without waiting for their events."""


@dataclass(frozen=True, slots=True)
class SendSignal:
    """Send ``message`` to the peer over signaling (it already carries the generation)."""

    message: dict[str, Any]


@dataclass(frozen=True, slots=True)
class AcceptOffer:
    """Set the peer's offer as the remote description of ``connection``, report it with
    :meth:`~PeerConnectionMachine.remote_description_set`, then answer (reported with
    :meth:`~PeerConnectionMachine.local_description`)."""

    connection: int
    sdp: str


@dataclass(frozen=True, slots=True)
class ApplyAnswer:
    """Set the peer's answer as the remote description of ``connection``, then report it with
    :meth:`~PeerConnectionMachine.remote_description_set`."""

    connection: int
    sdp: str


@dataclass(frozen=True, slots=True)
class AddCandidate:
    """Give the current connection one of the peer's ICE candidates (its JSON form)."""

    candidate: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Emit:
    """Tell the game ``event`` with ``detail`` (see :class:`PeerConnectionMachine`)."""

    event: str
    detail: dict[str, Any] = field(default_factory=dict)


Action: TypeAlias = (
    OpenConnection | CloseConnection | SendSignal | AcceptOffer | ApplyAnswer | AddCandidate | Emit
)


class PeerConnectionMachine:
    """One tab's side of the peer connection, from pairing to close.

    Events it emits (:class:`Emit`): ``open`` (a game channel opened), ``connected`` (the first
    one), ``closed``, ``failed``, ``degraded`` (the P2P path was lost, or the peer went quiet on
    every path; ``reason``), ``reconnecting`` (``attempt``, ``generation``), ``reconnected``
    (``downtime_ms``, ``attempts``, ``generation``; or a silent peer heard again),
    ``reconnect_failed`` (``attempts``), ``peer_left`` and ``disconnected`` (``reason``).

    Reconnection: when the game channel closes, the connection fails, or the channel stays open
    but silent past the disconnect threshold, while the peer is still in the room, the offering
    side tears the old connection down and offers a new one, with bounded attempts and backoff
    (:mod:`~p2p_transport.protocol.reconnect`); the answering side, which may hear nothing wrong
    on a channel dead one way, closes its end of a dead channel so that the offerer's closes too.
    """

    def __init__(
        self,
        execute: Callable[[Action], None],
        clock: Clock,
        scheduler: Scheduler,
        config: ReconnectConfig | None = None,
    ) -> None:
        self._execute = execute
        self._clock = clock
        self._scheduler = scheduler
        self.config = config or ReconnectConfig()
        self.backoff = ReconnectBackoff(self.config)
        self.player_index: int | None = None
        self.peer_index: int | None = None
        #: The offerer's connection count: every signal carries it.
        self.generation = 0
        #: The current connection's id, or ``None`` between connections.
        self.connection: int | None = None
        self._next_connection = 0
        self._remote_description_set = False
        # (generation, candidate): candidates that arrived before their description.
        self._pending_candidates: list[tuple[int | None, dict[str, Any]]] = []
        self._peer_present = False
        self._offer_taken = False
        self._connected_once = False
        self._p2p_lost_at: float | None = None
        self._peer_gone = False
        self._closed = False
        self._reconnect_timer: object | None = None
        self._attempt_timer: object | None = None
        #: Signals of an older connection (or offers to the offering side), dropped.
        self.stale_signals = 0
        #: Times the P2P path was lost while the peer was in the room, and times a new game
        #: channel opened after such a loss.
        self.p2p_losses = 0
        self.reconnects = 0

    @property
    def offerer(self) -> bool:
        """This side makes the offers: it has the lower player index."""
        return (
            self.player_index is not None
            and self.peer_index is not None
            and self.player_index < self.peer_index
        )

    # --- what the edge reports ----------------------------------------------------------------

    def paired(self, player_index: int, peer_index: int) -> None:
        """The server paired this side with a peer (a new one, if one was here before)."""
        if self._closed:
            return
        self._stop_reconnecting()
        self._close_connection()
        self.player_index, self.peer_index = player_index, peer_index
        self._peer_present = True
        self._peer_gone = False
        self._connected_once = False
        self._p2p_lost_at = None
        self.generation = 0
        self._offer_taken = False
        self._pending_candidates = []
        self.backoff.reset()
        self._open_connection(offerer=self.offerer)

    def on_signal(self, message: object) -> None:
        """A signaling message from the peer: ``{type: offer|answer|ice-candidate, ...}``."""
        if self._closed or not self._peer_present or not isinstance(message, dict):
            return
        kind = message.get("type")
        raw_generation = message.get("generation")
        generation = (
            raw_generation
            if isinstance(raw_generation, int) and not isinstance(raw_generation, bool)
            else None
        )
        if kind == "offer":
            self._on_offer(message, generation)
        elif self.connection is None:
            return
        elif kind == "answer":
            if generation is not None and generation != self.generation:
                self.stale_signals += 1
                return
            sdp = message.get("sdp")
            if isinstance(sdp, str):
                self._execute(ApplyAnswer(self.connection, sdp))
        elif kind == "ice-candidate":
            candidate = message.get("candidate")
            if not isinstance(candidate, dict):
                return  # a malformed signal; end-of-candidates is never sent
            if generation is not None and generation < self.generation:
                self.stale_signals += 1
                return
            if self._remote_description_set and generation in (None, self.generation):
                self._execute(AddCandidate(candidate))
            else:
                self._pending_candidates.append((generation, candidate))

    def remote_description_set(self, connection: int) -> None:
        """``connection``'s remote description is set: candidates that waited for it go in."""
        if connection != self.connection:
            return  # a connection replaced while its description was being set
        self._remote_description_set = True
        pending, self._pending_candidates = self._pending_candidates, []
        for generation, candidate in pending:
            if generation is None or generation == self.generation:
                self._execute(AddCandidate(candidate))
            elif generation > self.generation:
                self._pending_candidates.append((generation, candidate))
            else:
                self.stale_signals += 1

    def local_description(self, connection: int, kind: str, sdp: str) -> None:
        """``connection`` has its own offer or answer: send it, unless it was replaced meanwhile."""
        if connection == self.connection and not self._closed:
            self._signal({"type": kind, "sdp": sdp})

    def local_candidate(self, connection: int, candidate: dict[str, Any]) -> None:
        """``connection`` gathered an ICE candidate (its JSON form)."""
        if connection == self.connection and not self._closed:
            self._signal({"type": "ice-candidate", "candidate": candidate})

    def channel_opened(self, connection: int) -> None:
        if connection != self.connection:
            return
        self._emit("open")
        self._stop_reconnecting()
        attempts = self.backoff.attempts
        self.backoff.reset()
        if self._p2p_lost_at is not None:
            downtime = self._clock() - self._p2p_lost_at
            self._p2p_lost_at = None
            self.reconnects += 1
            self._emit(
                "reconnected",
                downtime_ms=round(downtime, 1),
                attempts=attempts,
                generation=self.generation,
            )
        elif not self._connected_once:
            self._emit("connected", generation=self.generation)
        self._connected_once = True

    def channel_closed(self, connection: int) -> None:
        if connection != self.connection:
            return
        self._emit("closed")
        self._p2p_lost("data channel closed")

    def connection_failed(self, connection: int) -> None:
        if connection != self.connection or self.player_index is None:
            return
        self._emit("failed", state="failed")
        self._p2p_lost("peer connection failed")

    def p2p_silent(self, silence_ms: float) -> None:
        """The session's watchdog: the game channel is open but silent past the warning."""
        if self._p2p_lost_at is None:
            self._emit("degraded", reason=f"p2p silent for {silence_ms:.0f} ms")

    def p2p_dead(self, silence_ms: float) -> None:
        """... and past the disconnect threshold: the channel is open in name only."""
        if not self.offerer and self.connection is not None and self._peer_present:
            # Only the other side makes offers, and it may hear nothing wrong (a channel dead one
            # way): closing this end closes its channel, which makes it re-offer.
            self._close_connection()
        self._p2p_lost(f"p2p open but silent for {silence_ms:.0f} ms")

    def peer_silent(self, silence_ms: float) -> None:
        self._emit("degraded", reason=f"peer silent on every path for {silence_ms:.0f} ms")

    def peer_gone(self, silence_ms: float) -> None:
        self._peer_gone = True
        self._emit("disconnected", reason=f"peer silent on every path for {silence_ms:.0f} ms")

    def peer_back(self) -> None:
        if self._peer_gone:
            self._peer_gone = False
            self._emit("reconnected", reason="peer heard again")

    def peer_left(self, detail: dict[str, Any]) -> None:
        """The server says the peer left the room: the session with it is over."""
        self._peer_present = False
        self._stop_reconnecting()
        self._close_connection()
        self._emit("peer_left", **detail)
        self._emit("disconnected", reason="peer left")

    def close(self) -> None:
        """This side is done: stop reconnecting and close the connection. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._stop_reconnecting()
        self._close_connection()

    def stats(self) -> dict[str, Any]:
        return {
            "generation": self.generation,
            "p2p_losses": self.p2p_losses,
            "reconnects": self.reconnects,
            "stale_signals": self.stale_signals,
            "reconnect_timer_running": self._reconnect_timer is not None,
            "reconnect_attempt_running": self._attempt_timer is not None,
            **self.backoff.stats(),
        }

    # --- internals ----------------------------------------------------------------------------

    def _on_offer(self, message: dict[str, Any], generation: int | None) -> None:
        if self.offerer:
            self.stale_signals += 1  # only the other side offers; never take one here
            return
        if generation is not None and generation < self.generation:
            self.stale_signals += 1
            return
        sdp = message.get("sdp")
        if not isinstance(sdp, str):
            return
        if self._offer_taken or self.connection is None:
            # A new connection: the old one goes, whatever state it is in.
            self._close_connection()
            self._open_connection(offerer=False)
        self._offer_taken = True
        if generation is not None:
            self.generation = generation
            self._pending_candidates = [
                (g, c) for g, c in self._pending_candidates if g is None or g >= generation
            ]
        assert self.connection is not None  # opened just above if there was none
        self._execute(AcceptOffer(self.connection, sdp))

    def _open_connection(self, offerer: bool) -> None:
        self.connection = self._next_connection
        self._next_connection += 1
        self._remote_description_set = False
        self._execute(OpenConnection(self.connection, offerer))

    def _close_connection(self) -> None:
        if self.connection is None:
            return
        self.connection = None
        self._remote_description_set = False
        self._execute(CloseConnection())

    def _signal(self, message: dict[str, Any]) -> None:
        message["generation"] = self.generation
        self._execute(SendSignal(message))

    def _emit(self, event: str, **detail: Any) -> None:
        self._execute(Emit(event, detail))

    def _p2p_lost(self, reason: str) -> None:
        """The P2P path is gone while the peer may still be in the room: report it once, and
        (on the offering side) schedule a fresh connection unless one is already under way."""
        if self._closed or not self._peer_present:
            return
        if self._p2p_lost_at is None:
            self._p2p_lost_at = self._clock()
            self.p2p_losses += 1
            self._emit("degraded", reason=reason)
        if self.offerer and self._reconnect_timer is None and not self.backoff.gave_up:
            self._schedule_reconnect()

    def _schedule_reconnect(self) -> None:
        self._cancel_attempt_timer()
        delay = self.backoff.next_delay_ms()
        if delay is None:
            if self.config.enabled:
                self._emit("reconnect_failed", attempts=self.config.max_attempts)
            return
        self._reconnect_timer = self._after(delay, self._attempt_reconnect)

    def _attempt_reconnect(self) -> None:
        self._reconnect_timer = None  # it fired (and cleared itself)
        if self._closed or not self._peer_present:
            return
        self._close_connection()
        self.generation += 1
        self._emit("reconnecting", attempt=self.backoff.attempts, generation=self.generation)
        self._attempt_timer = self._after(self.config.attempt_timeout_ms, self._on_attempt_timeout)
        self._open_connection(offerer=True)

    def _on_attempt_timeout(self) -> None:
        self._attempt_timer = None
        self._p2p_lost(f"reconnection attempt {self.backoff.attempts} timed out")

    def _stop_reconnecting(self) -> None:
        if self._reconnect_timer is not None:
            timer, self._reconnect_timer = self._reconnect_timer, None
            self._scheduler.clear_interval(timer)
        self._cancel_attempt_timer()

    def _cancel_attempt_timer(self) -> None:
        if self._attempt_timer is not None:
            timer, self._attempt_timer = self._attempt_timer, None
            self._scheduler.clear_interval(timer)

    def _after(self, delay_ms: float, callback: Callable[[], None]) -> object:
        """Call ``callback`` once after ``delay_ms``: an interval timer that clears itself, so a
        scheduler that counts its timers counts it while it is pending."""
        handle: object | None = None

        def fire() -> None:
            self._scheduler.clear_interval(handle)
            try:
                callback()
            except Exception:
                logger.exception("reconnection timer failed")

        handle = self._scheduler.set_interval(fire, max(delay_ms, 1.0))
        return handle

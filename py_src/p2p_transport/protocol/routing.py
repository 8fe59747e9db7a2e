"""Which path the inputs take: the DataChannel, the Socket.IO relay, or both.

The seed design sent everything both ways (``parallel``), and deployed peers that fell back to the
server stayed there for good after one slow moment. ``p2p-first`` sends over the DataChannel
while it is healthy and over the relay while it is not, and comes back when it is healthy again:

- it leaves P2P as soon as the channel is not open, is congested, has been silent longer than
  :attr:`RoutingThresholds.silence_ms`, leaves :attr:`RoutingThresholds.max_unacked_inputs`
  inputs unacknowledged, or its RTT has stayed above
  :attr:`RoutingThresholds.high_rtt_ms` for :attr:`RoutingThresholds.high_rtt_for_ms` (unless the
  relay is known to be no faster, or is down);
- it comes back once P2P has been healthy for :attr:`RoutingThresholds.min_dwell_ms` without a
  break; a channel that has never failed is used as soon as it is healthy;
- while switching it sends on both for :attr:`RoutingThresholds.overlap_ms`, so the peer receives
  from the new path before the old one stops.

The DataChannel's health stays measurable while inputs go through the relay, because the session
keeps pinging over it. ``p2p`` and ``relay`` pin one path. Sans-IO: the session passes what it knows
about the paths each step (:class:`LinkSignals`); nothing here touches a channel.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from p2p_transport._checks import check_int, check_non_negative, check_positive
from p2p_transport._guard import call_guarded
from p2p_transport.timing import Clock

__all__ = [
    "Link",
    "LinkSignals",
    "Route",
    "RouteChange",
    "RouteChangeCallback",
    "RouteMode",
    "Router",
    "RoutingThresholds",
]


class Link(StrEnum):
    """The two ways a packet travels between the peers."""

    #: The WebRTC DataChannel, browser to browser.
    P2P = "p2p"
    #: Through the Socket.IO server.
    RELAY = "relay"


class Route(StrEnum):
    """The paths an input packet is sent on: one of them, or both."""

    P2P = Link.P2P.value
    RELAY = Link.RELAY.value
    BOTH = "both"

    @property
    def paths(self) -> tuple[Link, ...]:
        # Read for every input sent: a dict lookup by the member's str hash, where naming members
        # (``Route.BOTH``) costs about 75 ns each in CPython 3.11.
        return _ROUTE_PATHS[self]


_ROUTE_PATHS: Final = {
    Route.P2P: (Link.P2P,),
    Route.RELAY: (Link.RELAY,),
    Route.BOTH: (Link.P2P, Link.RELAY),
}


class RouteMode(StrEnum):
    """How the route is chosen."""

    #: Both paths, always: the seed design, and the default.
    PARALLEL = "parallel"
    #: The DataChannel while it is healthy, the relay while it is not.
    P2P_FIRST = "p2p-first"
    #: The DataChannel only.
    P2P = Route.P2P.value
    #: The relay only.
    RELAY = Route.RELAY.value


@dataclass(frozen=True, slots=True)
class RoutingThresholds:
    """When ``p2p-first`` leaves the DataChannel and when it comes back.

    ``silence_ms``: the peer pings every 500 ms and answers this side's pings, so even with its
    inputs on the relay the DataChannel brings a packet about every 250 ms; a second of nothing is
    four packets lost in a row, which 30% independent loss does in under 1% of seconds. It is the
    health monitor's warning threshold too.

    ``high_rtt_ms``: 400 ms is the health monitor's critical one-way latency (200 ms) both ways,
    where a 60 Hz game is hard to play; a P2P path that slow is usually a far TURN detour, which
    the relay beats. ``high_rtt_for_ms``: it must last 2 s (four pings) so that one slow moment,
    which made the seed design fall back for good, moves nothing.

    ``min_dwell_ms``: the hysteresis. After P2P failed, it must be healthy for 3 s without a break
    (six pings and pongs answered) before inputs go back to it, so a link that comes and goes
    changes route at most once every few seconds rather than every few frames. Leaving P2P is not
    delayed: the failure conditions above already take a second or more to trip, and with acked
    redundancy a switch loses nothing.

    ``overlap_ms``: while switching, both paths carry the inputs for 1 s: longer than any relay
    detour worth playing over, so the peer gets the new path's packets before the old path stops,
    and long enough for two pings to show whether the new path works.

    ``max_unacked_inputs``: with acked inputs, the peer acknowledging nothing while this side's
    inputs go over P2P alone means they do not arrive, though the peer's packets may (a channel
    dead one way only, which silence on this side does not show). 32 pending inputs is about
    530 ms at 60 Hz: above what a 400 ms round trip at 30% loss leaves pending (24 frames, and a
    few more while a lost packet's inputs wait for the next), and
    half the acked sender's bound of 64, so the switch to both paths comes 0.5 s before any input
    would be given up.
    """

    silence_ms: float = 1000.0
    high_rtt_ms: float = 400.0
    high_rtt_for_ms: float = 2000.0
    min_dwell_ms: float = 3000.0
    overlap_ms: float = 1000.0
    max_unacked_inputs: int = 32

    def __post_init__(self) -> None:
        check_int("max_unacked_inputs", self.max_unacked_inputs, minimum=1)
        check_positive(self, "silence_ms", "high_rtt_ms")
        check_non_negative(self, "high_rtt_for_ms", "min_dwell_ms", "overlap_ms")


@dataclass(frozen=True, slots=True)
class LinkSignals:
    """What the session knows about both paths at one step."""

    p2p_open: bool
    #: More is queued in the DataChannel than the session's buffer threshold.
    p2p_congested: bool
    #: Time since the last packet of any kind arrived over the DataChannel.
    p2p_silence_ms: float
    #: The latest round-trip sample over each path, if any.
    p2p_rtt_ms: float | None
    relay_open: bool
    relay_rtt_ms: float | None
    #: This side's inputs the peer has not acknowledged yet (acked inputs only; 0 otherwise).
    unacked_inputs: int = 0


@dataclass(frozen=True, slots=True)
class RouteChange:
    """One change of route: when, from what, to what, heading where, and why."""

    at_ms: float
    previous: Route
    route: Route
    #: The path the router is moving to (while ``route`` is ``both``) or is on.
    target: Route
    reason: str

    def as_dict(self) -> dict[str, str | float]:
        """The change as JSON-ready data: the one form telemetry and the game's events use."""
        return {
            "at_ms": round(self.at_ms, 2),
            "previous": self.previous.value,
            "route": self.route.value,
            "target": self.target.value,
            "reason": self.reason,
        }


RouteChangeCallback = Callable[[RouteChange], None]

_FIXED_ROUTE: Final = {
    RouteMode.PARALLEL: Route.BOTH,
    RouteMode.P2P: Route.P2P,
    RouteMode.RELAY: Route.RELAY,
}


class Router:
    """Chooses the route at each step and tells subscribers of every change (the session's
    telemetry keeps them, bounded, for the experiment).

    In ``p2p-first`` mode the route starts on the relay (the DataChannel is not open yet at first)
    and moves to P2P once the channel is healthy. Subscribers that raise are logged and counted in
    :attr:`callback_errors`; the route change happens regardless.
    """

    def __init__(
        self, mode: RouteMode, clock: Clock, thresholds: RoutingThresholds | None = None
    ) -> None:
        self.mode = RouteMode(mode)
        self.thresholds = thresholds or RoutingThresholds()
        self._clock = clock
        self._route = _FIXED_ROUTE.get(self.mode, Route.RELAY)
        self._target = self._route
        self._overlap_until = 0.0
        #: P2P has failed at least once: coming back needs min_dwell_ms of health.
        self._p2p_failed = False
        self._healthy_since: float | None = None
        self._rtt_high_since: float | None = None
        self._subscribers: list[RouteChangeCallback] = []
        #: The latest change, if any, and how many there were.
        self.last_change: RouteChange | None = None
        self.change_count = 0
        self.callback_errors = 0

    @property
    def route(self) -> Route:
        return self._route

    @property
    def target(self) -> Route:
        return self._target

    def subscribe(self, callback: RouteChangeCallback) -> Callable[[], None]:
        """Call ``callback`` with every route change; returns a function that unsubscribes."""
        self._subscribers.append(callback)

        def unsubscribe() -> None:
            if callback in self._subscribers:
                self._subscribers.remove(callback)

        return unsubscribe

    def update(self, signals: LinkSignals) -> Route:
        """Take the paths' state at this step and return the route to send on."""
        if self.mode is not RouteMode.P2P_FIRST:
            return self._route
        now = self._clock()
        problem = self._p2p_problem(signals, now)
        if self._target is Route.P2P:
            # With the relay down too there is nowhere better to go.
            if problem is not None and signals.relay_open:
                self._p2p_failed = True
                self._healthy_since = None
                self._switch(Route.RELAY, problem, now)
        elif problem is None:
            if self._healthy_since is None:
                self._healthy_since = now
            healthy_ms = now - self._healthy_since
            if not self._p2p_failed:
                self._switch(Route.P2P, "p2p open", now)
            elif not signals.relay_open:
                self._switch(Route.P2P, "relay closed", now)
            elif healthy_ms >= self.thresholds.min_dwell_ms:
                self._switch(Route.P2P, f"p2p healthy for {healthy_ms:.0f} ms", now)
        else:
            self._healthy_since = None
            if not signals.relay_open and signals.p2p_open:
                self._switch(Route.P2P, "relay closed", now)
        if self._route is Route.BOTH and now >= self._overlap_until:
            self._change(self._target, "switch complete", now)
        return self._route

    def stats(self) -> dict[str, str | int]:
        return {
            "route_mode": self.mode.value,
            "route": self._route.value,
            "route_changes": self.change_count,
            "route_callback_errors": self.callback_errors,
        }

    # --- internals ----------------------------------------------------------------------------

    def _p2p_problem(self, signals: LinkSignals, now: float) -> str | None:
        """Why the DataChannel should not carry inputs now, or ``None`` if it is healthy."""
        t = self.thresholds
        rtt = signals.p2p_rtt_ms
        if rtt is not None and rtt > t.high_rtt_ms:
            if self._rtt_high_since is None:
                self._rtt_high_since = now
        else:
            self._rtt_high_since = None
        if not signals.p2p_open:
            return "p2p channel not open"
        if signals.p2p_congested:
            return "p2p channel congested"
        if signals.p2p_silence_ms > t.silence_ms:
            return f"p2p silent for {signals.p2p_silence_ms:.0f} ms"
        if self._route is Route.P2P and signals.unacked_inputs >= t.max_unacked_inputs:
            # Only while P2P alone carries the inputs: on the relay the backlog is the relay's.
            return f"{signals.unacked_inputs} inputs unacknowledged over p2p"
        if (
            rtt is not None
            and self._rtt_high_since is not None
            and now - self._rtt_high_since >= t.high_rtt_for_ms
            and (signals.relay_rtt_ms is None or signals.relay_rtt_ms < rtt)
        ):
            return (
                f"p2p rtt {rtt:.0f} ms above {t.high_rtt_ms:.0f} ms "
                f"for {now - self._rtt_high_since:.0f} ms"
            )
        return None

    def _switch(self, target: Route, reason: str, now: float) -> None:
        """Head for ``target``, sending on both paths for the overlap first."""
        self._target = target
        self._overlap_until = now + self.thresholds.overlap_ms
        self._change(Route.BOTH, reason, now)

    def _change(self, route: Route, reason: str, now: float) -> None:
        change = RouteChange(now, self._route, route, self._target, reason)
        self._route = route
        self.last_change = change
        self.change_count += 1
        for callback in list(self._subscribers):
            if not call_guarded(callback, change, what="route change"):
                self.callback_errors += 1

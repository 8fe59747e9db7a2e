"""Router: the fixed modes, p2p-first's fallback and recovery, hysteresis, the change record."""

from __future__ import annotations

import dataclasses

import pytest

from p2p_transport.protocol.routing import (
    Link,
    LinkSignals,
    Route,
    RouteChange,
    RouteMode,
    Router,
    RoutingThresholds,
)
from p2p_transport.timing import FRAME_MS
from tests.fakes import FakeClock

T = RoutingThresholds()

HEALTHY = LinkSignals(
    p2p_open=True,
    p2p_congested=False,
    p2p_silence_ms=20.0,
    p2p_rtt_ms=30.0,
    relay_open=True,
    relay_rtt_ms=60.0,
)


def signals(**changes: object) -> LinkSignals:
    return dataclasses.replace(HEALTHY, **changes)  # type: ignore[arg-type]


def run(router: Router, clock: FakeClock, link: LinkSignals, ms: float) -> list[Route]:
    """Update once per frame for ``ms``; return the routes chosen."""
    routes = []
    end = clock() + ms
    while clock() < end:
        routes.append(router.update(link))
        clock.advance(FRAME_MS)
    return routes


def recorded(router: Router) -> list[RouteChange]:
    """Every change the router makes from now on (it keeps none itself)."""
    changes: list[RouteChange] = []
    router.subscribe(changes.append)
    return changes


def p2p_first(thresholds: RoutingThresholds = T) -> tuple[Router, FakeClock]:
    clock = FakeClock(0.0)
    return Router(RouteMode.P2P_FIRST, clock, thresholds), clock


def settled_on_p2p() -> tuple[Router, FakeClock]:
    router, clock = p2p_first()
    run(router, clock, HEALTHY, T.overlap_ms + 100)
    assert router.route is Route.P2P
    return router, clock


@pytest.mark.parametrize(
    ("mode", "route"),
    [(RouteMode.PARALLEL, Route.BOTH), (RouteMode.P2P, Route.P2P), (RouteMode.RELAY, Route.RELAY)],
)
def test_fixed_modes_never_change(mode: RouteMode, route: Route) -> None:
    clock = FakeClock()
    router = Router(mode, clock)
    for link in (HEALTHY, signals(p2p_open=False), signals(relay_open=False, p2p_silence_ms=1e6)):
        assert set(run(router, clock, link, 5000)) == {route}
    assert router.change_count == 0
    assert router.last_change is None


def test_mode_accepts_its_string_value() -> None:
    assert Router("p2p-first", FakeClock()).mode is RouteMode.P2P_FIRST  # type: ignore[arg-type]


def test_p2p_first_starts_on_the_relay_and_moves_to_p2p_through_both() -> None:
    router, clock = p2p_first()
    changes = recorded(router)
    assert router.route is Route.RELAY
    assert set(run(router, clock, signals(p2p_open=False), 2000)) == {Route.RELAY}
    # The channel opens: a channel that never failed is used at once, after the overlap.
    routes = run(router, clock, HEALTHY, 2000)
    overlap_frames = sum(1 for r in routes if r is Route.BOTH)
    assert routes[0] is Route.BOTH
    assert overlap_frames in (60, 61)  # 1000 ms of 60 Hz frames, give or take float rounding
    assert routes[-1] is Route.P2P
    assert [(c.previous, c.route, c.target, c.reason) for c in changes] == [
        (Route.RELAY, Route.BOTH, Route.P2P, "p2p open"),
        (Route.BOTH, Route.P2P, Route.P2P, "switch complete"),
    ]
    assert changes[0].at_ms == pytest.approx(2000, abs=FRAME_MS)


@pytest.mark.parametrize(
    ("link", "reason"),
    [
        (signals(p2p_open=False), "p2p channel not open"),
        (signals(p2p_congested=True), "p2p channel congested"),
        (signals(p2p_silence_ms=1500.0), "p2p silent for 1500 ms"),
    ],
)
def test_p2p_problems_move_to_the_relay_at_once(link: LinkSignals, reason: str) -> None:
    router, clock = settled_on_p2p()
    before = router.change_count
    assert router.update(link) is Route.BOTH
    change = router.last_change
    assert (change.previous, change.route, change.target, change.reason) == (
        Route.P2P,
        Route.BOTH,
        Route.RELAY,
        reason,
    )
    assert change.at_ms == clock()
    routes = run(router, clock, link, 2000)
    assert routes[-1] is Route.RELAY
    assert router.change_count == before + 2


def test_silence_up_to_the_threshold_is_not_a_problem() -> None:
    router, clock = settled_on_p2p()
    assert set(run(router, clock, signals(p2p_silence_ms=T.silence_ms), 5000)) == {Route.P2P}


def test_one_slow_moment_moves_nothing_but_sustained_high_rtt_does() -> None:
    router, clock = settled_on_p2p()
    # RTT above the threshold for just under the sustain time, then back to normal.
    assert set(run(router, clock, signals(p2p_rtt_ms=900.0), T.high_rtt_for_ms - 50)) == {Route.P2P}
    assert set(run(router, clock, HEALTHY, 100)) == {Route.P2P}
    # The high RTT has to last the full sustain time again from its return.
    routes = run(router, clock, signals(p2p_rtt_ms=900.0), T.high_rtt_for_ms + 100)
    assert routes[-1] is Route.BOTH
    assert router.last_change.reason.startswith("p2p rtt 900 ms above 400 ms for 20")


def test_high_rtt_stays_on_p2p_when_the_relay_is_no_faster() -> None:
    router, clock = settled_on_p2p()
    slow_both = signals(p2p_rtt_ms=900.0, relay_rtt_ms=1000.0)
    assert set(run(router, clock, slow_both, 3 * T.high_rtt_for_ms)) == {Route.P2P}


def test_with_the_relay_down_it_stays_on_p2p_however_bad() -> None:
    router, clock = settled_on_p2p()
    bad = signals(p2p_silence_ms=5000.0, relay_open=False)
    assert set(run(router, clock, bad, 5000)) == {Route.P2P}


def test_after_a_failure_p2p_must_be_healthy_for_the_dwell_time() -> None:
    router, clock = settled_on_p2p()
    changes = recorded(router)
    run(router, clock, signals(p2p_silence_ms=1500.0), 2000)
    assert router.route is Route.RELAY
    # Healthy for a bit less than the dwell time, then one silent moment: the clock restarts.
    assert set(run(router, clock, HEALTHY, T.min_dwell_ms - 100)) == {Route.RELAY}
    run(router, clock, signals(p2p_silence_ms=1200.0), 50)
    assert set(run(router, clock, HEALTHY, T.min_dwell_ms - 100)) == {Route.RELAY}
    routes = run(router, clock, HEALTHY, 200 + T.overlap_ms + 100)
    assert Route.BOTH in routes
    assert routes[-1] is Route.P2P
    reasons = [c.reason for c in changes]
    assert reasons[-2].startswith("p2p healthy for 30")
    assert reasons[-1] == "switch complete"


def test_a_flapping_link_changes_route_at_most_once_per_dwell_time() -> None:
    router, clock = settled_on_p2p()
    start = router.change_count
    # P2P alternates between 1.2 s of silence and 1 s of health for a minute.
    for _ in range(27):
        run(router, clock, signals(p2p_silence_ms=1200.0), 1200)
        run(router, clock, HEALTHY, 1000)
    # It left once and never came back: it was never healthy for the 3 s dwell.
    assert router.change_count - start == 2
    assert router.route is Route.RELAY


def test_relay_closing_brings_the_route_back_to_p2p_at_once() -> None:
    router, clock = settled_on_p2p()
    run(router, clock, signals(p2p_silence_ms=1500.0), 2000)
    assert router.route is Route.RELAY
    router.update(signals(relay_open=False))
    assert router.route is Route.BOTH
    assert router.target is Route.P2P
    assert router.last_change.reason == "relay closed"


def test_relay_closing_while_p2p_is_open_but_unhealthy_still_prefers_p2p() -> None:
    router, clock = settled_on_p2p()
    run(router, clock, signals(p2p_silence_ms=1500.0), 2000)
    router.update(signals(p2p_silence_ms=1500.0, relay_open=False))
    assert router.target is Route.P2P
    assert router.last_change.reason == "relay closed"


def test_reversing_during_the_overlap_keeps_both_and_records_why() -> None:
    router, clock = settled_on_p2p()
    router.update(signals(p2p_silence_ms=1500.0))
    clock.advance(100)
    router.update(signals(relay_open=False))
    change = router.last_change
    assert (change.previous, change.route, change.target, change.reason) == (
        Route.BOTH,
        Route.BOTH,
        Route.P2P,
        "relay closed",
    )
    # The overlap restarted with the reversal.
    assert set(run(router, clock, HEALTHY, T.overlap_ms - 20)) == {Route.BOTH}
    assert run(router, clock, HEALTHY, 40)[-1] is Route.P2P


def test_subscribers_hear_every_change_and_can_unsubscribe() -> None:
    router, clock = p2p_first()
    heard: list[RouteChange] = []
    unsubscribe = router.subscribe(heard.append)
    run(router, clock, HEALTHY, T.overlap_ms + 100)
    assert len(heard) == router.change_count == 2
    assert heard[-1] is router.last_change
    unsubscribe()
    unsubscribe()  # twice is harmless
    run(router, clock, signals(p2p_open=False), 2000)
    assert len(heard) == 2
    assert router.change_count == 4


def test_a_failing_subscriber_is_counted_and_the_others_still_hear() -> None:
    router, clock = p2p_first()

    def broken(change: RouteChange) -> None:
        raise RuntimeError("the game's bug")

    heard: list[RouteChange] = []
    router.subscribe(broken)
    router.subscribe(heard.append)
    run(router, clock, HEALTHY, T.overlap_ms + 100)
    assert router.callback_errors == 2
    assert len(heard) == 2
    assert router.route is Route.P2P


def test_a_flapping_link_is_counted_and_kept_nowhere_in_the_router() -> None:
    flaps = 100
    router, clock = p2p_first(RoutingThresholds(min_dwell_ms=0, overlap_ms=0))
    for _ in range(flaps):
        router.update(HEALTHY)
        clock.advance(10)
        router.update(signals(p2p_open=False))
        clock.advance(10)
    assert router.change_count == 4 * flaps
    assert router.last_change is not None
    assert (router.last_change.route, router.last_change.reason) == (Route.RELAY, "switch complete")
    assert router.stats() == {
        "route_mode": "p2p-first",
        "route": "relay",
        "route_changes": 4 * flaps,
        "route_callback_errors": 0,
    }


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("silence_ms", 0, "silence_ms must be positive"),
        ("high_rtt_ms", -1, "high_rtt_ms must be positive"),
        ("min_dwell_ms", -1, "min_dwell_ms must be finite and not negative"),
        ("overlap_ms", float("nan"), "overlap_ms must be finite and not negative"),
        ("max_unacked_inputs", 0, "max_unacked_inputs must be at least 1"),
    ],
)
def test_threshold_validation(field: str, value: float, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RoutingThresholds(**{field: value})


def test_a_backlog_of_unacknowledged_inputs_on_p2p_moves_to_the_relay() -> None:
    router, clock = settled_on_p2p()
    below = signals(unacked_inputs=T.max_unacked_inputs - 1)
    assert set(run(router, clock, below, 2000)) == {Route.P2P}
    assert router.update(signals(unacked_inputs=T.max_unacked_inputs)) is Route.BOTH
    assert router.last_change.reason == "32 inputs unacknowledged over p2p"
    assert router.target is Route.RELAY


def test_a_backlog_on_the_relay_does_not_keep_a_healthy_p2p_away() -> None:
    """On the relay the backlog is the relay's (a slow relay): P2P's own health decides."""
    router, clock = settled_on_p2p()
    run(router, clock, signals(p2p_open=False), 2000)
    assert router.route is Route.RELAY
    backlog = signals(unacked_inputs=60)
    routes = run(router, clock, backlog, T.min_dwell_ms + 100)
    assert routes[-1] is Route.BOTH
    assert router.target is Route.P2P
    assert router.last_change.reason.startswith("p2p healthy for 30")
    # Once P2P carries the inputs, the backlog is its own again: one that persists sends them
    # back to the relay; one that clears keeps them on P2P.
    assert set(run(router, clock, HEALTHY, T.overlap_ms + 100)) == {Route.BOTH, Route.P2P}
    assert router.route is Route.P2P
    assert router.update(backlog) is Route.BOTH
    assert router.target is Route.RELAY


def test_routes_are_made_of_paths_and_fixed_modes_name_their_route() -> None:
    assert {route: route.paths for route in Route} == {
        Route.P2P: (Link.P2P,),
        Route.RELAY: (Link.RELAY,),
        Route.BOTH: (Link.P2P, Link.RELAY),
    }
    assert RouteMode.P2P.value == Route.P2P.value == Link.P2P.value == "p2p"
    assert RouteMode.RELAY.value == Route.RELAY.value == Link.RELAY.value == "relay"

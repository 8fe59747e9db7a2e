"""Reliable control messages between two sessions over seeded links that drop 30% of packets.

The issue's bar: 100 control messages each way all arrive exactly once and in order, and the
delivery times (first send to ack, as ``stats()`` reports them) are printed in simulated ms.
Run with ``-s`` to see them.
"""

from __future__ import annotations

import pytest

from p2p_transport.protocol.control import MAX_ACK_DELAY_MS, MAX_RTO_MS
from p2p_transport.protocol.rtt import nearest_rank
from tests.control_sim import ControlRun, simulate_control
from tests.link_sim import ONE_WAY_MS

RTT_MS = 2 * ONE_WAY_MS
MESSAGES = 100


def check_exactly_once_in_order(run: ControlRun) -> None:
    for side, direction in run.directions.items():
        assert direction.received == list(range(MESSAGES)), side
    for session in run.sessions.values():
        counters = session.parts.control.counters
        assert counters.sent == counters.acked == counters.delivered == MESSAGES
        assert counters.callback_errors == counters.out_of_window == 0
        assert counters.retransmits > 0  # the loss really hit
        assert session.parts.control.in_flight == 0 and not session.parts.control.timer_running
        stats = session.stats()
        assert stats["control_delivered"] == MESSAGES
        assert stats["handler_errors"] == 0


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_thirty_percent_loss_on_the_datachannel_only(seed: int) -> None:
    run = simulate_control(0.3, seed=seed)
    check_exactly_once_in_order(run)
    times = run.delivery_ms()
    p50, p99 = nearest_rank(times, 0.5), nearest_rank(times, 0.99)
    print(f"\nP2P only, 30% loss, seed {seed}: delivery p50 {p50:.0f} ms, p99 {p99:.0f} ms")
    assert len(times) == 2 * MESSAGES
    # Nothing is acknowledged faster than a round trip.
    assert min(times) >= RTT_MS - 1e-6
    # The median message needs at most one timeout: the first RTO measured on this link (RTTVAR
    # starts at half the round trip) and a round trip for the resend.
    first_rto = RTT_MS + 4 * (RTT_MS / 2) + MAX_ACK_DELAY_MS
    assert p50 <= first_rto + RTT_MS
    # Backoff never waits more than the ceiling, so even the unluckiest message stays near it.
    assert p99 <= MAX_RTO_MS
    for session in run.sessions.values():
        assert session.stats()["control_delivery_p99_ms"] <= MAX_RTO_MS


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_thirty_percent_loss_on_both_paths(seed: int) -> None:
    # Control messages go on both paths, so a message is lost only if both copies are (9%).
    run = simulate_control(0.3, seed=seed, relay_loss=0.3)
    check_exactly_once_in_order(run)
    times = run.delivery_ms()
    p50, p99 = nearest_rank(times, 0.5), nearest_rank(times, 0.99)
    print(f"\nP2P and relay, 30% loss each, seed {seed}: p50 {p50:.0f} ms, p99 {p99:.0f} ms")
    assert p50 <= 2 * RTT_MS
    assert p99 <= MAX_RTO_MS
    for session in run.sessions.values():
        assert session.parts.control.counters.duplicates > 0  # the second copies, dropped


def test_lossless_link_needs_no_resend() -> None:
    run = simulate_control(0.0, seed=1, messages=MESSAGES)
    for direction in run.directions.values():
        assert direction.received == list(range(MESSAGES))
    assert all(s.parts.control.counters.retransmits == 0 for s in run.sessions.values())
    assert run.delivery_ms() == pytest.approx([RTT_MS] * 2 * MESSAGES)

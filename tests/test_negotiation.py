"""AckNegotiation: when to probe, and when acked inputs are used."""

from __future__ import annotations

import pytest

from p2p_transport.protocol.negotiation import MAX_PROBES, PROBE_INTERVAL_MS, AckNegotiation
from tests.fakes import FakeClock


def test_no_probe_before_the_peer_is_heard() -> None:
    clock = FakeClock()
    negotiation = AckNegotiation(clock)
    assert not negotiation.probe_due()
    clock.advance(10_000)
    assert not negotiation.probe_due()
    assert not negotiation.use_acked


def test_probes_every_interval_once_the_peer_is_heard() -> None:
    clock = FakeClock()
    negotiation = AckNegotiation(clock)
    negotiation.heard_peer_inputs()
    assert negotiation.probe_due()
    negotiation.probe_sent()
    assert not negotiation.probe_due()
    clock.advance(PROBE_INTERVAL_MS - 1)
    assert not negotiation.probe_due()
    clock.advance(1)
    assert negotiation.probe_due()
    negotiation.probe_sent()
    assert negotiation.probes_sent == 2


def test_an_acked_packet_settles_it_once_and_probing_stops() -> None:
    clock = FakeClock()
    negotiation = AckNegotiation(clock)
    negotiation.heard_peer_inputs()
    assert negotiation.heard_acked_inputs() is True
    assert negotiation.heard_acked_inputs() is False  # only the first one settles it
    assert negotiation.use_acked
    assert not negotiation.probe_due()


def test_disabled_never_probes_nor_switches() -> None:
    clock = FakeClock()
    negotiation = AckNegotiation(clock, enabled=False)
    negotiation.heard_peer_inputs()
    assert not negotiation.probe_due()
    assert negotiation.heard_acked_inputs() is False
    assert not negotiation.use_acked


def test_probe_interval_must_be_positive() -> None:
    with pytest.raises(ValueError, match="probe_interval_ms must be positive"):
        AckNegotiation(FakeClock(), probe_interval_ms=0)


def test_a_peer_that_never_answers_gets_a_bounded_number_of_probes() -> None:
    clock = FakeClock()
    negotiation = AckNegotiation(clock)
    negotiation.heard_peer_inputs()
    for _ in range(10 * MAX_PROBES):
        if negotiation.probe_due():
            negotiation.probe_sent()
        assert negotiation.peer_version == (1 if negotiation.probes_sent == MAX_PROBES else None)
        clock.advance(PROBE_INTERVAL_MS)
    assert negotiation.probes_sent == MAX_PROBES
    assert negotiation.peer_version == 1
    assert not negotiation.use_acked
    # A peer that answers late (its own probe got through) still settles it.
    assert negotiation.heard_acked_inputs() is True
    assert negotiation.peer_version == 2 and negotiation.use_acked

"""AckNegotiation: when to probe, and when acked inputs are used."""

from __future__ import annotations

import pytest

from p2p_transport.protocol.negotiation import MAX_PROBES, PROBE_INTERVAL_MS, AckNegotiation
from tests.fakes import FakeClock


def hear_inputs(negotiation: AckNegotiation, clock: FakeClock) -> None:
    """A version-1 input packet of the peer's came now (as the session's intake tells it)."""
    negotiation.last_heard_ms = clock()
    negotiation.heard_peer_inputs()


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
    hear_inputs(negotiation, clock)
    assert negotiation.probe_due()
    negotiation.probe_sent()
    assert not negotiation.probe_due()
    clock.advance(1)
    hear_inputs(negotiation, clock)
    clock.advance(PROBE_INTERVAL_MS - 2)
    assert not negotiation.probe_due()
    clock.advance(1)
    assert negotiation.probe_due()
    negotiation.probe_sent()
    assert negotiation.probes_sent == 2


def test_a_peer_not_heard_since_the_last_probe_is_not_probed_so_a_cut_spends_no_probes() -> None:
    clock = FakeClock()
    negotiation = AckNegotiation(clock)
    hear_inputs(negotiation, clock)
    negotiation.probe_sent()
    # Every packet lost for 10 s (a cut before the two settled): one probe, not eight.
    for _ in range(40):
        clock.advance(PROBE_INTERVAL_MS)
        assert not negotiation.probe_due()
    assert negotiation.probes_sent == 1 and negotiation.peer_version is None
    negotiation.last_heard_ms = clock()  # the link is back: any packet of the peer's
    assert negotiation.probe_due()


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
    for _ in range(10 * MAX_PROBES):
        hear_inputs(negotiation, clock)  # a version-1 peer's inputs keep coming
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

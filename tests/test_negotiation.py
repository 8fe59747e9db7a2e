"""AckNegotiation: when to probe, and when acked inputs are used."""

from __future__ import annotations

import pytest

from p2p_transport.protocol.negotiation import PROBE_INTERVAL_MS, AckNegotiation
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

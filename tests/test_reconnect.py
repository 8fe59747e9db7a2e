"""ReconnectBackoff: bounded attempts with exponential backoff."""

from __future__ import annotations

from typing import Any

import pytest

from p2p_transport.protocol.reconnect import ReconnectBackoff, ReconnectConfig


def delays(backoff: ReconnectBackoff, n: int) -> list[float | None]:
    return [backoff.next_delay_ms() for _ in range(n)]


def test_default_delays_double_from_250_ms_and_stop_after_five() -> None:
    backoff = ReconnectBackoff()
    assert delays(backoff, 7) == [250.0, 500.0, 1000.0, 2000.0, 4000.0, None, None]
    assert backoff.gave_up
    assert backoff.stats() == {
        "reconnect_attempts": 5,
        "reconnect_give_ups": 1,
        "reconnect_attempts_this_outage": 5,
    }


def test_the_delay_is_capped() -> None:
    backoff = ReconnectBackoff(ReconnectConfig(max_attempts=6, first_delay_ms=1000, backoff=3))
    assert delays(backoff, 6) == [1000.0, 3000.0, 4000.0, 4000.0, 4000.0, 4000.0]


def test_reset_ends_the_outage_and_the_next_starts_from_the_first_delay() -> None:
    backoff = ReconnectBackoff()
    assert delays(backoff, 2) == [250.0, 500.0]
    backoff.reset()
    assert backoff.attempts == 0
    assert delays(backoff, 1) == [250.0]
    assert backoff.stats()["reconnect_attempts"] == 3
    assert backoff.stats()["reconnect_attempts_this_outage"] == 1


def test_zero_attempts_turns_it_off() -> None:
    config = ReconnectConfig(max_attempts=0)
    assert not config.enabled
    backoff = ReconnectBackoff(config)
    assert backoff.next_delay_ms() is None
    assert backoff.counters.give_ups == 1
    backoff.reset()
    assert not backoff.gave_up


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_attempts": -1}, "max_attempts"),
        ({"max_attempts": True}, "max_attempts"),
        ({"first_delay_ms": -1}, "first_delay_ms"),
        ({"max_delay_ms": float("inf")}, "max_delay_ms"),
        ({"backoff": 0.5}, "backoff"),
        ({"attempt_timeout_ms": 0}, "attempt_timeout_ms"),
    ],
)
def test_config_validation(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ReconnectConfig(**kwargs)

"""Argument checks shared by the codec, the protocol pieces and their configurations.

Each raises :class:`~p2p_transport.errors.UsageError` (a ``ValueError``) with the argument's
name, so a caller's mistake reads the same wherever it is caught. ``bool`` is refused where an
int is wanted: it is an int subclass, and a ``True`` action or frame is almost certainly a
caller's bug.
"""

from __future__ import annotations

import math
from typing import Any

from p2p_transport.errors import UsageError

__all__ = ["check_finite", "check_int", "check_non_negative", "check_positive"]


def check_int(name: str, value: int, maximum: int | None = None, minimum: int = 0) -> None:
    """``value`` is an int (not a bool) in ``minimum..maximum`` (no upper bound if ``None``)."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise UsageError(f"{name} must be an int, got {type(value).__name__}")
    if value < minimum or (maximum is not None and value > maximum):
        bound = f"at least {minimum}" if maximum is None else f"in {minimum}..{maximum}"
        raise UsageError(f"{name} must be {bound}, got {value}")


def check_finite(name: str, value: float) -> None:
    """``value`` is a finite int or float (not a bool)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise UsageError(f"{name} must be a number, got {type(value).__name__}")
    try:
        finite = math.isfinite(value)
    except OverflowError:  # an int beyond float64's range; do not print all its digits
        raise UsageError(f"{name} must be finite, got an int beyond float64") from None
    if not finite:
        raise UsageError(f"{name} must be finite, got {value}")


def check_positive(owner: Any, *names: str) -> None:
    """Each named attribute of ``owner`` (a configuration) is above zero; NaN is refused."""
    for name in names:
        value = getattr(owner, name)
        if not value > 0:
            raise UsageError(f"{name} must be positive, got {value}")


def check_non_negative(owner: Any, *names: str) -> None:
    """Each named attribute of ``owner`` (a configuration) is finite and at least zero."""
    for name in names:
        value = getattr(owner, name)
        if not (math.isfinite(value) and value >= 0):
            raise UsageError(f"{name} must be finite and not negative, got {value}")

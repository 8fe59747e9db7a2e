"""Calling code the transport does not own (the game's callbacks, route subscribers).

One rule everywhere: a callback that raises is logged with its traceback and reported to the
caller, which counts it, and the transport goes on. Nothing the game does in a callback can stop
a message handler or a timer halfway.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

__all__ = ["call_guarded"]

logger = logging.getLogger(__name__)


def call_guarded(callback: Callable[..., Any], *args: Any, what: str) -> bool:
    """Call ``callback(*args)``; return False (after logging) if it raised."""
    try:
        callback(*args)
    except Exception:
        logger.exception("%s callback failed", what)
        return False
    return True

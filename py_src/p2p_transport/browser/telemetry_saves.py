"""Telemetry records a tab hands the signaling server to keep, until the server answers."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from typing import Any

from p2p_transport.errors import InvalidStateError, ServerRefusedError, UsageError
from p2p_transport.wire.signaling import SAVE_TELEMETRY_EVENT, telemetry_parts

__all__ = ["TelemetrySaves"]


class TelemetrySaves:
    """Each record sent in parts (``save_telemetry``), and the future its answer settles."""

    def __init__(self) -> None:
        self._pending: dict[str, asyncio.Future[dict[str, Any]]] = {}

    def save(
        self, emit: Callable[[str, Any], None], record: dict[str, Any]
    ) -> asyncio.Future[dict[str, Any]]:
        """Send ``record`` (its ``extra`` the game's, anything JSON holds) with ``emit``; the
        future resolves with the server's answer once the record is on disk."""
        try:
            text = json.dumps(record, allow_nan=False)
        except (TypeError, ValueError) as error:
            raise UsageError(f"extra must be what JSON can hold: {error}") from None
        save_id = uuid.uuid4().hex
        parts = telemetry_parts(save_id, text)  # ValueError if too long
        future: asyncio.Future[dict[str, Any]] = asyncio.get_event_loop().create_future()
        self._pending[save_id] = future
        for part in parts:
            emit(SAVE_TELEMETRY_EVENT, part)
        return future

    def answered(self, detail: dict[str, Any]) -> None:
        """The server's ``telemetry_saved``: ``{save_id, bytes, file}`` or ``{save_id, error}``."""
        future = self._pending.pop(str(detail.get("save_id")), None)
        if future is None or future.done():
            return
        if "error" in detail:
            future.set_exception(
                ServerRefusedError(f"the server did not keep it: {detail['error']}")
            )
        else:
            future.set_result(detail)

    def close(self) -> None:
        """The transport closed: every record still unanswered fails."""
        for future in self._pending.values():
            if not future.done():
                future.set_exception(
                    InvalidStateError("the transport closed before the server answered")
                )
        self._pending.clear()

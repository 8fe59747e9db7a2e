"""Telemetry records the pages hand over, kept on disk: one file per room and player.

A page sends its record's JSON text in parts (``save_telemetry``); once the last part is in, the
record is written to a temporary file, flushed to disk, renamed over the room's file for that
player, and the directory flushed too, and only then acknowledged (``telemetry_saved``). A page
that was told its record is stored can close at once: nothing it was told is kept is lost, even
if the server's machine loses power the next moment.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote

from p2p_transport.wire.signaling import MAX_TELEMETRY_CHARS, TELEMETRY_PART_CHARS

__all__ = ["TelemetryError", "TelemetryStore", "check_save_id", "room_dir_name"]

#: A save id is the page's own name for one save (it has a UUID's 32 hex digits).
MAX_SAVE_ID_CHARS: Final = 64
#: Saves under way per client: a page saves once per episode or session, so a few are plenty,
#: and a client that opens more only grows the server's memory.
MAX_SAVES_PER_CLIENT: Final = 4
#: Characters of unfinished records the process holds for all its clients together: four records
#: of the largest size (about 64 MB). Pages save at the end of an episode or session, a few at a
#: time, and their records are usually far smaller; past it a part is refused (the page is told,
#: and can save again), so clients that start saves and never finish them cannot grow the
#: server's memory past this.
MAX_PENDING_CHARS: Final = 4 * MAX_TELEMETRY_CHARS
#: A save whose last part came longer ago than this is abandoned, and dropped when another needs
#: its room: a page sends a record's parts back to back (the largest record is about 16 MB, under
#: 20 s even on a 1 MB/s uplink), so only a client that stopped halfway holds a save this long,
#: and one that keeps its saves alive must keep sending, which its rate limits bound.
STALE_SAVE_S: Final = 30.0


def room_dir_name(room: str) -> str:
    """A room's directory under a server's data or record directory: its name %-quoted, and the
    dots of ``.`` and ``..`` too, which quoting leaves as they are and the file system would
    read as this directory or its parent."""
    name = quote(room, safe="")
    return name.replace(".", "%2E") if name in (".", "..") else name


class TelemetryError(ValueError):
    """A part the store refuses; the message says why (``reason``: its ``/stats`` refusal name,
    for the refusals that protect the server rather than correct a page)."""

    def __init__(self, message: str, reason: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass
class _Save:
    parts: int
    last_part_at: float
    chunks: list[str] = field(default_factory=list)
    chars: int = 0


class TelemetryStore:
    """Assembles each client's parts and writes complete records under ``data_dir``."""

    def __init__(
        self,
        data_dir: Path,
        max_pending_chars: int = MAX_PENDING_CHARS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.data_dir = data_dir
        self.max_pending_chars = max_pending_chars
        self._clock = clock
        #: Characters held in unfinished records, all clients together.
        self.pending_chars = 0
        #: Saves abandoned halfway and dropped to make room for another (:data:`STALE_SAVE_S`).
        self.stale_saves_dropped = 0
        self._saves: dict[str, dict[str, _Save]] = {}

    @property
    def unfinished_saves(self) -> int:
        """Records some of whose parts came and others not yet, all clients together."""
        return sum(len(saves) for saves in self._saves.values())

    async def add_part(
        self, sid: str, room: str, player_index: int, payload: dict[str, Any]
    ) -> dict[str, Any] | None:
        """Take one part; when it completes the record, write it and return the answer
        (``{save_id, bytes, file}``). Raises :class:`TelemetryError` for a bad part (the save
        is then dropped)."""
        save_id = payload["save_id"]
        saves = self._saves.setdefault(sid, {})
        try:
            save = self._next_part(saves, save_id, payload)
        except TelemetryError:
            self._drop(saves, save_id)
            raise
        if len(save.chunks) < save.parts:
            return None
        self._drop(saves, save_id)
        text = "".join(save.chunks)
        try:
            record = json.loads(text)
        except ValueError as error:
            raise TelemetryError(f"the record is not JSON: {error}") from None
        if not isinstance(record, dict):
            raise TelemetryError("the record must be a JSON object")
        kept = {
            "room": room,
            "player_index": player_index,
            "saved_at_unix_ms": time.time() * 1000.0,
            "record": record,
        }
        path = self.data_dir / room_dir_name(room) / f"player-{player_index}.json"
        size = await asyncio.to_thread(_write_durably, path, json.dumps(kept))
        return {"save_id": save_id, "bytes": size, "file": str(path.relative_to(self.data_dir))}

    def forget(self, sid: str) -> None:
        """The client left: drop its unfinished saves."""
        for save in self._saves.pop(sid, {}).values():
            self.pending_chars -= save.chars

    def _drop(self, saves: dict[str, _Save], save_id: str) -> None:
        save = saves.pop(save_id, None)
        if save is not None:
            self.pending_chars -= save.chars

    def _next_part(self, saves: dict[str, _Save], save_id: str, payload: dict[str, Any]) -> _Save:
        part, parts, data = payload.get("part"), payload.get("parts"), payload.get("data")
        if (
            not isinstance(parts, int)
            or not 1 <= parts <= MAX_TELEMETRY_CHARS // TELEMETRY_PART_CHARS + 1
        ):
            raise TelemetryError(
                f"'parts' must be a positive int within the size limit, got {parts!r}"
            )
        if not isinstance(data, str) or len(data) > TELEMETRY_PART_CHARS:
            raise TelemetryError(
                f"'data' must be a string of at most {TELEMETRY_PART_CHARS} characters"
            )
        now = self._clock()
        save = saves.get(save_id)
        if save is None:
            if len(saves) >= MAX_SAVES_PER_CLIENT:
                raise TelemetryError(f"more than {MAX_SAVES_PER_CLIENT} saves under way")
            save = saves[save_id] = _Save(parts, now)
        if part != len(save.chunks) or parts != save.parts:
            raise TelemetryError(
                f"expected part {len(save.chunks)} of {save.parts}, got part {part!r} of {parts!r}"
            )
        if save.chars + len(data) > MAX_TELEMETRY_CHARS:
            raise TelemetryError(f"the record is over {MAX_TELEMETRY_CHARS} characters")
        # One client holds at most one largest record's worth at a time, so it takes several
        # clients to fill the process's budget, and abandoned saves make room for live ones.
        if sum(kept.chars for kept in saves.values()) + len(data) > MAX_TELEMETRY_CHARS:
            raise TelemetryError(
                f"this client's unfinished records are over {MAX_TELEMETRY_CHARS} characters"
            )
        if self.pending_chars + len(data) > self.max_pending_chars:
            self._drop_stale(now)
        if self.pending_chars + len(data) > self.max_pending_chars:
            raise TelemetryError(
                "the server holds too many unfinished records: save again in a minute",
                reason="telemetry_busy",
            )
        save.chars += len(data)
        save.last_part_at = now
        self.pending_chars += len(data)
        save.chunks.append(data)
        return save

    def _drop_stale(self, now: float) -> None:
        """Drop every save whose last part came more than :data:`STALE_SAVE_S` ago."""
        for saves in self._saves.values():
            for save_id in [
                i for i, save in saves.items() if now - save.last_part_at > STALE_SAVE_S
            ]:
                self._drop(saves, save_id)
                self.stale_saves_dropped += 1


def check_save_id(payload: Any) -> str:
    """The payload's save id, which every answer names; ``TelemetryError`` without one."""
    if not isinstance(payload, dict):
        raise TelemetryError("payload must be an object {save_id, part, parts, data}")
    save_id = payload.get("save_id")
    if not isinstance(save_id, str) or not 0 < len(save_id) <= MAX_SAVE_ID_CHARS:
        raise TelemetryError(f"'save_id' must be a string of 1 to {MAX_SAVE_ID_CHARS} characters")
    return save_id


def _write_durably(path: Path, text: str) -> int:
    """Write ``text`` to ``path`` so that it is on disk when this returns: a temporary file,
    flushed, renamed over the old one, and the directory flushed (the rename's own record)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = text.encode()
    temporary = path.with_name(path.name + ".tmp")
    with open(temporary, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    os.replace(temporary, path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
    return len(data)

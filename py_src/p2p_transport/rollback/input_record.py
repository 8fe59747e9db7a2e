"""A room's inputs as the relay server records them (``python -m p2p_server --record-dir``): the
file's line format, and the reader that turns a record into episode records for
:func:`~p2p_transport.rollback.replay.replay_episode`.

A record is JSON lines (ASCII), appended in the order the relay received them:

- the first line names the format, its version, the room, its number of players and when the
  record started: ``{"format":"p2p_transport.input_record","version":1,"room":"r",
  "players":2,"started_unix_ms":1712345678901}``;
- ``[frame,player,action]``: player ``player``'s action for ``frame``;
- ``{"end":episode,"player":p,"frame":last}``: player ``p``'s rollback layer ended ``episode``
  with its frame ``last``.

``frame`` is the frame on the wire: the rollback layer numbers the frames of every episode on
from where the last left off (:mod:`p2p_transport.rollback.session`), and an end line's ``last``
counts from the episode's own frame 0, as the rollback layer's episode-end message does. Each
(frame, player) appears at most once, with the first action the relay carried for it; ``player``
is the sender's slot in the room. A last line without its newline (the process stopped while
writing it) is not read.

The reader splits the record into episodes the way the rollback layer numbers them: episode 0
starts at frame 0, and episode ``n + 1`` at episode ``n``'s first frame plus the later of both
players' last frames, plus one, plus the most input delay there is
(:func:`~p2p_transport.rollback.session.episode_span`). It therefore needs both players' end lines
of an episode to find the next: episodes after one whose end lines are missing are not read.
:class:`RoomInputs` is that rule, which a spectator
(:class:`~p2p_transport.rollback.spectator.SpectatorSession`) follows too as the inputs arrive.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from typing import Any, Final

from p2p_transport.errors import UsageError
from p2p_transport.rollback.session import episode_span

__all__ = [
    "INPUT_RECORD_FORMAT",
    "INPUT_RECORD_VERSION",
    "RoomInputs",
    "end_line",
    "header_line",
    "input_line",
    "read_input_record",
]

INPUT_RECORD_FORMAT: Final = "p2p_transport.input_record"
#: Raised when a line changes meaning; a reader refuses versions it does not know.
INPUT_RECORD_VERSION: Final = 1

_COMPACT: Final = (",", ":")


def header_line(room: str, players: int, started_unix_ms: int) -> str:
    """The record's first line."""
    header = {
        "format": INPUT_RECORD_FORMAT,
        "version": INPUT_RECORD_VERSION,
        "room": room,
        "players": players,
        "started_unix_ms": started_unix_ms,
    }
    return json.dumps(header, separators=_COMPACT) + "\n"


def input_line(frame: int, player: int, action: int) -> str:
    """One input: ``player``'s ``action`` for the wire ``frame``."""
    return f"[{frame},{player},{action}]\n"


def end_line(player: int, episode: int, last_frame: int) -> str:
    """``player`` ended ``episode`` with its episode-relative frame ``last_frame``."""
    return f'{{"end":{episode},"player":{player},"frame":{last_frame}}}\n'


def read_input_record(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The record at ``path`` as ``{"room", "players", "started_unix_ms", "episodes"}``.

    Each of ``episodes`` is an episode record :func:`~.replay.replay_episode` takes:
    ``episode``, ``first_frame`` (its frame 0 on the wire), ``frames`` (its frames 0 to
    ``frames - 1`` hold every player's input: the last confirmed frame and all before it),
    ``inputs`` (one ``[player 0, player 1, ...]`` per frame) and ``ended`` (both ended it and
    every one of its inputs is there). An episode's parameters (``params``) never travel on the
    wire: build its game with them, ``replay(make_game(**params), record["inputs"])``. Episodes
    after the first are listed only once they have a confirmed frame. Raises ``UsageError`` (a
    ``ValueError``) for a file that is not such a record.
    """
    with open(path, encoding="utf-8") as source:
        lines = source.read().split("\n")
    # The last piece is "" after a final newline, or a line cut short: not read either way.
    header = _header(lines[0] if len(lines) > 1 else "")
    players: int = header["players"]
    room = RoomInputs(players)
    for number, line in enumerate(lines[1:-1], start=2):
        try:
            entry = json.loads(line)
            if isinstance(entry, list):
                frame, player, action = entry
                seat = 0 <= player < players
            else:
                room.add_end(entry["player"], entry["end"], entry["frame"])
        except (ValueError, TypeError, KeyError) as error:
            raise _not_a_line(path, number, line) from error
        if isinstance(entry, list):
            if not seat:
                raise _not_a_line(path, number, line)
            room.add_input(player, frame, action)
    episodes: list[dict[str, Any]] = []
    episode = base = 0
    while True:
        limit = room.limit(episode)
        inputs: list[list[int]] = []
        while limit is None or len(inputs) < limit:
            row = room.take_row(base + len(inputs))
            if row is None:
                break
            inputs.append(row)
        following = room.next_base(episode, base)
        ended = following is not None and len(inputs) == limit
        if inputs or not episodes:
            episodes.append(
                {
                    "episode": episode,
                    "first_frame": base,
                    "frames": len(inputs),
                    "inputs": inputs,
                    "ended": ended,
                }
            )
        if following is None or not ended:
            break
        base = following
        episode += 1
    return {
        "room": header["room"],
        "players": players,
        "started_unix_ms": header["started_unix_ms"],
        "episodes": episodes,
    }


class RoomInputs:
    """A room's inputs by player and wire frame, and its players' episode ends, read into
    episodes as the rollback layer numbers them: the reader's rule, and a spectator's.

    The first action given for a (player, frame) and the first end given for a (player,
    episode) are the ones kept, as in a record. Episode ``n`` has at most :meth:`limit` frames
    (one past the earliest last frame any player gave for it), and episode ``n + 1`` starts at
    :meth:`next_base` once every player's end of ``n`` is known.
    """

    __slots__ = ("actions", "ends", "players")

    def __init__(self, players: int) -> None:
        self.players = players
        #: Player -> {wire frame: action}.
        self.actions: list[dict[int, int]] = [{} for _ in range(players)]
        #: Episode -> {player: the episode's own last frame}.
        self.ends: dict[int, dict[int, int]] = {}

    def add_input(self, player: int, frame: int, action: int) -> bool:
        """Keep ``player``'s ``action`` for the wire ``frame``; ``False`` if one was kept
        already (the first stays)."""
        mine = self.actions[player]
        if frame in mine:
            return False
        mine[frame] = action
        return True

    def add_end(self, player: int, episode: int, last_frame: int) -> bool:
        """Keep ``player``'s end of ``episode`` (its frame ``last_frame`` counted from the
        episode's frame 0); ``False`` if one was kept already (the first stays)."""
        marks = self.ends.setdefault(episode, {})
        if player in marks:
            return False
        marks[player] = last_frame
        return True

    def complete(self, frame: int) -> bool:
        """Whether every player's input for the wire ``frame`` is here."""
        return all(frame in mine for mine in self.actions)

    def take_row(self, frame: int) -> list[int] | None:
        """Every player's action for the wire ``frame`` (by player index), forgotten once taken:
        what reads the frames in order keeps only those it has not reached. ``None`` (nothing
        taken) while any is missing."""
        if not self.complete(frame):
            return None
        return [mine.pop(frame) for mine in self.actions]

    def discard(self, frames: Iterable[int]) -> None:
        """Forget the inputs of ``frames`` (those between an episode's end and the next one's
        start, which no episode plays)."""
        for mine in self.actions:
            for frame in frames:
                mine.pop(frame, None)

    def limit(self, episode: int) -> int | None:
        """The most frames ``episode`` has: one past the earliest last frame a player gave for
        it (``None``: no player has ended it yet)."""
        marks = self.ends.get(episode)
        return min(marks.values()) + 1 if marks else None

    def next_base(self, episode: int, base: int) -> int | None:
        """The wire frame of episode ``episode + 1``'s frame 0, ``episode`` starting at wire
        frame ``base``; ``None`` until every player's end of ``episode`` is known."""
        marks = self.ends.get(episode, {})
        if len(marks) != self.players:
            return None
        return base + episode_span(marks.values())


def _not_a_line(path: str | os.PathLike[str], number: int, line: str) -> UsageError:
    # Made only for a line that fails: a record holds hundreds of thousands of good ones.
    return UsageError(f"{path}:{number}: not an input record line: {line!r}")


def _header(line: str) -> dict[str, Any]:
    try:
        header = json.loads(line)
    except ValueError:
        header = None
    if not isinstance(header, dict) or header.get("format") != INPUT_RECORD_FORMAT:
        raise UsageError(f"not an input record: its first line is {line[:200]!r}")
    if header.get("version") != INPUT_RECORD_VERSION:
        raise UsageError(
            f"input record version {header.get('version')!r}: this reader reads version "
            f"{INPUT_RECORD_VERSION}"
        )
    players = header.get("players")
    if not isinstance(players, int) or players < 1:
        raise UsageError(f"input record header names {players!r} players")
    return header

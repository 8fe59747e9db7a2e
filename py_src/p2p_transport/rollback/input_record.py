"""A room's inputs as the relay server records them (``python -m p2p_server --record-dir``): the
file's line format, and the reader that turns a record into episode records for
:func:`~p2p_transport.rollback.replay.replay_episode`.

A record is JSON lines (ASCII), appended in the order the relay received them:

- the first line names the format, its version, the room, its number of players and when the
  record started: ``{"format":"p2p_transport.input_record","version":2,"room":"r",
  "players":4,"started_unix_ms":1712345678901}``;
- ``[frame,player,action]``: player ``player``'s action for ``frame``;
- ``{"end":episode,"player":p,"frame":last}``: player ``p``'s rollback layer ended ``episode``
  with its frame ``last``;
- ``{"left":p,"by":r,"episode":e,"frame":last,"actions":[a,...]}``: player ``r`` reported that
  player ``p`` left the room (a ``SEAT_LEFT`` control message,
  :mod:`p2p_transport.rollback.seats`): it holds ``p``'s inputs of episode ``e`` up to its frame
  ``last`` (-1: none of them), and hands on the last ``len(actions)`` of them, oldest first.

``frame`` is the frame on the wire: the rollback layer numbers the frames of every episode on
from where the last left off (:mod:`p2p_transport.rollback.session`), and an end or left line's
``last`` counts from the episode's own frame 0, as the rollback layer's messages do. Each
(frame, player) appears at most once, with the first action the relay carried for it, and each
(reporter, player left) once, with the first report; ``player`` and ``by`` are the sender's slot
in the room. A last line without its newline (the process stopped while writing it) is not read.
Version 2 added the left lines; a version 1 record (which has none) reads as before.

The reader splits the record into episodes the way the rollback layer numbers them: episode 0
starts at frame 0, and episode ``n + 1`` at episode ``n``'s first frame plus the latest last
frame its players gave, plus one, plus the most input delay there is
(:func:`~p2p_transport.rollback.session.episode_span`). It therefore needs every player's end
line of an episode to find the next: episodes after one whose end lines are missing are not read.

A player who left a room of more than two plays as the players who stay agreed (the rule of
:mod:`p2p_transport.rollback.seats`): once every player not reported as left has reported it,
the furthest report (episode first, then frame) is its last real input; after it, it plays the
game's idle action, for the rest of that episode and the whole of every later one, and its end
of those episodes is not needed. Its inputs up to there are the ones the relay carried, or,
where the relay missed some, the ones the reports handed on. Until every report is in, the
reader goes no further than the furthest report so far in that episode, nor past it into the
next. Reports travel between the players who stay, so a room left with a single player sends
none, and a record that ends before the reports stops where they are needed.

:class:`RoomInputs` is that rule, which a spectator
(:class:`~p2p_transport.rollback.spectator.SpectatorSession`) follows too as the inputs arrive.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from typing import Any, Final, NamedTuple

from p2p_transport.errors import UsageError
from p2p_transport.rollback.game import DEFAULT_ACTION, as_action
from p2p_transport.rollback.session import episode_span
from p2p_transport.wire.control_payloads import decode_seat_left_payload, encode_seat_left_payload
from p2p_transport.wire.signaling import PLAYERS_PER_ROOM

__all__ = [
    "INPUT_RECORD_FORMAT",
    "INPUT_RECORD_VERSION",
    "RoomInputs",
    "SeatReport",
    "end_line",
    "header_line",
    "input_line",
    "is_seat_report",
    "left_line",
    "read_input_record",
]

INPUT_RECORD_FORMAT: Final = "p2p_transport.input_record"
#: Raised when a line changes meaning or a new one comes; a reader refuses versions it does not
#: know.
INPUT_RECORD_VERSION: Final = 2
#: The versions this reader reads: a version 1 record is a version 2 one without left lines.
_READABLE_VERSIONS: Final = frozenset((1, INPUT_RECORD_VERSION))

_COMPACT: Final = (",", ":")


class SeatReport(NamedTuple):
    """A player's report that ``player`` left: it holds that player's inputs of ``episode`` up
    to the episode's frame ``last_frame`` (-1: none), the last ``len(actions)`` of them
    ``actions``, oldest first (a ``SEAT_LEFT`` payload, read)."""

    player: int
    episode: int
    last_frame: int
    actions: bytes

    @classmethod
    def decode(cls, payload: bytes) -> SeatReport:
        """From a ``SEAT_LEFT`` payload; :class:`~p2p_transport.wire.codec.DecodeError` if it is
        not one."""
        last_frame, episode, player, actions = decode_seat_left_payload(payload)
        return cls(player, episode, last_frame, actions)

    def encode(self) -> bytes:
        """As a ``SEAT_LEFT`` payload."""
        return encode_seat_left_payload(self.last_frame, self.episode, self.player, self.actions)


def is_seat_report(players: int, reporter: int, player: int) -> bool:
    """Whether the players of a room of ``players`` take ``reporter``'s report that ``player``
    left: only in a room of more than two (a pair's game ends with the peer), about another
    player of the room."""
    return (
        players > PLAYERS_PER_ROOM
        and 0 <= reporter < players
        and 0 <= player < players
        and player != reporter
    )


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


def left_line(reporter: int, report: SeatReport) -> str:
    """``reporter``'s ``report`` that a player left."""
    actions = ",".join(map(str, report.actions))
    return (
        f'{{"left":{report.player},"by":{reporter},"episode":{report.episode},'
        f'"frame":{report.last_frame},"actions":[{actions}]}}\n'
    )


def read_input_record(
    path: str | os.PathLike[str], *, idle_action: int = DEFAULT_ACTION
) -> dict[str, Any]:
    """The record at ``path`` as ``{"room", "players", "started_unix_ms", "episodes"}``.

    Each of ``episodes`` is an episode record :func:`~.replay.replay_episode` takes:
    ``episode``, ``first_frame`` (its frame 0 on the wire), ``frames`` (its frames 0 to
    ``frames - 1`` hold every player's input: the last confirmed frame and all before it),
    ``inputs`` (one ``[player 0, player 1, ...]`` per frame), ``ended`` (every player who
    counts ended it and every one of its inputs is there) and, as in the players' records,
    ``left`` when a player who left played its idle action in any of its frames: ``{"<player>":
    its last real frame}`` (-1 for the whole episode). The frames such a player idles hold
    ``idle_action``: pass the game's (:func:`~p2p_transport.rollback.game.idle_action`), or the
    inputs will not be the players' (0 is the default's). An episode's parameters (``params``)
    never travel on the wire: build its game with them, ``replay(make_game(**params),
    record["inputs"])``. Episodes after the first are listed only once they have a confirmed
    frame. Raises ``UsageError`` (a ``ValueError``) for a file that is not such a record.
    """
    idle = as_action("idle_action", idle_action)
    with open(path, encoding="utf-8") as source:
        lines = source.read().split("\n")
    # The last piece is "" after a final newline, or a line cut short: not read either way.
    header = _header(lines[0] if len(lines) > 1 else "")
    players: int = header["players"]
    room = RoomInputs(players, idle)
    for number, line in enumerate(lines[1:-1], start=2):
        try:
            entry = json.loads(line)
            if isinstance(entry, list):
                frame, player, action = entry
                fits = 0 <= player < players
                if fits:
                    room.add_input(player, frame, action)
            elif "left" in entry:
                reporter, report = _report_of(entry)
                fits = is_seat_report(players, reporter, report.player)
                if fits:
                    room.add_report(reporter, report)
            else:
                room.add_end(entry["player"], entry["end"], entry["frame"])
                fits = True
        except (ValueError, TypeError, KeyError) as error:
            raise _not_a_line(path, number, line) from error
        if not fits:
            raise _not_a_line(path, number, line)
    episodes: list[dict[str, Any]] = []
    episode = base = 0
    while True:
        limit = room.limit(episode)
        inputs: list[list[int]] = []
        while limit is None or len(inputs) < limit:
            row = room.take_row(episode, base, len(inputs))
            if row is None:
                break
            inputs.append(row)
        following = room.next_base(episode, base)
        ended = following is not None and len(inputs) == limit
        if inputs or not episodes:
            left = room.left(episode, len(inputs))
            episodes.append(
                {
                    "episode": episode,
                    "first_frame": base,
                    "frames": len(inputs),
                    "inputs": inputs,
                    "ended": ended,
                    **({"left": left} if left else {}),
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
    """A room's inputs by player and wire frame, its players' episode ends and the reports of
    players who left, read into episodes as the rollback layer numbers them: the reader's rule,
    and a spectator's (see the module's docstring). ``idle_action`` is the game's.

    The first action given for a (player, frame), the first end given for a (player, episode)
    and the first report of a (reporter, player left) are the ones kept, as in a record. Episode
    ``n`` has at most :meth:`limit` frames (one past the earliest last frame any player who
    counts gave for it), and episode ``n + 1`` starts at :meth:`next_base` once every such
    player's end of ``n`` is known.
    """

    __slots__ = ("actions", "agreed", "ends", "furthest", "handed_on", "idle", "players", "reports")

    def __init__(self, players: int, idle_action: int = DEFAULT_ACTION) -> None:
        self.players = players
        self.idle = idle_action
        #: Player -> {wire frame: action}.
        self.actions: list[dict[int, int]] = [{} for _ in range(players)]
        #: Episode -> {player: the episode's own last frame}.
        self.ends: dict[int, dict[int, int]] = {}
        #: Player reported as left -> {reporter: (episode, last frame held)}.
        self.reports: dict[int, dict[int, tuple[int, int]]] = {}
        #: Player reported as left -> the furthest report (episode, frame): its last real input
        #: once agreed, and until then as far as its inputs are known to be real.
        self.furthest: dict[int, tuple[int, int]] = {}
        #: The players reported as left whose every report is in: :attr:`furthest` is final.
        self.agreed: set[int] = set()
        #: Player reported as left -> {(episode, frame): action} the reports handed on.
        self.handed_on: dict[int, dict[tuple[int, int], int]] = {}

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

    def add_report(self, reporter: int, report: SeatReport) -> bool:
        """Keep ``reporter``'s ``report`` (one :func:`is_seat_report` accepts) and the inputs it
        hands on; ``False`` if that reporter's report of that player was kept already (the first
        stays). A report that comes once the player's reports are all in changes where it
        stops no more, as with the players."""
        player = report.player
        mine = self.reports.setdefault(player, {})
        if reporter in mine:
            return False
        mine[reporter] = (report.episode, report.last_frame)
        handed_on = self.handed_on.setdefault(player, {})
        first = report.last_frame + 1 - len(report.actions)
        for offset, action in enumerate(report.actions):
            handed_on.setdefault((report.episode, first + offset), action)
        if player not in self.agreed:
            self.furthest[player] = max(mine.values())
        self._agree()
        return True

    def _agree(self) -> None:
        """Settle every player reported as left whose reports are all in: one from every player
        not reported as left (and there is one: a room whose every player was reported as left
        settles nothing)."""
        staying = [player for player in range(self.players) if player not in self.reports]
        if not staying:
            return
        for player, mine in self.reports.items():
            if player not in self.agreed and all(other in mine for other in staying):
                self.agreed.add(player)

    def _action(self, player: int, episode: int, frame: int, wire: int) -> int | None:
        """``player``'s action for ``frame`` of ``episode`` (at the wire frame ``wire``), or
        ``None`` while it is not known."""
        furthest = self.furthest.get(player)
        if furthest is None:
            return self.actions[player].get(wire)
        if (episode, frame) > furthest:
            # Past every report: idle once they are all in, unknown until then.
            return self.idle if player in self.agreed else None
        action = self.actions[player].get(wire)
        return self.handed_on[player].get((episode, frame)) if action is None else action

    def ready(self, episode: int, base: int, frame: int) -> bool:
        """Whether every player's action for ``frame`` of ``episode`` (which starts at the wire
        frame ``base``) is known."""
        wire = base + frame
        if not self.furthest:  # nobody left: the common case
            return all(wire in mine for mine in self.actions)
        return all(
            self._action(player, episode, frame, wire) is not None for player in range(self.players)
        )

    def take_row(self, episode: int, base: int, frame: int) -> list[int] | None:
        """Every player's action for ``frame`` of ``episode`` (which starts at the wire frame
        ``base``), by player index, its inputs forgotten once taken: what reads the frames in
        order keeps only those it has not reached. ``None`` (nothing taken) while any is
        unknown."""
        wire = base + frame
        if not self.furthest:
            if not all(wire in mine for mine in self.actions):
                return None
            return [mine.pop(wire) for mine in self.actions]
        row: list[int] = []
        for player in range(self.players):
            action = self._action(player, episode, frame, wire)
            if action is None:
                return None
            row.append(action)
        for mine in self.actions:
            mine.pop(wire, None)
        for handed_on in self.handed_on.values():
            handed_on.pop((episode, frame), None)
        return row

    def finish(self, episode: int, frames: Iterable[int]) -> list[int]:
        """Forget ``episode`` once the next one started: the inputs of ``frames`` (those between
        its end and the next one's start, which no episode plays), what reports handed on for
        it, and its ends; returns the last frames of those that count."""
        for mine in self.actions:
            for frame in frames:
                mine.pop(frame, None)
        for player, handed_on in self.handed_on.items():
            self.handed_on[player] = {k: a for k, a in handed_on.items() if k[0] > episode}
        marks = self.ends.pop(episode, {})
        return [last for player, last in marks.items() if self._counts(player, episode)]

    def _counts(self, player: int, episode: int) -> bool:
        """Whether ``player``'s end of ``episode`` counts: it had not left by then, as agreed
        (the players who stay go on without it)."""
        return player not in self.agreed or self.furthest[player][0] > episode

    def limit(self, episode: int) -> int | None:
        """The most frames ``episode`` has: one past the earliest last frame a player who counts
        gave for it (``None``: none has ended it yet)."""
        marks = self.ends.get(episode, {})
        counted = [last for player, last in marks.items() if self._counts(player, episode)]
        return min(counted) + 1 if counted else None

    def next_base(self, episode: int, base: int) -> int | None:
        """The wire frame of episode ``episode + 1``'s frame 0, ``episode`` starting at wire
        frame ``base``; ``None`` until every player's end of ``episode`` is known, but for the
        players who left (a report of one is enough to wait for all of its reports: whether its
        end counts depends on where they agree)."""
        marks = self.ends.get(episode, {})
        counted: list[int] = []
        for player in range(self.players):
            if player in self.reports and player not in self.agreed:
                return None
            last = marks.get(player)
            if last is None:
                if player not in self.reports:
                    return None
            elif self._counts(player, episode):
                counted.append(last)
        return base + episode_span(counted) if counted else None

    def left(self, episode: int, frames: int) -> dict[str, int]:
        """The players' record's ``left`` of ``episode``'s first ``frames`` frames: ``{"<player>":
        its last real frame}`` (-1: none) for the players agreed to idle in any of them."""
        left: dict[str, int] = {}
        for player in sorted(self.agreed):
            left_in, last = self.furthest[player]
            if left_in > episode:
                continue
            idle_from = 0 if left_in < episode else last + 1
            if idle_from < frames:
                left[str(player)] = idle_from - 1
        return left


def _report_of(entry: dict[str, Any]) -> tuple[int, SeatReport]:
    """A left line's reporter and report; ``ValueError`` (a :class:`UsageError`: the reader's
    caller names the file) if it is not one."""
    fields = (entry["left"], entry["by"], entry["episode"], entry["frame"])
    actions = entry["actions"]
    if not all(type(value) is int for value in fields) or not isinstance(actions, list):
        raise UsageError("a left line holds integers and a list of actions")
    player, reporter, episode, last_frame = fields
    report = SeatReport(player, episode, last_frame, bytes(actions))
    report.encode()  # the checks a SEAT_LEFT payload passes (a UsageError is a ValueError)
    return reporter, report


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
    if header.get("version") not in _READABLE_VERSIONS:
        raise UsageError(
            f"input record version {header.get('version')!r}: this reader reads versions "
            f"{', '.join(map(str, sorted(_READABLE_VERSIONS)))}"
        )
    players = header.get("players")
    if not isinstance(players, int) or players < 1:
        raise UsageError(f"input record header names {players!r} players")
    return header

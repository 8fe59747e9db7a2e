"""The rooms' input records (``--record-dir``): every input the relay carries, appended to a file
per room in the format of :mod:`p2p_transport.rollback.input_record`, which
:func:`~p2p_transport.rollback.input_record.read_input_record` turns into replayable episodes.

A room's record starts with the first input relayed in it, as
``<record-dir>/<room, %-quoted>/<UTC start>-<pid>-<n>.jsonl``, and ends when its last player
leaves (a player that comes back to an emptied room starts a new one). Episodes are not split
into files here: the relay sees the rollback layer's episode-end messages (they travel on every
path; a deployed JavaScript peer's own episode messages are not read), but the first inputs of
the next episode can arrive before the end message that says where it starts (the peer's copy
came first on the DataChannel), so the end messages go into the record as lines and the reader
splits the episodes.

In a room of more than two, the relay also sees the reports of a player who left (the rollback
layer's ``SEAT_LEFT`` control messages, each player who stays sending one to every other, on
every path: :mod:`p2p_transport.rollback.seats`): they go into the record as lines too, so that
the reader knows where that player stops, and what the relay missed of its last inputs. A report
the players would not take (in a room of two, about a player the room does not have, or about
its sender) is refused as ``record_malformed``.

What is recorded is new: inputs already recorded (which redundancy and resends repeat) are
dropped, and so are episode ends already recorded and reports of a (reporter, player left)
already recorded (a report is resent until acknowledged, and sent to each player who stays). The
file is flushed by the server's once-a-second timer (:meth:`InputRecorder.flush`), so a record is
at most a second behind the relay while the server runs, whatever happens to the tabs. Past
:data:`MAX_RECORD_BYTES` a room's new inputs are refused, counted in ``/stats`` refusals as
``record_full``; a packet the recorder cannot read as ``record_malformed`` (it is still relayed:
the relay does not judge what the peers say); a file that cannot be written as
``record_failed``, and that room's record stops.

A room routed P2P sends little on the relay: its players send the server the inputs their peer
confirmed, about once a second, in an input record (0x30,
:mod:`p2p_transport.protocol.input_upload`), which the relay hands to :meth:`InputRecorder.uploaded`
and forwards to no one. Its inputs are recorded as the relay's are, once whichever way they came;
one the recorder cannot read is refused as ``record_malformed``.

What is read of a packet (:func:`read_packet`) and what of it is new (:class:`NewInputs`) is the
server's spectator feed's too (:mod:`p2p_server.spectator_feed`), which takes the same packets.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Final, NamedTuple, TextIO

from p2p_server.limits import LogThrottle
from p2p_server.stats import ServerStats
from p2p_server.telemetry_store import room_dir_name
from p2p_transport.rollback.input_record import (
    SeatReport,
    end_line,
    header_line,
    input_line,
    is_seat_report,
    left_line,
)
from p2p_transport.wire.codec import (
    ACKED_INPUT_TYPE,
    INPUT_TYPE,
    DecodeError,
    decode,
    decode_acked_input_fields,
    decode_input_fields,
    decode_input_record,
)
from p2p_transport.wire.control_payloads import RollbackKind, decode_episode_end_payload
from p2p_transport.wire.messages import (
    ControlKind,
    ControlMessage,
    InputResponse,
    MessageType,
)

__all__ = [
    "DEDUP_WINDOW_FRAMES",
    "MAX_RECORD_BYTES",
    "Carried",
    "InputRecorder",
    "NewInputs",
    "read_packet",
]

logger = logging.getLogger("p2p_server.input_recorder")

#: A room's record at most: a 60 Hz game's two players write about 6 MB an hour (an input line is
#: about 14 bytes), so 16 MiB holds a session of more than two and a half hours, and a client that
#: invents frames cannot fill the disk faster than its relay limits let it, nor past this.
MAX_RECORD_BYTES: Final = 16 * 1024 * 1024
#: A frame this far below a player's newest recorded one is taken as recorded: no sender repeats
#: an input that old (the acked sender keeps 64, a receiver's history and an input response hold
#: 256), and so what each player's frames cost the server stays bounded.
DEDUP_WINDOW_FRAMES: Final = 1024
#: The packets that carry inputs, episode ends or seat-left reports; the relay's other packets
#: are not read.
_READ_TYPES: Final = frozenset(
    (MessageType.INPUT, MessageType.ACKED_INPUT, MessageType.INPUT_RESPONSE, MessageType.CONTROL)
)


class _Frames:
    """The frames of one player already taken (recorded, or fed to spectators): every one up
    to ``floor``, and those in ``recent``."""

    __slots__ = ("floor", "newest", "recent")

    def __init__(self) -> None:
        self.floor = self.newest = -1
        self.recent: set[int] = set()

    def is_new(self, frame: int) -> bool:
        return frame > self.floor and frame not in self.recent

    def add(self, frame: int) -> None:
        self.recent.add(frame)
        if frame > self.newest:
            self.newest = frame
        if len(self.recent) > 2 * DEDUP_WINDOW_FRAMES:
            self.floor = self.newest - DEDUP_WINDOW_FRAMES
            self.recent = {f for f in self.recent if f > self.floor}


class Carried(NamedTuple):
    """What a packet carries for the record: inputs (``(wire frame, action)``), an episode end
    (episode, last frame), a report that a player left."""

    inputs: Sequence[tuple[int, int]] = ()
    end: tuple[int, int] | None = None
    report: SeatReport | None = None


class NewInputs:
    """What of a room's inputs, episode ends and seat-left reports has been taken, per player,
    so that what comes again (redundancy, resends, the same input or report on each of a
    player's links, or by relay and upload both) is taken once: the first action of a (player,
    frame), a player's end of an episode newer than its last one taken, and the first report of
    a (reporter, player left)."""

    __slots__ = ("ended", "frames", "reported")

    def __init__(self, players: int) -> None:
        self.frames = [_Frames() for _ in range(players)]
        #: Each player's newest episode whose end was taken (episodes only go up).
        self.ended = [-1] * players
        #: (reporter, player left) of the reports taken.
        self.reported: set[tuple[int, int]] = set()

    def new(self, player: int, carried: Carried) -> Carried:
        """What of ``carried``, which ``player`` sent, has not been taken yet: the caller keeps
        it, then calls :meth:`took`."""
        frames = self.frames[player]
        end, report = carried.end, carried.report
        return Carried(
            [(frame, action) for frame, action in carried.inputs if frames.is_new(frame)],
            end if end is not None and end[0] > self.ended[player] else None,
            report if report is not None and (player, report.player) not in self.reported else None,
        )

    def took(self, player: int, carried: Carried) -> None:
        """What :meth:`new` gave of ``player``'s packet is kept."""
        frames = self.frames[player]
        for frame, _ in carried.inputs:
            frames.add(frame)
        if carried.end is not None:
            self.ended[player] = max(self.ended[player], carried.end[0])
        if carried.report is not None:
            self.reported.add((player, carried.report.player))


def read_packet(data: bytes) -> Carried | None:
    """What a packet a player relayed carries for the record (inputs, an episode end or a
    report that a player left); ``None`` for a packet that carries none of them (pings, acks,
    a game's own messages). Raises :class:`~p2p_transport.wire.codec.DecodeError` for one it
    cannot read."""
    kind = data[0] if data else None  # an empty packet is malformed: decode says so
    if kind == ACKED_INPUT_TYPE:
        # Most of what is relayed: read without a message object, in half the time.
        return Carried(decode_acked_input_fields(data)[3])
    if kind == INPUT_TYPE:
        return Carried(decode_input_fields(data)[2])
    if data and kind not in _READ_TYPES:
        return None
    message = decode(data)
    if isinstance(message, InputResponse):
        return Carried(message.inputs)
    if isinstance(message, ControlMessage):
        if message.kind == ControlKind.EPISODE_END:
            last_frame, episode = decode_episode_end_payload(message.payload)
            return Carried(end=(episode, last_frame))
        if message.kind == RollbackKind.SEAT_LEFT:
            return Carried(report=SeatReport.decode(message.payload))
    return None


class _RoomRecord:
    """One room's open record file and what is in it."""

    def __init__(self, out: TextIO, header: str, players: int) -> None:
        self.out = out
        self.bytes = 0
        self.dirty = False
        self.taken = NewInputs(players)
        self.write(header)

    def write(self, line: str) -> None:
        self.out.write(line)
        self.bytes += len(line)  # the lines are ASCII: JSON escapes the room's other characters
        self.dirty = True


class InputRecorder:
    """Records what the relay carries for every room under ``record_dir``."""

    def __init__(
        self,
        record_dir: Path,
        stats: ServerStats,
        log_throttle: LogThrottle,
        max_bytes: int = MAX_RECORD_BYTES,
    ) -> None:
        self.record_dir = record_dir
        self.max_bytes = max_bytes
        self._stats = stats
        self._log_throttle = log_throttle
        # Room name -> its record; None once writing it failed (nothing more is tried).
        self._rooms: dict[str, _RoomRecord | None] = {}
        self._opened = 0

    def relayed(self, room: str, players: int, player: int, data: bytes) -> None:
        """Record what is new in a packet ``player`` of ``room`` (a room of ``players``) sent
        through the relay (the player is its slot in the room, whatever the packet says)."""
        try:
            carried = read_packet(data)
        except DecodeError as error:
            self._refuse("record_malformed", room, f"a packet it cannot read: {error}")
            return
        if carried is not None:
            self._record(room, players, player, carried)

    def uploaded(self, room: str, players: int, player: int, data: bytes) -> None:
        """Record what is new in an input record (0x30) ``player`` of ``room`` sent the server
        (the player is its slot, whatever the packet says); counted in ``input_uploads``."""
        try:
            inputs = decode_input_record(data).inputs
        except DecodeError as error:
            self._refuse("record_malformed", room, f"an input record it cannot read: {error}")
            return
        self._stats.input_uploads += 1
        self._record(room, players, player, Carried(inputs))

    def _record(self, room: str, players: int, player: int, carried: Carried) -> None:
        """Write what of ``carried`` is not yet in the room's record."""
        inputs, end, report = carried
        if report is not None and not is_seat_report(players, player, report.player):
            self._refuse(
                "record_malformed",
                room,
                f"player {player}'s report that player {report.player} left, in a room of "
                f"{players}",
            )
            return
        if not inputs and end is None and report is None:
            return
        record = self._record_of(room, players)
        if record is None:
            return
        new = record.taken.new(player, carried)
        lines = [input_line(frame, player, action) for frame, action in new.inputs]
        if new.end is not None:
            lines.append(end_line(player, *new.end))
        if new.report is not None:
            lines.append(left_line(player, new.report))
        if not lines:
            return
        if record.bytes + sum(len(line) for line in lines) > self.max_bytes:
            self._refuse("record_full", room, f"the record is at its {self.max_bytes} bytes")
            return
        try:
            for line in lines:
                record.write(line)
        except OSError as error:
            self._fail(room, error)
            return
        record.taken.took(player, new)
        self._stats.inputs_recorded += len(new.inputs)

    def flush(self) -> None:
        """Hand what was written since the last call to the operating system (called once a
        second): a record then survives the server process, not only the tabs."""
        for room, record in list(self._rooms.items()):
            if record is not None and record.dirty:
                try:
                    record.out.flush()
                except OSError as error:
                    self._fail(room, error)
                    continue
                record.dirty = False

    def close(self, room: str) -> None:
        """The room emptied: its record ends."""
        record = self._rooms.pop(room, None)
        if record is not None:
            try:
                record.out.close()
            except OSError as error:
                self._refuse("record_failed", room, f"closing the record failed: {error}")

    def close_all(self) -> None:
        for room in list(self._rooms):
            self.close(room)

    def _record_of(self, room: str, players: int) -> _RoomRecord | None:
        if room in self._rooms:
            return self._rooms[room]
        self._opened += 1
        started = time.time()
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(started))
        name = f"{stamp}-{os.getpid()}-{self._opened}.jsonl"
        path = self.record_dir / room_dir_name(room) / name
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            out = open(path, "x", encoding="ascii", newline="\n")  # noqa: SIM115 (closed in close)
            header = header_line(room, players, int(started * 1000))
            record = _RoomRecord(out, header, players)
        except OSError as error:
            self._fail(room, error)
            return None
        self._rooms[room] = record
        logger.info("recording the inputs of room %r in %s", room, path)
        return record

    def _fail(self, room: str, error: OSError) -> None:
        record = self._rooms.get(room)
        self._rooms[room] = None
        if record is not None:
            # Closing flushes what is buffered, and fails as the writing did: counted below.
            with contextlib.suppress(OSError):
                record.out.close()
        self._refuse("record_failed", room, f"its record stops: {error}")

    def _refuse(self, reason: str, room: str, message: str) -> None:
        self._stats.refuse(reason)
        if self._log_throttle.allow((reason, room)):
            logger.warning("room %r: %s (further ones muted)", room, message)

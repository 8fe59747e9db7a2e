"""The spectator feed: every player's inputs and episode ends, and the reports of a player who
left, sent to the room's spectators as soon as the server learns them, so that a spectator's game
(:class:`p2p_transport.rollback.spectator.SpectatorSession`) runs behind the players at no cost
to them.

Where the inputs come from: the packets the input record reads (:mod:`p2p_server.input_recorder`),
whether or not the server records: every packet a player relays, to one peer or to the room (a
player of a larger room sends its input to each peer, each copy with that link's acks), and every
input record (0x30) a player of a room routed P2P uploads. What is new of them
(:class:`~p2p_server.input_recorder.NewInputs`: a (player, frame) once, with the first action the
server got, a player's end of an episode once, and a (reporter, player left) report once) is kept
for the room and sent on. A report the players would not take (in a room of two, about a player
the room does not have, or about its sender) is not. A packet the feed cannot read gives the
spectators nothing (the recorder counts it, when it records).

What a spectator receives: relay packets (a ``relay`` event, or a frame of its lean relay socket)
in the spectator envelope, whose first byte is the player who sent what follows:

- ``bytes([p]) + encode_input_record(p, [(frame, action), ...])``: player ``p``'s inputs (0x30:
  player u16, count u16, count x (frame u32, action u8)), frames on the wire (the rollback layer
  never restarts them: :mod:`p2p_transport.rollback.input_record`), strictly increasing in a
  packet. Live, one packet per relayed packet or upload that brought something new;
- ``bytes([p]) + encode_v1_episode_end(last_frame, episode)``: player ``p`` ended ``episode``
  with its frame ``last_frame``, counted from the episode's own frame 0 (0x05: frame u32,
  episode u32; what the rollback layer's episode-end message says, in the deployed peers'
  layout);
- ``bytes([r]) + encode_control(0, RollbackKind.SEAT_LEFT, payload)``: player ``r`` reported
  that a player left a room of more than two (0x22: sequence u32, 0 here, kind u8 0x08, length
  u16, then the ``SEAT_LEFT`` payload as ``r`` sent it: episode u32, player u8, frames held u32,
  then the actions handed on, :mod:`p2p_transport.wire.control_payloads`). ``r`` holds that
  player's inputs of the episode up to the last frame held, and hands on the last of them: what
  the spectator needs to know where the player stops playing and idles, as the players agree
  (:mod:`p2p_transport.rollback.seats`), and what the relay missed of its last inputs.

A spectator that joins while the room has inputs first gets every one the room kept (its catch-up:
the ends and reports, then each player's inputs in turn, in records of up to
:data:`~p2p_transport.wire.codec.MAX_INPUTS_PER_RECORD`, 1286 bytes with the envelope), written
while what waits to be written to it is under half the relay's ``max_queued`` so that none is
lost to a full queue, then what is new as it comes. A spectator whose queue was full when a new
packet came (a tab in the background) is caught up again from the first input it missed: it gets
every input, once (at most a few twice if its queue filled while another player's packet was
being sent, which it drops as repeats).

Bounds and costs: a room's inputs are kept from its first one until its last player leaves (its
record ends then too; a spectator still in the room gets the next game's inputs, from their
start), whether or not it has spectators, so that one that joins late sees the game from its
start. That costs the server, per packet of a player, a read and the check for what is new (as
the record's: about 3 us in all, measured in-process), 5 bytes per new input, and for each
spectator a packet written per packet of a player that brought something new. A room keeps at
most :data:`MAX_FEED_INPUTS` inputs, ends and reports; past it new ones are neither kept nor sent,
counted in ``/stats`` refusals as ``spectator_feed_full``: the spectators are told nothing, their
game stops where the kept inputs end.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final

from p2p_server.input_recorder import Carried, NewInputs, read_packet
from p2p_server.limits import LogThrottle
from p2p_server.stats import ServerStats
from p2p_transport.rollback.input_record import is_seat_report
from p2p_transport.wire.codec import (
    INPUT_RESPONSE_HEADER_SIZE,
    INPUT_SIZE,
    MAX_INPUTS_PER_RECORD,
    DecodeError,
    decode_input_record,
    encode_control,
    encode_input_record,
    encode_v1_episode_end,
)
from p2p_transport.wire.control_payloads import RollbackKind
from p2p_transport.wire.signaling import MAX_RELAY_BYTES

__all__ = ["CATCH_UP_PAUSE_S", "MAX_FEED_INPUTS", "SpectatorFeed"]

logger = logging.getLogger("p2p_server.spectator_feed")

#: A room's kept inputs, ends and reports at most: 5 MiB of memory (5 bytes an input), about what
#: a full 16 MiB input record holds (an input line is about 14 bytes). A 60 Hz game of 2 players
#: fills it in 2.4 hours, of 8 in 36 minutes.
MAX_FEED_INPUTS: Final = 1 << 20
#: While a catching-up spectator's queue is half full, its catch-up looks again this much later:
#: a page reads its socket as packets come, so it has emptied it long before, and one that does
#: not costs the server a look 50 times a second.
CATCH_UP_PAUSE_S: Final = 0.02
#: A kept input: frame u32, action u8, as an input record carries it.
_ENTRY: Final = struct.Struct(">IB")

if 1 + INPUT_RESPONSE_HEADER_SIZE + INPUT_SIZE * MAX_INPUTS_PER_RECORD > MAX_RELAY_BYTES:
    raise ImportError("a full input record in the spectator envelope exceeds the relay limit")


@dataclass(eq=False)
class _Watcher:
    """One spectator of a room: what of the room's kept inputs it has been sent."""

    #: While it catches up: per player, the offset in the player's kept inputs of the first one
    #: not sent yet. ``None``: it is caught up, and new packets go to it as they come.
    cursor: list[int] | None = None
    #: The room's kept ends and reports it has been sent, while it catches up.
    notes_sent: int = 0
    #: The player whose inputs its catch-up sends next.
    turn: int = 0
    #: What writes its catch-up, while one runs.
    task: asyncio.Task[None] | None = None


class _Kept:
    """One room's inputs, episode ends and reports since its first."""

    def __init__(self, players: int) -> None:
        self.players = players
        self.taken = NewInputs(players)
        #: Per player, its inputs in the order they came (:data:`_ENTRY` each).
        self.inputs = [bytearray() for _ in range(players)]
        #: The episode-end and report packets, as sent.
        self.notes: list[bytes] = []
        self.count = 0

    def next_for(self, watcher: _Watcher) -> bytes | None:
        """The next packet of ``watcher``'s catch-up (its cursor moves past it); ``None`` once
        it has been sent everything."""
        cursor = watcher.cursor
        assert cursor is not None
        if watcher.notes_sent < len(self.notes):
            watcher.notes_sent += 1
            return self.notes[watcher.notes_sent - 1]
        for step in range(self.players):
            player = (watcher.turn + step) % self.players
            start, mine = cursor[player], self.inputs[player]
            if start < len(mine):
                stop = min(len(mine), start + MAX_INPUTS_PER_RECORD * _ENTRY.size)
                cursor[player], watcher.turn = stop, player + 1
                # The frames are distinct (each is kept once) but may have come out of order.
                entries = sorted(_ENTRY.iter_unpack(mine[start:stop]))
                return bytes((player,)) + encode_input_record(player, entries)
        return None


class SpectatorFeed:
    """The rooms' kept inputs and their spectators, for a :class:`~p2p_server.rooms.RelayServer`.

    ``send(sid, packet)`` writes a packet to a spectator (``False``: not queued, its queue being
    full or the spectator gone); ``queued(sid)`` is how many packets wait to be written to it
    (``None``: it is gone); a catch-up writes while that is under ``pause_at``.
    """

    def __init__(
        self,
        send: Callable[[str, bytes], Awaitable[bool]],
        queued: Callable[[str], int | None],
        pause_at: int,
        stats: ServerStats,
        log_throttle: LogThrottle,
        max_inputs: int = MAX_FEED_INPUTS,
    ) -> None:
        self._send = send
        self._queued = queued
        self._pause_at = pause_at
        self._stats = stats
        self._log_throttle = log_throttle
        #: A room's kept inputs, ends and reports at most.
        self.max_inputs = max_inputs
        #: Inputs, ends and reports kept now, all rooms together.
        self.kept = 0
        self._rooms: dict[str, _Kept] = {}
        self._watchers: dict[str, dict[str, _Watcher]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def relayed(self, room: str, players: int, player: int, data: bytes) -> None:
        """A packet ``player`` of ``room`` (a room of ``players``) relayed: what is new of its
        inputs, episode end or report is kept and sent to the room's spectators."""
        try:
            carried = read_packet(data)
        except DecodeError:
            return
        if carried is not None:
            await self._take(room, players, player, carried)

    async def uploaded(self, room: str, players: int, player: int, data: bytes) -> None:
        """An input record (0x30) ``player`` of ``room`` sent the server: as :meth:`relayed`."""
        try:
            inputs = decode_input_record(data).inputs
        except DecodeError:
            return
        await self._take(room, players, player, Carried(inputs))

    def watch(self, room: str, sid: str) -> None:
        """The spectator ``sid`` joined ``room``: it is sent what the room has kept, then what
        is new."""
        watcher = _Watcher()
        self._watchers.setdefault(room, {})[sid] = watcher
        kept = self._rooms.get(room)
        if kept is not None:
            self._catch_up(room, sid, watcher, [0] * kept.players, 0)

    def unwatch(self, room: str, sid: str) -> None:
        """The spectator ``sid`` left ``room``."""
        watchers = self._watchers.get(room, {})
        watcher = watchers.pop(sid, None)
        if watcher is not None:
            watcher.cursor = None  # its catch-up, if one runs, ends
        if not watchers:
            self._watchers.pop(room, None)

    def close(self, room: str) -> None:
        """The last player left ``room``: what it kept goes; its spectators get the next
        game's inputs from their start, as they come."""
        kept = self._rooms.pop(room, None)
        if kept is not None:
            self.kept -= kept.count
        for watcher in self._watchers.get(room, {}).values():
            watcher.cursor = None

    def stop(self) -> None:
        """The server stops: the catch-ups end."""
        for task in self._tasks:
            task.cancel()

    async def _take(self, room: str, players: int, player: int, carried: Carried) -> None:
        report = carried.report
        if report is not None and not is_seat_report(players, player, report.player):
            return
        if not carried.inputs and carried.end is None and report is None:
            return
        kept = self._rooms.get(room)
        if kept is None:
            kept = self._rooms[room] = _Kept(players)
        news = kept.taken.new(player, carried)
        new, end, report = news
        count = len(new) + (end is not None) + (report is not None)
        if not count:
            return
        if kept.count + count > self.max_inputs:
            self._stats.refuse("spectator_feed_full")
            if self._log_throttle.allow(("spectator_feed_full", room)):
                logger.warning(
                    "room %r: the spectator feed holds its %d inputs, new ones are not sent "
                    "(further ones muted)",
                    room,
                    self.max_inputs,
                )
            return
        kept.taken.took(player, news)
        kept.count += count
        self.kept += count
        self._stats.inputs_fed += len(new)
        mine = kept.inputs[player]
        offset, notes_at = len(mine), len(kept.notes)
        mine += b"".join(_ENTRY.pack(frame, action) for frame, action in new)
        if end is not None:
            episode, last_frame = end
            kept.notes.append(bytes((player,)) + encode_v1_episode_end(last_frame, episode))
        if report is not None:
            message = encode_control(0, RollbackKind.SEAT_LEFT, report.encode())
            kept.notes.append(bytes((player,)) + message)
        watchers = self._watchers.get(room)
        if not watchers:
            return
        # The new packets, with where each starts: a spectator that misses one catches up from
        # there.
        fresh: list[tuple[bytes, int, int]] = []
        if new:
            fresh.append((bytes((player,)) + encode_input_record(player, new), player, offset))
        fresh += [(kept.notes[at], -1, at) for at in range(notes_at, len(kept.notes))]
        for sid, watcher in list(watchers.items()):
            for index, (packet, _, _) in enumerate(fresh):
                if watcher.cursor is not None:
                    break  # it catches up (again): this packet comes that way
                if not await self._send(sid, packet):
                    self._fell_behind(room, sid, watcher, kept, fresh[index:])

    def _fell_behind(
        self,
        room: str,
        sid: str,
        watcher: _Watcher,
        kept: _Kept,
        missed: list[tuple[bytes, int, int]],
    ) -> None:
        """A new packet could not be queued to a caught-up spectator: it catches up from what it
        missed."""
        if (
            watcher.cursor is not None
            or self._rooms.get(room) is not kept
            or self._watchers.get(room, {}).get(sid) is not watcher
        ):
            return  # catching up already, or the room or the spectator is gone
        cursor = [len(mine) for mine in kept.inputs]
        notes_sent = len(kept.notes)
        for _, player, start in missed:
            if player < 0:
                notes_sent = min(notes_sent, start)
            else:
                cursor[player] = min(cursor[player], start)
        self._catch_up(room, sid, watcher, cursor, notes_sent)

    def _catch_up(
        self, room: str, sid: str, watcher: _Watcher, cursor: list[int], notes_sent: int
    ) -> None:
        watcher.cursor, watcher.notes_sent = cursor, notes_sent
        self._stats.spectator_catch_ups += 1
        if watcher.task is not None:
            return  # still waiting to write the last catch-up: it writes this one
        task = watcher.task = asyncio.ensure_future(self._send_kept(room, sid, watcher))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send_kept(self, room: str, sid: str, watcher: _Watcher) -> None:
        """Write ``watcher``'s catch-up while its queue has room; it is caught up at the end."""
        try:
            await self._write_catch_up(room, sid, watcher)
        finally:
            watcher.task = None

    async def _write_catch_up(self, room: str, sid: str, watcher: _Watcher) -> None:
        while watcher.cursor is not None:
            queued = self._queued(sid)
            if queued is None:
                self.unwatch(room, sid)
                return
            if queued >= self._pause_at:
                await asyncio.sleep(CATCH_UP_PAUSE_S)
                continue
            kept = self._rooms.get(room)
            before = (list(watcher.cursor), watcher.notes_sent, watcher.turn)
            packet = kept.next_for(watcher) if kept is not None else None
            if packet is None:
                watcher.cursor = None  # from now on, new packets go to it as they come
                return
            if not await self._send(sid, packet) and watcher.cursor is not None:
                # Not queued: sent again once its queue has room (or it is gone).
                watcher.cursor, watcher.notes_sent, watcher.turn = before
                await asyncio.sleep(CATCH_UP_PAUSE_S)
                continue
            # One packet at a time: the players' packets are relayed in between.
            await asyncio.sleep(0)

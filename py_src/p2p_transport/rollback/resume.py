"""A page that comes back (a reload, a crash) takes its seat again in the game under way.

Two players. When the session with the other player is shut down (the server said it left) while
the game runs, the player who stays keeps its game and waits up to ``return_limit_ms`` for it to
come back; meanwhile the seat plays its idle action (``hidden_policy`` ``"idle"``: from the
frame after its last input that arrived, this side alone deciding, as nobody else holds its
inputs) or the game stalls at the prediction window (``"pause"`` and ``"stall"``, the same thing
with two players). An episode that ends meanwhile ends for the absent player too, and the next
one starts without waiting for it.

The page that comes back makes a :class:`~.session.RollbackSession` with ``resume=True`` over
its new session; the player who stayed gives it the new session
(:meth:`~.session.RollbackSession.replace_session`: in the browser, on the ``paired`` that
brings the same client back). The page asks (``RESUME_ASK``), and the player who stayed answers
with a :class:`ResumePackage` over the reliable control path (``RESUME``, in chunks): the game's
state before its first frame not confirmed (``encode_state``), every player's inputs of the
episode so far, its parameters and idle stretches; or with nothing, when it has no game to give
(the page then starts the first episode as any page would). The page loads the state, replays
nothing, and plays on from there; its record of that episode is the same as the other's.

Inputs that come before the package is loaded (a page that came back), or while the other
player is absent (a long drop: its page went on sending), are kept for then, at most
:data:`MAX_KEPT_FOR_RESUME` of them
(:class:`~p2p_transport.protocol.kept_inputs.KeptInputs`): the sender never sends an
acknowledged input again, so a refused one is lost, and counted as stale.

The returning seat's inputs go on from the frame after the last one the package holds. Under
``"idle"`` those frames lie ahead of the game the page shows (the other player kept playing), so
the page catches up as a page back from hidden does (:mod:`.visibility`): its seat keeps idling
while it re-simulates at up to ``CATCH_UP_FRAMES_PER_TICK`` frames a tick, and its real actions
count from an agreed frame once it is there. The frames the seat idled are in both records
(``"idled"``).

A long drop (nothing from the other player on any path for :data:`LONG_DROP_MS`, both pages
alive) is the same story on the same session. Under ``"idle"`` the lower index decides: it idles
the other's seat from the frame after its last input there, as for a reload; the higher index,
cut off, stalls at the prediction window. Once the lower index hears the other again it sends it
the game under way unasked, and the higher index, which takes such a package from the lower
index whenever it comes, replaces what it played since its last confirmed frame with it (what
it played alone, nobody saw). Under ``"pause"`` and ``"stall"`` both stall and the session goes
on where it was once packets flow again. Silent past ``return_limit_ms``, either side ends with
the reason in ``end_reason``.

Why the state, not the inputs replayed: both sides' records need the inputs anyway, but
replaying an episode costs its length in simulated frames, where the state costs one
``encode_state`` and one ``decode_state`` whatever the episode's length
(``benchmarks/bench_resume.py`` has the figures).

The package also carries the records of the episodes that ended before (``earlier``), so the
page's records are the other's: the newest of them, as many as fit in
:data:`MAX_EARLIER_BYTES` (a long study's first episodes are then only in the other player's
records, and the server's).

Not resumed: rooms of more than two (a player who leaves a room is gone, :mod:`.seats`).

The package, big-endian::

    episode u32, next frame u32 (the state is the one before it), base u32 (the transport
    frame of the episode's frame 0), input delay u8, players u8
    per player, in index order: frames u32, then that many actions (u8 each)
    length u32, then that many bytes of UTF-8 JSON: {"params": {...} or null, "idled":
    {"<player>": [[first, end or null], ...]}, "ended": the episode ended with the frame
    before the next frame, "earlier": [the records of the episodes before it, oldest first,
    the newest that fit in MAX_EARLIER_BYTES]}
    the game's state (encode_state), the rest
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from typing import Any, Final

from p2p_transport.wire.codec import DecodeError
from p2p_transport.wire.signaling import MAX_PLAYERS, MIN_PLAYERS

__all__ = [
    "DEFAULT_RETURN_LIMIT_MS",
    "HEARD_AGAIN_MS",
    "LONG_DROP_MS",
    "MAX_EARLIER_BYTES",
    "MAX_KEPT_FOR_RESUME",
    "ResumePackage",
    "earlier_records",
]

#: Nothing from the other player on any path for this long is a long drop: the watchdog's
#: ``peer_gone`` threshold (``HealthThresholds.disconnect_silence_ms``), where a page that keeps
#: its game sends keepalives five times a second.
LONG_DROP_MS: Final = 3000.0
#: A packet within this long: the other player is heard again after a long drop.
HEARD_AGAIN_MS: Final = 1000.0
#: A reload of a game page takes several seconds (Pyodide boots again); a participant whose
#: network dropped may take longer. A minute, then the player who stayed ends the game.
DEFAULT_RETURN_LIMIT_MS: Final = 60_000.0

#: The inputs kept for later: a minute's at 60 Hz, where the transfer
#: takes a few round trips (the receiver acknowledged them: the sender never sends them again),
#: and a bound on what a peer can make a side hold.
MAX_KEPT_FOR_RESUME: Final = 3600

#: The earlier episodes' records a package carries, as JSON, at most: half of what a transfer
#: takes (:data:`~p2p_transport.protocol.chunks.MAX_CHUNKS` chunks, about 4 MB), the rest left
#: for the state; about 90 episodes of 60 s of two players at 60 Hz.
MAX_EARLIER_BYTES: Final = 2_000_000

_HEAD: Final = struct.Struct(">IIIBB")  # episode, next frame, base, input delay, players
_COUNT: Final = struct.Struct(">I")


@dataclass(frozen=True)
class ResumePackage:
    """The game under way, as the player who stayed gives it to the page that came back."""

    episode: int
    #: The state is the one before this frame; every frame before it is confirmed.
    next_frame: int
    #: The transport frame of the episode's frame 0.
    base: int
    input_delay: int
    #: Each player's actions of the episode's first frames, by player index.
    actions: tuple[bytes, ...]
    #: The game's state (its ``encode_state``).
    state: bytes
    #: The episode's parameters (``episode_params``; ``None``: the game declares none).
    params: dict[str, Any] | None = None
    #: Each player's idle stretches in the episode: ``[first, end]``, ``end`` ``None`` while
    #: it lasts.
    idled: dict[int, list[tuple[int, int | None]]] = field(default_factory=dict)
    #: The episode ended with the frame before :attr:`next_frame` (the state is its last).
    ended: bool = False
    #: The records of the episodes before :attr:`episode` (``RollbackSession.episodes``'
    #: entries), oldest first: the newest that fit in :data:`MAX_EARLIER_BYTES`.
    earlier: tuple[dict[str, Any], ...] = ()

    def encode(self) -> bytes:
        extra = json.dumps(
            {
                "params": self.params,
                "idled": {str(p): [list(span) for span in s] for p, s in self.idled.items()},
                "ended": self.ended,
                "earlier": list(self.earlier),
            },
            separators=(",", ":"),
        ).encode()
        parts = [
            _HEAD.pack(
                self.episode, self.next_frame, self.base, self.input_delay, len(self.actions)
            )
        ]
        for actions in self.actions:
            parts += [_COUNT.pack(len(actions)), bytes(actions)]
        parts += [_COUNT.pack(len(extra)), extra, self.state]
        return b"".join(parts)

    @classmethod
    def decode(cls, data: bytes) -> ResumePackage:
        """The package in ``data``; :class:`DecodeError` if it is not one."""
        reader = _Reader(data)
        episode, next_frame, base, input_delay, players = reader.unpack(_HEAD)
        if not MIN_PLAYERS <= players <= MAX_PLAYERS:
            raise DecodeError(f"a resume package for {players} players")
        actions = []
        for player in range(players):
            own = reader.take(reader.unpack(_COUNT)[0])
            if len(own) < next_frame:
                raise DecodeError(
                    f"player {player}'s {len(own)} actions end before frame {next_frame}"
                )
            actions.append(own)
        try:
            extra = json.loads(reader.take(reader.unpack(_COUNT)[0]))
            params = extra["params"]
            ended = extra["ended"]
            earlier = tuple(extra["earlier"])
            idled = {
                int(player): [(int(first), None if end is None else int(end)) for first, end in s]
                for player, s in extra["idled"].items()
            }
        except (ValueError, TypeError, KeyError, AttributeError) as error:
            raise DecodeError(f"a resume package's JSON part: {error}") from None
        if params is not None and not isinstance(params, dict):
            raise DecodeError("a resume package's params are not an object")
        if not isinstance(ended, bool) or (ended and next_frame == 0):
            raise DecodeError(f"a resume package's ended is {ended!r} at frame {next_frame}")
        numbers = [
            record.get("episode") if isinstance(record, dict) else None for record in earlier
        ]
        whole = [n for n in numbers if isinstance(n, int) and not isinstance(n, bool)]
        # Each a record of an episode before this one, oldest first, once.
        if whole != numbers or whole != sorted(set(whole)) or (whole and whole[-1] >= episode):
            raise DecodeError(f"a resume package's earlier episodes are {numbers!r}")
        return cls(
            episode,
            next_frame,
            base,
            input_delay,
            tuple(actions),
            reader.rest(),
            params,
            idled,
            ended,
            earlier,
        )


def earlier_records(records: list[dict[str, Any]], episode: int) -> tuple[dict[str, Any], ...]:
    """What a package for ``episode`` carries of ``records`` (a layer's episode records): those
    of earlier episodes, the newest whose JSON fits in :data:`MAX_EARLIER_BYTES`, oldest
    first."""
    kept: list[dict[str, Any]] = []
    budget = MAX_EARLIER_BYTES
    for record in reversed([r for r in records if r["episode"] < episode]):
        budget -= len(json.dumps(record, separators=(",", ":"))) + 1  # and its comma
        if budget < 0:
            break
        kept.append(record)
    return tuple(reversed(kept))


class _Reader:
    def __init__(self, data: bytes) -> None:
        self._data = data
        self._at = 0

    def take(self, size: int) -> bytes:
        if self._at + size > len(self._data):
            raise DecodeError(f"a resume package cut short at byte {len(self._data)}")
        self._at += size
        return bytes(self._data[self._at - size : self._at])

    def unpack(self, layout: struct.Struct) -> tuple[int, ...]:
        return layout.unpack(self.take(layout.size))

    def rest(self) -> bytes:
        return bytes(self._data[self._at :])

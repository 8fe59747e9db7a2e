"""Desync detection: both peers hash their confirmed game state and compare.

Rollback netcode keeps two simulations in lockstep only if they are deterministic; when they
are not (a float that rounds differently, an unseeded random number), the games drift apart
silently and every later frame is wrong. Each side records a hash of its state for confirmed
frames (frames whose inputs from both players are final), sends it to the peer as a
:attr:`~.codec.ControlKind.STATE_HASH` control message, and compares the peer's hashes with its
own as both arrive. The first frame whose hashes differ is reported once, through the callback and
:attr:`DesyncChecker.first_desync`: later mismatches follow from it and say nothing new.

Hashes are keyed by episode and frame, because frame numbers restart every episode and a hash
from the previous one can still be in flight when the next begins. Sans-IO: the checker is given a
function that sends a payload reliably (the session's control channel) and is fed the peer's.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Final

from p2p_transport._guard import call_guarded
from p2p_transport.errors import UsageError
from p2p_transport.wire.control_payloads import (
    decode_state_hash_payload,
    encode_state_hash_payload,
)

__all__ = [
    "DEFAULT_HASH_HISTORY",
    "Desync",
    "DesyncCallback",
    "DesyncChecker",
    "DesyncCounters",
]

#: Hashes kept while waiting for the other side's hash of the same frame, on each side. A game that
#: records twice a second is 128 s ahead of its peer before anything is forgotten; the longest
#: legitimate gap is one round trip plus the rollback window.
DEFAULT_HASH_HISTORY: Final = 256


@dataclass(frozen=True, slots=True)
class Desync:
    """The first frame where the two games' state differed."""

    episode: int
    frame: int
    local_hash: bytes
    peer_hash: bytes


#: Called once, with the first :class:`Desync` found.
DesyncCallback = Callable[[Desync], None]


@dataclass(slots=True)
class DesyncCounters:
    hashes_recorded: int = 0
    #: Local hashes the send function refused (a full control window); the check skips them.
    hashes_unsent: int = 0
    peer_hashes: int = 0
    #: Frames both sides hashed, equal and different.
    matches: int = 0
    mismatches: int = 0
    #: Peer payloads that are not a state hash (a confused peer); ignored.
    malformed: int = 0
    #: Hashes dropped unmatched at the history bound (one side far ahead, or not hashing).
    forgotten: int = 0
    #: ``on_desync`` raised (logged; the check goes on).
    callback_errors: int = 0


class DesyncChecker:
    """Compares this side's state hashes with the peer's, frame by frame.

    ``send(payload)`` sends a STATE_HASH payload reliably and in order; it may raise
    ``RuntimeError`` (a full control window), and that hash is then left out of the check.
    """

    def __init__(
        self,
        send: Callable[[bytes], object],
        on_desync: DesyncCallback | None = None,
        *,
        history: int = DEFAULT_HASH_HISTORY,
    ) -> None:
        if history < 1:
            raise UsageError(f"history must be at least 1, got {history}")
        self._send = send
        self.on_desync = on_desync
        self.history = history
        self.episode = 0
        #: Compare only the first this many bytes of each hash (``None``: all of them): a
        #: version-1 peer sends the first 8 bytes of its hash.
        self.compared_bytes: int | None = None
        self.counters = DesyncCounters()
        self.first_desync: Desync | None = None
        # (episode, frame) -> hash, for frames only one side has reported so far.
        self._local: OrderedDict[tuple[int, int], bytes] = OrderedDict()
        self._peer: OrderedDict[tuple[int, int], bytes] = OrderedDict()

    def start_episode(self, episode: int) -> None:
        """Hashes recorded from now on belong to ``episode``."""
        self.episode = episode

    def add_local_hash(self, frame: int, hash_bytes: bytes) -> None:
        """This side's hash of confirmed ``frame``: compare it with the peer's, and send it."""
        payload = encode_state_hash_payload(frame, self.episode, hash_bytes)  # validates
        self.counters.hashes_recorded += 1
        key, digest = (self.episode, frame), bytes(hash_bytes)
        peer = self._peer.pop(key, None)
        if peer is None:
            self._remember(self._local, key, digest)
        else:
            self._compare(key, digest, peer)
        try:
            self._send(payload)
        except RuntimeError:
            self.counters.hashes_unsent += 1

    def on_peer_hash(self, payload: bytes) -> None:
        """The peer's STATE_HASH payload arrived."""
        try:
            frame, episode, digest = decode_state_hash_payload(payload)
        except ValueError:
            self.counters.malformed += 1
            return
        self.counters.peer_hashes += 1
        key = (episode, frame)
        local = self._local.pop(key, None)
        if local is None:
            self._remember(self._peer, key, digest)
        else:
            self._compare(key, local, digest)

    @property
    def local_hashes_waiting(self) -> int:
        """This side's hashes kept until the peer's of the same frame come (at most ``history``)."""
        return len(self._local)

    @property
    def peer_hashes_waiting(self) -> int:
        """The peer's hashes kept until this side hashes the same frame (at most ``history``)."""
        return len(self._peer)

    def _remember(
        self, table: OrderedDict[tuple[int, int], bytes], key: tuple[int, int], digest: bytes
    ) -> None:
        table[key] = digest
        while len(table) > self.history:
            table.popitem(last=False)
            self.counters.forgotten += 1

    def _compare(self, key: tuple[int, int], local: bytes, peer: bytes) -> None:
        size = self.compared_bytes
        if local[:size] == peer[:size]:
            self.counters.matches += 1
            return
        self.counters.mismatches += 1
        if self.first_desync is not None:
            return
        self.first_desync = Desync(key[0], key[1], local, peer)
        if self.on_desync is not None and not call_guarded(
            self.on_desync, self.first_desync, what="desync"
        ):
            self.counters.callback_errors += 1

    def stats(self) -> dict[str, int | None]:
        out: dict[str, int | None] = dict(asdict(self.counters))
        first = self.first_desync
        out["first_desync_episode"] = None if first is None else first.episode
        out["first_desync_frame"] = None if first is None else first.frame
        return out

"""Data longer than one control message, sent as numbered chunks under a digest and put back
together on the other side: a game state (the rollback layer's desync repair), a resume
package (:mod:`p2p_transport.rollback.resume`) or a JavaScript game handed over
(:mod:`.handoff`). Each chunk is a payload in the state chunk's layout
(:func:`~p2p_transport.wire.control_payloads.encode_state_chunk_payload`); the reliable control
path delivers them in order, once each, but a peer may still send nonsense, which is refused
here with a :class:`~p2p_transport.wire.codec.DecodeError`.
"""

from __future__ import annotations

import hashlib
from typing import Final

from p2p_transport.errors import UsageError
from p2p_transport.wire.codec import DecodeError
from p2p_transport.wire.control_payloads import (
    MAX_CHUNK_DATA,
    STATE_DIGEST_SIZE,
    decode_state_chunk_payload,
    encode_state_chunk_payload,
)

__all__ = ["MAX_CHUNKS", "ChunkAssembler", "chunk_payloads"]

#: About 4 MB in all: a game state or an episode's inputs many times over, and a bound on what a
#: peer can make this side hold.
MAX_CHUNKS: Final = 4096
#: Transfers put together at once; a newer one pushes out the oldest unfinished one.
MAX_OPEN_TRANSFERS: Final = 2


def _digest(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=STATE_DIGEST_SIZE).digest()


def chunk_payloads(frame: int, episode: int, data: bytes) -> list[bytes]:
    """``data`` as the payloads of its chunks, in order (one, empty, for no data)."""
    pieces = [data[i : i + MAX_CHUNK_DATA] for i in range(0, len(data), MAX_CHUNK_DATA)] or [b""]
    if len(pieces) > MAX_CHUNKS:
        raise UsageError(f"{len(data)} bytes take more than {MAX_CHUNKS} chunks")
    digest = _digest(data)
    return [
        encode_state_chunk_payload(frame, episode, index, len(pieces), digest, piece)
        for index, piece in enumerate(pieces)
    ]


class ChunkAssembler:
    """Chunks as they come, whole data once every chunk of one transfer is here."""

    def __init__(self) -> None:
        self._open: dict[tuple[int, int, int, bytes], dict[int, bytes]] = {}

    def add(self, payload: bytes) -> tuple[int, int, bytes] | None:
        """Take one chunk; ``(frame, episode, data)`` once its transfer is whole. Raises
        :class:`DecodeError` for a malformed chunk, a transfer of too many chunks, or whole data
        that does not match its digest."""
        frame, episode, index, count, digest, data = decode_state_chunk_payload(payload)
        if count > MAX_CHUNKS:
            raise DecodeError(f"a transfer of {count} chunks (at most {MAX_CHUNKS})")
        key = (frame, episode, count, digest)
        pieces = self._open.get(key)
        if pieces is None:
            if len(self._open) >= MAX_OPEN_TRANSFERS:
                del self._open[next(iter(self._open))]
            pieces = self._open[key] = {}
        pieces[index] = data
        if len(pieces) < count:
            return None
        del self._open[key]
        whole = b"".join(pieces[i] for i in range(count))
        if _digest(whole) != digest:
            raise DecodeError(f"a transfer of {len(whole)} bytes does not match its digest")
        return frame, episode, whole

    def clear(self) -> None:
        self._open.clear()

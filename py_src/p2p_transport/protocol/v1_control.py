"""Episode end, episode ready and state hashes with a version-1 peer (a deployed JavaScript peer).

A peer of this package gets these as reliable control messages (0x22, :mod:`.control`). A
deployed peer knows no control messages; it has its own unsequenced messages for the same three
things, and this module speaks them: episode end (0x05: frame, episode), episode ready (0x06:
episode, 8 ASCII characters of a state hash) and state hash (0x07: frame, 8 raw bytes).
What a deployed peer sends in them reaches the game exactly as the control messages of a peer of
this package would: ``on_control(EPISODE_END or EPISODE_READY, payload)`` with the same payloads,
and state hashes into the desync check.

Episode ready is the one with a handshake of its own: a deployed peer that receives the other's
0x06 after it sent its own sends its own again, which tells the other it arrived. This side does
the same, once per episode (two peers that both answered every 0x06 would echo forever).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Final

from p2p_transport.errors import RemoteError
from p2p_transport.protocol.control import ControlCallback
from p2p_transport.wire.codec import (
    V1_HASH_SIZE,
    encode_v1_episode_end,
    encode_v1_episode_ready,
    encode_v1_state_hash,
)
from p2p_transport.wire.control_payloads import (
    decode_episode_end_payload,
    decode_episode_ready_payload,
    decode_state_hash_payload,
    encode_episode_end_payload,
    encode_episode_ready_payload,
    encode_state_hash_payload,
)
from p2p_transport.wire.messages import ControlKind, EpisodeEnd, EpisodeReady, StateHash

__all__ = ["NO_STATE_HASH", "VersionOneControl", "VersionOneCounters", "VersionOneError"]

#: The episode-ready hash sent when the game gives none: a deployed peer stores it, and its own
#: comparison of the two games' starting states then reports a difference rather than a match.
NO_STATE_HASH: Final = "0" * V1_HASH_SIZE


class VersionOneError(RemoteError, ValueError):
    """What was asked cannot be said to a version-1 peer (a game's own control kinds).

    A :class:`~p2p_transport.errors.RemoteError`: the same call is right with a version-2 peer,
    and which version the peer speaks is learnt only on the wire, so a correct game meets this
    when a deployed peer joins. Also a ``ValueError``, as it was.
    """


@dataclass(slots=True)
class VersionOneCounters:
    episode_ends_sent: int = 0
    episode_readies_sent: int = 0
    state_hashes_sent: int = 0
    received: int = 0
    #: Episode ends and readies of an episode already delivered (each reaches the game once).
    duplicates: int = 0


class VersionOneControl:
    """Sends the transport's control messages in a deployed peer's layouts, and turns its
    messages into control messages. ``transmit(packet)`` puts a packet on the DataChannel;
    ``deliver(kind, payload)`` is the session's control-message handler; ``episode()`` is the
    desync check's current episode (a deployed peer's state hash carries none)."""

    def __init__(
        self,
        transmit: Callable[[bytes], bool],
        deliver: ControlCallback,
        episode: Callable[[], int],
    ) -> None:
        self._transmit = transmit
        self._deliver = deliver
        self._episode = episode
        self.counters = VersionOneCounters()
        # The hash this side sent with its episode ready, per episode, and the episodes whose
        # end and readiness the peer announced (each delivered, and a readiness answered, once).
        self._ready_sent: dict[int, str] = {}
        # The hash the game gave with its readiness for each episode, whatever the peer.
        self._ready_hashes: dict[int, str] = {}
        self._peer_ended: set[int] = set()
        self._peer_ready: set[int] = set()

    def remember_ready_hash(self, episode: int, state_hash: str) -> None:
        """The game's state hash for its readiness for ``episode``: used when that readiness
        goes to a version-1 peer, now or later (it may have gone out as a control message
        before the peer's version was known). Raises ``ValueError`` if it is not 8 ASCII
        characters."""
        encode_v1_episode_ready(episode, state_hash)  # validates
        self._ready_hashes[episode] = state_hash

    def send(self, kind: int, payload: bytes) -> None:
        """Send a control message (its kind, and its payload as
        :mod:`~p2p_transport.wire.control_payloads` lays it out)."""
        if kind == ControlKind.EPISODE_END:
            frame, episode = decode_episode_end_payload(payload)
            self._transmit(encode_v1_episode_end(frame, episode))
            self.counters.episode_ends_sent += 1
        elif kind == ControlKind.EPISODE_READY:
            episode = decode_episode_ready_payload(payload)
            ready_hash = self._ready_hashes.get(episode, NO_STATE_HASH)
            packet = encode_v1_episode_ready(episode, ready_hash)
            self._ready_sent[episode] = ready_hash
            self._transmit(packet)
            self.counters.episode_readies_sent += 1
        elif kind == ControlKind.STATE_HASH:
            frame, _, digest = decode_state_hash_payload(payload)
            if len(digest) < V1_HASH_SIZE:
                raise VersionOneError(
                    f"a version-1 peer compares {V1_HASH_SIZE}-byte state hashes; "
                    f"this one has {len(digest)} bytes"
                )
            self._transmit(encode_v1_state_hash(frame, digest[:V1_HASH_SIZE]))
            self.counters.state_hashes_sent += 1
        else:
            raise VersionOneError(
                f"the peer speaks version 1 (a deployed JavaScript peer), which has no control "
                f"messages of kind {kind}: only episode end, episode ready and state hashes"
            )

    def on_message(self, message: EpisodeEnd | EpisodeReady | StateHash) -> None:
        self.counters.received += 1
        if isinstance(message, EpisodeEnd):
            if message.episode in self._peer_ended:
                self.counters.duplicates += 1
                return
            self._peer_ended.add(message.episode)
            payload = encode_episode_end_payload(message.frame, message.episode)
            self._deliver(ControlKind.EPISODE_END, payload)
        elif isinstance(message, EpisodeReady):
            episode = message.episode
            if episode in self._peer_ready:
                self.counters.duplicates += 1
                return
            self._peer_ready.add(episode)
            own = self._ready_sent.get(episode)
            if own is not None:
                self._transmit(encode_v1_episode_ready(episode, own))
                self.counters.episode_readies_sent += 1
            self._deliver(ControlKind.EPISODE_READY, encode_episode_ready_payload(episode))
        else:
            payload = encode_state_hash_payload(message.frame, self._episode(), message.digest)
            self._deliver(ControlKind.STATE_HASH, payload)

    def stats(self) -> dict[str, int]:
        return asdict(self.counters)

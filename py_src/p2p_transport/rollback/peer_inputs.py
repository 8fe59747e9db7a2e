"""The peer's inputs for one episode: what arrived, in any order, and what to predict."""

from __future__ import annotations

from p2p_transport.rollback.game import DEFAULT_ACTION

__all__ = ["PeerInputs"]


class PeerInputs:
    """Episode frame -> the peer's action.

    Frames ``0..confirmed_frame`` all arrived: they are kept in order (the episode's record, and
    what predictions come from). Frames that arrived ahead of a missing one wait in a dict until
    the gap fills.
    """

    def __init__(self) -> None:
        self._confirmed = bytearray()
        self._early: dict[int, int] = {}

    @property
    def confirmed_frame(self) -> int:
        """Every frame up to this one arrived (-1: not frame 0 yet)."""
        return len(self._confirmed) - 1

    @property
    def confirmed(self) -> bytes:
        """The actions of frames ``0..confirmed_frame``."""
        return bytes(self._confirmed)

    def add(self, frame: int, action: int) -> bool:
        """Take the peer's action for ``frame``; ``False`` if that frame was already here."""
        if frame <= self.confirmed_frame or frame in self._early:
            return False
        if frame == len(self._confirmed):
            confirmed = self._confirmed
            confirmed.append(action)
            early = self._early
            while early and (following := early.pop(len(confirmed), None)) is not None:
                confirmed.append(following)
        else:
            self._early[frame] = action
        return True

    def held(self) -> dict[int, int]:
        """Every input here, frame -> action: the confirmed ones and those past a gap."""
        return {**dict(enumerate(self._confirmed)), **self._early}

    def drop_early(self) -> None:
        """Forget the inputs held past the first missing frame (it will never come)."""
        self._early.clear()

    def get(self, frame: int) -> int | None:
        """The action that arrived for ``frame``, or ``None``."""
        if 0 <= frame < len(self._confirmed):
            return self._confirmed[frame]
        return self._early.get(frame)

    def prediction(self, idle: int = DEFAULT_ACTION) -> int:
        """What to assume for a frame that has not arrived, unless the game predicts: the peer's
        last confirmed action (players tend to hold a key), as deployed peers predict; ``idle``
        before the first."""
        return self._confirmed[-1] if self._confirmed else idle

    def take_from(self, first: int) -> dict[int, int]:
        """Every arrival from frame ``first`` on, keyed from ``first``: the next episode's, which
        the peer may send before this side has seen its episode end."""
        taken = {frame - first: action for frame, action in self._early.items() if frame >= first}
        for frame in range(first, len(self._confirmed)):
            taken[frame - first] = self._confirmed[frame]
        return taken

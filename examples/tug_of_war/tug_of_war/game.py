"""The game itself: deterministic, with its whole state in what ``save_state`` returns."""

from __future__ import annotations

import hashlib

#: The rope's distance from the middle at which a side has won: the episode ends.
WIN_DISTANCE = 20


class TugOfWar:
    """Each player pulls (action 1) or rests (0); the rope moves by the difference."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.rope, self.frame = 0, 0

    def save_state(self) -> object:
        return (self.rope, self.frame)

    def load_state(self, state: object) -> None:
        self.rope, self.frame = state  # type: ignore[misc]

    def advance(self, inputs: tuple[int, ...]) -> None:
        self.rope += (inputs[1] & 1) - (inputs[0] & 1)
        self.frame += 1

    def checksum(self) -> bytes:
        return hashlib.blake2b(repr(self.save_state()).encode(), digest_size=16).digest()

    def done(self) -> bool:
        return abs(self.rope) >= WIN_DISTANCE

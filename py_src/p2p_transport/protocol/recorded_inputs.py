"""The local inputs a sender keeps, checked once as they are kept, and kept in wire form too.

Both senders (version 1's :class:`~.sender.RedundantInputs` and the
:class:`~.acked_sender.AckedInputSender`) send the newest few of what they recorded in every
packet. Keeping each input's 5-byte entry beside it makes a packet its head and a slice of those
bytes: an input is checked and packed once, not again in each of the packets that carry it.
"""

from __future__ import annotations

from collections import deque

from p2p_transport._checks import check_int
from p2p_transport.errors import UsageError
from p2p_transport.wire.codec import INPUT_SIZE, MAX_ACTION, MAX_FRAME, pack_input_entry

__all__ = ["RecordedInputs", "check_input"]


def check_input(target_frame: int, action: int, last_frame: int | None) -> None:
    """A local input a sender can keep: an action byte for a frame after ``last_frame``."""
    check_int("action", action, MAX_ACTION)
    check_int("target_frame", target_frame, MAX_FRAME)
    if last_frame is not None and target_frame <= last_frame:
        raise UsageError(
            f"target_frame {target_frame} is not after the last recorded frame {last_frame}; "
            "call reset() when a new episode restarts frame numbers"
        )


class RecordedInputs:
    """The last ``limit`` ``(frame, action)`` inputs recorded, oldest first, and their entries."""

    __slots__ = ("entries", "inputs")

    def __init__(self, limit: int) -> None:
        #: The inputs themselves; the oldest drops out when a new one comes past ``limit``.
        self.inputs: deque[tuple[int, int]] = deque(maxlen=limit)
        #: Their wire entries, 5 bytes each in the same order (read it, never change it).
        self.entries = bytearray()

    def __len__(self) -> int:
        return len(self.inputs)

    def keep(self, target_frame: int, action: int) -> int | None:
        """Keep the input for ``target_frame`` and return the frame of the input that dropped out
        to make room, if one did. Raises ``ValueError`` (see :func:`check_input`)."""
        inputs = self.inputs
        # The plain ints a game passes take one comparison; anything else gets the full checks
        # and their messages.
        if not (
            type(action) is int
            and type(target_frame) is int
            and 0 <= action <= MAX_ACTION
            and target_frame <= MAX_FRAME
            and target_frame > (inputs[-1][0] if inputs else -1)
        ):
            check_input(target_frame, action, inputs[-1][0] if inputs else None)
        entries = self.entries
        dropped = None
        if len(inputs) == inputs.maxlen:
            dropped = inputs[0][0]
            # A bytearray drops its front without moving the rest.
            del entries[:INPUT_SIZE]
        inputs.append((target_frame, action))
        entries += pack_input_entry(target_frame, action)
        return dropped

    def clear(self) -> None:
        self.inputs.clear()
        self.entries.clear()

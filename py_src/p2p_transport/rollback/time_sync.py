"""Frame advantage: how far this side runs ahead of the peer, and how much to slow down.

GGRS's method (facts in the project's platform notes): each frame, this side estimates the
peer's current frame from the newest input it has from the peer plus half a round trip, and
keeps ``local advantage = peer estimate - local frame`` in a window; a few times a second it sends
its own advantage, which the peer keeps in a second window. ``frames_ahead = (peer's average -
own average) / 2``: positive when this side is ahead. Averaging both views cancels what one side
alone gets wrong (an RTT estimate that is off, a different input delay).

The side that is ahead slows its tick a little rather than skipping frames (GGRS's advice): a
player sees a game that runs a few percent slow for a second, not a freeze. The behind side
keeps its pace, so the two converge instead of chasing each other.
"""

from __future__ import annotations

from collections import deque
from typing import Final

__all__ = [
    "MAX_TICK_STRETCH",
    "REPORT_INTERVAL_MS",
    "STRETCH_PER_FRAME",
    "TimeSync",
]

#: Samples in each window: half a second at 60 Hz (GGRS keeps 30 frames).
WINDOW_FRAMES: Final = 30
#: How often this side's advantage goes to the peer (GGRS: every 200 ms).
REPORT_INTERVAL_MS: Final = 200.0
#: Below this lead nothing is slowed: a lead of a frame or less is what a round trip's jitter and
#: the frame boundaries alone produce.
MIN_FRAMES_AHEAD: Final = 1.0
#: How much longer each tick gets per frame ahead: GGRS's documentation suggests about 10%.
STRETCH_PER_FRAME: Final = 0.10
#: At most half again as long a tick (40 Hz for a 60 Hz game): fast enough to close an 8-frame
#: lead in under a second, slow enough not to look broken.
MAX_TICK_STRETCH: Final = 0.5


class TimeSync:
    """Both sides' frame advantage over the last :data:`WINDOW_FRAMES` samples."""

    def __init__(self, fps: float) -> None:
        self._frames_per_ms = fps / 1000.0
        self._local: deque[float] = deque(maxlen=WINDOW_FRAMES)
        self._remote: deque[float] = deque(maxlen=WINDOW_FRAMES)
        #: The peer's input delay, from its reports (``None`` until the first).
        self.peer_input_delay: int | None = None
        #: How many frames this side is ahead of the peer (negative: behind); 0 until both sides
        #: have measured. Kept as samples and reports come, not summed again for every read:
        #: the game loop reads it each tick.
        self.frames_ahead = 0.0
        #: The factor to lengthen the game's next tick by: 1.0 on time, up to
        #: 1 + :data:`MAX_TICK_STRETCH` when far ahead.
        self.tick_stretch = 1.0

    def sample(self, local_frame: int, peer_newest_input: int, rtt_ms: float) -> float:
        """Record this side's advantage: ``peer_newest_input`` is the highest frame the peer
        has sent an input for (its own frame plus its input delay). Returns the advantage."""
        peer_frame = peer_newest_input - (self.peer_input_delay or 0)
        estimate = peer_frame + rtt_ms / 2 * self._frames_per_ms
        advantage = estimate - local_frame
        self._local.append(advantage)
        self._update()
        return advantage

    def on_report(self, advantage_frames: float, input_delay: int) -> None:
        self._remote.append(advantage_frames)
        self.peer_input_delay = input_delay
        self._update()

    def reset(self) -> None:
        """Forget the windows (a new episode restarts both sides' frame numbers)."""
        self._local.clear()
        self._remote.clear()
        self._update()

    def _update(self) -> None:
        if not self._local or not self._remote:
            ahead = 0.0
        else:
            local = sum(self._local) / len(self._local)
            remote = sum(self._remote) / len(self._remote)
            ahead = (remote - local) / 2
        self.frames_ahead = ahead
        self.tick_stretch = (
            1.0
            if ahead < MIN_FRAMES_AHEAD
            else 1.0 + min(MAX_TICK_STRETCH, STRETCH_PER_FRAME * ahead)
        )

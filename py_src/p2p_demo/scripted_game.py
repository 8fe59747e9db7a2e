"""A scripted stand-in for a game: steps frames at 60 Hz and checks every peer input it is given.

The demo and the browser tests run it in both tabs. Each player's action for a frame is a fixed
function of the player and the frame, so a receiver can check that what arrived is exactly what was
sent, once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from p2p_transport.timing import FRAME_MS, Clock, Scheduler

__all__ = ["ScriptedGame", "scripted_action"]


def scripted_action(player_index: int, frame: int) -> int:
    """A well-mixed byte, so a swapped, shifted or stale input is caught (Knuth's multiplier)."""
    return ((frame * 2654435761 + player_index * 40503) >> 11) & 0xFF


class ScriptedGame:
    """Steps ``frames`` frames through ``step`` and verifies the peer's inputs as they arrive."""

    def __init__(
        self,
        player_index: int,
        peer_index: int,
        frames: int,
        step: Callable[[int, int], bool],
        scheduler: Scheduler,
        clock: Clock,
        frame_ms: float = FRAME_MS,
    ) -> None:
        if frames < 1:
            raise ValueError(f"frames must be at least 1, got {frames}")
        self.player_index = player_index
        self.peer_index = peer_index
        self.frames = frames
        self._step = step
        self._scheduler = scheduler
        self._clock = clock
        self._frame_ms = frame_ms
        self._timer: object | None = None
        self.next_frame = 0
        self.steps_taken_by_any_path = 0
        self.received: dict[int, int] = {}
        #: When each frame was stepped and each peer frame arrived (this game's clock), so a
        #: harness that knows both tabs' clock origins can measure every input's delay.
        self.sent_at_ms: list[float] = []
        self.received_at_ms: dict[int, float] = {}
        self.extra_deliveries = 0
        self.wrong_actions = 0
        self.out_of_range = 0
        self.started_at_ms: float | None = None
        self.sent_all_at_ms: float | None = None
        self.received_all_at_ms: float | None = None

    @property
    def running(self) -> bool:
        return self._timer is not None

    def start(self) -> None:
        if self._timer is None and self.next_frame < self.frames:
            self.started_at_ms = self._clock()
            self._timer = self._scheduler.set_interval(self.tick, self._frame_ms)

    def stop(self) -> None:
        if self._timer is not None:
            timer, self._timer = self._timer, None
            self._scheduler.clear_interval(timer)

    def reset(self) -> None:
        """Begin a new episode from frame 0 (the transport is reset separately)."""
        self.stop()
        self.next_frame = 0
        self.steps_taken_by_any_path = 0
        self.received.clear()
        self.sent_at_ms.clear()
        self.received_at_ms.clear()
        self.extra_deliveries = self.wrong_actions = self.out_of_range = 0
        self.started_at_ms = self.sent_all_at_ms = self.received_all_at_ms = None

    def tick(self) -> None:
        frame = self.next_frame
        if frame >= self.frames:
            self.stop()
            return
        self.next_frame += 1
        self.sent_at_ms.append(self._clock())
        if self._step(frame, scripted_action(self.player_index, frame)):
            self.steps_taken_by_any_path += 1
        if self.next_frame == self.frames:
            self.sent_all_at_ms = self._clock()
            self.stop()

    def on_input(self, frame: int, action: int) -> None:
        if not 0 <= frame < self.frames:
            self.out_of_range += 1
            return
        if frame in self.received:
            self.extra_deliveries += 1
            return
        self.received[frame] = action
        self.received_at_ms[frame] = self._clock()
        if action != scripted_action(self.peer_index, frame):
            self.wrong_actions += 1
        if len(self.received) == self.frames:
            self.received_all_at_ms = self._clock()

    @property
    def done(self) -> bool:
        return self.next_frame >= self.frames and len(self.received) == self.frames

    @property
    def delivered_exactly_once(self) -> bool:
        return (
            len(self.received) == self.frames
            and self.extra_deliveries == 0
            and self.wrong_actions == 0
            and self.out_of_range == 0
        )

    def report(self) -> dict[str, Any]:
        return {
            "frames": self.frames,
            "frames_stepped": self.next_frame,
            "frames_sent_on_some_path": self.steps_taken_by_any_path,
            "frames_received": len(self.received),
            "missing_frames": self.frames - len(self.received),
            "extra_deliveries": self.extra_deliveries,
            "wrong_actions": self.wrong_actions,
            "out_of_range": self.out_of_range,
            "delivered_exactly_once": self.delivered_exactly_once,
            "done": self.done,
            "started_at_ms": self.started_at_ms,
            "sent_all_at_ms": self.sent_all_at_ms,
            "received_all_at_ms": self.received_all_at_ms,
        }

"""A player whose page is hidden (a background tab, a minimised window), under the rollback layer.

A hidden page's timers wake about once a second (Chromium), while its DataChannel and WebSocket
message handlers still run as messages arrive. Its game loop then sends one input a second, and
every other player stalls at the end of its prediction window. The page tells the layer
(:meth:`RollbackSession.set_hidden <p2p_transport.rollback.session.RollbackSession.set_hidden>`
on every ``visibilitychange``), and once it has stayed hidden for :data:`HIDDEN_GRACE_MS` the
game's ``hidden_policy`` decides:

``"idle"`` (the default): its seat plays the idle action, and the others play on at full rate. A
player's inputs are its own, so the frame its idling starts from needs no negotiation: the hidden
side schedules its idle action for the frames after the last one it scheduled, and sends them far
enough ahead that nobody waits for it. On every call into the layer (its game loop's throttled
ticks, and each input or control message another player sends it, whose handlers run at once) it
keeps them scheduled up to :func:`idle_lead` frames past the newest frame it has heard of from a
player still playing. The others receive real inputs, idle ones: they neither predict nor roll
back for that seat, and a ``SEAT_HIDDEN`` control message tells them from which frame it idles,
for their records. Back in front, the side is far behind; :attr:`frames_behind
<p2p_transport.rollback.session.RollbackSession.frames_behind>` says how far, and its game loop
simulates up to :data:`CATCH_UP_FRAMES_PER_TICK` frames a tick until it is no more than
:data:`CATCH_UP_THRESHOLD` behind. Its idle actions go on meanwhile (without the lead: it ticks
every frame again), since the game it shows is in the past and nothing the player does there can
count yet. Then the player's actions count again from the first frame not yet scheduled, and a
second ``SEAT_HIDDEN`` says which.

``"pause"``: the hidden side asks every player to stop at the first frame it has not scheduled:
nobody has its input for that frame, so nobody can have simulated it on anything but a guess.
Each side stops there, going back to it if it had predicted past it (at most its prediction
window), and counts the calls it waits in ``paused_frames``, not as a stall. The players see the
game freeze (a side that had guessed ahead first jumps back those few frames) until the hidden
player is back; its ``SEAT_HIDDEN`` then resumes everyone from that frame.

``"stall"``: nothing special: the others stall at the end of their prediction window until the
hidden side sends again, as before this existed.

Every side records the frames each seat idled while hidden, per episode (``idled``:
``{"<player>": [[first, end], ...]}``, ``end`` exclusive). A ``SEAT_HIDDEN`` can arrive after the
idle inputs it describes (they travel apart, and a lost control message waits for its resend),
so a record written meanwhile is corrected when it comes. It always comes before the hidden side's
end of that episode (control messages arrive in order), which every side waits for before the
next episode: an episode's record is final once the next one has started.

While a seat idles, its link sets no pace: its inputs run ahead of its game, so neither side
samples or reports its frame advantage on that link, and both start afresh when it plays again.

Limits. An episode that ends while a player's page is hidden ends for everyone only once that
player's game gets there too (every side resets its game at the same point): its throttled loop
simulates a few frames a wake, its catch-up the rest once back. The newest frame a hidden side
keeps ahead of leaves out the players it knows idle; until another hidden player's
``SEAT_HIDDEN`` arrives, that player's idle inputs count, so two players hidden at once may send
their idle actions further ahead meanwhile, and their actions count again that much later.
"""

from __future__ import annotations

import math
from enum import StrEnum
from typing import Final

from p2p_transport.errors import RemoteError
from p2p_transport.protocol.acked_sender import PENDING_LIMIT

__all__ = [
    "CATCH_UP_FRAMES_PER_TICK",
    "CATCH_UP_THRESHOLD",
    "HIDDEN_GRACE_MS",
    "THROTTLED_WAKE_MS",
    "HiddenPolicy",
    "IdleRanges",
    "IdlingOutOfOrder",
    "Mark",
    "idle_lead",
]

#: How long a page stays hidden before its seat idles or the game pauses: a switch to another tab
#: and straight back (a slip of the keyboard) changes nothing. Each longer absence costs the others
#: a stall of about this, less their prediction window (133 ms at 60 Hz), plus the wait for one of
#: their messages to wake the hidden side (their frame-advantage reports come every 200 ms): the
#: hidden tab sends nothing meanwhile. 300 ms keeps what a 10 s absence costs them under 5% of its
#: frames (about 15 frames in the simulations).
HIDDEN_GRACE_MS: Final = 300.0
#: How often a hidden page's timers wake at most (Chromium's throttling of background tabs).
THROTTLED_WAKE_MS: Final = 1000.0
#: A side back from a hidden tab simulates at most this many frames a tick: 8 frames of a game
#: that costs 1 ms a frame in Pyodide take half of a 60 Hz tick, so the page still draws every
#: tick, and it gains 7 frames a tick on the others: 10 s behind (600 frames) takes 1.4 s.
CATCH_UP_FRAMES_PER_TICK: Final = 8
#: Up to this many frames behind, a side is not catching up: half a round trip and the ticks'
#: phase leave a side a frame or two short of the others' newest inputs in ordinary play.
CATCH_UP_THRESHOLD: Final = 2


class HiddenPolicy(StrEnum):
    """What a hidden player's seat does once the grace is over (see the module's docstring)."""

    IDLE = "idle"
    PAUSE = "pause"
    STALL = "stall"


def idle_lead(fps: float) -> int:
    """How many frames past the newest frame heard from a player still playing a hidden side keeps
    its idle actions scheduled: a throttled wake's worth, so that the others never wait for it
    even if no message of theirs wakes it in between (their input delay and prediction window
    then add a margin of a few frames). At most the acked sender's pending bound: a wake's whole
    top-up goes out before an acknowledgement can come back, and inputs past
    :data:`~p2p_transport.protocol.acked_sender.PENDING_LIMIT` unacknowledged are given up."""
    return min(math.ceil(fps * THROTTLED_WAKE_MS / 1000.0), PENDING_LIMIT)


#: A point of the game: (episode, frame of that episode).
Mark = tuple[int, int]


class IdlingOutOfOrder(RemoteError, ValueError):
    """A peer's SEAT_HIDDEN messages do not follow one another as idling does (a confused
    peer's): counted as malformed where they arrive."""


class IdleRanges:
    """One player's stretches of idle play while hidden: each from the first idle frame to the
    first frame of its real actions again (``None`` while it lasts), as (episode, frame). A
    stretch that goes on into a new episode goes on from that episode's frame 0."""

    def __init__(self) -> None:
        self._ranges: list[tuple[Mark, Mark | None]] = []

    @property
    def open(self) -> bool:
        """A stretch is under way."""
        return bool(self._ranges) and self._ranges[-1][1] is None

    def start(self, episode: int, frame: int) -> None:
        """The player idles from ``frame`` of ``episode``. ``ValueError`` if it already does
        (a confused peer's message)."""
        if self.open:
            raise IdlingOutOfOrder(f"player already idles; idling again from {episode}:{frame}")
        self._ranges.append(((episode, frame), None))

    def end(self, episode: int, frame: int) -> None:
        """The player's real actions count again from ``frame`` of ``episode``. ``ValueError``
        if it does not idle, or the frame is before its first idle one."""
        if not self.open:
            raise IdlingOutOfOrder(
                f"player does not idle; its idling cannot end at {episode}:{frame}"
            )
        first, _ = self._ranges[-1]
        if (episode, frame) < first:
            raise IdlingOutOfOrder(f"idling from {first} cannot end before, at {episode}:{frame}")
        self._ranges[-1] = (first, (episode, frame))

    def in_episode(self, episode: int) -> list[tuple[int, int | None]]:
        """The stretches that touch ``episode``, as ``(first, end)`` within it (``end``
        ``None``: it lasts past the episode's frames so far)."""
        spans: list[tuple[int, int | None]] = []
        for (first_episode, first), end in self._ranges:
            if first_episode > episode or (end is not None and end <= (episode, 0)):
                continue
            start = first if first_episode == episode else 0
            spans.append((start, end[1] if end is not None and end[0] == episode else None))
        return spans

    def set_episode(self, episode: int, spans: list[tuple[int, int | None]]) -> None:
        """Make :meth:`in_episode` of ``episode`` what another side said it is (a page that
        came back, :mod:`.resume`): the stretches from it on forgotten (one under way cut at its
        start), ``spans`` put in their place. ``ValueError`` for spans out of order."""
        start = (episode, 0)
        kept: list[tuple[Mark, Mark | None]] = []
        for first, end in self._ranges:
            if first < start:
                kept.append((first, end if end is not None and end <= start else start))
        self._ranges = kept
        for first_frame, end_frame in spans:
            self.start(episode, first_frame)
            if end_frame is not None:
                self.end(episode, end_frame)

    def within(self, episode: int, frames: int) -> list[list[int]]:
        """The idle stretches among the first ``frames`` frames of ``episode``, as ``[first,
        end]`` (``end`` exclusive)."""
        spans = []
        for (first_episode, first), end in self._ranges:
            if (first_episode, first) >= (episode, frames) or (
                end is not None and end <= (episode, 0)
            ):
                continue
            start = first if first_episode == episode else 0
            stop = frames if end is None or end[0] > episode else min(end[1], frames)
            if start < stop:
                spans.append([start, stop])
        return spans

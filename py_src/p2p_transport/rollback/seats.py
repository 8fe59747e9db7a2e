"""The other players of a room, one :class:`Seat` each, and how the rest agree on where a player
who left stops playing.

A seat is one other player: the session with it (each pair of players has its own link), its
inputs of the episode under way, the action each simulated frame used for it (real or
predicted), the time sync on that link, its episode ends and readiness, and whether its page is
hidden (:mod:`.visibility`).

A player who leaves a room of more than two plays its idle action from some frame on, and every
player who stays must pick the same frame, though each holds that player's inputs up to a
different frame (its link was faster, or lost less). When a side learns that a seat left (its
session was shut down, the game said so, or another player's report came: one report spreads
the news, as GGRS's disconnect does), it stops taking the seat's inputs from its link and tells
every player who stays how far it holds them, handing on the last ``FORWARDED_FRAMES`` of them
(a ``SEAT_LEFT`` control message, :mod:`p2p_transport.wire.control_payloads`). Once every
player who stays has reported, each takes the furthest report, episode first, then frame: the
seat's real inputs up to there, which the furthest reporter handed on to everyone, then its idle
action (for the rest of the episode, and the whole of every later one). The furthest report, not
the nearest: a side may already have confirmed, hashed and even ended the episode on the seat's
real inputs up to the frame it holds, and no frame a side confirmed ever changes. Until the
reports are in, a side confirms none of the seat's frames past what a report vouches for, so it
stalls at most a prediction window past them, for a round trip or so.

A seat that leaves while an episode ends needs nothing more: a side that ended the episode held
the seat's inputs up to its end and reports so, and the next episode starts without waiting for
the seat's end and readiness.

Limits. Two players leaving within a round trip of each other can leave the others disagreeing
when the second had reported the first to some of them only and its report was the furthest;
the state hashes then report the desync. A player whose links to everyone else were shut down
while its own tab plays on is out of the game for the others (and sees them all leave).
"""

from __future__ import annotations

from collections.abc import Iterable

from p2p_transport.protocol.kept_inputs import KeptInputs
from p2p_transport.rollback.peer_inputs import PeerInputs
from p2p_transport.rollback.resume import HEARD_AGAIN_MS, MAX_KEPT_FOR_RESUME
from p2p_transport.rollback.time_sync import TimeSync
from p2p_transport.rollback.visibility import HiddenPolicy, IdleRanges
from p2p_transport.session.session import P2PSession
from p2p_transport.wire.control_payloads import encode_seat_left_payload

__all__ = ["Seat", "forwarded_frames"]


def forwarded_frames(max_prediction: int, max_input_delay: int) -> int:
    """How many of a seat's last inputs a report hands on: as many as two players who stay can
    hold apart. One holds the seat's inputs up to frame ``h``; the seat could send that far only
    ``max_input_delay`` past a frame it simulated, at most ``max_prediction`` past the other
    player's inputs it held, which that player sent at most ``max_input_delay`` past its own
    frame, itself at most ``max_prediction`` past the seat's inputs it holds."""
    return 2 * (max_prediction + max_input_delay)


class Seat:
    """One other player, as this side sees it."""

    # The episode's part, set by start_episode.
    inputs: PeerInputs
    newest: int  # the highest frame an input arrived for
    used: bytearray  # the action each simulated frame used for this player (real or predicted)
    #: The first frame of this episode the seat plays its idle action in; ``None`` while it plays
    #: (or the reports are not all in).
    idle_from: int | None

    def __init__(self, player: int, session: P2PSession, fps: float) -> None:
        self.player = player
        self.session = session
        self.time_sync = TimeSync(fps)
        #: Episode -> its last frame, from the seat's episode ends.
        self.ends: dict[int, int] = {}
        #: The episodes the seat said it is ready for.
        self.ready: set[int] = set()
        #: The input delay the seat needs everyone to use (``delay_range``).
        self.delay_wanted: int | None = None
        #: The seat left the room, as this side learned.
        self.left = False
        #: Each report of its leaving: reporter -> (episode, the last frame it holds).
        self.reports: dict[int, tuple[int, int]] = {}
        #: This side's own report (a SEAT_LEFT payload), and the players it has not reached yet
        #: (a refused send).
        self.report_payload = b""
        self.unreported: set[int] = set()
        #: (episode, frame): the seat's last real input, once every report is in.
        self.agreed: tuple[int, int] | None = None
        #: Inputs that reports handed on for an episode this side has not started: episode ->
        #: frame -> action.
        self.forwarded: dict[int, dict[int, int]] = {}
        #: What the seat does while its page is hidden, as its last ``SEAT_HIDDEN`` said: it
        #: idles (its inputs run ahead of its game: they set no pace) or pauses the game;
        #: ``None`` while it plays.
        self.away: HiddenPolicy | None = None
        #: The frames it idled while hidden (or absent, see :mod:`.resume`).
        self.idled = IdleRanges()
        #: In a game of two: since when its session is shut down, this side waiting for it to
        #: come back (``None``: it plays); and whether its new page asked for the game.
        self.absent_since: float | None = None
        self.asked = False
        #: The game under way goes to it at the end of this side's next frame.
        self.resume_due = False
        #: Its inputs that came while absent (a long drop: its page went on), by frame, and
        #: since when it is heard again.
        self.held_while_absent = KeptInputs(MAX_KEPT_FOR_RESUME)
        self.heard_back_at: float | None = None
        self.start_episode(0, {})

    def start_episode(self, episode: int, early: dict[int, int]) -> None:
        """Start ``episode`` with the inputs that came for it ahead of time (keyed by its
        frames), and those reports handed on."""
        inputs = PeerInputs()
        for frame in sorted(early):
            inputs.add(frame, early[frame])
        for frame, action in self.forwarded.pop(episode, {}).items():
            inputs.add(frame, action)
        self.inputs = inputs
        self.newest = max(early, default=-1)
        self.used = bytearray()
        self.settle(episode)

    def end_for_absent(self, episode: int, end: int) -> None:
        """This side ended ``episode`` at ``end`` while the seat is absent: the seat ends it
        there too and is ready for the next (its page, back, joins the episode under way)."""
        self.ends[episode] = end
        self.ready.add(episode + 1)

    def go_absent(self, now: float, episode: int, idles: bool) -> int:
        """In a game of two, the seat is absent since ``now`` (see :mod:`.resume`): it idles
        (``idles``) from the frame after its last input here, or plays nothing while the game
        stalls. Returns that frame."""
        self.absent_since = now
        self.asked = False
        self.resume_due = False
        self.held_while_absent.clear()
        self.heard_back_at = None
        self.inputs.drop_early()  # those past a gap: the gap never fills now
        self.newest = self.inputs.confirmed_frame
        self.time_sync.reset()
        first = self.inputs.confirmed_frame + 1
        if idles:
            self.away = HiddenPolicy.IDLE
            if not self.idled.open:
                self.idled.start(episode, first)
        else:
            self.away = None
        return first

    def back_from_drop(self, now: float) -> bool:
        """After a long drop, whether the seat's page is back and what it sent before is here:
        an input of its came (each packet carries every input it has pending), or it was heard
        a while without one (it has none pending)."""
        if self.session.parts.watchdog.peer_silence_ms >= HEARD_AGAIN_MS:
            self.heard_back_at = None
            return False
        if self.heard_back_at is None:
            self.heard_back_at = now
        return bool(self.held_while_absent) or now - self.heard_back_at >= HEARD_AGAIN_MS

    def settle(self, episode: int) -> None:
        """Work out :attr:`idle_from` for ``episode`` from the agreement, if there is one."""
        self.idle_from = None
        if self.agreed is not None:
            left_in, last = self.agreed
            if left_in < episode:
                self.idle_from = 0
            elif left_in == episode:
                self.idle_from = last + 1

    def leave(self, reporter: int, episode: int, handed_on: int) -> None:
        """The seat left, as this side (player ``reporter``) learned during ``episode``: keep
        this side's report of how far it holds the seat's inputs, with the last ``handed_on``
        of them in :attr:`report_payload`."""
        self.left = True
        self.time_sync.reset()  # its link no longer sets the pace
        held = self.inputs.confirmed_frame
        self.reports[reporter] = (episode, held)
        actions = self.inputs.confirmed[max(0, held + 1 - handed_on) :]
        self.report_payload = encode_seat_left_payload(held, episode, self.player, actions)

    def take_report(
        self, reporter: int, episode: int, last: int, actions: bytes, current: int
    ) -> dict[int, int]:
        """Another player's report (it holds the seat's inputs of ``episode`` to ``last``, the
        last of them ``actions``): kept. Returns the inputs it hands on for the ``current``
        episode, frame -> action; those of a later episode wait for its start."""
        self.reports[reporter] = (episode, last)
        first = last + 1 - len(actions)
        handed_on = {first + offset: action for offset, action in enumerate(actions)}
        if episode > current:
            self.forwarded.setdefault(episode, {}).update(handed_on)
        return handed_on if episode == current else {}

    def agree(self, reporters: Iterable[int], episode: int, idle: int) -> int | None:
        """Once every one of ``reporters`` has reported, take the furthest report (episode
        first, then frame). Returns the first frame simulated with something else than the idle
        action it gives the seat there (to roll back to), if any."""
        if any(player not in self.reports for player in reporters):
            return None
        self.agreed = max(self.reports.values())
        self.settle(episode)
        if self.idle_from is None:
            return None
        used = self.used
        return next((f for f in range(self.idle_from, len(used)) if used[f] != idle), None)

    def action(self, frame: int, idle: int) -> int | None:
        """The seat's action for ``frame`` if it is known (``None``: predict it)."""
        idle_from = self.idle_from
        if idle_from is not None and frame >= idle_from:
            return idle
        return self.inputs.get(frame)

    def confirmed_frame(self, episode: int) -> int | None:
        """The seat's last frame whose input is certain (-1: none); ``None`` when every frame's
        is (it left, and its real inputs are all here)."""
        held = self.inputs.confirmed_frame
        if not self.left:
            return held
        idle_from = self.idle_from
        if idle_from is not None:
            return None if held >= idle_from - 1 else held
        # Waiting for reports: only what one of them vouches for is certain to be real.
        vouched = -1
        for left_in, last in self.reports.values():
            if left_in > episode:
                return held  # someone was already in a later episode: this one is all real
            if left_in == episode:
                vouched = max(vouched, last)
        return min(held, vouched)

    def recorded(self, frames: int, idle: int) -> bytes:
        """The seat's actions of the episode's first ``frames`` frames (all confirmed)."""
        idle_from = self.idle_from
        if idle_from is None or idle_from >= frames:
            return self.inputs.confirmed[:frames]
        return self.inputs.confirmed[:idle_from] + bytes([idle]) * (frames - idle_from)

    def left_detail(self) -> str | list[int] | None:
        """For stats: ``None`` while the seat plays, ``"pending"`` while the reports come in,
        then ``[episode, frame]``: its last real input."""
        if not self.left:
            return None
        return "pending" if self.agreed is None else list(self.agreed)

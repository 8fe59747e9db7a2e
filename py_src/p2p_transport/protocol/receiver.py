"""Delivers the peer's inputs to the game exactly once, whatever copies and paths bring them."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Final

from p2p_transport.errors import UsageError
from p2p_transport.wire.codec import Inputs
from p2p_transport.wire.messages import AckedInputPacket, InputPacket, InputResponse

__all__ = ["DEFAULT_HISTORY_FRAMES", "MAX_FRAME_JUMP", "InputReceiver", "ReceiverCounters"]


#: How far behind the newest frame a frame is still remembered. 256 frames is about 4 s at 60 Hz:
#: far longer than redundancy or a relay detour delays an input, yet memory stays bounded. A frame
#: older than this that was never delivered is counted as lost; a copy arriving later is stale.
DEFAULT_HISTORY_FRAMES: Final = 256
#: A packet whose newest frame is this far past everything seen so far is not believed: rollback
#: peers advance one frame per tick, so a jump of 1024 frames (17 s at 60 Hz) is a corrupt or
#: hostile packet, and believing it would make every genuine frame look stale.
MAX_FRAME_JUMP: Final = 1024

InputCallback = Callable[[int, int], None]

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class ReceiverCounters:
    packets: int = 0
    inputs_delivered: int = 0
    duplicates: int = 0
    #: First delivered from a redundant (non-newest) slot of a packet: the copy that saved it.
    recovered: int = 0
    #: A copy of an already delivered frame carrying another action; the first one stays.
    conflicts: int = 0
    #: Packets claiming to come from a player other than the expected peer.
    wrong_player: int = 0
    #: Packets whose frames jumped implausibly far ahead.
    implausible: int = 0
    #: Copies of frames older than the remembered history.
    stale: int = 0
    #: Frames not delivered once the peer's own redundancy had moved past them.
    gaps: int = 0
    #: Of those gaps, frames that arrived later anyway (another path, a reordered packet).
    gaps_filled: int = 0
    #: Frames that fell out of the history without ever being delivered.
    lost: int = 0
    #: Exceptions raised by the game's input callback (logged; delivery goes on).
    callback_errors: int = 0


class InputReceiver:
    """Turns the peer's input packets into one ``on_input(frame, action)`` call per frame.

    Frames are assumed to come one input per frame from the peer, as a rollback game produces
    them; that is what lets a missing frame be told from a frame that never existed.
    """

    def __init__(
        self,
        peer_index: int,
        on_input: InputCallback,
        history_frames: int = DEFAULT_HISTORY_FRAMES,
    ) -> None:
        if history_frames < 1:
            raise UsageError(f"history_frames must be at least 1, got {history_frames}")
        self.peer_index = peer_index
        self._on_input = on_input
        self._history = history_frames
        self.counters = ReceiverCounters()
        self._actions: dict[int, int] = {}
        self._newest: int | None = None
        # Frames below _gap_checked were checked for gaps; frames below _floor are forgotten.
        # Frames before the first one seen are still accepted (a slower path may bring them), but
        # are not counted as gaps or losses: nothing says the peer ever produced them.
        self._gap_checked = 0
        self._floor = 0
        self._first_seen = 0
        self._pending_gaps: set[int] = set()
        self._ack: int | None = None

    @property
    def newest_frame(self) -> int | None:
        return self._newest

    @property
    def ack_frame(self) -> int | None:
        """The acknowledgement to send the peer: the highest frame F such that every frame from
        0 up to F was delivered, or can no longer be (it fell out of the history, or the peer's
        acked packets show it stopped sending it). ``None`` before anything was.

        The peer drops its copies of frames up to F, so F never passes a frame still on its way.
        """
        return self._ack

    def reset(self) -> None:
        """Forget every frame (a new episode restarts frame numbers); counters are kept."""
        self._actions.clear()
        self._pending_gaps.clear()
        self._newest = None
        self._gap_checked = 0
        self._floor = 0
        self._first_seen = 0
        self._ack = None

    def receive(self, packet: InputPacket | AckedInputPacket | InputResponse) -> int:
        """Deliver the packet's new inputs; return how many were delivered."""
        return self.receive_inputs(
            packet.player_index, packet.inputs, isinstance(packet, AckedInputPacket)
        )

    def receive_inputs(self, player_index: int, inputs: Inputs, acked: bool) -> int:
        """:meth:`receive` for a packet's fields (``acked``: it was an acked input packet), as
        the session's receive path reads them
        (:func:`~p2p_transport.wire.codec.decode_input_fields`)."""
        counters = self.counters
        if player_index != self.peer_index:
            counters.wrong_player += 1
            return 0
        if not inputs:
            counters.packets += 1
            return 0
        packet_newest = inputs[-1][0]
        newest = self._newest
        if newest is None:
            self._first_seen = self._gap_checked = inputs[0][0]
            self._floor = max(0, self._first_seen - self._history + 1)
        elif packet_newest > newest + MAX_FRAME_JUMP:
            counters.implausible += 1
            return 0
        counters.packets += 1
        delivered = 0
        actions = self._actions
        floor = self._floor
        pending_gaps = self._pending_gaps
        on_input = self._on_input
        for frame, action in inputs:
            if frame < floor:
                counters.stale += 1
                continue
            known = actions.get(frame)
            if known is not None:
                counters.duplicates += 1
                if known != action:
                    counters.conflicts += 1
                continue
            actions[frame] = action
            if frame != packet_newest:  # frames increase: only the last slot holds it
                counters.recovered += 1
            if pending_gaps and frame in pending_gaps:
                pending_gaps.discard(frame)
                counters.gaps_filled += 1
            delivered += 1
            # The game's callback failing must not cost it the other inputs of this packet. The
            # guard is written out here rather than call_guarded's: per input, building that
            # call's message cost more than handling the input.
            try:
                on_input(frame, action)
            except Exception:
                counters.callback_errors += 1
                logger.exception("input (frame %d) callback failed", frame)
        counters.inputs_delivered += delivered
        if newest is None or packet_newest > newest:
            self._newest = newest = packet_newest
        self._settle(inputs[0][0], newest - self._history + 1, acked)
        return delivered

    def count_repeat(self, inputs: Inputs) -> None:
        """Count a copy of the inputs :meth:`receive_inputs` took last, as receiving them again
        would: it delivers nothing and changes no state, so only the counters move (its inputs
        are duplicates, or stale if they fell below the history meanwhile)."""
        counters = self.counters
        if inputs and self._newest is not None and inputs[-1][0] > self._newest + MAX_FRAME_JUMP:
            counters.implausible += 1
            return
        counters.packets += 1
        floor = self._floor
        # Frames increase: only a copy whose oldest frame fell below the history has stale ones.
        stale = (
            sum(1 for frame, _ in inputs if frame < floor) if inputs and inputs[0][0] < floor else 0
        )
        counters.stale += stale
        counters.duplicates += len(inputs) - stale

    def _settle(self, oldest: int, floor: int, acked: bool) -> None:
        """After a packet whose oldest frame is ``oldest``: count the gaps it shows, forget the
        frames below ``floor``, and move the ack."""
        actions = self._actions
        counters = self.counters
        # The peer's redundancy no longer carries anything older than this packet's oldest frame.
        if oldest > self._gap_checked:
            for frame in range(max(self._gap_checked, self._floor), oldest):
                if frame not in actions:
                    counters.gaps += 1
                    self._pending_gaps.add(frame)
            self._gap_checked = oldest
        if floor > self._floor:
            for frame in range(self._floor, floor):
                if actions.pop(frame, None) is None and frame >= self._first_seen:
                    counters.lost += 1
                    self._pending_gaps.discard(frame)
            self._floor = floor
        # An acked packet carries every input its sender has not seen acknowledged, so the frames
        # before its oldest one were delivered or given up; a version-1 packet says no such thing.
        # The ack moves over those and every delivered frame after them.
        # From frame 0, not the first frame seen: the packets that carried the first frames may
        # all have been lost (version-1 packets carry only the last few), and an ack past them
        # would make the peer drop them for good. A peer whose frames start later says so with
        # its first acked packet, whose oldest frame moves the ack.
        frame = 0 if self._ack is None else self._ack + 1
        if self._floor > frame:
            frame = self._floor
        if acked and oldest > frame:
            frame = oldest
        while frame in actions:
            frame += 1
        if frame > 0:
            self._ack = frame - 1

    def stats(self) -> dict[str, int]:
        return asdict(self.counters)

"""What a game of two keeps of its players' absences (:mod:`.resume`): the other player's
absences and this page's own return, as records and as ``on_peer_absent`` calls; the inputs a
page that came back keeps until the game under way loads; and, under ``"idle"``, the higher
index's hold on its game after a long silence.

:class:`~.session.RollbackSession` owns one :class:`Absence` and hands it the facts each step
needs; the steps that change the game (which seat idles, the package sent and loaded, the
session replaced) stay with the session, which holds the game's state.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

from p2p_transport._guard import call_guarded
from p2p_transport.protocol.chunks import ChunkAssembler
from p2p_transport.protocol.kept_inputs import KeptInputs
from p2p_transport.rollback.resume import HEARD_AGAIN_MS, LONG_DROP_MS, MAX_KEPT_FOR_RESUME

__all__ = ["Absence"]


class Absence:
    """The absences of a game of two, as this side sees them.

    ``counts`` is the session's counters: a raising ``on_peer_absent`` counts as one of its
    ``callback_errors``."""

    def __init__(
        self, on_peer_absent: Callable[[int, str], None] | None, counts: Counter[str]
    ) -> None:
        self.on_peer_absent = on_peer_absent
        self._counts = counts
        #: Each absence: the player, when it started and ended (ms on the session's clock), the
        #: episode and frame, how it ended (``"resumed"``, ``"gone"``, or ``None`` while it
        #: lasts), and the package's size once one was sent.
        self.records: list[dict[str, Any]] = []
        #: This page came back: what it got (``None`` until then).
        self.resumed: dict[str, Any] | None = None
        #: When this page, come back (``resume=True``), asked for the game under way.
        self.asked_ms: float | None = None
        self.chunks = ChunkAssembler()
        #: Inputs that came before the game under way did: player -> its inputs by transport
        #: frame (the episode they belong to is the package's).
        self.before_resume: dict[int, KeptInputs] = {}
        #: The higher index of two, under "idle": since when it holds its game after a long
        #: silence, and whether it asked since it hears the other again.
        self.cut_off_since: float | None = None
        self.cut_off_asked = False

    def begin(self, player: int, now: float, episode: int, frame: int) -> None:
        """``player`` is absent from ``frame`` of ``episode`` on."""
        self.records.append(
            {
                "player": player,
                "from_ms": round(now, 1),
                "to_ms": None,
                "episode": episode,
                "frame": frame,
                "ended": None,
            }
        )
        self.tell(player, "absent")

    def end(self, player: int, now: float, how: str, package_bytes: int | None = None) -> None:
        """``player``'s absence ended (``how``: ``"resumed"``, with the package's size, or
        ``"gone"``)."""
        record = self.records[-1]
        if package_bytes is not None:
            record["bytes"] = package_bytes
        record.update(to_ms=round(now, 1), ended=how)
        self.tell(player, how)

    def tell(self, player: int, event: str) -> None:
        told = self.on_peer_absent
        if told is not None and not call_guarded(told, player, event, what="on_peer_absent"):
            self._counts["callback_errors"] += 1

    def keep_before_resume(self, player: int, transport_frame: int, action: int) -> bool:
        """Keep ``player``'s input until the game under way comes; ``False`` if refused."""
        kept = self.before_resume.get(player)
        if kept is None:
            kept = self.before_resume[player] = KeptInputs(MAX_KEPT_FOR_RESUME)
        return kept.keep(transport_frame, action)

    def tend_cut_off(self, peer_version: int | None, silence: float, now: float) -> bool:
        """The higher index under ``"idle"``, on every frame: silent for half a long drop, it
        holds its game (the lower index may be idling its seat, and what it plays now may be
        replaced). Returns whether to ask for the game under way now: heard again, once."""
        if peer_version == 1:
            self.cut_off_since = None  # a version-1 peer has no resume to answer with
        elif self.cut_off_since is None:
            if silence > LONG_DROP_MS / 2:
                self.cut_off_since = now
                self.cut_off_asked = False
        elif silence < HEARD_AGAIN_MS and not self.cut_off_asked:
            self.cut_off_asked = True
            return True
        return False

    def started_fresh(self, now: float) -> None:
        """This page came back and nobody had a game to give it: it starts the first
        episode."""
        assert self.asked_ms is not None  # resume=True: it asked
        self.resumed = {
            "resumed": False,
            "asked_ms": round(self.asked_ms, 1),
            "answered_ms": round(now, 1),
        }

    def loaded(self, episode: int, frame: int, now: float, state_bytes: int) -> None:
        """This page loaded the game under way: ``episode`` from ``frame`` on (a page cut off
        for a long drop plays on with it)."""
        self.cut_off_since = None
        self.resumed = {
            "resumed": True,
            "episode": episode,
            "frame": frame,
            "asked_ms": None if self.asked_ms is None else round(self.asked_ms, 1),
            "answered_ms": round(now, 1),
            "bytes": state_bytes,
        }

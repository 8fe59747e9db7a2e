"""A game the transport cannot see (a JavaScript page's) handed to a page that came back.

Two players. The rollback layer resumes its own games (:mod:`p2p_transport.rollback.resume`); a
page whose game loop is JavaScript keeps its game where Python never looks, so the page lends
the transport two functions: ``save()``, which returns the whole game as text (its state and
every input it holds, its own included), and ``load(text, detail)``, which puts a saved game in
place. The transport carries the text and keeps every input exactly once across the reload; what
the game does while the other page is away (stall, idle its seat) is the game's.

The page that stays: once it was paired, a new pairing (the server said its peer left, or paired
a new page in that seat at once) makes it wait for that peer; when the page in the peer's seat
asks (``RESUME_ASK``, the control kind the rollback layer uses for the same question), it calls
``save()`` and answers with a :class:`HandoffPackage` (``RESUME``, in chunks,
:mod:`.chunks`); a page that asks when nobody left, or a ``save()`` that fails, gets an empty
``RESUME``: nothing to resume. The page that came back then says whether it took the game
(``RESUMED``, 0x01 or 0x00): until then the peer's inputs for frames the saved game holds are
held; taken, they are dropped (counted in ``stale_inputs``) and the page hears
``peer_resumed``; not taken, the other plays a new game, they go to the game, and the page hears
``peer_resume_declined``.

The page that comes back (its tab was paired in this room before: the browser edge keeps a mark)
asks once paired, holds the other player's inputs until the answer, calls ``load()`` with the
text and ``{lastInput, peerLastInput}`` (the last frame of its own inputs the other holds, so it
steps on from the frame after it; the last frame the other had stepped when it saved), says it
took it, and then hands on only the held inputs after ``peerLastInput``: the earlier ones are in
the game it loaded. An empty answer, a package that cannot be read, a ``load()`` that raises, a
peer the session finds to be a deployed version-1 peer (which has no game), or no answer within
:data:`ANSWER_WAIT_MS` of the ask or of the last chunk leave it with no game resumed, the held
inputs handed on as they are.

The package, big-endian: the last frame of the asking player's inputs the sender holds, i64
(-1: none), the last frame the sender stepped, i64 (-1: none), then the game as UTF-8 text.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any, Final

from p2p_transport.protocol.chunks import ChunkAssembler, chunk_payloads
from p2p_transport.protocol.kept_inputs import KeptInputs
from p2p_transport.wire.codec import DecodeError
from p2p_transport.wire.control_payloads import RollbackKind

__all__ = [
    "ANSWER_WAIT_MS",
    "MAX_HELD_INPUTS",
    "GameHandoff",
    "HandoffHooks",
    "HandoffPackage",
    "HandoffState",
]

#: A page that asked and hears nothing this long plays on without a game handed over: the
#: other side answers at once if it can, so this is a peer that never will (a version-1 peer),
#: with room for the control path's retransmissions on a lossy link.
ANSWER_WAIT_MS: Final = 10_000.0
#: The other player's inputs a page holds while it waits for the answer: two minutes at 60 Hz,
#: more than any answer takes; past it they are dropped and counted.
MAX_HELD_INPUTS: Final = 7200

_HEAD: Final = struct.Struct(">qq")  # the asker's last input held, the sender's last stepped
#: A frame "none yet" in the package's head and in ``load()``'s detail.
NO_FRAME: Final = -1
#: ``RESUMED``'s payloads: the page that came back took the game handed over, or not.
_TOOK: Final = b"\x01"
_DID_NOT_TAKE: Final = b"\x00"

#: Sends one control message of the transport's own kinds.
Send = Callable[[int, bytes], object]


@dataclass(frozen=True)
class HandoffPackage:
    """What the page that stayed hands to the page that came back."""

    #: The last frame of the asking player's inputs the sender holds (:data:`NO_FRAME`: none).
    last_input: int
    #: The last frame the sender had stepped when it saved (:data:`NO_FRAME`: none).
    peer_last_input: int
    #: The game, as its ``save()`` gave it.
    game: str

    def encode(self) -> bytes:
        return _HEAD.pack(self.last_input, self.peer_last_input) + self.game.encode()

    @classmethod
    def decode(cls, data: bytes) -> HandoffPackage:
        """The package in ``data``; :class:`DecodeError` if it is not one."""
        if len(data) < _HEAD.size:
            raise DecodeError(f"a handoff package of {len(data)} bytes")
        last_input, peer_last_input = _HEAD.unpack_from(data)
        if min(last_input, peer_last_input) < NO_FRAME:
            raise DecodeError(f"a handoff package's frames {last_input}, {peer_last_input}")
        try:
            game = data[_HEAD.size :].decode()
        except UnicodeDecodeError as error:
            raise DecodeError(f"a handoff package's game is not UTF-8: {error}") from None
        return cls(last_input, peer_last_input, game)


class HandoffState(Enum):
    PLAYING = "playing"
    #: Paired again after a reload: asked, and waiting for the answer.
    ASKING = "asking"
    #: Handed the game over, and waiting for the page's word that it took it.
    HANDING = "handing"


@dataclass(frozen=True, slots=True)
class HandoffHooks:
    """The page's two functions (see the module's docstring)."""

    save: Callable[[], Any]
    load: Callable[[str, dict[str, int]], object]


class GameHandoff:
    """One two-player connection's side of the handoff; the edge feeds it what happens and
    sends what :attr:`outbox` holds (control messages, in order) as the window lets it.

    ``emit(name, detail)`` tells the page: ``resumed`` (this page took the game handed over:
    ``lastInput``, ``peerLastInput``, ``bytes``), ``resume_declined`` (this page asked, and
    took nothing: ``reason``), ``peer_resumed`` (the page that came back took this side's game:
    the same keys as ``resumed``), ``peer_resume_declined`` (it did not: it plays a new game).
    """

    def __init__(
        self,
        hooks: HandoffHooks,
        *,
        returning: bool,
        emit: Callable[[str, dict[str, Any]], object],
    ) -> None:
        self._hooks = hooks
        self._returning = returning
        self._emit = emit
        self.state = HandoffState.PLAYING
        self.outbox: list[tuple[int, bytes]] = []
        #: What this page took when it came back (``None``: nothing, or not asked yet).
        self.resumed: dict[str, int] | None = None
        self._paired_before = False
        self._waits_for_peer = False
        self._asked_at: float | None = None
        self._last_stepped = NO_FRAME
        self._last_delivered = NO_FRAME
        #: Inputs of frames at or before this are in the game handed over or taken: dropped
        #: (held while the page that came back has not said it took it).
        self._stale_through = NO_FRAME
        #: The other's inputs held while asking, or those a game handed over holds while the
        #: page that came back has not said whether it took it.
        self._held = KeptInputs(MAX_HELD_INPUTS)
        self._handed: dict[str, int] = {}
        self._chunks = ChunkAssembler()
        self.counts = {
            "handed_over": 0,
            "declined_by_peer": 0,
            "stale_inputs": 0,
            "dropped_held_inputs": 0,
            "malformed": 0,
            "callback_errors": 0,
        }

    # --- what happens -------------------------------------------------------------------------

    def paired(self, now: float) -> list[tuple[int, int]]:
        """The server paired this side (again: a new page in the peer's seat, whether or not a
        ``peer_left`` came first). Returns the inputs held for the game, if any."""
        held = self.peer_left() if self._paired_before else []
        self._chunks.clear()
        self.outbox.clear()  # what was for the peer that left
        if self._returning:
            self._returning = False
            self.state = HandoffState.ASKING
            self._asked_at = now
            self.outbox.append((RollbackKind.RESUME_ASK, b""))
        self._paired_before = True
        return held

    def peer_left(self) -> list[tuple[int, int]]:
        """The server said the peer left (a reload, a crash, a closed tab): wait for it. Returns
        the inputs held for the game, if this page was still asking."""
        held: list[tuple[int, int]] = []
        if self.state is HandoffState.ASKING:
            held = self._give_up("the other player left before it answered", tell=False)
        elif self.state is HandoffState.HANDING:
            # Gone before it said whether it took the game: what it sent of it is stale.
            self.counts["stale_inputs"] += len(self._held.take())
            self.state = HandoffState.PLAYING
        self._waits_for_peer = self._paired_before
        self._stale_through = NO_FRAME  # the next page in that seat starts where it says
        return held

    def stepped(self, frame: int) -> None:
        self._last_stepped = max(self._last_stepped, frame)

    def take_input(self, frame: int, action: int) -> list[tuple[int, int]]:
        """A peer input arrived: the inputs to hand the game now (none while asking, this one
        unless the game taken or handed over already holds it)."""
        if self.state is HandoffState.ASKING or (
            self.state is HandoffState.HANDING and frame <= self._stale_through
        ):
            if not self._held.keep(frame, action):
                self.counts["dropped_held_inputs"] += 1
            return []
        if frame <= self._stale_through:
            self.counts["stale_inputs"] += 1
            return []
        self._last_delivered = max(self._last_delivered, frame)
        return [(frame, action)]

    def on_control(self, kind: int, payload: bytes, now: float) -> list[tuple[int, int]]:
        """A control message of the handoff's kinds; returns the held inputs to hand the game
        once the answer, or the word on it, is in."""
        if kind == RollbackKind.RESUME_ASK:
            self._answer()
            return []
        if kind == RollbackKind.RESUMED:
            return self._word(payload)
        if kind != RollbackKind.RESUME:
            return []
        if self.state is not HandoffState.ASKING:
            self.counts["malformed"] += 1  # an answer nobody asked for
            return []
        if not payload:
            return self._give_up("the other player had no game to hand over", tell=False)
        try:
            whole = self._chunks.add(payload)
            if whole is None:
                self._asked_at = now  # the game is coming: the wait starts again
                return []
            package = HandoffPackage.decode(whole[2])
        except DecodeError as error:
            self.counts["malformed"] += 1
            return self._give_up(f"the game handed over could not be read: {error}")
        return self._load(package)

    def tick(self, now: float, peer_version: int | None = None) -> list[tuple[int, int]]:
        """Time passes: an ask unanswered for :data:`ANSWER_WAIT_MS` (since the last chunk of
        the answer), or made to a peer the session found to be a deployed version-1 peer
        (``peer_version`` 1), is given up."""
        if self._asked_at is None:
            return []
        if peer_version == 1:
            reason = "the other player's page is a version-1 peer, which has no game"
            return self._give_up(reason, tell=False)
        if now - self._asked_at >= ANSWER_WAIT_MS:
            return self._give_up(f"no answer in {ANSWER_WAIT_MS / 1000:.0f} s")
        return []

    def stats(self) -> dict[str, Any]:
        return {"state": self.state.value, "resumed": self.resumed is not None, **self.counts}

    # --- steps --------------------------------------------------------------------------------

    def _answer(self) -> None:
        if not self._waits_for_peer:
            self.outbox.append((RollbackKind.RESUME, b""))
            return
        self._waits_for_peer = False
        try:
            game = self._hooks.save()
            if not isinstance(game, str):
                return self._not_saved(f"save() must return a string, got {type(game).__name__}")
            package = HandoffPackage(self._last_delivered, self._last_stepped, game)
            data = package.encode()
            chunks = chunk_payloads(0, 0, data)
        except Exception as error:  # the page's save(), or a game too big to send
            return self._not_saved(str(error))
        self.outbox += [(RollbackKind.RESUME, chunk) for chunk in chunks]
        self._stale_through = self._last_delivered
        self.state = HandoffState.HANDING
        self._handed = {**_detail(package), "bytes": len(data)}

    def _not_saved(self, why: str) -> None:
        self.counts["callback_errors"] += 1
        self._emit("error", {"message": f"resume: the game could not be saved: {why}"})
        self.outbox.append((RollbackKind.RESUME, b""))

    def _word(self, payload: bytes) -> list[tuple[int, int]]:
        """The page that came back says whether it took the game this side handed over."""
        if payload not in (_TOOK, _DID_NOT_TAKE):
            self.counts["malformed"] += 1
            return []
        if self.state is not HandoffState.HANDING:
            return []  # a word on a game this side no longer waits on
        self.state = HandoffState.PLAYING
        held = self._held.take()
        if payload == _TOOK:
            self.counts["handed_over"] += 1
            self.counts["stale_inputs"] += len(held)
            self._emit("peer_resumed", self._handed)
            return []
        # It plays a new game: what it sends is all news.
        self.counts["declined_by_peer"] += 1
        self._stale_through = NO_FRAME
        self._emit("peer_resume_declined", {})
        return [taken for frame, action in held for taken in self.take_input(frame, action)]

    def _load(self, package: HandoffPackage) -> list[tuple[int, int]]:
        detail = _detail(package)
        try:
            self._hooks.load(package.game, detail)
        except Exception as error:
            self.counts["callback_errors"] += 1
            return self._give_up(f"the game handed over could not be loaded: {error}")
        self.resumed = detail
        # The game taken holds both players' inputs up to these frames.
        self._stale_through = package.peer_last_input
        self._last_delivered = max(self._last_delivered, package.peer_last_input)
        self._last_stepped = max(self._last_stepped, package.last_input)
        self.outbox.append((RollbackKind.RESUMED, _TOOK))
        self._emit("resumed", {**detail, "bytes": len(package.game.encode())})
        return self._play()

    def _give_up(self, reason: str, *, tell: bool = True) -> list[tuple[int, int]]:
        """Play on with no game taken; ``tell``: the other side may have handed one over and
        waits for the word (not when it answered nothing, left, or is a version-1 peer)."""
        if tell:
            self.outbox.append((RollbackKind.RESUMED, _DID_NOT_TAKE))
        self._emit("resume_declined", {"reason": reason})
        return self._play()

    def _play(self) -> list[tuple[int, int]]:
        """Stop asking; the held inputs the game does not hold yet, to hand it."""
        self.state = HandoffState.PLAYING
        self._asked_at = None
        held = self._held.take()
        return [taken for frame, action in held for taken in self.take_input(frame, action)]


def _detail(package: HandoffPackage) -> dict[str, int]:
    return {"lastInput": package.last_input, "peerLastInput": package.peer_last_input}

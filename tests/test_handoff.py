"""A JavaScript game handed to a page that came back (:mod:`p2p_transport.protocol.handoff`):
the package's exact bytes, and two sides' handoffs wired to each other under CPython."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from p2p_transport.protocol.handoff import (
    ANSWER_WAIT_MS,
    MAX_HELD_INPUTS,
    GameHandoff,
    HandoffHooks,
    HandoffPackage,
    HandoffState,
)
from p2p_transport.wire.codec import DecodeError
from p2p_transport.wire.control_payloads import RollbackKind


def test_a_package_is_its_two_frames_then_the_game_as_utf8() -> None:
    package = HandoffPackage(last_input=302, peer_last_input=-1, game="é{}")
    assert package.encode() == (b"\x00\x00\x00\x00\x00\x00\x01\x2e" + b"\xff" * 8 + "é{}".encode())
    assert HandoffPackage.decode(package.encode()) == package


@given(
    st.integers(-1, 2**40),
    st.integers(-1, 2**40),
    st.text(max_size=200),
)
def test_a_package_reads_back_as_written(last: int, peer_last: int, game: str) -> None:
    package = HandoffPackage(last, peer_last, game)
    assert HandoffPackage.decode(package.encode()) == package


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x00" * 15, "a handoff package of 15 bytes"),
        (b"\xff" * 7 + b"\xfe" + b"\x00" * 8, "frames -2, 0"),
        (b"\x00" * 16 + b"\xff", "not UTF-8"),
    ],
)
def test_a_package_that_is_not_one_is_refused(data: bytes, message: str) -> None:
    with pytest.raises(DecodeError, match=message):
        HandoffPackage.decode(data)


class Page:
    """One side's handoff with a game that is a dict: what save() gives, what load() took."""

    def __init__(
        self, *, returning: bool, game: dict[str, Any] | None = None, refuses: bool = False
    ) -> None:
        self.game = game or {}
        self.loaded: list[tuple[dict[str, Any], dict[str, int]]] = []
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.handoff = GameHandoff(
            HandoffHooks(self.save, _refuses if refuses else self.load),
            returning=returning,
            emit=lambda name, detail: self.events.append((name, detail)),
        )

    def save(self) -> Any:
        return json.dumps(self.game)

    def load(self, text: str, detail: dict[str, int]) -> None:
        self.loaded.append((json.loads(text), detail))

    def event_names(self) -> list[str]:
        return [name for name, _ in self.events]


def deliver(sender: Page, receiver: Page, now: float = 0.0) -> list[tuple[int, int]]:
    """Everything in the sender's outbox, in order, to the receiver; the inputs it hands on."""
    handed: list[tuple[int, int]] = []
    while sender.handoff.outbox:
        handed += receiver.handoff.on_control(*sender.handoff.outbox.pop(0), now)
    return handed


def played_then_left(game: dict[str, Any]) -> Page:
    """A page that played frames 0-305 with the other, held its inputs through 302, and heard
    that it left."""
    stayed = Page(returning=False, game=game)
    assert stayed.handoff.paired(0.0) == []
    for frame in range(306):
        stayed.handoff.stepped(frame)
    for frame in range(303):
        assert stayed.handoff.take_input(frame, 7) == [(frame, 7)]
    assert stayed.handoff.peer_left() == []
    return stayed


def back_and_asking(stayed: Page, now: float = 0.0, *, refuses: bool = False) -> Page:
    """The page that came back, paired again with ``stayed``, its ask delivered (``refuses``:
    its load() raises)."""
    back = Page(returning=True, refuses=refuses)
    assert stayed.handoff.paired(now) == []
    assert back.handoff.paired(now) == []
    assert back.handoff.state is HandoffState.ASKING
    assert back.handoff.outbox == [(RollbackKind.RESUME_ASK, b"")]
    assert deliver(back, stayed, now) == []
    return back


def test_the_page_that_came_back_takes_the_game_and_every_input_arrives_once() -> None:
    # A game of some kilobytes: several chunks, more than the control window takes at once.
    game = {"frame": 300, "inputs": list(range(20_000))}
    stayed = played_then_left(game)
    back = back_and_asking(stayed)
    assert len(stayed.handoff.outbox) > 32  # chunks of at most 1 KB
    assert stayed.handoff.state is HandoffState.HANDING
    assert stayed.events == []  # not before the page that came back says it took it
    # The other's inputs that arrive before the answer are held: some are in the game saved.
    assert back.handoff.take_input(305, 1) == []
    assert back.handoff.take_input(306, 2) == []
    handed = deliver(stayed, back)
    # Frame 305 was stepped before the save, so the game loaded holds it: only 306 goes on.
    assert handed == [(306, 2)]
    assert back.loaded == [(game, {"lastInput": 302, "peerLastInput": 305})]
    assert back.handoff.resumed == {"lastInput": 302, "peerLastInput": 305}
    assert back.handoff.state is HandoffState.PLAYING
    assert back.event_names() == ["resumed"]
    assert back.handoff.outbox == [(RollbackKind.RESUMED, b"\x01")]
    assert back.handoff.take_input(305, 1) == []  # a late copy
    assert back.handoff.take_input(307, 3) == [(307, 3)]
    # Until the word comes, the page that stayed holds the inputs the game it handed over
    # holds; then they are stale.
    assert stayed.handoff.take_input(302, 7) == []
    assert stayed.handoff.take_input(303, 7) == [(303, 7)]
    assert deliver(back, stayed) == []
    assert stayed.event_names() == ["peer_resumed"]
    size = len(HandoffPackage(302, 305, json.dumps(game)).encode())
    assert stayed.events[0][1] == {"lastInput": 302, "peerLastInput": 305, "bytes": size}
    assert stayed.handoff.take_input(301, 7) == []
    assert stayed.handoff.counts["stale_inputs"] == 2 and stayed.handoff.counts["handed_over"] == 1
    assert back.handoff.counts["stale_inputs"] == 2  # 305 held, and its late copy


def test_a_page_that_did_not_take_the_game_plays_a_new_one_and_its_inputs_all_arrive() -> None:
    stayed = played_then_left({"frame": 300})
    back = back_and_asking(stayed, refuses=True)
    # Its new game's first inputs come before its word: held, then handed on.
    assert stayed.handoff.take_input(0, 4) == []
    deliver(stayed, back)
    assert back.handoff.outbox == [(RollbackKind.RESUMED, b"\x00")]
    assert deliver(back, stayed) == [(0, 4)]
    assert stayed.event_names() == ["peer_resume_declined"]
    assert stayed.handoff.take_input(1, 4) == [(1, 4)]
    assert stayed.handoff.counts["declined_by_peer"] == 1
    assert stayed.handoff.counts["stale_inputs"] == 0


def _refuses(text: str, detail: dict[str, int]) -> None:
    raise ValueError("not my game")


def test_the_page_that_came_back_hands_the_game_on_if_the_other_reloads_later() -> None:
    stayed = played_then_left({"frame": 300})
    back = back_and_asking(stayed)
    back.game = {"frame": 400}
    deliver(stayed, back)
    deliver(back, stayed)
    # Now the other page reloads: the page that came back waits for it in turn, here paired
    # with its new page at once (no peer_left first).
    again = back_and_asking(back, 5.0)
    deliver(back, again)
    # Its last input held is the other's last one in the game it took, its last stepped its own.
    assert again.loaded == [({"frame": 400}, {"lastInput": 305, "peerLastInput": 302})]


def test_a_page_that_asks_when_nobody_left_hears_nothing_to_resume() -> None:
    fresh = Page(returning=False)
    fresh.handoff.paired(0.0)
    back = Page(returning=True)
    back.handoff.paired(0.0)
    assert back.handoff.take_input(0, 5) == []
    deliver(back, fresh)
    assert fresh.handoff.outbox == [(RollbackKind.RESUME, b"")]
    assert deliver(fresh, back) == [(0, 5)]
    assert back.loaded == [] and back.handoff.outbox == []  # nothing handed over: no word
    assert back.handoff.resumed is None
    assert back.events == [
        ("resume_declined", {"reason": "the other player had no game to hand over"})
    ]


def test_an_ask_nobody_answers_is_given_up_and_the_held_inputs_go_on() -> None:
    back = Page(returning=True)
    back.handoff.paired(100.0)
    back.handoff.take_input(3, 1)
    assert back.handoff.tick(100.0 + ANSWER_WAIT_MS - 1) == []
    assert back.handoff.state is HandoffState.ASKING
    assert back.handoff.tick(100.0 + ANSWER_WAIT_MS) == [(3, 1)]
    assert back.handoff.state is HandoffState.PLAYING
    assert back.event_names() == ["resume_declined"]
    # The other side may have handed a game over that never came whole: it hears so.
    assert back.handoff.outbox[-1] == (RollbackKind.RESUMED, b"\x00")
    # A late answer is nobody's: counted, not loaded.
    back.handoff.on_control(RollbackKind.RESUME, b"", 0.0)
    assert back.handoff.counts["malformed"] == 1 and back.loaded == []


def test_each_chunk_of_the_answer_starts_the_wait_again() -> None:
    stayed = played_then_left({"inputs": list(range(3000))})
    back = back_and_asking(stayed)
    chunks = stayed.handoff.outbox
    assert len(chunks) >= 3
    now = 0.0
    for kind, payload in chunks[:-1]:
        now += ANSWER_WAIT_MS - 1
        assert back.handoff.tick(now) == []
        assert back.handoff.on_control(kind, payload, now) == []
    back.handoff.on_control(*chunks[-1], now)
    assert back.event_names() == ["resumed"]


def test_an_ask_to_a_peer_found_to_be_version_1_is_given_up_at_once() -> None:
    back = Page(returning=True)
    back.handoff.paired(0.0)
    back.handoff.take_input(3, 1)
    assert back.handoff.tick(500.0, None) == []
    assert back.handoff.tick(2000.0, 1) == [(3, 1)]
    assert back.events == [
        (
            "resume_declined",
            {"reason": "the other player's page is a version-1 peer, which has no game"},
        )
    ]


def test_the_other_player_leaving_before_it_answers_ends_the_ask() -> None:
    back = Page(returning=True)
    back.handoff.paired(0.0)
    back.handoff.take_input(9, 4)
    assert back.handoff.peer_left() == [(9, 4)]
    assert back.events == [
        ("resume_declined", {"reason": "the other player left before it answered"})
    ]


def test_a_page_that_leaves_before_its_word_leaves_its_held_inputs_stale() -> None:
    stayed = played_then_left({"frame": 300})
    back_and_asking(stayed)
    assert stayed.handoff.take_input(100, 1) == []
    assert stayed.handoff.peer_left() == []
    assert stayed.handoff.state is HandoffState.PLAYING
    assert stayed.handoff.counts["stale_inputs"] == 1
    assert stayed.events == []


def _raises() -> Any:
    raise RuntimeError("no game here")


@pytest.mark.parametrize(
    ("save", "why"),
    [
        (_raises, "no game here"),
        (lambda: 42, "save() must return a string, got int"),
        (lambda: "x" * 5_000_000, "5000016 bytes take more than 4096 chunks"),
    ],
)
def test_a_save_that_fails_answers_nothing_and_says_why(save: Any, why: str) -> None:
    events: list[tuple[str, dict[str, Any]]] = []
    handoff = GameHandoff(
        HandoffHooks(save, lambda *_: None),
        returning=False,
        emit=lambda name, detail: events.append((name, detail)),
    )
    handoff.paired(0.0)
    handoff.peer_left()
    handoff.on_control(RollbackKind.RESUME_ASK, b"", 0.0)
    assert handoff.outbox == [(RollbackKind.RESUME, b"")]
    assert events == [("error", {"message": f"resume: the game could not be saved: {why}"})]
    assert handoff.counts["callback_errors"] == 1
    assert handoff.state is HandoffState.PLAYING


def test_a_load_that_fails_or_a_package_that_cannot_be_read_leaves_the_page_unresumed() -> None:
    stayed = played_then_left({"frame": 1})
    back = back_and_asking(stayed, refuses=True)
    back.handoff.take_input(400, 1)
    assert deliver(stayed, back) == [(400, 1)]
    assert back.events == [
        (
            "resume_declined",
            {"reason": "the game handed over could not be loaded: not my game"},
        )
    ]
    garbled = Page(returning=True)
    garbled.handoff.paired(0.0)
    garbled.handoff.on_control(RollbackKind.RESUME, b"\x00\x01", 0.0)
    assert garbled.handoff.counts["malformed"] == 1
    assert garbled.handoff.state is HandoffState.PLAYING
    assert garbled.event_names() == ["resume_declined"]


def test_a_word_that_is_not_one_is_counted_and_changes_nothing() -> None:
    stayed = played_then_left({"frame": 1})
    back_and_asking(stayed)
    stayed.handoff.on_control(RollbackKind.RESUMED, b"\x07", 0.0)
    assert stayed.handoff.counts["malformed"] == 1
    assert stayed.handoff.state is HandoffState.HANDING


def test_the_inputs_held_while_asking_are_bounded_and_what_is_refused_is_counted() -> None:
    back = Page(returning=True)
    back.handoff.paired(0.0)
    for frame in range(MAX_HELD_INPUTS + 5):
        back.handoff.take_input(frame, 0)
    assert back.handoff.counts["dropped_held_inputs"] == 5
    assert len(back.handoff.tick(ANSWER_WAIT_MS)) == MAX_HELD_INPUTS

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

    def __init__(self, *, returning: bool, game: dict[str, Any] | None = None) -> None:
        self.game = game or {}
        self.loaded: list[tuple[dict[str, Any], dict[str, int]]] = []
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.handoff = GameHandoff(
            HandoffHooks(self.save, self.load),
            returning=returning,
            emit=lambda name, detail: self.events.append((name, detail)),
        )

    def save(self) -> Any:
        return json.dumps(self.game)

    def load(self, text: str, detail: dict[str, int]) -> None:
        self.loaded.append((json.loads(text), detail))

    def event_names(self) -> list[str]:
        return [name for name, _ in self.events]


def deliver(sender: Page, receiver: Page) -> list[tuple[int, int]]:
    """Everything in the sender's outbox, in order, to the receiver; the inputs it hands on."""
    handed: list[tuple[int, int]] = []
    while sender.handoff.outbox:
        handed += receiver.handoff.on_control(*sender.handoff.outbox.pop(0))
    return handed


def played_then_left(game: dict[str, Any]) -> Page:
    """A page that played frames 0-305 with the other, held its inputs through 302, and heard
    that it left."""
    stayed = Page(returning=False, game=game)
    stayed.handoff.paired(0.0)
    for frame in range(306):
        stayed.handoff.stepped(frame)
    for frame in range(303):
        assert stayed.handoff.take_input(frame, 7) == [(frame, 7)]
    assert stayed.handoff.peer_left() == []
    return stayed


def test_the_page_that_came_back_takes_the_game_and_every_input_arrives_once() -> None:
    # A game of some kilobytes: several chunks, more than the control window takes at once.
    game = {"frame": 300, "inputs": list(range(20_000))}
    stayed = played_then_left(game)
    back = Page(returning=True)
    stayed.handoff.paired(1000.0)
    back.handoff.paired(1000.0)
    assert back.handoff.state is HandoffState.ASKING
    assert back.handoff.outbox == [(RollbackKind.RESUME_ASK, b"")]
    # The other's inputs that arrive before the answer are held: some are in the game saved.
    assert back.handoff.take_input(305, 1) == []
    assert deliver(back, stayed) == []
    assert len(stayed.handoff.outbox) > 32  # chunks of at most 1 KB
    assert stayed.event_names() == ["peer_resumed"]
    assert stayed.events[0][1]["lastInput"] == 302
    assert stayed.events[0][1]["peerLastInput"] == 305
    assert back.handoff.take_input(306, 2) == []
    handed = deliver(stayed, back)
    # Frame 305 was stepped before the save, so the game loaded holds it: only 306 goes on.
    assert handed == [(306, 2)]
    assert back.loaded == [(game, {"lastInput": 302, "peerLastInput": 305})]
    assert back.handoff.resumed == {"lastInput": 302, "peerLastInput": 305}
    assert back.handoff.state is HandoffState.PLAYING
    assert back.event_names() == ["resumed"]
    assert back.handoff.take_input(305, 1) == []  # a late copy
    assert back.handoff.take_input(307, 3) == [(307, 3)]
    # The page that stayed drops the inputs the game it handed over holds.
    assert stayed.handoff.take_input(302, 7) == []
    assert stayed.handoff.take_input(303, 7) == [(303, 7)]
    assert stayed.handoff.counts["stale_inputs"] == 1
    assert back.handoff.counts["stale_inputs"] == 2  # 305 held, and its late copy


def test_the_page_that_came_back_hands_the_game_on_if_the_other_reloads_later() -> None:
    stayed = played_then_left({"frame": 300})
    back = Page(returning=True, game={"frame": 400})
    stayed.handoff.paired(0.0)
    back.handoff.paired(0.0)
    deliver(back, stayed)
    deliver(stayed, back)
    # Now the other page reloads: the page that came back waits for it in turn.
    assert back.handoff.peer_left() == []
    again = Page(returning=True)
    back.handoff.paired(5.0)
    again.handoff.paired(5.0)
    deliver(again, back)
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
    assert back.loaded == []
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
    # A late answer is nobody's: counted, not loaded.
    back.handoff.on_control(RollbackKind.RESUME, b"")
    assert back.handoff.counts["malformed"] == 1 and back.loaded == []


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


def _raises() -> Any:
    raise RuntimeError("no game here")


@pytest.mark.parametrize(
    ("save", "why"),
    [(_raises, "no game here"), (lambda: 42, "save() must return a string, got int")],
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
    handoff.on_control(RollbackKind.RESUME_ASK, b"")
    assert handoff.outbox == [(RollbackKind.RESUME, b"")]
    assert events == [("error", {"message": f"resume: the game could not be saved: {why}"})]
    assert handoff.counts["callback_errors"] == 1


def test_a_load_that_fails_or_a_package_that_cannot_be_read_leaves_the_page_unresumed() -> None:
    stayed = played_then_left({"frame": 1})
    back = Page(returning=True)

    def broken(text: str, detail: dict[str, int]) -> None:
        raise ValueError("not my game")

    back.handoff = GameHandoff(
        HandoffHooks(back.save, broken),
        returning=True,
        emit=lambda name, detail: back.events.append((name, detail)),
    )
    stayed.handoff.paired(0.0)
    back.handoff.paired(0.0)
    back.handoff.take_input(400, 1)
    deliver(back, stayed)
    assert deliver(stayed, back) == [(400, 1)]
    assert back.events == [
        (
            "resume_declined",
            {"reason": "the game handed over could not be loaded: not my game"},
        )
    ]
    garbled = Page(returning=True)
    garbled.handoff.paired(0.0)
    garbled.handoff.on_control(RollbackKind.RESUME, b"\x00\x01")
    assert garbled.handoff.counts["malformed"] == 1
    assert garbled.handoff.state is HandoffState.PLAYING
    assert garbled.event_names() == ["resume_declined"]


def test_the_inputs_held_while_asking_are_bounded_and_what_is_refused_is_counted() -> None:
    back = Page(returning=True)
    back.handoff.paired(0.0)
    for frame in range(MAX_HELD_INPUTS + 5):
        back.handoff.take_input(frame, 0)
    assert back.handoff.counts["dropped_held_inputs"] == 5
    assert len(back.handoff.tick(ANSWER_WAIT_MS)) == MAX_HELD_INPUTS

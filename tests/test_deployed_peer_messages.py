"""The deployed peers' input requests (0x12), input responses (0x13) and focus state (0x14): exact
bytes, and what a session does with each."""

from __future__ import annotations

from typing import Any

import pytest

from p2p_transport import SessionConfig
from p2p_transport.session import Callbacks, P2PSession
from p2p_transport.wire.codec import (
    MAX_INPUTS_PER_RESPONSE,
    decode,
    encode_focus_state,
    encode_input_request,
    encode_input_response,
    encode_v1_episode_end,
    encode_v1_episode_ready,
    encode_v1_state_hash,
)
from p2p_transport.wire.messages import (
    EpisodeEnd,
    EpisodeReady,
    FocusState,
    InputRequest,
    InputResponse,
    MessageType,
    StateHash,
)
from tests.codec_helpers import check_decode_error, check_encode_error, h
from tests.fakes import FakeChannel, FakeClock, FakeScheduler


def test_the_layouts_are_the_deployed_peers() -> None:
    assert encode_input_request(10, 12) == h("12 | 00 00 00 0a | 00 00 00 0c")
    assert encode_input_response(1, [(10, 3), (11, 4)]) == h(
        "13 | 00 01 | 00 02 | 00 00 00 0a 03 | 00 00 00 0b 04"
    )
    assert encode_input_response(0, []) == h("13 | 00 00 | 00 00")
    assert encode_focus_state(False, 300) == h("14 | 00 | 00 00 01 2c")
    assert decode(h("12 | 00 00 00 0a | 00 00 00 0c")) == InputRequest(10, 12)
    assert decode(h("13 | 00 01 | 00 01 | 00 00 00 0a 03")) == InputResponse(1, ((10, 3),))
    assert decode(h("14 | 01 | 00 00 01 2c")) == FocusState(True, 300)
    assert encode_v1_episode_end(300, 2) == h("05 | 00 00 01 2c | 00 00 00 02")
    assert encode_v1_episode_ready(3, "0a1b2c3d") == h("06 | 00 00 00 03 | 30 61 31 62 32 63 33 64")
    assert encode_v1_state_hash(60, bytes(range(8))) == h(
        "07 | 00 00 00 3c | 00 01 02 03 04 05 06 07"
    )
    assert decode(h("05 | 00 00 01 2c | 00 00 00 02")) == EpisodeEnd(300, 2)
    assert decode(h("06 | 00 00 00 03 | 30 61 31 62 32 63 33 64")) == EpisodeReady(3, "0a1b2c3d")
    assert decode(h("07 | 00 00 00 3c | 00 01 02 03 04 05 06 07")) == StateHash(60, bytes(range(8)))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (h("12 | 00 00 00 0c | 00 00 00 0a"), "input request ends at 10, before its start 12"),
        (h("12 | 00 00 00 0c"), "input request must be 9 bytes, got 5"),
        (h("13 | 00 01"), "input response truncated: 3 bytes, header needs 5"),
        (h("13 | 00 01 | 01 01"), "input response count 257 over the limit of 256"),
        (h("13 | 00 01 | 00 01 | 00 00 00 0a 03 ff"), "1 trailing bytes after 1 inputs"),
        (h("13 | 00 01 | 00 02 | 00 00 00 0b 03 | 00 00 00 0a 03"), "not strictly increasing"),
        (h("14 | 02 | 00 00 00 00"), "focused byte must be 0 or 1, got 2"),
        (h("14 | 01 | 00 00"), "focus state must be 6 bytes, got 4"),
        (h("05 | 00 00 01 2c"), "episode end must be 9 bytes, got 5"),
        (h("06 | 00 00 00 03 | 30 61 31 62 32 63 33"), "episode ready must be 13 bytes, got 12"),
        (h("06 | 00 00 00 03 | 30 61 31 62 32 63 33 ff"), "state hash is not ASCII"),
        (h("07 | 00 00 00 3c | 00 01"), "state hash must be 13 bytes, got 7"),
    ],
)
def test_malformed_messages_are_decode_errors(data: bytes, message: str) -> None:
    check_decode_error(data, message)


def test_encoders_refuse_what_the_layouts_cannot_carry() -> None:
    check_encode_error(lambda: encode_input_request(5, 4), "end_frame 4 is before start_frame 5")
    too_many = [(f, 0) for f in range(MAX_INPUTS_PER_RESPONSE + 1)]
    check_encode_error(lambda: encode_input_response(0, too_many), "at most 256 inputs")
    check_encode_error(lambda: encode_focus_state(1, 0), "focused must be a bool, got int")  # type: ignore[arg-type]
    check_encode_error(lambda: encode_v1_episode_ready(0, "abc"), "8 ASCII characters")
    check_encode_error(lambda: encode_v1_episode_ready(0, "ü" * 8), "8 ASCII characters")
    check_encode_error(lambda: encode_v1_state_hash(0, b"short"), "digest must be 8 bytes, got 5")


class Peer:
    """A session whose peer is played by the test: what it sends is in ``channel.sent``."""

    def __init__(self, config: SessionConfig | None = None) -> None:
        clock = FakeClock()
        self.inputs: list[tuple[int, int]] = []
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.channel = FakeChannel()
        self.session = P2PSession(
            0,
            1,
            Callbacks(
                on_input=lambda frame, action: self.inputs.append((frame, action)),
                on_event=lambda name, detail: self.events.append((name, detail)),
            ),
            clock=clock,
            scheduler=FakeScheduler(clock),
            channel=self.channel,
            config=config,
        )

    def sent(self, kind: MessageType) -> list[bytes]:
        return [packet for packet in self.channel.sent if packet[0] == kind]


@pytest.mark.parametrize(
    ("config", "kept_from"),
    [(None, 70 - 64), (SessionConfig(acked_inputs=False), 70 - 10)],
    ids=["acked-history-64", "v1-window-10"],
)
def test_an_input_request_is_answered_from_the_history_kept(
    config: SessionConfig | None, kept_from: int
) -> None:
    peer = Peer(config)
    for frame in range(70):
        peer.session.step(frame, frame % 7)
    peer.session.edge.on_message(encode_input_request(0, 65))
    (response,) = peer.sent(MessageType.INPUT_RESPONSE)
    assert response == encode_input_response(0, [(f, f % 7) for f in range(kept_from, 66)])
    peer.session.edge.on_message(encode_input_request(100, 200))
    assert peer.sent(MessageType.INPUT_RESPONSE)[-1] == encode_input_response(0, [])
    assert peer.session.stats()["input_requests_answered"] == 2


def test_an_input_response_delivers_each_input_once() -> None:
    peer = Peer()
    response = encode_input_response(1, [(0, 5), (1, 6), (2, 7)])
    peer.session.edge.on_message(response)
    peer.session.edge.on_message(response)
    assert peer.inputs == [(0, 5), (1, 6), (2, 7)]
    stats = peer.session.stats()
    assert stats["duplicates"] == 3
    assert stats["p2p_inputs_delivered"] == 3
    peer.session.edge.on_message(encode_input_response(0, [(3, 1)]))  # not the peer's own inputs
    assert peer.inputs == [(0, 5), (1, 6), (2, 7)]
    assert peer.session.stats()["wrong_player"] == 1


def test_the_peers_focus_reaches_the_game_as_an_event() -> None:
    peer = Peer()
    peer.session.edge.on_message(encode_focus_state(False, 300))
    peer.session.edge.on_message(encode_focus_state(True, 420))
    assert peer.events == [
        ("peer_focus", {"focused": False, "frame": 300}),
        ("peer_focus", {"focused": True, "frame": 420}),
    ]
    assert peer.session.stats()["handler_errors"] == 0

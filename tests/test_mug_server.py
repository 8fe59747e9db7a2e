"""The mug dialect against the deployed interactive_gym / mug server itself (the pinned PyPI
release, ``tests/mug_experiment``), with python-socketio clients that do nothing but what
:class:`MugDialect` says: its lobby replies, its signals, its relayed inputs and its reports.
Both id styles of mug experiments: named agents and integers."""

from __future__ import annotations

import queue
import time
import urllib.request
from collections.abc import Iterator
from typing import Any, Final, TypeVar

import pytest
import socketio

from p2p_transport.wire.codec import decode, encode_input_packet
from p2p_transport.wire.dialects import (
    MUG_ERROR_EVENTS,
    Incoming,
    Joined,
    LinkReport,
    MugDialect,
    Notice,
    Paired,
    PeerLeft,
    RelayPacket,
    ServerError,
    Signal,
)
from tests.mug_experiment.server import GAME_START_ERROR, ID_STYLES, MugServer

#: A wait for the server's answer; it comes within milliseconds unless the machine is loaded.
WAIT_S: Final = 15.0
#: After the last expected input: anything more (an echo) would have come within this.
QUIET_S: Final = 0.5
INPUTS: Final = 30
TURN: Final = ("study-user", "study-secret")

T = TypeVar("T")


class MugClient:
    """A participant whose every move is the dialect's: the page's GET, the lobby's replies, and
    what the test asks it to send; what the dialect makes of each server event is queued."""

    def __init__(self, url: str, subject_id: str | None = None) -> None:
        self.url = url
        self.dialect = MugDialect(subject_id)
        #: Every server event in order, as it came.
        self.raw: list[tuple[str, Any]] = []
        self.incoming: queue.Queue[Incoming] = queue.Queue()
        self.sio = socketio.Client(reconnection=False)
        self.sio.on("*", self._on_any)

    def enter(self) -> MugClient:
        path = self.dialect.entry_path
        assert path is not None
        with urllib.request.urlopen(self.url + path, timeout=WAIT_S) as page:
            page.read()
        self.sio.connect(self.url, transports=["websocket"], wait_timeout=WAIT_S)
        self.send(self.dialect.join())
        return self

    def send(self, outgoing: list[tuple[str, Any]] | tuple[tuple[str, Any], ...]) -> None:
        for event, payload in outgoing:
            self.sio.emit(event, payload)

    def _on_any(self, event: str, data: Any = None) -> None:
        self.raw.append((event, data))
        incoming = self.dialect.incoming(event, data)
        if incoming is None:
            return
        if isinstance(incoming, Joined | Notice):
            self.send(incoming.replies)
        self.incoming.put(incoming)

    def wait_for(self, kind: type[T], event: str | None = None) -> T:
        deadline = time.monotonic() + WAIT_S
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no {kind.__name__} {event or ''}; got {self.raw}")
            try:
                item = self.incoming.get(timeout=remaining)
            except queue.Empty:
                continue
            if isinstance(item, kind) and (event is None or getattr(item, "event", None) == event):
                return item

    def events(self) -> list[str]:
        return [event for event, _ in self.raw]

    def close(self) -> None:
        self.sio.disconnect()


@pytest.fixture(scope="module", params=sorted(ID_STYLES))
def mug(request: pytest.FixtureRequest) -> Iterator[MugServer]:
    # TURN credentials as a deployment has them (no TURN server is needed: nothing here does
    # ICE); without any, the server warns at every game.
    with MugServer(request.param, TURN) as server:
        yield server


@pytest.fixture
def pair(mug: MugServer) -> Iterator[tuple[MugClient, MugClient]]:
    """Two participants through the lobby into one game, ``(player 0, player 1)``."""
    first, second = MugClient(mug.url).enter(), MugClient(mug.url)
    first.wait_for(Notice, "waiting_room")
    second.enter()
    pairs = {client.wait_for(Paired).player_index: client for client in (first, second)}
    yield pairs[0], pairs[1]
    for client in (first, second):
        client.close()


def test_the_lobby_pairs_two_participants_with_the_ids_the_server_gave(
    mug: MugServer, pair: tuple[MugClient, MugClient]
) -> None:
    zero, one = pair
    assert (zero.dialect.peer_index, one.dialect.peer_index) == (1, 0)
    # Each id kept with the type the server gave it; sorted as text, the lower one is player 0.
    assert (zero.dialect.player_id, one.dialect.player_id) == mug.player_ids
    assert (zero.dialect.peer_id, one.dialect.peer_id) == (mug.player_ids[1], mug.player_ids[0])
    assert zero.dialect.game_id == one.dialect.game_id is not None
    ready = dict(zero.raw)["pyodide_game_ready"]
    user, credential = TURN
    sent_turn = {"username": user, "credential": credential, "force_relay": False}
    assert ready["turn_config"] == sent_turn
    for client in pair:
        events = client.events()
        order = ["server_session_id", "activate_scene", "pyodide_player_assigned"]
        order += ["pyodide_game_ready"]
        assert [events.index(e) for e in order] == sorted(events.index(e) for e in order), events
        client.wait_for(Notice, "match_found_countdown")
    for client in pair:
        client.wait_for(Notice, "start_game")
    # The lobby, done as the dialect does it, makes the server log nothing wrong but the error
    # it logs for every game it starts.
    assert GAME_START_ERROR in mug.log()
    assert mug.trouble() == []


def test_signals_cross_addressed_by_player_id(pair: tuple[MugClient, MugClient]) -> None:
    zero, one = pair
    offer = {"type": "offer", "sdp": "v=0 offer", "generation": 3}
    zero.send([zero.dialect.signal(offer)])
    assert one.wait_for(Signal).message == offer
    candidate = {"type": "ice-candidate", "candidate": {"candidate": "c", "sdpMid": "0"}}
    one.send([one.dialect.signal(candidate)])
    assert zero.wait_for(Signal).message == candidate


def test_relayed_inputs_reach_the_other_side_once_and_never_their_sender(
    pair: tuple[MugClient, MugClient],
) -> None:
    for frame in range(INPUTS):
        for client in pair:
            index = client.dialect.peer_index
            assert index is not None
            packet = encode_input_packet(1 - index, frame, [(frame, (frame + index) % 7)])
            outgoing = client.dialect.relay(packet)
            assert outgoing is not None
            client.send([outgoing])
    for client in pair:
        peer = client.dialect.peer_index
        got = []
        for _ in range(INPUTS):
            message = decode(client.wait_for(RelayPacket).packet)
            got.extend(message.inputs)  # type: ignore[union-attr]
        assert got == [(frame, (frame + 1 - peer) % 7) for frame in range(INPUTS)]  # type: ignore[operator]
    time.sleep(QUIET_S)
    for client in pair:
        actions = [d for e, d in client.raw if e == "pyodide_other_player_action"]
        assert len(actions) == INPUTS
        assert {str(a["player_id"]) for a in actions} == {str(client.dialect.peer_id)}


def test_both_validated_gives_both_the_validation_complete(
    pair: tuple[MugClient, MugClient],
) -> None:
    for client in pair:
        client.send(client.dialect.report(LinkReport.VALIDATING, None, 0.0))
    zero, one = pair
    zero.send(zero.dialect.report(LinkReport.VALIDATED, None, 0.0))
    one.wait_for(Notice, "p2p_validation_status")
    assert not any(e == "p2p_validation_complete" for e, _ in zero.raw + one.raw)
    one.send(one.dialect.report(LinkReport.VALIDATED, None, 0.0))
    for client in pair:
        client.wait_for(Notice, "p2p_validation_complete")


def test_a_lost_and_recovered_channel_pauses_and_resumes_the_room(
    pair: tuple[MugClient, MugClient],
) -> None:
    zero, one = pair
    zero.send(zero.dialect.report(LinkReport.LOST, 200, 0.0))
    for client in pair:
        assert client.wait_for(Notice, "p2p_pause").detail["pause_frame"] == 200
    zero.send(zero.dialect.report(LinkReport.RECOVERED, None, 1500.0))
    one.send(one.dialect.report(LinkReport.RECOVERED, None, 0.0))  # never lost: nothing sent
    zero.wait_for(Notice, "p2p_resume")


def test_a_partners_disconnect_is_peer_left(pair: tuple[MugClient, MugClient]) -> None:
    zero, one = pair
    zero.close()
    left = one.wait_for(PeerLeft)
    assert left.detail["reason"] == "partner_disconnected"
    assert str(left.detail["disconnected_player_id"]) == str(zero.dialect.player_id)


def test_a_failed_validation_is_p2p_validation_repool_for_both(
    pair: tuple[MugClient, MugClient],
) -> None:
    zero, _ = pair
    zero.send([("p2p_validation_failed", {"game_id": zero.dialect.game_id, "reason": "test"})])
    for client in pair:
        assert client.wait_for(ServerError).event == "p2p_validation_repool"


def test_the_servers_refusals_are_named_events(mug: MugServer) -> None:
    # join_game from a socket that never registered: the server does not know the participant.
    stranger = MugClient(mug.url)
    stranger.sio.connect(mug.url, transports=["websocket"], wait_timeout=WAIT_S)
    stranger.send([("join_game", {"session_id": None})])
    assert stranger.wait_for(ServerError).event == "join_game_error"
    stranger.close()
    # The same participant on a second live socket.
    first = MugClient(mug.url).enter()
    first.wait_for(Notice, "waiting_room")
    again = MugClient(mug.url, first.dialect.subject_id).enter()
    assert again.wait_for(ServerError).event == "duplicate_session"
    # join_game again while in the waiting room.
    first.send([("join_game", {"session_id": first.dialect.session_id})])
    assert first.wait_for(ServerError).event == "waiting_room_error"
    for client in (again, first):
        client.close()


@pytest.mark.parametrize("event", MUG_ERROR_EVENTS)
def test_every_refusal_event_of_the_server_is_listened_to(event: str) -> None:
    # create_game_failed comes only when the server's own game creation breaks, which a working
    # server does not show; each is translated the same way.
    dialect = MugDialect("s")
    assert event in dialect.events
    refused = dialect.incoming(event, {"message": "no"})
    assert refused == ServerError({"message": "no"}, event)

"""The mug dialect's flow through :class:`Pairing` under CPython: the lobby's replies go out as
the server's events come in, the waiting room, countdown and start reach the game, the server's
refusals are named events, and the DataChannel's validation, loss and recovery are reported to
the server once each, as the deployed peers report them."""

from __future__ import annotations

from typing import Any

import pytest

from p2p_transport.browser.options import TransportOptions
from p2p_transport.browser.pairing import VALIDATION_POLL_MS, SendToServer
from p2p_transport.errors import UsageError
from p2p_transport.wire.dialects import (
    MUG_ERROR_EVENTS,
    MUG_IDS_UNKNOWN_EVENT,
    MUG_NOTICE_EVENTS,
    MugDialect,
)
from p2p_transport.wire.signaling import SIGNAL_EVENT
from tests.test_pairing import Tab

GAME = "3f1c0a52-game"
SUBJECT = "subject-7"


def mug_tab(
    player_id: Any = "agent_right", attach: bool = False, subject: str | None = SUBJECT, **kw: Any
) -> Tab:
    return Tab(TransportOptions(dialect=MugDialect(subject, attach=attach, **kw)))


def sent(tab: Tab) -> list[tuple[str, Any]]:
    return [(a.event, a.payload) for a in tab.take() if isinstance(a, SendToServer)]


def assign(tab: Tab, player_id: Any, players: list[Any], **ready: Any) -> None:
    tab.pairing.server_event(
        "pyodide_player_assigned",
        {"player_id": player_id, "game_id": GAME, "game_seed": 1, "num_players": 2},
    )
    tab.pairing.server_event("pyodide_game_ready", {"game_id": GAME, "players": players, **ready})


def test_the_lobby_replies_to_each_step_on_the_transports_own_socket() -> None:
    tab = mug_tab()
    dialect = tab.pairing.dialect
    assert isinstance(dialect, MugDialect) and dialect.entry_path == f"/{SUBJECT}"
    tab.pairing.socket_connected()
    assert sent(tab) == [("register_subject", {"subject_id": SUBJECT})]
    tab.pairing.server_event("server_session_id", {"session_id": "s1"})
    tab.pairing.server_event("experiment_config", {})  # not listened to: ignored
    tab.pairing.server_event("activate_scene", {"scene_type": "StartScene"})
    assert sent(tab) == [("advance_scene", {"session_id": "s1"})]
    tab.pairing.server_event("activate_scene", {"scene_type": "GymScene"})
    assert sent(tab) == [("join_game", {"session_id": "s1"})]
    tab.pairing.server_event("activate_scene", {"scene_type": "EndScene"})  # after the game
    assert sent(tab) == []
    for event in ("waiting_room", "match_found_countdown", "start_game"):
        tab.pairing.server_event(event, {"x": 1})
    assert tab.names() == ["lobby", "joined", "waiting_room", "match_found_countdown", "start_game"]


def test_a_generated_subject_id_is_a_fresh_uuid_each_time() -> None:
    first, second = MugDialect(), MugDialect()
    assert first.subject_id != second.subject_id
    assert len(str(first.subject_id)) == 36


def test_attached_it_sends_no_lobby_and_pairs_on_the_pages_events() -> None:
    tab = mug_tab(attach=True, subject=None)
    assert tab.pairing.dialect.entry_path is None  # type: ignore[attr-defined]
    tab.pairing.socket_connected()
    tab.pairing.server_event("activate_scene", {"scene_type": "GymScene"})  # the page's
    assert sent(tab) == []
    assign(tab, 1, [0, 1])
    assert tab.pairing.player_index == 1
    assert "paired" in tab.names()


@pytest.mark.parametrize(("subject", "paired"), [(SUBJECT, True), (None, False)])
def test_attached_after_the_assignment_it_finds_its_id_by_subject_or_says_why(
    subject: str | None, paired: bool
) -> None:
    tab = mug_tab(attach=True, subject=subject)
    tab.pairing.server_event(
        "pyodide_game_ready",
        {"game_id": GAME, "players": [0, 1], "player_subjects": {"0": "other", "1": SUBJECT}},
    )
    if paired:
        assert tab.pairing.player_index == 1
        dialect = tab.pairing.dialect
        assert isinstance(dialect, MugDialect) and dialect.player_id == 1  # the server's type
    else:
        assert tab.names()[0] == MUG_IDS_UNKNOWN_EVENT
        assert "attach before the page emits join_game" in str(tab.events[0][1])
        assert tab.pairing.player_index is None


@pytest.mark.parametrize(
    ("me", "players", "index"), [(1, [0, 1], 1), ("agent_left", ["agent_right", "agent_left"], 0)]
)
def test_ids_go_back_with_the_type_the_server_gave(me: Any, players: list[Any], index: int) -> None:
    tab = mug_tab()
    assign(tab, me, players)
    assert tab.pairing.player_index == index
    actions = tab.take()
    assert actions  # the offerer opened a connection
    tab.pairing.description_ready(tab.pairing.connection, "offer", "v=0")  # type: ignore[arg-type]
    signals = [p for e, p in sent(tab) if e == SIGNAL_EVENT]
    peer = players[1 - index] if players[0] == me else players[0]
    assert signals and signals[0]["target_player_id"] == peer
    assert type(signals[0]["target_player_id"]) is type(me)


def test_turn_config_credentials_go_with_the_pages_turn_urls() -> None:
    tab = mug_tab(turn_urls=["turn:turn.example:3478", "turns:turn.example:443"])
    turn = {"username": "u", "credential": "c", "force_relay": True}
    assign(tab, "agent_left", ["agent_left", "agent_right"], turn_config=turn)
    (server,) = tab.pairing.ice_servers
    assert server.to_dict() == {
        "urls": ["turn:turn.example:3478", "turns:turn.example:443"],
        "username": "u",
        "credential": "c",
    }
    assert tab.pairing.force_relay
    config = TransportOptions().rtc_configuration(tab.pairing.ice_servers, tab.pairing.force_relay)
    assert config["iceTransportPolicy"] == "relay"
    # Without URLs from the page the credentials have nowhere to go; without credentials, none.
    bare = mug_tab()
    assign(bare, "agent_left", ["agent_left", "agent_right"], turn_config=turn)
    assert bare.pairing.ice_servers == ()


def test_validation_loss_and_recovery_are_reported_once_each() -> None:
    tab = mug_tab()
    assign(tab, "agent_left", ["agent_left", "agent_right"])
    tab.take()
    session = tab.pairing.session
    assert session is not None
    tab.open_channel()
    assert sent(tab) == [("p2p_validation_status", {"game_id": GAME, "status": "validating"})]
    validation = session.parts.validation
    # The peer's ping, this side's ping and the pong: validated.
    validation.on_peer_ping()
    validation.ping_sent(5.0)
    validation.on_pong(5.0)
    tab.scheduler.advance(VALIDATION_POLL_MS)
    ids = {"game_id": GAME, "player_id": "agent_left"}
    assert sent(tab) == [("p2p_validation_success", ids)]
    assert "validated" in tab.names()
    session.step(0, 3)
    session.step(1, 3)
    connection = tab.pairing.connection
    assert connection is not None
    tab.pairing.channel_closed(connection)
    lost = [item for item in sent(tab) if item[0] == "p2p_connection_lost"]
    tab.pairing.connection_failed(connection)  # the same loss: said once
    assert [item for item in sent(tab) if item[0] == "p2p_connection_lost"] == []
    assert lost == [
        (
            "p2p_connection_lost",
            {**ids, "frame_number": 1 + session.parts.inputs.v1.window[-1][0] - 1},
        )
    ]
    tab.scheduler.advance(1500)
    tab.take()
    tab.open_channel()
    reports = sent(tab)
    assert reports[0][0] == "p2p_reconnection_success"
    assert reports[0][1]["duration_ms"] >= 1500
    # Validated once per game: the server completes it once.
    assert [e for e, _ in reports] == ["p2p_reconnection_success"]


def test_the_game_ending_is_peer_left_and_nothing_is_reported_after() -> None:
    tab = mug_tab()
    assign(tab, "agent_left", ["agent_left", "agent_right"])
    tab.open_channel()
    tab.take()
    tab.pairing.server_event(
        "p2p_game_ended",
        {
            "game_id": GAME,
            "reason": "partner_disconnected",
            "disconnected_player_id": "agent_right",
        },
    )
    assert "peer_left" in tab.names()
    assert [e for e, _ in sent(tab)] == []


@pytest.mark.parametrize("event", MUG_ERROR_EVENTS)
def test_each_refusal_is_its_own_event(event: str) -> None:
    tab = mug_tab()
    tab.pairing.server_event(event, {"message": "Session not found."})
    name, detail = tab.events[0]
    assert name == event
    assert "Session not found." in str(detail)  # the server's own words, for the page


@pytest.mark.parametrize("event", MUG_NOTICE_EVENTS)
def test_each_notice_reaches_the_game_under_its_name(event: str) -> None:
    tab = mug_tab()
    tab.pairing.server_event(event, {"game_id": GAME})
    assert tab.events == [(event, {"game_id": GAME})]


@pytest.mark.parametrize(
    ("subject", "turn_urls"), [("", ()), (7, ()), (None, "turn:x"), (None, [""])]
)
def test_wrong_dialect_options_are_refused_by_name(subject: Any, turn_urls: Any) -> None:
    with pytest.raises(UsageError, match=r"subject_id|turn_urls"):
        MugDialect(subject, turn_urls=turn_urls)

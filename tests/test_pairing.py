"""One tab's decisions about its peer under CPython (:class:`Pairing`): a ``paired`` that is a new
peer or the same one coming back, a peer that leaves, a server that goes away and comes back, the
session's silences and a lost channel turned into reconnections, and nothing left running at the
end.

A :class:`Tab` plays the browser edge: it feeds the pairing the server's events (in the reference
server's dialect) and its peer connection's, and keeps every action the pairing asks for.
"""

from __future__ import annotations

from typing import Any

import pytest

from p2p_transport.browser.options import IceServer, TransportOptions
from p2p_transport.browser.pairing import (
    FAULT_PUMP_INTERVAL_MS,
    VALIDATION_POLL_MS,
    CloseRelaySocket,
    EdgeAction,
    OpenRelaySocket,
    Pairing,
    SendToServer,
)
from p2p_transport.protocol.faults import FaultConfig, FaultyChannel
from p2p_transport.protocol.health import HealthThresholds
from p2p_transport.protocol.lifecycle import WAITING_FIRST_MS
from p2p_transport.protocol.peer_connection import (
    AcceptOffer,
    CloseConnection,
    OpenConnection,
)
from p2p_transport.protocol.reconnect import ReconnectConfig
from p2p_transport.protocol.validation import (
    VALIDATION_DELAY_MS,
    VALIDATION_RESEND_MS,
    VALIDATION_TIMEOUT_MS,
)
from p2p_transport.session import Callbacks, SessionState
from p2p_transport.wire.codec import decode, encode_validation_ping, encode_validation_pong
from p2p_transport.wire.dialects import ReferenceDialect, TelemetrySaved
from p2p_transport.wire.messages import ValidationPing
from p2p_transport.wire.signaling import (
    ERROR_EVENT,
    JOIN_EVENT,
    JOINED_EVENT,
    PAIRED_EVENT,
    PEER_LEFT_EVENT,
    RELAY_EVENT,
    SIGNAL_EVENT,
    TELEMETRY_SAVED_EVENT,
)
from tests.fakes import FakeChannel, FakeClock, FakePingChannel, FakeScheduler, FakeSocket

ROOM = "pairing-test"
PEER = "peer-client-a"
OTHER_PEER = "peer-client-b"


class Tab:
    """A pairing with a fake clock, scheduler and relay; what it asks the edge to do is kept in
    ``actions``, what the game hears in ``events``."""

    def __init__(self, options: TransportOptions | None = None) -> None:
        self.clock = FakeClock()
        self.scheduler = FakeScheduler(self.clock)
        self.actions: list[EdgeAction] = []
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.inputs: list[tuple[int, int]] = []
        self.relays: list[FakeSocket] = []
        self.pairing = Pairing(
            options or TransportOptions(room=ROOM),
            Callbacks(
                on_input=lambda frame, action: self.inputs.append((frame, action)),
                on_event=lambda name, detail: self.events.append((name, detail)),
            ),
            self.actions.append,
            clock=self.clock,
            scheduler=self.scheduler,
            new_relay=self._new_relay,
        )

    def _new_relay(self) -> FakeSocket:
        self.relays.append(FakeSocket())
        return self.relays[-1]

    def take(self) -> list[EdgeAction]:
        actions = list(self.actions)
        self.actions.clear()
        return actions

    def names(self) -> list[str]:
        return [name for name, _ in self.events]

    def paired(self, player: int = 0, peer: int = 1, client: object = PEER, **detail: Any) -> None:
        payload = {"player_index": player, "peer_index": peer, "peer_client": client, **detail}
        self.pairing.server_event(PAIRED_EVENT, payload)

    def open_channel(self) -> FakeChannel:
        """The current connection's game channel, attached and opened as the browser does."""
        connection = self.pairing.connection
        assert connection is not None
        channel = FakeChannel(readyState="connecting")
        self.pairing.channel_attached(channel)
        channel.readyState = "open"
        self.pairing.channel_opened(connection)
        return channel


def opened(actions: list[EdgeAction]) -> list[OpenConnection]:
    return [action for action in actions if isinstance(action, OpenConnection)]


def closes(actions: list[EdgeAction]) -> int:
    return sum(isinstance(action, CloseConnection) for action in actions)


# --- pairing and resuming ------------------------------------------------------------------------


@pytest.mark.parametrize(("player", "peer", "offerer"), [(0, 1, True), (1, 0, False)])
def test_a_first_pairing_makes_a_session_and_a_connection(
    player: int, peer: int, offerer: bool
) -> None:
    tab = Tab()
    tab.paired(player, peer, relay_ticket="ticket-1")
    session = tab.pairing.session
    assert session is not None
    assert (session.player_index, session.peer_index) == (player, peer)
    assert tab.relays and tab.names() == ["paired"]
    assert tab.events[0][1]["player_index"] == player
    assert tab.take() == [
        CloseRelaySocket(),
        OpenRelaySocket("ticket-1"),
        OpenConnection(0, offerer),
    ]


def test_the_same_peer_paired_again_resumes_the_session() -> None:
    tab = Tab()
    tab.paired(relay_ticket="ticket-1")
    session = tab.pairing.session
    channel = tab.open_channel()
    tab.take()
    tab.paired(relay_ticket="ticket-2")
    assert tab.pairing.session is session
    assert session is not None and session.state is SessionState.OPEN
    assert session.edge.channel is channel
    # Only the relay socket is new; the peer connection goes on untouched.
    assert tab.take() == [CloseRelaySocket(), OpenRelaySocket("ticket-2")]
    assert tab.names() == ["paired", "open", "connected", "rejoined"]
    assert len(tab.relays) == 1


def test_the_same_peer_paired_while_the_channel_is_closed_starts_over() -> None:
    """A closed channel means a reconnection is under way: pairing again gives both sides a
    fresh session and connection at once rather than waiting out the reconnection's backoff."""
    tab = Tab()
    tab.paired()
    session = tab.pairing.session
    tab.open_channel()
    tab.pairing.channel_closed(0)
    tab.take()
    tab.paired()
    assert tab.pairing.session is not session
    assert session is not None and session.state is SessionState.SHUT_DOWN
    assert opened(tab.take()) == [OpenConnection(1, offerer=True)]
    assert "rejoined" not in tab.names()


@pytest.mark.parametrize(
    ("player", "peer", "client"),
    [(0, 1, OTHER_PEER), (1, 0, PEER), (0, 1, None)],
    ids=["another-client", "other-indices", "no-client-id"],
)
def test_another_peer_paired_gets_a_new_session_and_connection(
    player: int, peer: int, client: object
) -> None:
    tab = Tab()
    tab.paired(client=PEER if client is not None else None)
    old = tab.pairing.session
    tab.open_channel()
    tab.take()
    tab.paired(player, peer, client=client)
    new = tab.pairing.session
    assert new is not None and new is not old
    assert old is not None and old.state is SessionState.SHUT_DOWN
    actions = tab.take()
    assert closes(actions) == 1
    assert opened(actions) == [OpenConnection(1, offerer=player < peer)]
    assert "rejoined" not in tab.names() and tab.names().count("paired") == 2
    # The new session has a relay of its own and no channel of the old connection.
    assert len(tab.relays) == 2 and new.edge.channel is None


def test_rejoin_after_the_servers_process_died() -> None:
    """The server restarts: the socket drops and comes back, joins asking for its old slot, and
    the server pairs the same two again. The DataChannel carried the game meanwhile."""
    tab = Tab()
    dialect = tab.pairing.dialect
    assert isinstance(dialect, ReferenceDialect)
    tab.pairing.socket_connected()
    join = tab.take()
    assert join == [SendToServer(JOIN_EVENT, {"room": ROOM, "client": dialect.client})]
    tab.pairing.server_event(JOINED_EVENT, {"player_index": 0, "room": ROOM})
    tab.paired(relay_ticket="ticket-1")
    session = tab.pairing.session
    channel = tab.open_channel()
    assert session is not None and session.step(0, 3)
    tab.take()

    tab.pairing.server_lost("transport close")
    assert tab.events[-1] == ("server_unreachable", {"reason": "connection lost: transport close"})
    assert session.step(1, 4)  # the game goes on over the DataChannel
    tab.pairing.socket_connected()
    (rejoin,) = tab.take()
    assert isinstance(rejoin, SendToServer) and rejoin.event == JOIN_EVENT
    assert rejoin.payload == {"room": ROOM, "client": dialect.client, "player": 0}
    tab.pairing.server_event(JOINED_EVENT, {"player_index": 0, "room": ROOM})
    tab.paired(relay_ticket="ticket-2")

    assert tab.pairing.session is session and session.state is SessionState.OPEN
    assert tab.take() == [CloseRelaySocket(), OpenRelaySocket("ticket-2")]
    assert tab.names()[-1] == "rejoined"
    sent = len(channel.sent)
    assert session.step(2, 5) and len(channel.sent) > sent
    # Rejoined: nothing to wait for, so no "waiting_for_peer" and no ICE timeout either.
    tab.scheduler.advance(4 * WAITING_FIRST_MS)
    assert "waiting_for_peer" not in tab.names() and "ice_failed" not in tab.names()


# --- the peer leaving -----------------------------------------------------------------------------


def test_peer_left_ends_the_session_and_a_returning_peer_starts_a_new_one() -> None:
    tab = Tab()
    tab.pairing.server_event(JOINED_EVENT, {"player_index": 0, "room": ROOM})
    tab.paired(relay_ticket="ticket-1")
    session = tab.pairing.session
    channel = tab.open_channel()
    tab.take()

    tab.pairing.server_event(PEER_LEFT_EVENT, {"player_index": 1})
    actions = tab.take()
    assert actions[0] == CloseRelaySocket() and closes(actions) == 1
    assert session is not None and session.state is SessionState.SHUT_DOWN
    assert session.edge.channel is None and not session.parts.timers.watchdog_running
    assert tab.names()[-2:] == ["peer_left", "disconnected"]
    sent = len(channel.sent)
    tab.scheduler.advance(WAITING_FIRST_MS)
    assert tab.names()[-1] == "waiting_for_peer"
    assert len(channel.sent) == sent  # nothing goes to a peer that left
    # Nothing reconnects to a peer that is not there.
    assert opened(tab.take()) == []

    tab.paired(relay_ticket="ticket-2")  # the same client, back after leaving
    assert tab.pairing.session is not session
    assert tab.names()[-1] == "paired" and "rejoined" not in tab.names()
    assert opened(tab.take()) == [OpenConnection(1, offerer=True)]


# --- losing and regaining the P2P path ------------------------------------------------------------


def test_a_closed_channel_makes_the_offerer_reconnect() -> None:
    tab = Tab(TransportOptions(room=ROOM, reconnect=ReconnectConfig(first_delay_ms=100.0)))
    tab.paired()
    session = tab.pairing.session
    assert session is not None
    tab.open_channel()
    tab.take()
    tab.pairing.channel_closed(0)
    assert session.state is SessionState.CLOSED
    assert tab.names()[-2:] == ["closed", "degraded"]
    tab.scheduler.advance(ReconnectConfig().max_delay_ms)
    actions = tab.take()
    assert closes(actions) == 1 and opened(actions) == [OpenConnection(1, offerer=True)]
    assert "reconnecting" in tab.names()
    channel = tab.open_channel()
    assert tab.names()[-1] == "reconnected"
    assert session.state is SessionState.OPEN and session.edge.channel is channel
    assert tab.pairing.session is session  # the same session spans the reconnection


def test_a_silent_channel_is_closed_by_the_answering_side() -> None:
    tab = Tab()
    tab.paired(1, 0)
    assert opened(tab.take()) == [OpenConnection(0, offerer=False)]
    tab.pairing.server_event(SIGNAL_EVENT, {"type": "offer", "sdp": "v=0", "generation": 0})
    assert tab.take() == [AcceptOffer(0, "v=0")]
    tab.open_channel()
    tab.take()
    tab.scheduler.advance(HealthThresholds().disconnect_silence_ms + 1_000.0)
    # Only the other side offers: closing this end makes its channel close too.
    assert closes(tab.take()) == 1
    assert "degraded" in tab.names()


def test_a_failed_connection_fails_the_session() -> None:
    tab = Tab()
    tab.paired()
    tab.open_channel()
    tab.pairing.connection_failed(0)
    session = tab.pairing.session
    assert session is not None and session.state is SessionState.FAILED
    assert tab.names()[-2:] == ["failed", "degraded"]
    # A failure reported for a connection already replaced changes nothing.
    tab.pairing.connection_failed(7)
    assert tab.names()[-1] == "degraded"


def test_a_failed_signaling_step_fails_the_session() -> None:
    tab = Tab()
    tab.paired()
    tab.pairing.step_failed("creating the offer", RuntimeError("no"))
    session = tab.pairing.session
    assert session is not None and session.state is SessionState.FAILED
    assert tab.events[-1] == ("error", {"message": "creating the offer failed: no"})


def test_a_closed_connection_lets_go_of_its_channels() -> None:
    tab = Tab(TransportOptions(room=ROOM, reconnect=ReconnectConfig(first_delay_ms=100.0)))
    tab.paired()
    session = tab.pairing.session
    assert session is not None
    ping_channel = FakePingChannel()
    tab.pairing.ping_channel_attached(ping_channel)
    tab.open_channel()
    assert session.parts.timers.ping_running
    tab.pairing.connection_failed(0)
    tab.scheduler.advance(ReconnectConfig().max_delay_ms)
    assert closes(tab.take()) == 1
    assert session.edge.channel is None
    # The ping timer goes on for the relay, which carries the game now; the channels hear none.
    assert session.parts.timers.ping_running
    pings = len(ping_channel.sent)
    tab.scheduler.advance(5_000.0)
    assert len(ping_channel.sent) == pings


# --- signaling and the server ---------------------------------------------------------------------


def test_signals_go_to_the_server_in_the_dialect_and_stale_ones_do_not() -> None:
    tab = Tab()
    tab.paired()
    tab.take()
    tab.pairing.description_ready(0, "offer", "v=0 offer")
    candidate = {"candidate": "candidate:1 1 udp 1 127.0.0.1 5000 typ host", "sdpMid": "0"}
    tab.pairing.candidate_gathered(0, candidate)
    tab.pairing.description_ready(5, "offer", "an old connection's")
    assert tab.take() == [
        SendToServer(SIGNAL_EVENT, {"type": "offer", "sdp": "v=0 offer", "generation": 0}),
        SendToServer(
            SIGNAL_EVENT, {"type": "ice-candidate", "candidate": candidate, "generation": 0}
        ),
    ]


def test_an_unreadable_server_event_is_an_error_event() -> None:
    tab = Tab()
    tab.pairing.server_event(PAIRED_EVENT, {"player_index": "first", "peer_index": 1})
    assert tab.pairing.session is None
    assert tab.names() == ["error"] and "unreadable paired" in tab.events[0][1]["message"]
    tab.pairing.server_event(ERROR_EVENT, {"code": "room_full", "message": "full"})
    assert tab.names()[-2:] == ["error", "room_full"]


def test_relay_packets_reach_the_session_and_telemetry_answers_the_edge() -> None:
    tab = Tab()
    tab.pairing.server_event(RELAY_EVENT, b"\x04")  # before pairing: nobody to give it to
    tab.paired()
    session = tab.pairing.session
    assert session is not None
    tab.pairing.server_event(RELAY_EVENT, b"\x04")  # a keepalive
    assert session.stats()["relay_packets_received"] == 1
    tab.take()
    tab.pairing.server_event(TELEMETRY_SAVED_EVENT, {"save_id": "s", "bytes": 3})
    assert tab.take() == [TelemetrySaved({"save_id": "s", "bytes": 3})]


def test_the_servers_ice_servers_are_kept_and_unusable_ones_reported() -> None:
    tab = Tab()
    turn = {"urls": "turn:127.0.0.1:3478", "username": "u", "credential": "c"}
    tab.paired(ice_servers=[turn])
    assert tab.pairing.ice_servers == (IceServer.of(turn),)
    tab.paired(client=OTHER_PEER, ice_servers="turn:nowhere")
    assert tab.pairing.ice_servers == ()
    assert any(name == "error" and "ice_servers" in d["message"] for name, d in tab.events)


# --- faults and the end ---------------------------------------------------------------------------


def test_faults_wrap_the_channel_and_their_pump_runs_only_with_a_connection() -> None:
    tab = Tab()
    tab.paired()
    session = tab.pairing.session
    assert session is not None
    tab.open_channel()
    assert not tab.pairing.stats()["fault_pump_running"]
    tab.pairing.set_faults(FaultConfig(delay_ms=20.0))
    assert isinstance(session.edge.channel, FaultyChannel)
    stats = tab.pairing.stats()
    assert stats["fault_pump_running"] and stats["fault_packets"] == 0
    assert any(t.interval_ms == FAULT_PUMP_INTERVAL_MS for t in tab.scheduler.active.values())
    tab.pairing.channel_closed(0)
    tab.pairing.close()
    assert not tab.pairing.stats()["fault_pump_running"]


# --- the deployed peers' channel validation --------------------------------------------------


def validation_pings(channel: FakeChannel) -> list[float]:
    return [
        message.timestamp_ms
        for message in map(decode, channel.sent)
        if isinstance(message, ValidationPing)
    ]


def test_validated_is_told_when_the_peers_ping_comes_after_this_sides_pong() -> None:
    # The order a loaded machine produces: this side's ping answered before the peer's own ping
    # arrives. Validation completes on the peer's ping, and the server must hear of it then.
    tab = Tab()
    tab.paired()
    channel = tab.open_channel()
    tab.take()
    tab.scheduler.advance(VALIDATION_DELAY_MS + VALIDATION_POLL_MS)
    (ping,) = validation_pings(channel)
    session = tab.pairing.session
    assert session is not None
    session.edge.on_message(encode_validation_pong(ping))
    tab.scheduler.advance(10 * VALIDATION_RESEND_MS)
    assert "validated" not in tab.names()
    assert validation_pings(channel) == [ping]  # answered: not sent again
    session.edge.on_message(encode_validation_ping(5.0))
    tab.scheduler.advance(VALIDATION_POLL_MS)
    assert tab.names().count("validated") == 1


@pytest.mark.parametrize(
    ("answered_after_ms", "told"),
    [(VALIDATION_TIMEOUT_MS - 100.0, True), (VALIDATION_TIMEOUT_MS + 100.0, False)],
)
def test_validation_counts_until_the_deployed_peers_limit_and_not_after(
    answered_after_ms: float, told: bool
) -> None:
    # Beyond 15 s the deployed peer has reported failure and its server re-pairs: a late answer
    # is not reported, and nothing keeps polling a validation that will never count.
    tab = Tab()
    tab.paired()
    channel = tab.open_channel()
    tab.scheduler.advance(answered_after_ms)
    session = tab.pairing.session
    assert session is not None
    assert session.parts.validation.expired is not told
    session.edge.on_message(encode_validation_pong(validation_pings(channel)[-1]))
    session.edge.on_message(encode_validation_ping(5.0))
    tab.scheduler.advance(VALIDATION_POLL_MS)
    assert ("validated" in tab.names()) is told
    assert session.parts.validation.validated


def test_close_ends_the_session_and_leaves_no_timer() -> None:
    tab = Tab()
    tab.pairing.server_event(JOINED_EVENT, {"player_index": 0, "room": ROOM})
    tab.paired(relay_ticket="ticket-1")
    tab.open_channel()
    tab.pairing.channel_closed(0)  # a reconnection pending too
    tab.take()
    tab.pairing.close()
    session = tab.pairing.session
    assert session is not None and session.state is SessionState.SHUT_DOWN
    actions = tab.take()
    assert actions[0] == CloseRelaySocket() and closes(actions) == 1
    assert tab.scheduler.active == {}
    tab.pairing.close()
    assert tab.take() == []

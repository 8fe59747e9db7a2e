"""TransportOptions and IceServer: plain data, checked where it is made, in the shapes a page
writes."""

from __future__ import annotations

from typing import Any

import pytest

from p2p_transport import IceServer, TransportOptions

TURN = {"urls": "turn:127.0.0.1:3478", "username": "u", "credential": "p"}


def test_ice_servers_as_the_dicts_every_webrtc_page_writes() -> None:
    options = TransportOptions(ice_servers=[TURN, {"urls": ["stun:a", "stun:b"]}])
    assert options.ice_servers == (
        IceServer("turn:127.0.0.1:3478", "u", "p"),
        IceServer(["stun:a", "stun:b"]),
    )
    assert options.rtc_configuration() == {"iceServers": [TURN, {"urls": ["stun:a", "stun:b"]}]}
    relayed = TransportOptions(ice_servers=(IceServer(**TURN),), relay_only=True)
    assert relayed.rtc_configuration()["iceTransportPolicy"] == "relay"


@pytest.mark.parametrize(
    ("server", "message"),
    [
        ({"url": "stun:a"}, "has 'urls' and optionally 'username' and 'credential'"),
        ({"urls": "stun:a", "password": "p"}, "got keys \\['password', 'urls'\\]"),
        ({"urls": []}, "urls must be a non-empty URL or list of URLs"),
        ({"urls": "turn:a", "username": 5}, "username must be a string, got int"),
        ("stun:a", "an ICE server is an IceServer or a dict"),
    ],
)
def test_a_wrong_ice_server_is_refused_where_the_options_are_made(
    server: object, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        TransportOptions(ice_servers=[server])  # type: ignore[list-item]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            {"server_url": None},
            "server_url must be a URL string ('' for the page's own server), got None",
        ),
        ({"room": ""}, "room must be a non-empty string, got ''"),
        ({"room": 7}, "room must be a non-empty string, got 7"),
        ({"relay_only": "yes"}, "relay_only must be True or False, got 'yes'"),
        ({"session": {}}, "session must be a SessionConfig, got {}"),
        ({"reconnect": None}, "reconnect must be a ReconnectConfig, got None"),
        ({"token": 5}, "token must be a string or None, got 5"),
        ({"faults": 0.3}, "faults must be a FaultConfig or None, got 0.3"),
        ({"fault_seed": -1}, "fault_seed must be at least 0, got -1"),
        ({"ice_timeout_ms": 0}, "ice_timeout_ms must be positive, got 0"),
    ],
)
def test_every_option_is_checked_where_it_is_given(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError) as caught:
        TransportOptions(**options)
    assert str(caught.value) == message


def test_a_token_goes_with_the_join() -> None:
    from p2p_transport.wire.dialects import ReferenceDialect

    without, with_token = ReferenceDialect("r"), ReferenceDialect("r", "signed.token")
    assert without.join() == [("join", {"room": "r", "client": without.client})]
    assert with_token.join() == [
        ("join", {"room": "r", "client": with_token.client, "token": "signed.token"})
    ]

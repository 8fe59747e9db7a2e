"""TransportOptions and IceServer: plain data, checked where it is made, in the shapes a page
writes."""

from __future__ import annotations

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

"""The server's Socket.IO packet class: binary headers refused before they are parsed or kept."""

from __future__ import annotations

import pytest

from p2p_server.packets import MAX_BINARY_HEADER_CHARS, AttachmentError, BoundedPacket

# What python-socketio decodes: an Engine.IO message's text after its own type (``4``), so the
# relay's header crosses the wire as ``451-[...]`` and reaches the packet class as ``51-[...]``.
RELAY_HEADER = '51-["relay",{"_placeholder":true,"num":0}]'


def test_the_relays_header_is_read_as_one_attachment() -> None:
    packet = BoundedPacket()
    assert packet.decode(RELAY_HEADER) == 1
    assert packet.header_chars == len(RELAY_HEADER)


@pytest.mark.parametrize(
    "header",
    [
        '5999999999-["relay",{"_placeholder":true,"num":0}]',  # the bomb (45999999999-...)
        '52-["relay",{"_placeholder":true,"num":0}]',
        '50-["relay"]',
        '5-["relay"]',  # no count at all
        '5\u00b2-["relay",{"_placeholder":true,"num":0}]',  # a digit str.isdigit() accepts
        '5\u0661-["relay",{"_placeholder":true,"num":0}]',  # an Arabic-Indic one
        '65-["x"]',  # a binary ack announcing five
    ],
)
def test_any_other_attachment_count_is_refused_at_the_header(header: str) -> None:
    with pytest.raises(AttachmentError) as refused:
        BoundedPacket().decode(header)
    assert refused.value.reason == "attachments"


def test_a_header_longer_than_a_relay_header_needs_is_refused() -> None:
    header = '51-["relay",' + " " * MAX_BINARY_HEADER_CHARS + "]"
    with pytest.raises(AttachmentError) as refused:
        BoundedPacket().decode(header)
    assert refused.value.reason == "binary_header"


def test_text_events_are_read_as_before() -> None:
    packet = BoundedPacket()
    assert packet.decode('2["join",{"room":"r"}]') == 0
    assert packet.data == ["join", {"room": "r"}]

"""Socket.IO packets as this server reads them: a binary event is refused at its header when it
announces more attachments than the relay uses.

A Socket.IO binary event is a JSON header that says how many binary attachments follow
(``451-["relay",{"_placeholder":true,"num":0}]``: one), then that many binary messages.
python-socketio keeps the header and every attachment in memory until the count is reached, and
reads counts up to 999,999,999: a client that announces that many and streams frames (each under
the 64 KiB frame limit) makes the server hold everything it sends, and the per-client rate limits
never see it, since the event never completes. The relay's only binary event (``relay``) has one
attachment, so a header announcing any other number is refused before it is kept, and so is a
binary header longer than a relay header needs. What the server then holds for a client between a
header and its attachment is that header, at most :data:`MAX_BINARY_HEADER_CHARS`.

This is python-socketio's documented hook for its wire format (``AsyncServer(serializer=...)``
takes a packet class), not a patch of its code.
"""

from __future__ import annotations

from typing import Any, Final

from socketio import packet

__all__ = ["MAX_ATTACHMENTS", "MAX_BINARY_HEADER_CHARS", "AttachmentError", "BoundedPacket"]

#: Attachments a binary event may announce: the relay's packet is the only binary payload.
MAX_ATTACHMENTS: Final = 1
#: A binary event's header (``451-["relay",{"_placeholder":true,"num":0}]`` is 43 characters,
#: with a namespace and an ack id well under this).
MAX_BINARY_HEADER_CHARS: Final = 256

_BINARY_TYPES: Final = (str(packet.BINARY_EVENT), str(packet.BINARY_ACK))


class AttachmentError(ValueError):
    """A binary header the server refuses; ``reason`` names it in ``/stats`` refusals."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class BoundedPacket(packet.Packet):  # type: ignore[misc]
    """python-socketio's packet, with binary headers checked before they are parsed or kept."""

    #: The header's length, for ``/stats`` (what the server holds while it waits).
    header_chars = 0

    def decode(self, encoded_packet: Any) -> int:
        if isinstance(encoded_packet, str) and encoded_packet[:1] in _BINARY_TYPES:
            self.header_chars = len(encoded_packet)
            if len(encoded_packet) > MAX_BINARY_HEADER_CHARS:
                raise AttachmentError(
                    f"a binary header of {len(encoded_packet)} characters "
                    f"(at most {MAX_BINARY_HEADER_CHARS})",
                    "binary_header",
                )
            dash = encoded_packet.find("-")
            announced = encoded_packet[1:dash]
            # isdigit() alone takes digits int() refuses, such as a superscript two.
            counted = dash >= 2 and announced.isascii() and announced.isdigit()
            if not counted or not 1 <= int(announced) <= MAX_ATTACHMENTS:
                raise AttachmentError(
                    f"a binary event announcing {announced or 'no'} attachments "
                    f"(the relay's has {MAX_ATTACHMENTS})",
                    "attachments",
                )
        count: int = super().decode(encoded_packet)
        return count

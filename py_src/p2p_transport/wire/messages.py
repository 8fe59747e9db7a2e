"""The messages two peers exchange, as Python values: what is said, not how it is written
(:mod:`~p2p_transport.wire.codec` does that).

Every message has a ``type`` (:class:`MessageType`, its first byte on the wire). Control messages
carry a kind: the transport's own (:class:`ControlKind`) or one of the game's.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import ClassVar, Final, TypeAlias

__all__ = [
    "GAME_KIND_MAX",
    "GAME_KIND_MIN",
    "AckedInputPacket",
    "ControlAck",
    "ControlKind",
    "ControlMessage",
    "EpisodeEnd",
    "EpisodeReady",
    "FocusState",
    "HeldPong",
    "InputPacket",
    "InputRecord",
    "InputRequest",
    "InputResponse",
    "Keepalive",
    "Message",
    "MessageType",
    "Ping",
    "Pong",
    "StateHash",
    "ValidationPing",
    "ValidationPong",
]


class MessageType(IntEnum):
    """The first byte of every message."""

    INPUT = 0x01
    PING = 0x02
    PONG = 0x03
    KEEPALIVE = 0x04
    #: Deployed peers' episode and desync messages (:mod:`~.protocol.v1_control`); a peer of this
    #: package sends the same as control messages (0x22) instead.
    EPISODE_END = 0x05
    EPISODE_READY = 0x06
    STATE_HASH = 0x07
    #: Deployed peers' pre-game validation of a new channel (:mod:`~.protocol.validation`).
    VALIDATION_PING = 0x10
    VALIDATION_PONG = 0x11
    #: Deployed peers ask for a range of the other side's inputs, and answer such requests.
    INPUT_REQUEST = 0x12
    INPUT_RESPONSE = 0x13
    #: Deployed peers say whether their tab is in the foreground.
    FOCUS_STATE = 0x14
    ACKED_INPUT = 0x20
    HELD_PONG = 0x21
    CONTROL = 0x22
    CONTROL_ACK = 0x23
    #: From 0x30 on: messages for the reference relay server itself, which it keeps and forwards
    #: to no one, so no peer (deployed JavaScript ones included) ever receives one. ``decode``
    #: does not read them; the server does (:func:`~.codec.decode_input_record`).
    INPUT_RECORD = 0x30


class ControlKind(IntEnum):
    """The kinds of control message the transport itself sends; the game's own kinds are
    :data:`GAME_KIND_MIN` to :data:`GAME_KIND_MAX`. Kinds in between are reserved for later
    transport messages: a peer that receives one it does not know still acknowledges it. Their
    payloads are laid out in :mod:`p2p_transport.wire.control_payloads`."""

    #: The sender's game ended an episode: episode u32, last frame u32.
    EPISODE_END = 0x01
    #: The sender is ready to start an episode: episode u32.
    EPISODE_READY = 0x02
    #: A hash of the sender's confirmed game state: episode u32, frame u32, then the hash of 1 to
    #: 32 bytes (:mod:`p2p_transport.protocol.desync`).
    STATE_HASH = 0x03
    #: The sender's frame advantage for time synchronisation (:mod:`p2p_transport.rollback`):
    #: advantage i16 in hundredths of a frame, input delay u8.
    TIME_SYNC = 0x04


#: ``P2PSession.send_control`` takes the upper half of the kind byte: room for 128 game messages,
#: and the transport's own kinds can grow below it without breaking a game that uses these.
GAME_KIND_MIN: Final = 0x80
GAME_KIND_MAX: Final = 0xFF


@dataclass(frozen=True, slots=True)
class InputPacket:
    """One player's most recent inputs as ``(frame, action)`` pairs, oldest first."""

    player_index: int
    current_frame: int
    inputs: tuple[tuple[int, int], ...]

    type: ClassVar[MessageType] = MessageType.INPUT


@dataclass(frozen=True, slots=True)
class AckedInputPacket:
    """Inputs as in :class:`InputPacket`, plus the sender's acknowledgement of the peer's inputs.

    ``ack_frame`` is the highest frame up to which the sender holds every input of the peer it is
    sending to, or ``None`` if it holds none yet.
    """

    player_index: int
    current_frame: int
    ack_frame: int | None
    inputs: tuple[tuple[int, int], ...]

    type: ClassVar[MessageType] = MessageType.ACKED_INPUT


@dataclass(frozen=True, slots=True)
class Ping:
    timestamp_ms: float

    type: ClassVar[MessageType] = MessageType.PING


@dataclass(frozen=True, slots=True)
class Pong:
    timestamp_ms: float

    type: ClassVar[MessageType] = MessageType.PONG


@dataclass(frozen=True, slots=True)
class ValidationPing:
    """Sent when a channel opens; the peer answers it with a :class:`ValidationPong`."""

    timestamp_ms: float

    type: ClassVar[MessageType] = MessageType.VALIDATION_PING


@dataclass(frozen=True, slots=True)
class ValidationPong:
    timestamp_ms: float

    type: ClassVar[MessageType] = MessageType.VALIDATION_PONG


@dataclass(frozen=True, slots=True)
class EpisodeEnd:
    """The sender's game ended ``episode`` at ``frame`` (deployed peers' layout)."""

    frame: int
    episode: int

    type: ClassVar[MessageType] = MessageType.EPISODE_END


@dataclass(frozen=True, slots=True)
class EpisodeReady:
    """The sender is ready for ``episode``; ``state_hash`` is 8 ASCII characters (deployed peers
    send the first 8 hex digits of their state's hash)."""

    episode: int
    state_hash: str

    type: ClassVar[MessageType] = MessageType.EPISODE_READY


@dataclass(frozen=True, slots=True)
class StateHash:
    """The sender's hash of its confirmed state at ``frame``: 8 raw bytes (deployed peers send
    the first 8 bytes of a SHA-256)."""

    frame: int
    digest: bytes

    type: ClassVar[MessageType] = MessageType.STATE_HASH


@dataclass(frozen=True, slots=True)
class InputRequest:
    """A request for the receiver's own inputs of frames ``start_frame`` to ``end_frame``,
    inclusive; answered with an :class:`InputResponse`."""

    start_frame: int
    end_frame: int

    type: ClassVar[MessageType] = MessageType.INPUT_REQUEST


@dataclass(frozen=True, slots=True)
class InputResponse:
    """Inputs of ``player_index`` as ``(frame, action)`` pairs, oldest first: each taken as if it
    came in an input packet."""

    player_index: int
    inputs: tuple[tuple[int, int], ...]

    type: ClassVar[MessageType] = MessageType.INPUT_RESPONSE


@dataclass(frozen=True, slots=True)
class InputRecord:
    """Confirmed inputs of ``player_index`` as ``(frame, action)`` pairs, oldest first, for the
    relay server's record of a room whose inputs do not travel on the relay
    (:mod:`p2p_transport.protocol.input_upload`). Not a :data:`Message`: no peer receives it."""

    player_index: int
    inputs: tuple[tuple[int, int], ...]

    type: ClassVar[MessageType] = MessageType.INPUT_RECORD


@dataclass(frozen=True, slots=True)
class FocusState:
    """Whether the sender's tab is in the foreground, as of its ``frame``."""

    focused: bool
    frame: int

    type: ClassVar[MessageType] = MessageType.FOCUS_STATE


@dataclass(frozen=True, slots=True)
class HeldPong:
    """A pong that also says how long the responder held the ping before answering (QUIC's
    ack_delay), so the pinger can take the responder's own stalls out of the round trip."""

    timestamp_ms: float
    hold_ms: float

    type: ClassVar[MessageType] = MessageType.HELD_PONG


@dataclass(frozen=True, slots=True)
class Keepalive:
    type: ClassVar[MessageType] = MessageType.KEEPALIVE


@dataclass(frozen=True, slots=True)
class ControlMessage:
    """One reliable control message: ``kind`` (a :class:`ControlKind` or a game kind) and its
    ``payload``, numbered by ``sequence`` (0, 1, 2, ... per direction) for ordering and acks."""

    sequence: int
    kind: int
    payload: bytes

    type: ClassVar[MessageType] = MessageType.CONTROL


@dataclass(frozen=True, slots=True)
class ControlAck:
    """The highest control sequence up to which the sender holds every control message of the
    peer it is sending to, or ``None`` if it holds none yet."""

    ack: int | None

    type: ClassVar[MessageType] = MessageType.CONTROL_ACK


Message: TypeAlias = (
    InputPacket
    | Ping
    | Pong
    | HeldPong
    | Keepalive
    | ValidationPing
    | ValidationPong
    | EpisodeEnd
    | EpisodeReady
    | StateHash
    | InputRequest
    | InputResponse
    | FocusState
    | AckedInputPacket
    | ControlMessage
    | ControlAck
)

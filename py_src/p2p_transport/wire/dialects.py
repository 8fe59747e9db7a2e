"""How a signaling server spells pairing, WebRTC signals and the relay: one :class:`Dialect` per
server, chosen by ``TransportOptions.dialect``.

The browser edge speaks to the peer-connection machine and the session in the transport's own
terms (a pairing, a signal ``{type, sdp | candidate, generation}``, a binary packet to relay) and
to the server through a dialect, which translates both ways and holds no I/O:

- :class:`ReferenceDialect`: the reference server (:mod:`p2p_server`), the events of
  :mod:`~p2p_transport.wire.signaling`;
- :class:`DeployedDialect`: the deployed interactive_gym / mug server's shapes: signals addressed
  by participant id within a ``game_id``, players paired by the game-start event's sorted id list,
  and a JSON relay that carries one input per event.

Another server is one more class with the same five members (see :class:`Dialect`).
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Protocol, TypeAlias

from p2p_transport.wire.codec import DecodeError, decode, encode_input_packet
from p2p_transport.wire.messages import AckedInputPacket, InputPacket
from p2p_transport.wire.signaling import (
    DEFAULT_ROOM,
    ERROR_EVENT,
    JOIN_EVENT,
    JOINED_EVENT,
    PAIRED_EVENT,
    PEER_LEFT_EVENT,
    RELAY_EVENT,
    SIGNAL_EVENT,
    SIGNAL_TYPES,
    TELEMETRY_SAVED_EVENT,
)

__all__ = [
    "DEPLOYED_ACTION_EVENT",
    "DEPLOYED_GAME_READY_EVENT",
    "DEPLOYED_PEER_ACTION_EVENT",
    "DeployedDialect",
    "Dialect",
    "Incoming",
    "Joined",
    "Outgoing",
    "Paired",
    "PeerLeft",
    "ReferenceDialect",
    "RelayPacket",
    "ServerError",
    "Signal",
    "TelemetrySaved",
]


@dataclass(frozen=True, slots=True)
class Joined:
    detail: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Paired:
    player_index: int
    peer_index: int
    detail: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Signal:
    """A signal for the peer-connection machine: ``{type, sdp | candidate, generation?}``."""

    message: dict[str, Any]


@dataclass(frozen=True, slots=True)
class RelayPacket:
    """A binary packet that came through the relay, for the session."""

    packet: bytes


@dataclass(frozen=True, slots=True)
class PeerLeft:
    detail: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ServerError:
    detail: dict[str, Any]


@dataclass(frozen=True, slots=True)
class TelemetrySaved:
    """The server's answer to a telemetry record: ``{save_id, bytes, file}`` or
    ``{save_id, error}``."""

    detail: dict[str, Any]


Incoming: TypeAlias = (
    Joined | Paired | Signal | RelayPacket | PeerLeft | ServerError | TelemetrySaved
)
#: An event to emit: its name and its payload.
Outgoing: TypeAlias = tuple[str, Any]


class Dialect(Protocol):
    """One server's events. Every method is pure translation; nothing here sends."""

    #: The events to listen to; :meth:`incoming` is called with each.
    @property
    def events(self) -> tuple[str, ...]: ...

    #: Those of them whose payload is binary (handed over as bytes; the others as plain data).
    @property
    def binary_events(self) -> tuple[str, ...]: ...

    def join(self) -> list[Outgoing]:
        """What to emit once the socket is connected."""
        ...

    def incoming(self, event: str, data: Any) -> Incoming | None:
        """An event from the server, translated; ``None`` for one to ignore."""
        ...

    def signal(self, message: dict[str, Any]) -> Outgoing:
        """The machine's signal to the peer, as this server wants it."""
        ...

    def relay(self, packet: bytes) -> Outgoing | None:
        """The session's packet for the relay path, or ``None`` if this relay cannot carry it."""
        ...


def _as_dict(data: Any) -> dict[str, Any]:
    return dict(data) if isinstance(data, Mapping) else {}


class ReferenceDialect:
    """The reference server's events (:mod:`~p2p_transport.wire.signaling`): join a room by name,
    signals and binary packets go to the other member as they are."""

    events: Final = (
        JOINED_EVENT,
        PAIRED_EVENT,
        SIGNAL_EVENT,
        RELAY_EVENT,
        PEER_LEFT_EVENT,
        ERROR_EVENT,
        TELEMETRY_SAVED_EVENT,
    )
    binary_events: Final = (RELAY_EVENT,)

    def __init__(self, room: str = DEFAULT_ROOM, token: str | None = None) -> None:
        self.room = room
        #: The room token the experiment's backend gave this player, sent with the join for a
        #: server that checks tokens (``None``: the join carries none).
        self.token = token
        #: This transport's id for itself, the same in every join it sends: the peer learns it
        #: with ``paired`` and so can tell this side coming back through the server (after a
        #: restart or a lost connection) from a new player.
        self.client = secrets.token_urlsafe(12)
        #: The slot the server gave this side, asked for again when it joins again: a restarted
        #: server (or another process) then gives each player back the index it had.
        self.player: int | None = None

    def join(self) -> list[Outgoing]:
        payload: dict[str, Any] = {"room": self.room, "client": self.client}
        if self.player is not None:
            payload["player"] = self.player
        if self.token is not None:
            payload["token"] = self.token
        return [(JOIN_EVENT, payload)]

    def incoming(self, event: str, data: Any) -> Incoming | None:
        if event == RELAY_EVENT:
            return RelayPacket(bytes(data)) if isinstance(data, bytes | bytearray) else None
        if event == SIGNAL_EVENT:
            return Signal(_as_dict(data))
        detail = _as_dict(data)
        if event == PAIRED_EVENT:
            return Paired(int(detail["player_index"]), int(detail["peer_index"]), detail)
        if event == JOINED_EVENT:
            index = detail.get("player_index")
            self.player = index if isinstance(index, int) and not isinstance(index, bool) else None
            return Joined(detail)
        if event == PEER_LEFT_EVENT:
            return PeerLeft(detail)
        if event == ERROR_EVENT:
            return ServerError(detail or {"message": str(data)})
        if event == TELEMETRY_SAVED_EVENT:
            return TelemetrySaved(detail)
        return None

    def signal(self, message: dict[str, Any]) -> Outgoing:
        return SIGNAL_EVENT, message

    def relay(self, packet: bytes) -> Outgoing | None:
        return RELAY_EVENT, packet


#: The deployed server's events (from its documented shapes).
DEPLOYED_GAME_READY_EVENT: Final = "pyodide_game_ready"
DEPLOYED_ACTION_EVENT: Final = "pyodide_player_action"
DEPLOYED_PEER_ACTION_EVENT: Final = "pyodide_other_player_action"


class DeployedDialect:
    """The deployed interactive_gym / mug server's shapes.

    The game starts with ``pyodide_game_ready {players: [...]}``: each side sorts the ids and its
    position is its player index (the lower id offers). Signals go out as ``webrtc_signal {game_id,
    target_player_id, type, payload}`` (``payload`` the description ``{type, sdp}`` or the
    candidate's JSON, with this transport's ``generation`` inside, where a deployed peer ignores
    it) and come in as ``{type, from_player_id, game_id, payload}``. The relay is JSON, one input
    per event: ``pyodide_player_action {game_id, player_id, action, frame_number, timestamp,
    sync_epoch}`` out, ``pyodide_other_player_action {player_id, action, frame_number,
    timestamp}`` in; it carries the newest input of each input packet and nothing else (no pings,
    no control messages), which the receiver turns back into an input packet.

    ``join`` is what this server needs to put the socket in the game, if anything (a deployed
    page has done that itself before the transport starts): ``(event, payload)``.
    """

    events: Final = (
        DEPLOYED_GAME_READY_EVENT,
        SIGNAL_EVENT,
        DEPLOYED_PEER_ACTION_EVENT,
        ERROR_EVENT,
    )
    binary_events: Final = ()

    def __init__(self, game_id: str, player_id: str, join: Outgoing | None = None) -> None:
        self.game_id = game_id
        self.player_id = str(player_id)
        self._join = join
        self.peer_id: str | None = None
        self.peer_index: int | None = None

    def join(self) -> list[Outgoing]:
        return [self._join] if self._join is not None else []

    def incoming(self, event: str, data: Any) -> Incoming | None:
        detail = _as_dict(data)
        if event == DEPLOYED_GAME_READY_EVENT:
            return self._game_ready(detail)
        if event == SIGNAL_EVENT:
            return self._signal_in(detail)
        if event == DEPLOYED_PEER_ACTION_EVENT:
            return self._action_in(detail)
        if event == ERROR_EVENT:
            return ServerError(detail or {"message": str(data)})
        return None

    def signal(self, message: dict[str, Any]) -> Outgoing:
        kind = message["type"]
        generation = message.get("generation")
        if kind == "ice-candidate":
            payload = dict(message["candidate"])
        else:
            payload = {"type": kind, "sdp": message["sdp"]}
        if generation is not None:
            payload["generation"] = generation
        return SIGNAL_EVENT, {
            "game_id": self.game_id,
            "target_player_id": self.peer_id,
            "type": kind,
            "payload": payload,
        }

    def relay(self, packet: bytes) -> Outgoing | None:
        try:
            message = decode(packet)
        except DecodeError:
            return None
        if not isinstance(message, InputPacket | AckedInputPacket) or not message.inputs:
            return None
        frame, action = message.inputs[-1]
        return DEPLOYED_ACTION_EVENT, {
            "game_id": self.game_id,
            "player_id": self.player_id,
            "action": action,
            "frame_number": frame,
            "timestamp": None,
            "sync_epoch": 0,
        }

    def _game_ready(self, detail: dict[str, Any]) -> Paired | None:
        players = detail.get("players")
        if not isinstance(players, list):
            return None
        ids = sorted(str(player) for player in players)
        if len(ids) != 2 or self.player_id not in ids:
            return None
        player_index = ids.index(self.player_id)
        self.peer_index = 1 - player_index
        self.peer_id = ids[self.peer_index]
        return Paired(player_index, self.peer_index, detail)

    def _signal_in(self, detail: dict[str, Any]) -> Signal | None:
        kind = detail.get("type")
        payload = detail.get("payload")
        if (
            kind not in SIGNAL_TYPES
            or not isinstance(payload, Mapping)
            or detail.get("game_id") != self.game_id
            or str(detail.get("from_player_id")) != self.peer_id
        ):
            return None
        payload = dict(payload)
        generation = payload.pop("generation", None)
        if kind == "ice-candidate":
            message: dict[str, Any] = {"type": kind, "candidate": payload}
        else:
            message = {"type": kind, "sdp": payload.get("sdp")}
        if generation is not None:
            message["generation"] = generation
        return Signal(message)

    def _action_in(self, detail: dict[str, Any]) -> RelayPacket | None:
        frame, action = detail.get("frame_number"), detail.get("action")
        if (
            self.peer_index is None
            or str(detail.get("player_id")) != self.peer_id
            or not isinstance(frame, int)
            or not isinstance(action, int)
        ):
            return None
        try:
            return RelayPacket(encode_input_packet(self.peer_index, frame, [(frame, action)]))
        except ValueError:  # out of the wire format's ranges: a confused or hostile relay
            return None

"""How a signaling server spells pairing, WebRTC signals and the relay: one :class:`Dialect` per
server, chosen by ``TransportOptions.dialect``.

The browser edge speaks to the peer-connection machine and the session in the transport's own
terms (a pairing, a signal ``{type, sdp | candidate, generation}``, a binary packet to relay) and
to the server through a dialect, which translates both ways and holds no I/O:

- :class:`ReferenceDialect`: the reference server (:mod:`p2p_server`), the events of
  :mod:`~p2p_transport.wire.signaling`;
- :class:`DeployedDialect`: the deployed interactive_gym / mug server's shapes: signals addressed
  by participant id within a ``game_id``, players paired by the game-start event's sorted id list,
  and a JSON relay that carries one input per event;
- :class:`MugDialect`: the same shapes with the deployed server's whole flow: its lobby (on the
  transport's own socket, or none when attached to the page's socket, which did it), the ids the
  server assigns, its waiting room, countdown and start, its error events, and what it is told of
  the DataChannel (validated, lost, recovered).

Another server is one more class with the same six members (see :class:`Dialect`).
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any, Final, Protocol, TypeAlias

from p2p_transport.errors import UsageError
from p2p_transport.wire.codec import DecodeError, decode, encode_input_packet
from p2p_transport.wire.messages import AckedInputPacket, InputPacket
from p2p_transport.wire.signaling import (
    DEFAULT_ROOM,
    ERROR_EVENT,
    JOIN_EVENT,
    JOINED_EVENT,
    PAIRED_EVENT,
    PEER_LEFT_EVENT,
    PLAYERS_PER_ROOM,
    RELAY_EVENT,
    ROOM_READY_EVENT,
    SIGNAL_EVENT,
    SIGNAL_TYPES,
    TELEMETRY_SAVED_EVENT,
    WAITING_EVENT,
)

__all__ = [
    "DEPLOYED_ACTION_EVENT",
    "DEPLOYED_GAME_READY_EVENT",
    "DEPLOYED_PEER_ACTION_EVENT",
    "MUG_ERROR_EVENTS",
    "MUG_IDS_UNKNOWN_EVENT",
    "MUG_NOTICE_EVENTS",
    "REFUSAL_EVENTS",
    "DeployedDialect",
    "Dialect",
    "Incoming",
    "Joined",
    "LinkReport",
    "MugDialect",
    "Notice",
    "Outgoing",
    "Paired",
    "PeerLeft",
    "ReferenceDialect",
    "RelayPacket",
    "RoomReady",
    "ServerError",
    "Signal",
    "TelemetrySaved",
]


#: An event to emit: its name and its payload.
Outgoing: TypeAlias = tuple[str, Any]


@dataclass(frozen=True, slots=True)
class Joined:
    detail: dict[str, Any]
    #: What to emit first (the lobby's last step, for a server that has one).
    replies: tuple[Outgoing, ...] = ()


@dataclass(frozen=True, slots=True)
class Paired:
    player_index: int
    peer_index: int
    detail: dict[str, Any]


@dataclass(frozen=True, slots=True)
class RoomReady:
    """Every player of a room of more than two (or a spectator's room) is in: this side's index
    (``None`` for a spectator), the room's size, and each peer's index with the client id it
    joined with (``None`` if it gave none)."""

    player_index: int | None
    players: int
    peers: tuple[tuple[int, object], ...]
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
    #: The name the game hears it by: ``error``, or the server's own name for it (see
    #: :data:`MUG_ERROR_EVENTS`).
    event: str = ERROR_EVENT


@dataclass(frozen=True, slots=True)
class Notice:
    """Something the server said that the game hears as ``event`` and nothing here decides on
    (a lobby step, the waiting room, a countdown); ``replies`` are emitted first."""

    event: str
    detail: dict[str, Any]
    replies: tuple[Outgoing, ...] = ()


@dataclass(frozen=True, slots=True)
class TelemetrySaved:
    """The server's answer to a telemetry record: ``{save_id, bytes, file}`` or
    ``{save_id, error}``."""

    detail: dict[str, Any]


Incoming: TypeAlias = (
    Joined
    | Paired
    | RoomReady
    | Signal
    | RelayPacket
    | PeerLeft
    | ServerError
    | TelemetrySaved
    | Notice
)


class LinkReport(Enum):
    """What a server may want to hear of the DataChannel (see :meth:`Dialect.report`)."""

    #: The first DataChannel of the pairing opened; its validation starts.
    VALIDATING = "validating"
    #: That channel is validated (both validation pings answered).
    VALIDATED = "validated"
    #: The DataChannel was lost while the peer is still in the game.
    LOST = "lost"
    #: A DataChannel opened again after a loss.
    RECOVERED = "recovered"


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

    def report(self, change: LinkReport, frame: int | None, downtime_ms: float) -> list[Outgoing]:
        """What to tell this server of ``change`` (``frame``: the game's newest local frame, if
        any; ``downtime_ms``: for :attr:`LinkReport.RECOVERED`, how long the channel was down)."""
        ...


def _as_dict(data: Any) -> dict[str, Any]:
    return dict(data) if isinstance(data, Mapping) else {}


class ReferenceDialect:
    """The reference server's events (:mod:`~p2p_transport.wire.signaling`): join a room by name,
    signals and binary packets go to the other member as they are.

    With ``players`` above two the join asks for a room of that many, and the room's own events
    (``waiting_for_peer``, ``room_ready``) are read too; a two-player join and its events are
    the same as ever."""

    binary_events: Final = (RELAY_EVENT,)

    def __init__(
        self,
        room: str = DEFAULT_ROOM,
        token: str | None = None,
        players: int = PLAYERS_PER_ROOM,
        spectator: bool = False,
    ) -> None:
        self.room = room
        self.players = players
        #: Join to watch (no slot, no input): the room's events are then ``room_ready``'s.
        self.spectator = spectator
        mesh = (WAITING_EVENT, ROOM_READY_EVENT) if players != PLAYERS_PER_ROOM or spectator else ()
        self.events: tuple[str, ...] = (
            JOINED_EVENT,
            PAIRED_EVENT,
            SIGNAL_EVENT,
            RELAY_EVENT,
            PEER_LEFT_EVENT,
            ERROR_EVENT,
            TELEMETRY_SAVED_EVENT,
            *mesh,
        )
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
        if self.players != PLAYERS_PER_ROOM:
            payload["players"] = self.players
        if self.spectator:
            payload["spectator"] = True
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
        if event == ROOM_READY_EVENT:
            peers = tuple(
                (int(peer["player_index"]), peer.get("client")) for peer in detail["peers"]
            )
            index = None if detail.get("spectator") is True else int(detail["player_index"])
            return RoomReady(index, int(detail["players"]), peers, detail)
        if event == WAITING_EVENT:
            return Notice(WAITING_EVENT, detail)
        return None

    def signal(self, message: dict[str, Any]) -> Outgoing:
        return SIGNAL_EVENT, message

    def relay(self, packet: bytes) -> Outgoing | None:
        return RELAY_EVENT, packet

    def report(self, change: LinkReport, frame: int | None, downtime_ms: float) -> list[Outgoing]:
        return []  # the reference server learns nothing of the DataChannel


#: The deployed server's events (from its documented shapes).
DEPLOYED_GAME_READY_EVENT: Final = "pyodide_game_ready"
DEPLOYED_ACTION_EVENT: Final = "pyodide_player_action"
DEPLOYED_PEER_ACTION_EVENT: Final = "pyodide_other_player_action"

#: A deployed player id: the keys of the experiment's policy mapping, strings or integers.
PlayerId: TypeAlias = str | int


def _player_id(value: object) -> PlayerId | None:
    return value if isinstance(value, str | int) and not isinstance(value, bool) else None


class DeployedDialect:
    """The deployed interactive_gym / mug server's shapes.

    The game starts with ``pyodide_game_ready {players: [...]}``: each side sorts the ids (as
    text, as the deployed peers compare them) and its position is its player index (the lower
    id offers). Signals go out as ``webrtc_signal {game_id, target_player_id, type, payload}``
    (``payload`` the description ``{type, sdp}`` or the candidate's JSON, with this transport's
    ``generation`` inside, where a deployed peer ignores it) and come in as ``{type,
    from_player_id, game_id, payload}``. The relay is JSON, one input per event:
    ``pyodide_player_action {game_id, player_id, action, frame_number, timestamp, sync_epoch}``
    out, ``pyodide_other_player_action {player_id, action, frame_number, timestamp}`` in; it
    carries the newest input of each input packet and nothing else (no pings, no control
    messages), which the receiver turns back into an input packet. Ids go out with the type the
    server gave them: it compares the sent ``player_id`` with its own without coercion, and
    relays an input to every player whose id differs, so ``"0"`` for ``0`` would come back to
    its sender.

    ``join`` is what this server needs to put the socket in the game, if anything (a deployed
    page has done that itself before the transport starts): ``(event, payload)``.
    """

    events: tuple[str, ...] = (
        DEPLOYED_GAME_READY_EVENT,
        SIGNAL_EVENT,
        DEPLOYED_PEER_ACTION_EVENT,
        ERROR_EVENT,
    )
    binary_events: Final = ()

    def __init__(
        self, game_id: str | None, player_id: PlayerId | None, join: Outgoing | None = None
    ) -> None:
        self.game_id = game_id
        self.player_id = player_id
        self._join = join
        self.peer_id: PlayerId | None = None
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

    def report(self, change: LinkReport, frame: int | None, downtime_ms: float) -> list[Outgoing]:
        return []  # the shapes alone; :class:`MugDialect` tells the deployed server

    def _game_ready(self, detail: dict[str, Any]) -> Paired | None:
        players = detail.get("players")
        if not isinstance(players, list) or self.player_id is None:
            return None
        ids = sorted((player for player in players if _player_id(player) is not None), key=str)
        names = [str(player) for player in ids]
        if len(ids) != 2 or len(set(names)) != 2 or str(self.player_id) not in names:
            return None
        player_index = names.index(str(self.player_id))
        self.peer_index = 1 - player_index
        self.peer_id = ids[self.peer_index]
        return Paired(player_index, self.peer_index, detail)

    def _is_peer(self, player_id: object) -> bool:
        return self.peer_id is not None and str(player_id) == str(self.peer_id)

    def _signal_in(self, detail: dict[str, Any]) -> Signal | None:
        kind = detail.get("type")
        payload = detail.get("payload")
        if (
            kind not in SIGNAL_TYPES
            or not isinstance(payload, Mapping)
            or detail.get("game_id") != self.game_id
            or not self._is_peer(detail.get("from_player_id"))
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
            or not self._is_peer(detail.get("player_id"))
            or not isinstance(frame, int)
            or not isinstance(action, int)
        ):
            return None
        try:
            return RelayPacket(encode_input_packet(self.peer_index, frame, [(frame, action)]))
        except ValueError:  # out of the wire format's ranges: a confused or hostile relay
            return None


# The deployed server's lobby, in the order a participant goes through it (see MugDialect).
MUG_REGISTER_EVENT: Final = "register_subject"
MUG_SESSION_EVENT: Final = "server_session_id"
MUG_SCENE_EVENT: Final = "activate_scene"
MUG_ADVANCE_EVENT: Final = "advance_scene"
MUG_JOIN_EVENT: Final = "join_game"
MUG_ASSIGNED_EVENT: Final = "pyodide_player_assigned"
MUG_GAME_ENDED_EVENT: Final = "p2p_game_ended"
#: The scene whose activation means the game: the lobby's last step joins it.
MUG_GAME_SCENE: Final = "GymScene"
#: The server's refusals, each its own event (it never sends ``error``); the game hears each by
#: the same name, and before pairing ``connect()`` fails with it.
MUG_ERROR_EVENTS: Final = (
    "join_game_error",
    "waiting_room_error",
    "duplicate_session",
    "create_game_failed",
    "p2p_validation_repool",
)
#: What the server says for the page's eyes, passed on to the game under the same names: the
#: waiting room, the countdown to the start and the start, the validation as the room sees it,
#: and the pause the deployed peers make while a DataChannel is being re-established.
MUG_NOTICE_EVENTS: Final = (
    "waiting_room",
    "match_found_countdown",
    "start_game",
    "p2p_validation_status",
    "p2p_validation_complete",
    "p2p_pause",
    "p2p_resume",
)


#: What a dialect attached too late to know its own player id reports (see :class:`MugDialect`).
MUG_IDS_UNKNOWN_EVENT: Final = "mug_ids_unknown"
#: Every event that says the server refused this side: before pairing, ``connect()`` fails.
REFUSAL_EVENTS: Final = (ERROR_EVENT, *MUG_ERROR_EVENTS, MUG_IDS_UNKNOWN_EVENT)


class MugDialect(DeployedDialect):
    """The deployed interactive_gym / mug server (``multi-user-gymnasium[server]``): its shapes
    (:class:`DeployedDialect`) and its flow.

    Standalone (``attach=False``), this transport's own socket goes through the lobby: the
    page's URL ``GET /<subject_id>`` first (:attr:`entry_path`, fetched by the edge before the
    socket opens), then ``register_subject {subject_id}``, ``advance_scene {session_id}`` on the
    start scene and ``join_game {session_id}`` once the game scene is active. ``subject_id`` is
    the participant's id, generated as the server does (a uuid4) when not given.

    Attached (``attach=True``), the page's socket did the lobby and nothing of it is sent again:
    the server knows a participant by the socket that did it. The ids come from the events that
    follow; a dialect attached after ``pyodide_player_assigned`` has come finds its own id in
    ``pyodide_game_ready``'s ``player_subjects`` if it knows ``subject_id``, and otherwise
    reports ``mug_ids_unknown`` (attached after ``pyodide_game_ready``, nothing is left to pair
    on: attach before the page emits ``join_game``).

    Both ways, ``player_id`` and ``game_id`` are adopted from ``pyodide_player_assigned`` (and
    checked against ``pyodide_game_ready``), ``turn_config``'s credentials go with
    ``turn_urls`` (the server sends credentials, the deployed pages hold the URLs),
    ``p2p_game_ended`` is the peer leaving, and :meth:`report` tells the server what the
    deployed peers tell it: the first DataChannel's validation (the server answers
    ``p2p_validation_complete`` once both players validated), and the loss and recovery of a
    DataChannel.
    """

    events: tuple[str, ...] = (
        *DeployedDialect.events,
        MUG_SESSION_EVENT,
        MUG_SCENE_EVENT,
        MUG_ASSIGNED_EVENT,
        MUG_GAME_ENDED_EVENT,
        *MUG_ERROR_EVENTS,
        *MUG_NOTICE_EVENTS,
    )

    def __init__(
        self,
        subject_id: str | None = None,
        *,
        attach: bool = False,
        turn_urls: Sequence[str] = (),
    ) -> None:
        super().__init__(None, None)
        if subject_id is not None and (not isinstance(subject_id, str) or not subject_id):
            raise UsageError(f"subject_id must be a non-empty string or None, got {subject_id!r}")
        if isinstance(turn_urls, str) or not all(isinstance(url, str) and url for url in turn_urls):
            raise UsageError(f"turn_urls must be a list of URLs, got {turn_urls!r}")
        #: The participant: given, or generated for a standalone page (attached, ``None`` unless
        #: the page says, which lets a late attach find its id).
        self.subject_id = subject_id if subject_id or attach else str(uuid.uuid4())
        self.attach = attach
        self.turn_urls = tuple(turn_urls)
        #: The server's id for this participant's session, from ``server_session_id``.
        self.session_id: str | None = None
        self._joined = False
        self._validated = False
        self._lost = False

    @property
    def entry_path(self) -> str | None:
        """The participant's URL on the server, which it must have served before
        ``register_subject`` (``None`` when attached: the page was served)."""
        return None if self.attach else f"/{self.subject_id}"

    def join(self) -> list[Outgoing]:
        if self.attach:
            return []
        return [(MUG_REGISTER_EVENT, {"subject_id": self.subject_id})]

    def incoming(self, event: str, data: Any) -> Incoming | None:
        detail = _as_dict(data)
        if event in MUG_NOTICE_EVENTS:
            return Notice(event, detail)
        if event in MUG_ERROR_EVENTS:
            return ServerError(detail or {"message": str(data)}, event)
        if event == MUG_GAME_ENDED_EVENT:
            return PeerLeft(detail) if detail.get("game_id") == self.game_id else None
        if event == MUG_SESSION_EVENT:
            session_id = detail.get("session_id")
            self.session_id = session_id if isinstance(session_id, str) else None
            return None
        if event == MUG_SCENE_EVENT:
            return self._scene(detail)
        if event == MUG_ASSIGNED_EVENT:
            return self._assigned(detail)
        if event == DEPLOYED_GAME_READY_EVENT:
            return self._mug_game_ready(detail)
        return super().incoming(event, data)

    def report(self, change: LinkReport, frame: int | None, downtime_ms: float) -> list[Outgoing]:
        if self.game_id is None:
            return []
        ids = {"game_id": self.game_id, "player_id": self.player_id}
        if change is LinkReport.VALIDATING and not self._validated:
            return [("p2p_validation_status", {"game_id": self.game_id, "status": "validating"})]
        if change is LinkReport.VALIDATED and not self._validated:
            # Once per game: the server completes the validation when both players reported.
            self._validated = True
            return [("p2p_validation_success", ids)]
        if change is LinkReport.LOST and not self._lost:
            self._lost = True
            return [("p2p_connection_lost", {**ids, "frame_number": frame})]
        if change is LinkReport.RECOVERED and self._lost:
            self._lost = False
            return [("p2p_reconnection_success", {**ids, "duration_ms": round(downtime_ms)})]
        return []

    def _scene(self, detail: dict[str, Any]) -> Incoming | None:
        if self.attach or self._joined:
            return None  # the page drives its own scenes; or this side is in the game already
        session = {"session_id": self.session_id}
        scene = detail.get("scene_type")
        if scene == MUG_GAME_SCENE:
            self._joined = True
            return Joined({"subject_id": self.subject_id}, ((MUG_JOIN_EVENT, session),))
        return Notice("lobby", {"scene_type": scene}, ((MUG_ADVANCE_EVENT, session),))

    def _assigned(self, detail: dict[str, Any]) -> Notice | None:
        player_id, game_id = _player_id(detail.get("player_id")), detail.get("game_id")
        if player_id is None or not isinstance(game_id, str):
            return None
        self.player_id, self.game_id = player_id, game_id
        self._validated = self._lost = False
        return Notice("player_assigned", detail)

    def _mug_game_ready(self, detail: dict[str, Any]) -> Incoming | None:
        game_id = detail.get("game_id")
        if self.player_id is None or self.game_id != game_id:
            found = self._own_id_from_subjects(detail)
            if found is None or not isinstance(game_id, str):
                return ServerError(
                    {
                        "message": "pyodide_game_ready came before this side knew its player "
                        "id: attach before the page emits join_game, or give the subject id"
                    },
                    MUG_IDS_UNKNOWN_EVENT,
                )
            self.player_id, self.game_id = found, game_id
        paired = self._game_ready(detail)
        if paired is None:
            return None
        turn = _as_dict(detail.get("turn_config"))
        extra: dict[str, Any] = {"force_relay": bool(turn.get("force_relay", False))}
        username, credential = turn.get("username"), turn.get("credential")
        if self.turn_urls and isinstance(username, str) and isinstance(credential, str):
            extra["ice_servers"] = [
                {"urls": list(self.turn_urls), "username": username, "credential": credential}
            ]
        return Paired(paired.player_index, paired.peer_index, {**detail, **extra})

    def _own_id_from_subjects(self, detail: dict[str, Any]) -> PlayerId | None:
        """This side's id in ``player_subjects`` (``{player_id: subject_id}``), with the type
        ``players`` gives it (JSON made the mapping's keys text)."""
        subjects, players = detail.get("player_subjects"), detail.get("players")
        if self.subject_id is None or not isinstance(subjects, Mapping):
            return None
        mine = [str(player) for player, subject in subjects.items() if subject == self.subject_id]
        if len(mine) != 1 or not isinstance(players, list):
            return None
        return next((_player_id(p) for p in players if str(p) == mine[0]), None)

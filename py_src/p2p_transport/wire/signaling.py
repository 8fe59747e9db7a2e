"""The Socket.IO contract between a browser and the signaling/relay server, named once.

The browser edge (:mod:`p2p_transport.browser.transport`), the relay channel
(:mod:`p2p_transport.protocol.relay`) and the reference server (:mod:`p2p_server.server`) all
import these names, so the two sides cannot drift apart.

==============  ===========  =====================================================================
event           direction    payload
==============  ===========  =====================================================================
``join``        to server    ``{room, players?, spectator?}`` (room: a non-empty string of at most
                             64 characters)
``joined``      to client    ``{room, player_index}`` (more fields in rooms of more than two)
``waiting_for_peer``  to client  ``{room, players, present, missing}``: rooms of more than two
``paired``      to client    ``{room, player_index, peer_index}``, to both members once two are in
``room_ready``  to client    rooms of more than two, and spectators: every player is in
``webrtc_signal``  both      ``{type: offer|answer|ice-candidate, ...}``, to the other member only
                             (in rooms of more than two: to the player named by ``to``)
``relay``       both         binary: one packet of :mod:`~p2p_transport.wire.codec`, to the other
                             member only, at most :data:`MAX_RELAY_BYTES` (in rooms of more than
                             two behind a one-byte envelope: see :data:`RELAY_TO_ALL`); to a
                             spectator, the server's spectator feed (see :data:`ROOM_READY_EVENT`)
``peer_left``   to client    ``{player_index}`` of the member that left
``error``       to client    ``{message}``: the server refused an event
==============  ===========  =====================================================================

Rooms of more than two players (:data:`MIN_PLAYERS` to :data:`MAX_PLAYERS`) and spectators are
additions: a join that names neither gets today's two-player room, events and payloads, byte for
byte.
"""

from __future__ import annotations

from typing import Any, Final
from urllib.parse import urlencode

from p2p_transport.errors import UsageError
from p2p_transport.wire.codec import MAX_PACKET_BYTES

__all__ = [
    "DEFAULT_ROOM",
    "ERROR_EVENT",
    "JOINED_EVENT",
    "JOIN_EVENT",
    "MAX_CLIENT_ID_CHARS",
    "MAX_PLAYERS",
    "MAX_RELAY_BYTES",
    "MAX_ROOM_NAME_CHARS",
    "MAX_SPECTATORS",
    "MAX_TELEMETRY_CHARS",
    "MIN_PLAYERS",
    "PAIRED_EVENT",
    "PEER_LEFT_EVENT",
    "PLAYERS_PER_ROOM",
    "RELAY_EVENT",
    "RELAY_SOCKET_PATH",
    "RELAY_TO_ALL",
    "ROOM_READY_EVENT",
    "SAVE_TELEMETRY_EVENT",
    "SIGNAL_EVENT",
    "SIGNAL_FROM",
    "SIGNAL_TO",
    "SIGNAL_TYPES",
    "TELEMETRY_PART_CHARS",
    "TELEMETRY_SAVED_EVENT",
    "WAITING_EVENT",
    "relay_socket_url",
    "telemetry_parts",
]

#: ``{room, token?, client?, player?, players?, spectator?}``: ``token`` for a server that checks
#: them (see p2p_server.tokens), ``client`` an id this page's transport picked, which the peer is
#: told in ``paired``, ``player`` the slot it had before (taken again if free), ``players`` the
#: room's number of players, :data:`MIN_PLAYERS` to :data:`MAX_PLAYERS` (absent:
#: :data:`PLAYERS_PER_ROOM`; with tokens the token's claim decides instead), fixed by the room's
#: first joiner and refused (code ``room_size``) when it differs; ``spectator: true`` watches
#: instead of playing (no slot, no input; with tokens it needs a spectator token), at most
#: ``ServerOptions.max_spectators`` (default :data:`MAX_SPECTATORS`) per room, past which the join
#: is refused with code ``spectators_full``. A spectator's ``players`` is optional: given, it
#: must match the room's (or fixes it, for a spectator that comes first).
JOIN_EVENT: Final = "join"
#: ``{room, player_index}``; in a room of more than two players also ``players`` and ``missing``
#: (players still to come); a spectator's is ``{room, spectator: true, players, missing}``
#: (``players`` is ``null`` while no joiner has named it).
JOINED_EVENT: Final = "joined"
#: Rooms of more than two players only, to every member and spectator whenever a player joins or
#: leaves while the room is not full: ``{room, players, present, missing}``, ``present`` the
#: player indices in the room (sorted), ``missing`` how many are still to come. (A two-player room
#: says nothing while it waits: ``joined`` without ``paired`` is its waiting, as before.)
WAITING_EVENT: Final = "waiting_for_peer"
#: Rooms of more than two players (instead of ``paired``), and every spectator, once every player
#: is in (again, after one came back): ``{room, player_index, players, peers, ice_servers?,
#: relay_ticket}``, ``peers`` every other player sorted by index, each ``{player_index,
#: client?}`` (``client`` the id it joined with, if any). A player opens one DataChannel to each
#: peer: it offers to every higher index and answers every lower one. A spectator's has
#: ``spectator: true`` and no ``player_index`` (its ``peers`` are all the players), and opens no
#: DataChannel: the server sends it, as relay packets (on its lean relay socket once it opens
#: one with ``relay_ticket``), every player's inputs and episode ends, and the reports of a player
#: who left, each once, whatever route the players use (``p2p_server.spectator_feed``), first
#: everything the room had before it joined (from the room's first input, even before its
#: ``room_ready``), then what is new. Each packet starts with the index of the player who sent
#: what follows, then either an input record (0x30,
#: :func:`~p2p_transport.wire.codec.encode_input_record`: that player's inputs, frames on the
#: wire, strictly increasing), an episode end (0x05,
#: :func:`~p2p_transport.wire.codec.encode_v1_episode_end`: the episode and its last frame,
#: counted from the episode's frame 0), or, in a room of more than two, a control message (0x22,
#: :func:`~p2p_transport.wire.codec.encode_control` with sequence 0) of kind ``SEAT_LEFT`` (0x08):
#: that player's report that another left, its payload as the player sent it
#: (:mod:`p2p_transport.wire.control_payloads`: how far it holds the inputs of the player who
#: left, and the last of them).
#: :class:`~p2p_transport.rollback.spectator.SpectatorSession` plays them.
ROOM_READY_EVENT: Final = "room_ready"
#: ``{room, player_index, peer_index, peer_client?, ice_servers?, relay_ticket?}``: ``peer_client``
#: the peer's ``client`` id (the same one again: the same peer came back through the server, and
#: the game goes on), ``ice_servers`` TURN credentials the server minted for this player,
#: ``relay_ticket`` this player's key to the relay's lean path (:data:`RELAY_SOCKET_PATH`).
PAIRED_EVENT: Final = "paired"
#: WebRTC signaling; deployed interactive_gym / mug peers use the same event name.
SIGNAL_EVENT: Final = "webrtc_signal"
#: A signal's addressee, a player index: needed in rooms of more than two players, optional in a
#: two-player room (where a signal without it goes to the other member unchanged, as before).
SIGNAL_TO: Final = "to"
#: Set by the server on every signal it forwards that had :data:`SIGNAL_TO`: the sender's player
#: index (whatever the sender put there).
SIGNAL_FROM: Final = "from"
#: Binary packets through the server to the other room member (the relay path).
RELAY_EVENT: Final = "relay"
#: The relay's envelope in rooms of more than two players: a player's packet starts with one
#: byte, the player index it is for, or ``RELAY_TO_ALL`` for every other player (the server fans
#: it out: one packet in, counted once against the sender's limits); each packet the server
#: delivers there starts with the sender's player index instead. So a player sends what is the
#: same for everyone (its inputs) once to all, and only what belongs to one link (pings,
#: acknowledgements) addressed. Spectators get no player's packet as it is, but the server's
#: spectator feed (inputs, episode ends, reports of a player who left), in an envelope of the
#: same shape: see :data:`ROOM_READY_EVENT`.
RELAY_TO_ALL: Final = 0xFF
#: The relay's lean path: a plain WebSocket at ``RELAY_SOCKET_PATH?ticket=T&room=R`` carrying one
#: binary frame per packet, each way, where a Socket.IO binary event costs the server two
#: WebSocket messages and Engine.IO's per-message tasks. ``paired`` carries ``relay_ticket``, good
#: for one socket of this player's; the room in the URL lets a load balancer route it.
RELAY_SOCKET_PATH: Final = "/relay"
PEER_LEFT_EVENT: Final = "peer_left"
ERROR_EVENT: Final = "error"

SIGNAL_TYPES: Final = frozenset({"offer", "answer", "ice-candidate"})

#: The page hands the server its telemetry record to keep (the reference server started with a
#: data directory): ``{save_id, part, parts, data}``, the record's JSON text in parts, in order.
SAVE_TELEMETRY_EVENT: Final = "save_telemetry"
#: The server's answer once the whole record is on disk and flushed: ``{save_id, bytes, file}``,
#: or ``{save_id, error}``.
TELEMETRY_SAVED_EVENT: Final = "telemetry_saved"
#: JSON characters per part. The record's text is ASCII (``json.dumps`` escapes the rest), so a
#: part and its envelope stay under the server's 64 KiB message limit.
TELEMETRY_PART_CHARS: Final = 48 * 1024
#: The largest record the server keeps: a session's telemetry is at most about 730 kB (every
#: ring full), and a rollback record adds about 8 characters a frame (under 2 MB an hour).
MAX_TELEMETRY_CHARS: Final = 16 * 1024 * 1024


def relay_socket_url(server_url: str, ticket: str, room: str) -> str:
    """The lean relay socket's URL on the server at ``server_url`` (``http(s)://host[:port]``)."""
    scheme, sep, rest = server_url.partition("://")
    if not sep or scheme not in ("http", "https"):
        raise UsageError(f"not an http(s) URL: {server_url!r}")
    host = rest.split("/", 1)[0]
    query = urlencode({"ticket": ticket, "room": room})
    return f"{'wss' if scheme == 'https' else 'ws'}://{host}{RELAY_SOCKET_PATH}?{query}"


def telemetry_parts(save_id: str, text: str) -> list[dict[str, Any]]:
    """The ``save_telemetry`` payloads that carry ``text``; ``ValueError`` if it is too long."""
    if len(text) > MAX_TELEMETRY_CHARS:
        raise UsageError(
            f"the telemetry record is {len(text)} characters, over the {MAX_TELEMETRY_CHARS} "
            "a server keeps"
        )
    chunks = [text[i : i + TELEMETRY_PART_CHARS] for i in range(0, len(text), TELEMETRY_PART_CHARS)]
    return [
        {"save_id": save_id, "part": index, "parts": len(chunks), "data": chunk}
        for index, chunk in enumerate(chunks)
    ]


#: The room a client joins when it names none.
DEFAULT_ROOM: Final = "default"
#: A room is a two-player game unless its joiners say otherwise: player 0 offers, player 1 answers.
PLAYERS_PER_ROOM: Final = 2
#: The fewest and the most players a room can have: a full mesh of 8 is 28 DataChannels, each tab
#: keeping 7 (the rollback layer's costs grow with every peer).
MIN_PLAYERS: Final = 2
MAX_PLAYERS: Final = 8
#: Spectators per room by default: each costs the server a packet for every player's packet that
#: brings a new input.
MAX_SPECTATORS: Final = 16
#: Room names are keys in server memory and appear in logs; bounded so that a client cannot make
#: either grow without limit.
MAX_ROOM_NAME_CHARS: Final = 64
#: A page's ``client`` id is a random token of a few dozen characters; longer is refused.
MAX_CLIENT_ID_CHARS: Final = 64
#: The largest packet the codec produces is :data:`~p2p_transport.wire.codec.MAX_PACKET_BYTES`
#: (an input response of 256 inputs); 4 KiB leaves room for later message types, and
#: anything larger is a bug or hostile, refused rather than forwarded to the peer.
MAX_RELAY_BYTES: Final = 4096

if MAX_PACKET_BYTES > MAX_RELAY_BYTES:  # pragma: no cover - a build-time consistency check
    raise ImportError(f"the codec's largest packet ({MAX_PACKET_BYTES} B) exceeds the relay limit")

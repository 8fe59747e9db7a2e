"""The transport for a page whose game loop is JavaScript: what ``p2pShim.connect`` drives.

Only plain values cross: the options come in as JSON text, stats and telemetry go out as JSON
text (the shim parses them into plain objects), an input is two numbers, an event a name and a
plain object. The shim keeps the one Python object and destroys it at ``close()``, so nothing
of Python is left with the page.
"""

from __future__ import annotations

import asyncio
import functools
import json
import weakref
from collections.abc import Callable
from typing import Any, Final, ParamSpec, TypeVar

import js

from p2p_transport.browser.mesh import MeshTransport
from p2p_transport.browser.mesh_pairing import MeshCallbacks
from p2p_transport.browser.options import IceServer, TransportOptions
from p2p_transport.browser.spectator import SpectatorTransport
from p2p_transport.browser.transport import BrowserTransport
from p2p_transport.errors import InvalidStateError, P2PTransportError, UsageError
from p2p_transport.protocol.reconnect import ReconnectConfig
from p2p_transport.protocol.routing import RouteMode
from p2p_transport.rollback.spectator import read_feed_packet
from p2p_transport.session import Callbacks, SessionConfig
from p2p_transport.wire.codec import DecodeError
from p2p_transport.wire.dialects import REFUSAL_EVENTS, MugDialect
from p2p_transport.wire.signaling import PLAYERS_PER_ROOM

__all__ = ["OPTION_NAMES", "JsConnection", "live_proxies", "open_connections", "parse_options"]

#: What ``p2pShim.connect`` takes besides its callbacks, and the type each must have.
OPTION_NAMES: Final = {
    "serverUrl": str,
    "room": str,
    "iceServers": list,
    "relayOnly": bool,
    "routeMode": str,
    "token": str,
    "dialect": dict,
    "reconnect": bool,
    "connectTimeoutMs": float,
    "players": int,
    "spectator": bool,
}
#: Events after which ``connect()`` can no longer pair: the promise rejects with their message.
#: (A dialect's refusal events and ``error`` are in ``REFUSAL_EVENTS``.)
_FAILURES: Final = ("refused", "room_full", "connect_failed")
#: The event after which ``connect()`` resolves: two players' ``paired``, a mesh's
#: ``room_ready`` (its links' own ``paired`` events carry a ``peer``).
_READY: Final = ("paired", "room_ready")
#: What the ``dialect`` option takes: ``{name: "mug", subjectId?, turnUrls?}`` (see
#: :class:`~p2p_transport.wire.dialects.MugDialect`); without it, the reference server's.
DIALECT_NAMES: Final = ("mug",)
_MUG_KEYS: Final = {"name": str, "subjectId": str, "turnUrls": list}

#: The options that are TransportOptions fields as they are, and the field each is.
_FIELDS: Final = {
    "serverUrl": "server_url",
    "room": "room",
    "relayOnly": "relay_only",
    "token": "token",
    "connectTimeoutMs": "connect_timeout_ms",
    "players": "players",
    "spectator": "spectator",
}

# Every connection made, while it lives: what the tests count after close().
_made: weakref.WeakSet[JsConnection] = weakref.WeakSet()


def parse_options(options_json: str, attach: bool = False) -> TransportOptions:
    """``connect()``'s options as :class:`TransportOptions`; ``ValueError`` naming the option,
    what was wrong and what is allowed. ``attach``: the page gave its own socket."""
    options = json.loads(options_json)
    if not isinstance(options, dict):
        raise UsageError("connect() takes one options object")
    for name, value in options.items():
        kind = OPTION_NAMES.get(name)
        if kind is None:
            allowed = ", ".join([*OPTION_NAMES, "socket", "onInput", "onEvent"])
            raise UsageError(f"unknown option {name!r}: connect() takes {allowed}")
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if kind is float and (value is None or number):
            continue  # a number of milliseconds, or null for no bound
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise UsageError(f"{name} must be a {_JS_TYPES[kind]}, got {json.dumps(value)}")
    route = options.get("routeMode", RouteMode.PARALLEL.value)
    modes = [mode.value for mode in RouteMode]
    if route not in modes:
        raise UsageError(f"routeMode must be one of {', '.join(modes)}, got {route!r}")
    fields: dict[str, Any] = {
        _FIELDS[name]: value for name, value in options.items() if name in _FIELDS
    }
    if "iceServers" in options:
        try:
            fields["ice_servers"] = tuple(IceServer.of(server) for server in options["iceServers"])
        except (TypeError, ValueError) as error:
            raise UsageError(f"iceServers: {error}") from None
    if options.get("reconnect") is False:
        # A DataChannel lost stays lost: the relay carries the game from then on.
        fields["reconnect"] = ReconnectConfig(max_attempts=0)
    if "dialect" in options:
        fields["dialect"] = _dialect(options["dialect"], attach)
    elif attach:
        raise UsageError('socket needs a dialect that attaches: dialect: {name: "mug"}')
    # TransportOptions checks the rest (an empty room, say) with the same kind of message.
    return TransportOptions(**fields, session=SessionConfig(route_mode=RouteMode(route)))


def _dialect(spec: dict[str, Any], attach: bool) -> MugDialect:
    if spec.get("name") not in DIALECT_NAMES:
        raise UsageError(
            f"dialect.name must be one of {', '.join(DIALECT_NAMES)}, got {spec.get('name')!r}"
        )
    for key, value in spec.items():
        kind = _MUG_KEYS.get(key)
        if kind is None:
            raise UsageError(f"unknown dialect option {key!r}: it takes {', '.join(_MUG_KEYS)}")
        if not isinstance(value, kind):
            raise UsageError(f"dialect.{key} must be a {_JS_TYPES[kind]}, got {json.dumps(value)}")
    return MugDialect(spec.get("subjectId"), attach=attach, turn_urls=spec.get("turnUrls", ()))


_JS_TYPES: Final = {
    int: "whole number",
    str: "string",
    list: "array",
    bool: "boolean",
    dict: "object",
    float: "number or null",
}

#: The built-in classes a page reads an error by, the more telling first. The shim shows a
#: Python error's last line, and the README documents those lines (``ValueError: routeMode must
#: be one of...``): the package's own classes reach the page as the built-in class each also is.
_JS_ERROR_CLASSES: Final = (RuntimeError, TypeError, AssertionError, ValueError)

_P = ParamSpec("_P")
_R = TypeVar("_R")


def _as_builtin(error: P2PTransportError) -> Exception:
    """``error`` as the built-in exception it also is, with the same message."""
    builtin = next((cls for cls in _JS_ERROR_CLASSES if isinstance(error, cls)), Exception)
    return builtin(*error.args)


def _builtin_errors(method: Callable[_P, _R]) -> Callable[_P, _R]:
    """``method``, raising the package's errors to the page as :func:`_as_builtin` does."""

    @functools.wraps(method)
    def reported(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return method(*args, **kwargs)
        except P2PTransportError as error:
            raise _as_builtin(error) from None

    return reported


class JsConnection:
    """One ``p2pShim.connect()``: a :class:`BrowserTransport` (two players), a
    :class:`MeshTransport` (``players`` above two) or a :class:`SpectatorTransport`
    (``spectator: true``) whose game is JavaScript.

    ``on_input(frame, action, player)`` and ``on_event(name, detail)`` are the page's
    functions; ``on_paired(player_index, player_count)`` (at ``paired``, or ``room_ready``;
    a spectator's index is ``None``) and ``on_refused(message)`` settle the promise
    ``connect()`` returned. A spectator's ``on_input`` gets every player's inputs from the
    server's feed, its frames those on the wire, and each player's episode end is an
    ``episode_end`` event (``player``, ``episode``, ``frame``: its last, from the episode's 0),
    each report that a player left a ``seat_left`` event (``player``, ``by``, ``episode``,
    ``frame``: the last of its inputs the reporter holds, ``actions``: its last ones; the
    players take the furthest report once all who stay have sent theirs).
    """

    @_builtin_errors
    def __init__(
        self,
        options_json: str,
        on_input: Callable[[int, int, int], object],
        on_event: Callable[[str, Any], object] | None,
        on_paired: Callable[[int | None, int], object],
        on_refused: Callable[[str], object],
        socket: Any = None,
    ) -> None:
        options = parse_options(options_json, attach=socket is not None)
        # The page's own socket (a mug page's, which did the lobby), if it gave one.
        self._socket = socket
        self._on_input_js: Callable[[int, int, int], object] | None = on_input
        self._on_event_js = on_event
        self._settle: tuple[Callable[[int | None, int], object], Callable[[str], object]] | None = (
            on_paired,
            on_refused,
        )
        #: Spectator feed packets that could not be read (counted, dropped).
        self.feed_malformed = 0
        self.transport: BrowserTransport | MeshTransport | SpectatorTransport
        if options.spectator:
            self.transport = SpectatorTransport(options, self._on_feed_packet, self._on_event)
        elif options.players == PLAYERS_PER_ROOM:
            self.transport = BrowserTransport(
                options, Callbacks(on_input=self._on_peer_input, on_event=self._on_event)
            )
        else:
            self.transport = MeshTransport(
                options, MeshCallbacks(on_input=self._on_input, on_event=self._on_event)
            )
        self.closed = False
        _made.add(self)

    @property
    def player_index(self) -> int | None:
        transport = self.transport
        return None if isinstance(transport, SpectatorTransport) else transport.player_index

    def connect(self) -> None:
        socket, self._socket = self._socket, None
        transport = self.transport
        if isinstance(transport, BrowserTransport):
            transport.connect(socket)
        else:
            transport.connect()

    @_builtin_errors
    def close_channel(self, peer: int | None = None) -> None:
        """Close only the DataChannel (to ``peer``, in a mesh; tests take the P2P path away
        with it)."""
        transport = self.transport
        if isinstance(transport, MeshTransport):
            if not isinstance(peer, int) or isinstance(peer, bool):
                raise UsageError(f"closeChannel(peer): which peer, by player index? got {peer!r}")
            transport.close_channel(peer)
        elif isinstance(transport, BrowserTransport):
            transport.close_channel()
        else:
            raise InvalidStateError("closeChannel(): a spectator has no DataChannel")

    @_builtin_errors
    def step(self, frame: int, action: int) -> bool:
        """Send the local input for ``frame`` (``RuntimeError`` before pairing). A JavaScript
        number with an integer value arrives as an int; anything else is refused by name."""
        for name, value in (("frame", frame), ("action", action)):
            if not isinstance(value, int) or isinstance(value, bool):
                raise UsageError(f"step(): {name} must be an integer, got {value!r}")
        transport = self.transport
        if isinstance(transport, SpectatorTransport):
            raise InvalidStateError("step(): a spectator sends no input")
        return transport.step(frame, action)

    def stats_json(self) -> str:
        stats = self.transport.stats()
        if isinstance(self.transport, SpectatorTransport):
            stats["feed_malformed"] = self.feed_malformed
        return json.dumps(stats)

    def telemetry_json(self) -> str:
        transport = self.transport
        if isinstance(transport, SpectatorTransport):
            return json.dumps({"spectator": True, **transport.stats()})
        return json.dumps(transport.telemetry())

    @_builtin_errors
    def save_telemetry_json(self, extra_json: str) -> asyncio.Task[str]:
        """:meth:`BrowserTransport.save_telemetry` with ``extra`` as JSON text; the task's
        result is the server's answer as JSON text."""
        transport = self.transport
        if isinstance(transport, SpectatorTransport):
            raise InvalidStateError("saveTelemetry(): a spectator has no session record")
        saved = transport.save_telemetry(json.loads(extra_json))

        async def answer() -> str:
            try:
                return json.dumps(await saved)
            except P2PTransportError as error:  # the server refused, or the transport closed
                raise _as_builtin(error) from None

        return asyncio.ensure_future(answer())

    def close(self) -> None:
        """Close the transport and let go of the page's functions. Safe to call twice."""
        if self.closed:
            return
        self.closed = True
        self.transport.close()
        self._on_input_js = self._on_event_js = None
        self._refuse("closed before the peer paired")

    def _on_input(self, frame: int, action: int, player: int) -> None:
        if self._on_input_js is not None:
            self._on_input_js(frame, action, player)

    def _on_feed_packet(self, data: bytes) -> None:
        transport = self.transport
        assert isinstance(transport, SpectatorTransport) and transport.players is not None
        try:
            packet = read_feed_packet(data, transport.players)
        except DecodeError:
            self.feed_malformed += 1
            return
        if packet.end is not None:
            episode, frame = packet.end
            self._on_event(
                "episode_end", {"player": packet.player, "episode": episode, "frame": frame}
            )
        if packet.report is not None:
            report = packet.report
            left = {
                "player": report.player,
                "by": packet.player,
                "episode": report.episode,
                "frame": report.last_frame,
                "actions": list(report.actions),
            }
            self._on_event("seat_left", left)
        for frame, action in packet.inputs:
            self._on_input(frame, action, packet.player)

    def _on_peer_input(self, frame: int, action: int) -> None:
        peer = self.transport.peer_index if isinstance(self.transport, BrowserTransport) else None
        self._on_input(frame, action, -1 if peer is None else peer)

    def _on_event(self, name: str, detail: dict[str, Any]) -> None:
        if name in _READY and self._settle is not None and "peer" not in detail:
            on_paired, _ = self._settle
            self._settle = None
            # A mesh's or a spectator's room_ready says the room's size; a deployed server's
            # "paired" detail has its own "players" (the participants' ids).
            two = isinstance(self.transport, BrowserTransport)
            on_paired(
                detail.get("player_index"),
                PLAYERS_PER_ROOM if two else int(detail["players"]),
            )
        elif (name in REFUSAL_EVENTS or name in _FAILURES) and "peer" not in detail:
            # Each of these events' message is a sentence (see protocol.lifecycle); one link's
            # trouble (its detail names the peer) is not the room's refusal.
            self._refuse(str(detail.get("message") or json.dumps(detail, default=str)))
        if self._on_event_js is not None:
            self._on_event_js(name, js.JSON.parse(json.dumps(detail, default=str)))

    def _refuse(self, message: str) -> None:
        if self._settle is not None:
            _, on_refused = self._settle
            self._settle = None
            on_refused(message)


def open_connections() -> int:
    """Connections made and not closed."""
    return sum(1 for connection in _made if not connection.closed)


def live_proxies() -> int:
    """Proxies the connections' transports still hold for the page (0 once all are closed)."""
    return sum(connection.transport.live_proxies for connection in _made)

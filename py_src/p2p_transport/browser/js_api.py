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

from p2p_transport._guard import call_guarded
from p2p_transport.browser.mesh import MeshTransport
from p2p_transport.browser.mesh_pairing import MeshCallbacks
from p2p_transport.browser.options import IceServer, TransportOptions
from p2p_transport.browser.spectator import SpectatorTransport
from p2p_transport.browser.transport import BrowserTransport
from p2p_transport.errors import InvalidStateError, P2PTransportError, UsageError
from p2p_transport.protocol.control import ControlChannelClosed
from p2p_transport.protocol.handoff import GameHandoff, HandoffHooks, HandoffState
from p2p_transport.protocol.reconnect import ReconnectConfig
from p2p_transport.protocol.routing import RouteMode
from p2p_transport.rollback.spectator import read_feed_packet
from p2p_transport.session import Callbacks, P2PSession, SessionConfig
from p2p_transport.wire.codec import DecodeError
from p2p_transport.wire.control_payloads import RollbackKind
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

#: How often a connection that hands its game over, or waits for one, sends what its control
#: window held back and checks the wait: a few frames, against a round trip of tens of ms.
_HANDOFF_TICK_MS: Final = 50.0
#: The sessionStorage key that says this tab played in a room: it outlives a reload, not the
#: tab, and ``close()`` removes it (see :mod:`p2p_transport.protocol.handoff`).
_PLAYED_KEY: Final = "p2p_transport:played:{server}|{room}"

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

    ``save()`` and ``load(text, detail_json)``, both or neither: the page's game handed to a
    page that comes back after a reload, and taken from the other player's when this page
    comes back (two players; :mod:`p2p_transport.protocol.handoff`). A page that comes back
    settles the promise once its game is loaded (or nothing was handed over); ``on_paired``'s
    third argument is then ``load()``'s detail as JSON text, else ``None``.
    """

    @_builtin_errors
    def __init__(
        self,
        options_json: str,
        on_input: Callable[[int, int, int], object],
        on_event: Callable[[str, Any], object] | None,
        on_paired: Callable[[int | None, int, str | None], object],
        on_refused: Callable[[str], object],
        socket: Any = None,
        save: Callable[[], Any] | None = None,
        load: Callable[[str, str], object] | None = None,
    ) -> None:
        options = parse_options(options_json, attach=socket is not None)
        if (save is None) != (load is None):
            raise UsageError("resume takes both save() and load()")
        if save is not None and (options.spectator or options.players != PLAYERS_PER_ROOM):
            raise UsageError("resume is for rooms of two players (not a spectator)")
        # The page's own socket (a mug page's, which did the lobby), if it gave one.
        self._socket = socket
        self._on_input_js: Callable[[int, int, int], object] | None = on_input
        self._on_event_js = on_event
        self._settle: (
            tuple[Callable[[int | None, int, str | None], object], Callable[[str], object]] | None
        ) = (on_paired, on_refused)
        self._played_key = _PLAYED_KEY.format(server=options.server_url, room=options.room)
        self._handoff: GameHandoff | None = None
        if save is not None and load is not None:
            hooks = HandoffHooks(save, lambda game, detail: load(game, json.dumps(detail)))
            returning = js.sessionStorage.getItem(self._played_key) is not None
            self._handoff = GameHandoff(hooks, returning=returning, emit=self._on_event)
        self._handoff_timer: object | None = None
        # Inputs the handoff held while this page asked, handed on from the next timer tick:
        # after the code awaiting connect() has run.
        self._released: list[tuple[int, int]] = []
        #: Spectator feed packets that could not be read (counted, dropped).
        self.feed_malformed = 0
        self.transport: BrowserTransport | MeshTransport | SpectatorTransport
        if options.spectator:
            self.transport = SpectatorTransport(options, self._on_feed_packet, self._on_event)
        elif options.players == PLAYERS_PER_ROOM:
            self.transport = BrowserTransport(
                options,
                Callbacks(
                    on_input=self._on_peer_input,
                    on_event=self._on_event,
                    on_control=self._on_control,
                ),
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
        sent = transport.step(frame, action)
        if self._handoff is not None:
            self._handoff.stepped(frame)
        return sent

    def stats_json(self) -> str:
        stats = self.transport.stats()
        if isinstance(self.transport, SpectatorTransport):
            stats["feed_malformed"] = self.feed_malformed
        if self._handoff is not None:
            stats["resume"] = self._handoff.stats()
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
        self._stop_handoff_timer()
        self._handoff = None  # the page's save() and load()
        if isinstance(self.transport, BrowserTransport):
            # Closed on purpose: a reload after this is a new game, not one to take back.
            js.sessionStorage.removeItem(self._played_key)
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
        if self._handoff is None:
            self._hand_on([(frame, action)])
            return
        taken = self._handoff.take_input(frame, action)
        if self._released:
            self._released += taken  # after those released before it, on the next tick
        else:
            self._hand_on(taken)

    def _hand_on(self, inputs: list[tuple[int, int]], errors: dict[str, int] | None = None) -> None:
        """The peer's ``inputs`` to the page; ``errors``: counting there an ``onInput`` that
        throws (from a timer of this class's, where nothing else would) and going on."""
        peer = self.transport.peer_index if isinstance(self.transport, BrowserTransport) else None
        player = -1 if peer is None else peer
        for frame, action in inputs:
            if errors is None:
                self._on_input(frame, action, player)
            elif not call_guarded(self._on_input, frame, action, player, what="onInput"):
                errors["callback_errors"] += 1

    def _on_control(self, kind: int, payload: bytes) -> None:
        transport = self.transport
        assert isinstance(transport, BrowserTransport)
        if self._handoff is not None:
            self._released += self._handoff.on_control(kind, payload, transport.clock())
            self._tend_handoff()
        elif kind == RollbackKind.RESUME_ASK and transport.session is not None:
            # This page lends no game: nothing to resume, at once rather than the asker's wait.
            _send_within_window(transport.session, [(RollbackKind.RESUME, b"")])

    def _on_handoff_event(self, name: str, detail: dict[str, Any]) -> None:
        """Keep the handoff in step with the pairing: ask or wait at ``paired``, wait for the
        peer at ``peer_left``."""
        handoff = self._handoff
        if handoff is None or "peer" in detail:
            return
        if name == "paired":
            js.sessionStorage.setItem(self._played_key, "1")
            self._released += handoff.paired(self.transport.clock())
            self._tend_handoff()
        elif name == "peer_left":
            self._released += handoff.peer_left()
            self._tend_handoff()

    def _tend_handoff(self) -> None:
        """Send what the control window lets through, give up a wait that lasted too long, and
        settle the promise once this page is no longer asking; a timer comes back while there
        is more to do."""
        handoff = self._handoff
        transport = self.transport
        assert handoff is not None and isinstance(transport, BrowserTransport)
        if self._settle is None:
            released, self._released = self._released, []
            self._hand_on(released, handoff.counts)
        session = transport.session
        version = None if session is None else session.parts.inputs.negotiation.peer_version
        self._released += handoff.tick(transport.clock(), version)
        outbox = handoff.outbox
        if session is not None:
            _send_within_window(session, outbox)
        if handoff.state is not HandoffState.ASKING:
            self._settle_paired()
        if outbox or self._released or handoff.state is HandoffState.ASKING:
            if self._handoff_timer is None:
                self._handoff_timer = transport.scheduler.set_interval(
                    self._tend_handoff, _HANDOFF_TICK_MS
                )
        else:
            self._stop_handoff_timer()

    def _stop_handoff_timer(self) -> None:
        if self._handoff_timer is not None:
            assert isinstance(self.transport, BrowserTransport)
            self.transport.scheduler.clear_interval(self._handoff_timer)
            self._handoff_timer = None

    def _settle_paired(self) -> None:
        if self._settle is None:
            return
        on_paired, _ = self._settle
        self._settle = None
        transport = self.transport
        # (At "paired" the session has this side's index already; the pairing has it after.)
        assert isinstance(transport, BrowserTransport) and transport.session is not None
        resumed = self._handoff.resumed if self._handoff is not None else None
        on_paired(
            transport.session.player_index,
            PLAYERS_PER_ROOM,
            None if resumed is None else json.dumps(resumed),
        )

    def _on_event(self, name: str, detail: dict[str, Any]) -> None:
        self._on_handoff_event(name, detail)
        if name in _READY and self._settle is not None and "peer" not in detail:
            if isinstance(self.transport, BrowserTransport):
                # Unless this page asked for its game back: settled once the answer is in.
                if self._handoff is None or self._handoff.state is not HandoffState.ASKING:
                    self._settle_paired()
            else:
                on_paired, _ = self._settle
                self._settle = None
                # A mesh's or a spectator's room_ready says the room's size.
                on_paired(detail.get("player_index"), int(detail["players"]), None)
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


def _send_within_window(session: P2PSession, outbox: list[tuple[int, bytes]]) -> None:
    """Send ``outbox``'s control messages in order, as far as the control window lets them
    (what is left stays in it); a session that ended takes nothing (the next pairing starts
    over)."""
    control = session.parts.control
    try:
        while outbox and not control.window_full:
            control.send(*outbox.pop(0))
    except ControlChannelClosed:
        outbox.clear()


def open_connections() -> int:
    """Connections made and not closed."""
    return sum(1 for connection in _made if not connection.closed)


def live_proxies() -> int:
    """Proxies the connections' transports still hold for the page (0 once all are closed)."""
    return sum(connection.transport.live_proxies for connection in _made)

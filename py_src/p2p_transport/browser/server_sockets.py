"""The signaling server's two sockets as the browser holds them, each reporting to a tab's
pairing (a :class:`~p2p_transport.browser.room_listener.RoomListener`).

:class:`ServerSocket` is the socket.io-client connection (joining, pairing, signaling, the relay
as events); :class:`RelaySocket` the server's lean relay WebSocket (one frame per packet, see
``RELAY_SOCKET_PATH``); :class:`DialectRelay` the session's relay path over both.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import js

from p2p_transport.browser.adapters import (
    JsDataChannel,
    JsSocketIO,
    ProxyRegistry,
    js_object,
    payload_bytes,
)
from p2p_transport.browser.options import TransportOptions
from p2p_transport.browser.pairing import CloseRelaySocket, OpenRelaySocket, SendToServer
from p2p_transport.browser.room_listener import RoomListener
from p2p_transport.wire.dialects import Dialect
from p2p_transport.wire.signaling import relay_socket_url

__all__ = ["DialectRelay", "RelaySocket", "ServerConnection", "ServerSocket"]


def _reason(error: Any) -> str:
    """A socket.io-client connect_error's message."""
    message = getattr(error, "message", None)
    return str(message) if message is not None else str(error)


class ServerSocket:
    """The socket.io-client socket: its events go to ``pairing``, whose dialect names them.

    The transport's own socket (``page_socket=None``), or one the page already has (attached:
    only this class's own handlers are added, and removed at :meth:`close`, which leaves the
    page's socket connected).
    """

    def __init__(
        self,
        server_url: str | None,
        room: str,
        pairing: RoomListener,
        proxies: ProxyRegistry,
        page_socket: Any = None,
    ) -> None:
        self._attached = page_socket is not None
        if page_socket is not None:
            self.raw: Any = page_socket
        else:
            # The room in the URL lets a load balancer put both players on one server process
            # (p2p_server.cluster hashes it).
            opts = js_object(
                {"transports": ["websocket"], "forceNew": True, "query": {"room": room}}
            )
            self.raw = js.io(server_url, opts) if server_url else js.io(opts)
        self._pairing = pairing
        self._binary_events = pairing.dialect.binary_events
        self._handlers: list[tuple[str, Any]] = []

        def on(event: str, handler: Any) -> None:
            proxy = proxies.create(handler)
            self._handlers.append((event, proxy))
            self.raw.on(event, proxy)

        on("connect", lambda *_: pairing.socket_connected())
        # The client's own events: it could not reach the server (it retries with backoff), or
        # lost it (close() removes every handler first, so its own disconnect is not reported).
        on("connect_error", lambda err, *_: pairing.server_unreachable(_reason(err)))
        # socket.io-client passes the reason and, for some reasons, a description.
        on("disconnect", lambda reason, *_: pairing.server_lost(str(reason)))
        for event in pairing.dialect.events:
            on(event, partial(self._on_event, event))
        if self._attached and self.raw.connected:
            # The page's socket is up already: no connect event is coming.
            pairing.socket_connected()

    def _on_event(self, event: str, data: Any) -> None:
        try:
            if event in self._binary_events:
                value: Any = payload_bytes(data)
            else:
                value = data.to_py() if hasattr(data, "to_py") else data
        except Exception as exc:
            self._pairing.unreadable(event, exc)
            return
        self._pairing.server_event(event, value)

    def emit(self, event: str, payload: Any) -> None:
        """Emit ``payload`` (plain data) as plain JS objects."""
        self.raw.emit(event, js_object(payload))

    def relay(self, dialect: Dialect) -> DialectRelay:
        """The session's relay path over this socket."""
        return DialectRelay(JsSocketIO(self.raw), dialect)

    def close(self) -> None:
        """Drop this side's handlers first, so its own disconnect is not reported, then go; an
        attached socket is the page's, and stays."""
        for event, proxy in self._handlers:
            self.raw.off(event, proxy)
        self._handlers.clear()
        if not self._attached:
            self.raw.disconnect()


class RelaySocket:
    """The server's lean relay WebSocket, opened with a ``paired`` (or ``room_ready``) ticket. Its
    packets go to ``on_packet``; the sessions send on it through :class:`DialectRelay` while it
    is open."""

    def __init__(
        self,
        server_url: str | None,
        room: str,
        ticket: str,
        on_packet: Callable[[bytes], None],
        proxies: ProxyRegistry,
    ) -> None:
        base = server_url or str(js.location.origin)
        raw = js.WebSocket.new(relay_socket_url(base, ticket, room))
        raw.binaryType = "arraybuffer"
        self._on_packet = on_packet
        self._proxies = proxies
        channel = self.channel = JsDataChannel(raw)
        channel.state_changed("connecting")
        raw.onopen = proxies.create(lambda *_: channel.state_changed("open"))
        raw.onclose = proxies.create(lambda *_: channel.state_changed("closed"))
        raw.onmessage = proxies.create(self._on_message)

    def _on_message(self, event: Any) -> None:
        self._on_packet(payload_bytes(event.data))

    def close(self) -> None:
        self.channel.state_changed("closed")
        raw = self.channel.raw
        raw.onopen = raw.onclose = raw.onmessage = None
        raw.close()
        self._proxies.destroy_all()


class DialectRelay:
    """The session's relay path as the dialect carries it: each packet translated (or left out,
    where the server's relay cannot carry it) and emitted on the socket, or sent as it is on the
    server's lean relay socket while one is open."""

    def __init__(self, socket: JsSocketIO, dialect: Dialect) -> None:
        self._socket = socket
        self._dialect = dialect
        #: The lean relay socket, set by the transport while it has one.
        self.lean: JsDataChannel | None = None

    @property
    def connected(self) -> bool:
        lean = self.lean
        # The lean socket's state is kept from its events; the Socket.IO socket's is read through
        # the proxy (about 1 us in Pyodide), so it is asked only when the lean socket is not open.
        return (lean is not None and lean.readyState == "open") or self._socket.connected

    def emit(self, event: str, data: bytes) -> object:
        lean = self.lean
        if lean is not None and lean.readyState == "open":
            lean.send(data)
            return None
        outgoing = self._dialect.relay(data)
        if outgoing is None:
            return None
        return self._socket.emit_data(*outgoing)


class ServerConnection:
    """A tab's connection to the signaling server: its Socket.IO socket (the transport's own, or
    the page's), the sessions' relay path over it, and the lean relay WebSocket while a ticket
    opens one. It carries out the pairing's server actions (:meth:`carry_out`); a ticket that
    comes while the lean socket is open (the room readied again) leaves it open, since the
    server writes to it until another claims the new ticket."""

    def __init__(
        self,
        options: TransportOptions,
        listener: RoomListener,
        proxies: ProxyRegistry,
        on_relay_packet: Callable[[bytes], None],
    ) -> None:
        self._options = options
        self._listener = listener
        self._proxies = proxies
        self._on_relay_packet = on_relay_packet
        # The lean relay socket's handlers live and die with it.
        self._relay_proxies = ProxyRegistry()
        #: The Socket.IO socket, from :meth:`open` to :meth:`close`.
        self.socket: ServerSocket | None = None
        self._relay: DialectRelay | None = None
        self._relay_socket: RelaySocket | None = None

    @property
    def live_proxies(self) -> int:
        """The lean relay socket's handlers still held (the Socket.IO socket's are the tab's)."""
        return self._relay_proxies.live

    @property
    def relay_socket_state(self) -> str:
        """The lean relay socket's ``readyState``, or ``none``."""
        relay_socket = self._relay_socket
        return relay_socket.channel.readyState if relay_socket is not None else "none"

    def open(self, page_socket: Any = None) -> None:
        """Open the transport's own socket, or attach to ``page_socket``."""
        options = self._options
        self.socket = ServerSocket(
            options.server_url, options.room, self._listener, self._proxies, page_socket
        )

    def relay(self) -> DialectRelay:
        """The sessions' relay path over the socket (and the lean socket while it is open)."""
        assert self.socket is not None  # pairing comes over the socket
        relay = self._relay = self.socket.relay(self._listener.dialect)
        if self._relay_socket is not None:
            relay.lean = self._relay_socket.channel
        return relay

    def carry_out(self, action: object) -> bool:
        """Carry out ``action`` if it is the server's; ``False`` if it is not."""
        if isinstance(action, SendToServer):
            if self.socket is not None:
                self.socket.emit(action.event, action.payload)
        elif isinstance(action, OpenRelaySocket):
            if self.relay_socket_state in ("open", "connecting"):
                return True  # still this tab's on the server: what is on its way stays
            self._close_relay_socket()
            options = self._options
            relay_socket = self._relay_socket = RelaySocket(
                options.server_url,
                options.room,
                action.ticket,
                self._on_relay_packet,
                self._relay_proxies,
            )
            if self._relay is not None:
                self._relay.lean = relay_socket.channel
        elif isinstance(action, CloseRelaySocket):
            self._close_relay_socket()
        else:
            return False
        return True

    def _close_relay_socket(self) -> None:
        relay_socket, self._relay_socket = self._relay_socket, None
        if self._relay is not None:
            self._relay.lean = None
        if relay_socket is not None:
            relay_socket.close()

    def close(self) -> None:
        """Close the lean socket and leave the server (an attached socket stays the page's)."""
        self._close_relay_socket()
        if self.socket is not None:
            self.socket.close()
            self.socket = None

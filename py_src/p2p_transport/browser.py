"""The browser edge: the only module that imports ``js`` and ``pyodide.ffi``.

It adapts the browser's objects to the sans-IO core (an RTCDataChannel to ``DataChannelLike``, a
socket.io-client socket to ``SocketIOLike``, the JS shim's ``setInterval`` to ``Scheduler``) and
sets up the WebRTC connection over Socket.IO signaling, all in Python through ``js`` proxies.

Hot paths stay synchronous: a DataChannel message goes from the browser's event straight into
``P2PSession.on_message`` and a ping is answered inside that call, with no asyncio hop. Only the
one-off signaling steps (offer, answer) await promises.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import js
from pyodide.ffi import JsProxy, create_proxy, jsnull, to_js

from .receiver import InputCallback
from .relay import RELAY_EVENT
from .scripted_game import ScriptedGame
from .session import DEFAULT_PING_INTERVAL_MS, P2PSession, SessionConfig
from .timing import Clock, monotonic_ms

__all__ = [
    "BrowserTransport",
    "DemoTab",
    "IceServer",
    "JsDataChannel",
    "JsSocketIO",
    "ProxyRegistry",
    "ShimScheduler",
    "TransportOptions",
]

logger = logging.getLogger(__name__)

#: The label and options deployed peers use: unordered and without retransmits, because a late
#: input is worth less than the next packet, which carries it again.
CHANNEL_LABEL: Final = "game"
SIGNAL_EVENT: Final = "webrtc_signal"


def _js_object(value: Any) -> Any:
    """A Python dict/list as plain JS objects/arrays (what browser APIs expect)."""
    return to_js(value, dict_converter=js.Object.fromEntries)


class ProxyRegistry:
    """Creates the proxies JS keeps (event handlers, timer callbacks) and destroys them together.

    A proxy that is never destroyed leaks its Python callable; one destroyed too early makes the
    next JS call fail. Keeping them in one place lets :meth:`destroy_all` free them at close and
    lets tests count what is alive.
    """

    def __init__(self) -> None:
        self._live: dict[int, JsProxy] = {}
        self.created = 0

    def create(self, func: Callable[..., Any]) -> JsProxy:
        proxy = create_proxy(func)
        self._live[id(proxy)] = proxy
        self.created += 1
        return proxy

    def destroy(self, proxy: JsProxy) -> None:
        if self._live.pop(id(proxy), None) is not None:
            proxy.destroy()

    def destroy_all(self) -> None:
        for proxy in self._live.values():
            proxy.destroy()
        self._live.clear()

    @property
    def live(self) -> int:
        return len(self._live)


def _payload_bytes(data: Any) -> bytes:
    """An incoming ArrayBuffer as bytes; anything else (a string from a confused peer) as garbage
    bytes the codec will reject and count, so it is never silently dropped."""
    try:
        payload: bytes = data.to_bytes()
    except AttributeError:
        return str(data).encode()
    return payload


class JsDataChannel:
    """An RTCDataChannel as ``DataChannelLike``.

    Outgoing bytes are copied into a Uint8Array kept per packet length and reused: ``send`` copies
    its argument, so reuse is safe. In send loops in Chromium here, a fresh typed array per packet
    (what ``to_js(bytes)`` makes) cost 60-150 us a send against under 10 us for a reused one. A
    game sends a handful of distinct lengths, so the cache stays tiny.
    """

    def __init__(self, raw: Any) -> None:
        self.raw = raw
        # Bound once: a method lookup through the proxy on every packet costs measurable time.
        self._send = raw.send
        self._buffers: dict[int, Any] = {}
        # Kept from the open/close events rather than read through the proxy on every send
        # (3 us each). A send in the short "closing" state throws and is counted as a send error.
        self._state = str(raw.readyState)

    def state_changed(self, state: str) -> None:
        self._state = state

    def send(self, data: bytes) -> None:
        buffer = self._buffers.get(len(data))
        if buffer is None:
            buffer = self._buffers[len(data)] = js.Uint8Array.new(len(data))
        buffer.assign(data)
        self._send(buffer)

    @property
    def readyState(self) -> str:
        return self._state

    @property
    def bufferedAmount(self) -> int:
        amount: int = self.raw.bufferedAmount
        return amount


class JsSocketIO:
    """A socket.io-client socket as ``SocketIOLike``."""

    def __init__(self, raw: Any) -> None:
        self.raw = raw

    @property
    def connected(self) -> bool:
        return bool(self.raw.connected)

    def emit(self, event: str, data: bytes) -> object:
        return self.raw.emit(event, to_js(data))


class ShimScheduler:
    """``Scheduler`` over the JS shim's ``setInterval``/``clearInterval`` (counted by the shim)."""

    def __init__(self, proxies: ProxyRegistry, shim: Any | None = None) -> None:
        self._shim = shim if shim is not None else js.p2pShim
        self._proxies = proxies
        self._callbacks: dict[int, JsProxy] = {}

    def set_interval(self, callback: Callable[[], None], interval_ms: float) -> object:
        proxy = self._proxies.create(callback)
        handle = int(self._shim.setInterval(proxy, interval_ms))
        self._callbacks[handle] = proxy
        return handle

    def clear_interval(self, handle: object) -> None:
        self._shim.clearInterval(handle)
        if isinstance(handle, int) and (proxy := self._callbacks.pop(handle, None)) is not None:
            self._proxies.destroy(proxy)

    def clear_all(self) -> None:
        for handle in list(self._callbacks):
            self.clear_interval(handle)


@dataclass(frozen=True, slots=True)
class IceServer:
    urls: str | Sequence[str]
    username: str | None = None
    credential: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"urls": self.urls if isinstance(self.urls, str) else list(self.urls)}
        if self.username is not None:
            out["username"] = self.username
        if self.credential is not None:
            out["credential"] = self.credential
        return out


@dataclass(frozen=True, slots=True)
class TransportOptions:
    """How one tab connects. The defaults suit two tabs on one machine or one LAN."""

    server_url: str = ""
    room: str = "default"
    #: No ICE servers by default: peers on one host or LAN connect over host candidates, and a
    #: STUN server that cannot be reached only slows gathering down.
    ice_servers: tuple[IceServer, ...] = ()
    #: Force every packet through a TURN server (``iceTransportPolicy: "relay"``).
    relay_only: bool = False
    session: SessionConfig = field(default_factory=SessionConfig)


EventCallback = Callable[[str, dict[str, Any]], None]


class BrowserTransport:
    """One tab's end of the transport: Socket.IO signaling and relay, WebRTC, and the session.

    ``on_event(name, detail)`` hears ``joined``, ``paired``, ``open``, ``closed``, ``failed``,
    ``peer_left`` and ``error``. The session exists from ``paired`` on.
    """

    def __init__(
        self,
        options: TransportOptions,
        on_input: InputCallback,
        on_event: EventCallback | None = None,
    ) -> None:
        self.options = options
        self._on_input = on_input
        self._on_event = on_event
        self.proxies = ProxyRegistry()
        # The peer connection's handlers live and die with it, so a reconnection frees the old ones.
        self._pc_proxies = ProxyRegistry()
        self._shim = js.p2pShim
        self.scheduler = ShimScheduler(self.proxies, self._shim)
        self.clock: Clock = monotonic_ms
        self.session: P2PSession | None = None
        self.player_index: int | None = None
        self.socket: Any = None
        self.pc: Any = None
        self.channel: JsDataChannel | None = None
        self._pending_candidates: list[Any] = []
        self._remote_description_set = False
        self._closed = False
        self._tasks: set[asyncio.Task[None]] = set()
        self.events: list[tuple[float, str]] = []

    # --- setup --------------------------------------------------------------------------------

    def connect(self) -> None:
        """Open the Socket.IO connection and join the room; the rest follows from events."""
        opts = _js_object({"transports": ["websocket"], "forceNew": True})
        url = self.options.server_url
        self.socket = js.io(url, opts) if url else js.io(opts)
        on = self.socket.on
        on("connect", self.proxies.create(self._on_socket_connect))
        on("joined", self.proxies.create(self._on_joined))
        on("paired", self.proxies.create(self._on_paired))
        on(SIGNAL_EVENT, self.proxies.create(self._on_signal))
        on(RELAY_EVENT, self.proxies.create(self._on_relay))
        on("peer_left", self.proxies.create(self._on_peer_left))
        on("error", self.proxies.create(self._on_server_error))

    def _emit_event(self, name: str, detail: dict[str, Any] | None = None) -> None:
        self.events.append((self.clock(), name))
        if self._on_event is not None:
            try:
                self._on_event(name, detail or {})
            except Exception:
                logger.exception("on_event callback failed for %s", name)

    def _spawn(self, coro: Any, what: str) -> None:
        async def guarded() -> None:
            try:
                await coro
            except Exception as exc:
                logger.exception("%s failed", what)
                self._emit_event("error", {"message": f"{what} failed: {exc}"})
                if self.session is not None:
                    self.session.on_failed()

        task = asyncio.ensure_future(guarded())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _on_socket_connect(self, *_: Any) -> None:
        self.socket.emit("join", _js_object({"room": self.options.room}))

    def _on_joined(self, data: Any) -> None:
        detail = data.to_py()
        self._emit_event("joined", detail)

    def _on_paired(self, data: Any) -> None:
        detail = data.to_py()
        player, peer = int(detail["player_index"]), int(detail["peer_index"])
        if self.session is not None:
            # A new peer in the room after the old one left: start the connection afresh.
            self._close_peer_connection()
            self.session.close()
        self.player_index = player
        self.session = P2PSession(
            player,
            peer,
            on_input=self._on_input,
            clock=self.clock,
            scheduler=self.scheduler,
            relay=JsSocketIO(self.socket),
            config=self.options.session,
        )
        self._emit_event("paired", detail)
        self._open_peer_connection(offerer=player < peer)

    def _open_peer_connection(self, offerer: bool) -> None:
        config: dict[str, Any] = {
            "iceServers": [server.to_dict() for server in self.options.ice_servers]
        }
        if self.options.relay_only:
            config["iceTransportPolicy"] = "relay"
        self.pc = js.RTCPeerConnection.new(_js_object(config))
        self._remote_description_set = False
        self._pending_candidates = []
        self.pc.onicecandidate = self._pc_proxies.create(self._on_ice_candidate)
        self.pc.onconnectionstatechange = self._pc_proxies.create(self._on_connection_state)
        if offerer:
            options = _js_object({"ordered": False, "maxRetransmits": 0})
            self._attach_channel(self.pc.createDataChannel(CHANNEL_LABEL, options))
            self._spawn(self._make_offer(), "creating the offer")
        else:
            self.pc.ondatachannel = self._pc_proxies.create(self._on_datachannel)

    def _attach_channel(self, raw: Any) -> None:
        raw.binaryType = "arraybuffer"
        raw.onopen = self._pc_proxies.create(self._on_channel_open)
        raw.onclose = self._pc_proxies.create(self._on_channel_close)
        # The shim hands Python the event's data, not the event: reading ``event.data`` through
        # a proxy of the MessageEvent cost 12 us a message, measured.
        raw.onmessage = self._shim.forwardData(self._pc_proxies.create(self._on_channel_data))
        self.channel = JsDataChannel(raw)
        if self.session is not None:
            self.session.attach_channel(self.channel)

    def _send_signal(self, message: dict[str, Any]) -> None:
        self.socket.emit(SIGNAL_EVENT, _js_object(message))

    async def _make_offer(self) -> None:
        offer = await self.pc.createOffer()
        await self.pc.setLocalDescription(offer)
        self._send_signal({"type": "offer", "sdp": self.pc.localDescription.sdp})

    async def _accept_offer(self, sdp: str) -> None:
        await self._set_remote({"type": "offer", "sdp": sdp})
        answer = await self.pc.createAnswer()
        await self.pc.setLocalDescription(answer)
        self._send_signal({"type": "answer", "sdp": self.pc.localDescription.sdp})

    async def _set_remote(self, description: dict[str, str]) -> None:
        await self.pc.setRemoteDescription(_js_object(description))
        self._remote_description_set = True
        # Candidates can outrun the description they belong to; they wait until it is set.
        pending, self._pending_candidates = self._pending_candidates, []
        for candidate in pending:
            await self.pc.addIceCandidate(candidate)

    # --- browser events -----------------------------------------------------------------------

    def _on_signal(self, data: Any) -> None:
        if self.pc is None:
            return
        message = data.to_py()
        kind = message.get("type") if isinstance(message, dict) else None
        if kind == "offer":
            self._spawn(self._accept_offer(str(message["sdp"])), "answering the offer")
        elif kind == "answer":
            self._spawn(
                self._set_remote({"type": "answer", "sdp": str(message["sdp"])}),
                "applying the answer",
            )
        elif kind == "ice-candidate":
            if not isinstance(message.get("candidate"), dict):
                return  # a malformed signal; end-of-candidates is never sent
            candidate = _js_object(message["candidate"])
            if self._remote_description_set:
                self._spawn(self.pc.addIceCandidate(candidate), "adding an ICE candidate")
            else:
                self._pending_candidates.append(candidate)

    def _on_ice_candidate(self, event: Any) -> None:
        # Gathering ends with a null candidate, which arrives as ``jsnull``, not ``None``.
        raw = event.candidate
        if raw is not None and raw is not jsnull and self.socket is not None:
            candidate = json.loads(js.JSON.stringify(raw))
            self._send_signal({"type": "ice-candidate", "candidate": candidate})

    def _on_connection_state(self, *_: Any) -> None:
        state = str(self.pc.connectionState) if self.pc is not None else "closed"
        if state == "failed" and self.session is not None:
            self.session.on_failed()
            self._emit_event("failed", {"state": state})

    def _on_datachannel(self, event: Any) -> None:
        self._attach_channel(event.channel)

    def _on_channel_open(self, *_: Any) -> None:
        if self.channel is not None:
            self.channel.state_changed("open")
        if self.session is not None:
            self.session.on_open()
        self._emit_event("open")

    def _on_channel_close(self, *_: Any) -> None:
        if self.channel is not None:
            self.channel.state_changed("closed")
        if self.session is not None:
            self.session.on_close()
        self._emit_event("closed")

    def _on_channel_data(self, data: Any) -> None:
        session = self.session
        if session is not None:
            session.on_message(_payload_bytes(data))

    def _on_relay(self, data: Any) -> None:
        session = self.session
        if session is not None:
            session.on_relay_message(_payload_bytes(data))

    def _on_peer_left(self, data: Any) -> None:
        self._close_peer_connection()
        if self.session is not None:
            # The session with this peer is over (a new peer gets a new one): close it, which
            # also stops the timers that would otherwise keep running for nobody.
            self.session.close()
        self._emit_event("peer_left", data.to_py() if hasattr(data, "to_py") else {})

    def _on_server_error(self, data: Any) -> None:
        detail = data.to_py() if hasattr(data, "to_py") else {"message": str(data)}
        logger.warning("server reported an error: %s", detail)
        self._emit_event("error", detail if isinstance(detail, dict) else {"message": str(detail)})

    # --- what the game calls ------------------------------------------------------------------

    def step(self, frame: int, action: int) -> bool:
        if self.session is None:
            raise RuntimeError("not paired with a peer yet")
        return self.session.step(frame, action)

    def stats(self) -> dict[str, Any]:
        out = self.session.stats() if self.session is not None else {}
        out["live_proxies"] = self.proxies.live + self._pc_proxies.live
        out["proxies_created"] = self.proxies.created + self._pc_proxies.created
        return out

    def _close_peer_connection(self) -> None:
        if self.channel is not None:
            raw = self.channel.raw
            raw.onopen = raw.onclose = raw.onmessage = None
            raw.close()
            self.channel = None
        if self.pc is not None:
            self.pc.onicecandidate = self.pc.onconnectionstatechange = None
            self.pc.ondatachannel = None
            self.pc.close()
            self.pc = None
        self._pc_proxies.destroy_all()

    def close_channel(self) -> None:
        """Close only the DataChannel (tests use it to take the P2P path away)."""
        if self.channel is not None:
            self.channel.raw.close()

    def close(self) -> None:
        """Tear everything down: timers, peer connection, socket, and every proxy. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self.session is not None:
            self.session.close()
        self.scheduler.clear_all()
        self._close_peer_connection()
        if self.socket is not None:
            self.socket.off()
            self.socket.disconnect()
            self.socket = None
        for task in list(self._tasks):
            task.cancel()
        self.proxies.destroy_all()


class DemoTab:
    """One tab of the demo: a :class:`BrowserTransport` driving a :class:`ScriptedGame`.

    Created by the page with its options as JSON; the page and the tests read
    :meth:`report_json`.
    """

    def __init__(self, options_json: str) -> None:
        options = json.loads(options_json)
        self.frames = int(options.get("frames", 600))
        self.autostart = bool(options.get("autostart", True))
        session_config = SessionConfig(
            relay_inputs=bool(options.get("relay_inputs", True)),
            ping_interval_ms=float(options.get("ping_interval_ms", DEFAULT_PING_INTERVAL_MS)),
            # The report's percentiles cover the whole run, not only the last 10 pings.
            rtt_window=int(options.get("rtt_window", 1000)),
        )
        self.transport = BrowserTransport(
            TransportOptions(
                server_url=str(options.get("server_url", "")),
                room=str(options.get("room", "default")),
                ice_servers=tuple(
                    IceServer(s["urls"], s.get("username"), s.get("credential"))
                    for s in options.get("ice_servers", ())
                ),
                relay_only=bool(options.get("relay_only", False)),
                session=session_config,
            ),
            on_input=self._on_input,
            on_event=self._on_event,
        )
        self.game: ScriptedGame | None = None
        self.channel_open_ms: float | None = None
        self.paired_ms: float | None = None

    def start(self) -> None:
        self.transport.connect()

    def _on_event(self, name: str, detail: dict[str, Any]) -> None:
        transport = self.transport
        if name == "paired":
            self.paired_ms = transport.clock()
            self.game = ScriptedGame(
                int(detail["player_index"]),
                int(detail["peer_index"]),
                self.frames,
                transport.step,
                transport.scheduler,
                transport.clock,
            )
        elif name == "open":
            if self.channel_open_ms is None:
                self.channel_open_ms = transport.clock()
            if self.autostart and self.game is not None and self.game.next_frame == 0:
                self.game.start()

    def _on_input(self, frame: int, action: int) -> None:
        if self.game is not None:
            self.game.on_input(frame, action)

    def start_game(self) -> None:
        if self.game is None:
            raise RuntimeError("not paired yet")
        self.game.start()

    def reset_episode(self) -> None:
        """A new episode on the same connection: transport state and the game start over."""
        if self.game is None or self.transport.session is None:
            raise RuntimeError("not paired yet")
        self.transport.session.reset_episode()
        self.game.reset()

    def report(self) -> dict[str, Any]:
        return {
            "player_index": self.transport.player_index,
            "paired_ms": self.paired_ms,
            "channel_open_ms": self.channel_open_ms,
            "game": self.game.report() if self.game is not None else None,
            "stats": self.transport.stats(),
            "events": self.transport.events,
        }

    def report_json(self) -> str:
        return json.dumps(self.report())

    def close(self) -> None:
        if self.game is not None:
            self.game.stop()
        self.transport.close()

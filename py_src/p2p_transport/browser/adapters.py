"""Browser objects as the core's channels and scheduler, through ``js`` proxies.

An RTCDataChannel becomes ``DataChannelLike``, the worker-held ping channel ``PingChannelLike``,
a socket.io-client socket ``SocketIOLike``, and the JS shim's ``setInterval`` a ``Scheduler``.
Every proxy JavaScript keeps is made and destroyed through a :class:`ProxyRegistry`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

import js
from pyodide.ffi import JsProxy, create_proxy, to_js

__all__ = [
    "JsDataChannel",
    "JsSocketIO",
    "ProxyRegistry",
    "ShimScheduler",
    "WorkerChannel",
    "js_object",
    "payload_bytes",
]


def js_object(value: Any) -> Any:
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


def payload_bytes(data: Any) -> bytes:
    """An incoming ArrayBuffer as bytes; anything else (a Blob from a confused peer) as garbage
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


class WorkerChannel:
    """The ping channel as ``PingChannelLike``: a DataChannel living in a worker (the shim's
    ``workerChannel``), which reports its state, stamps what arrives and times what it sends."""

    bufferedAmount: Final = 0  # the worker holds the channel; pings are too few to congest it

    def __init__(self) -> None:
        self.handle: Any = None
        self._state = "connecting"

    @property
    def readyState(self) -> str:
        return self._state

    def state_changed(self, state: str) -> None:
        self._state = str(state)

    def send(self, data: bytes) -> None:
        self.handle.send(to_js(data))

    def send_ping(self, data: bytes, timestamp_ms: float) -> None:
        self.handle.send(to_js(data), timestamp_ms)

    def send_held_pong(self, data: bytes, hold_offset: int, arrival_ms: float) -> None:
        self.handle.send(to_js(data), None, arrival_ms, hold_offset)

    def close(self) -> None:
        self._state = "closed"
        if self.handle is not None:
            self.handle.close()


class JsSocketIO:
    """A socket.io-client socket as ``SocketIOLike``."""

    def __init__(self, raw: Any) -> None:
        self.raw = raw

    @property
    def connected(self) -> bool:
        return bool(self.raw.connected)

    def emit(self, event: str, data: bytes) -> object:
        return self.raw.emit(event, to_js(data))

    def emit_data(self, event: str, payload: Any) -> object:
        """Emit ``payload``: bytes as binary, anything else as plain JS objects."""
        if isinstance(payload, bytes | bytearray):
            return self.emit(event, bytes(payload))
        return self.raw.emit(event, js_object(payload))


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

"""What the transport tells the game: one :class:`Callbacks` for a session or a browser tab."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from p2p_transport.protocol.control import ControlCallback
from p2p_transport.protocol.desync import DesyncCallback
from p2p_transport.protocol.receiver import InputCallback
from p2p_transport.protocol.routing import RouteChange
from p2p_transport.session.pinger import RTTCallback

__all__ = ["Callbacks", "EventCallback"]

#: Called with an event's name and a detail dict (see :class:`Callbacks`).
EventCallback = Callable[[str, dict[str, Any]], None]


@dataclass(frozen=True, slots=True)
class Callbacks:
    """The game's callbacks; only ``on_input`` is required.

    Each is called from the transport's own handlers and timers. One that raises is logged and
    counted (``callback_errors`` in ``stats()``), and the transport goes on: a bug in the game's
    callback never stops a packet handler halfway.
    """

    #: ``(frame, action)``: once per peer input, in any order, whatever copies or paths bring it.
    on_input: InputCallback
    #: ``(name, detail)``: the session's watchdog events
    #: (:class:`~p2p_transport.session.watchdog.SessionEvent`: ``p2p_silent``, ``peer_gone``...);
    #: in the browser, :class:`~p2p_transport.browser.transport.BrowserTransport`'s events.
    on_event: EventCallback | None = None
    #: ``(kind, payload)``: the peer's control messages, exactly once and in order.
    on_control: ControlCallback | None = None
    #: ``(desync)``: the first confirmed frame whose state hashes differ.
    on_desync: DesyncCallback | None = None
    #: ``(rtt_ms, path)``: every round-trip sample as it is taken.
    on_rtt: RTTCallback | None = None
    #: ``(change)``: every change of the inputs' route.
    on_route_change: Callable[[RouteChange], None] | None = None

    @classmethod
    def of(cls, callbacks: Callbacks | InputCallback) -> Callbacks:
        """``callbacks`` itself, or a bare ``on_input`` function as callbacks."""
        return callbacks if isinstance(callbacks, Callbacks) else cls(on_input=callbacks)

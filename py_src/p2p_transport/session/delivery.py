"""Where what a session hears goes: the game's :class:`~.callbacks.Callbacks`, or, for what it
takes over, the handlers of one layer built on the session (:class:`LayerHandlers`, registered
with :meth:`~p2p_transport.session.P2PSession.attach_layer`; the rollback layer is one).

A layer does not replace the game's callbacks: it consumes its share (every peer input, the
control messages of its own kinds, a first look at each desync) and the session hands everything
else to the game as before.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from p2p_transport._guard import call_guarded
from p2p_transport.errors import UsageError
from p2p_transport.protocol.control import ControlCallback
from p2p_transport.protocol.desync import Desync, DesyncCallback
from p2p_transport.protocol.receiver import InputCallback
from p2p_transport.protocol.routing import Link, RouteChange
from p2p_transport.session.callbacks import Callbacks
from p2p_transport.session.counters import SessionCounters
from p2p_transport.session.telemetry import TelemetryRecorder
from p2p_transport.session.watchdog import SessionEvent

__all__ = ["Delivery", "LayerHandlers"]


@dataclass(frozen=True, slots=True)
class LayerHandlers:
    """What one layer built on a session consumes, instead of the game's callbacks.

    ``on_input(frame, action)`` hears every peer input (the game's ``on_input`` then hears none);
    ``on_control(kind, payload)`` hears the control messages whose kind is in ``control_kinds``
    (the game's ``on_control`` hears the others); ``on_desync(desync)``, if given, hears each
    desync before the game's ``on_desync`` does. Each is called as the game's callbacks are: an
    exception is logged and counted (``callback_errors`` in ``stats()``), never raised.
    """

    on_input: InputCallback
    control_kinds: frozenset[int]
    on_control: ControlCallback
    on_desync: DesyncCallback | None = None


class Delivery:
    """Hands what the session hears to the game's callbacks or to the layer on the session.

    ``callbacks`` may be replaced (``dataclasses.replace``) to change one of the game's callbacks;
    a layer's handlers keep precedence for what it consumes. ``observe_health()`` is called with
    each DataChannel RTT sample (the RTT is one of the health status's inputs).
    """

    def __init__(
        self,
        callbacks: Callbacks,
        counters: SessionCounters,
        telemetry: TelemetryRecorder,
        observe_health: Callable[[], None],
    ) -> None:
        self._callbacks = callbacks
        self._counters = counters
        self._telemetry = telemetry
        self._observe_health = observe_health
        self._layer: LayerHandlers | None = None
        # Where each peer input goes, read once per input: the layer's handler or the game's.
        self._input_target: InputCallback = callbacks.on_input

    @property
    def callbacks(self) -> Callbacks:
        """The game's callbacks."""
        return self._callbacks

    @callbacks.setter
    def callbacks(self, callbacks: Callbacks) -> None:
        self._callbacks = callbacks
        self._input_target = self._layer.on_input if self._layer else callbacks.on_input

    def attach_layer(self, handlers: LayerHandlers) -> None:
        """Let ``handlers`` consume their share from now on; a session carries one layer."""
        if self._layer is not None:
            raise UsageError("a layer is already attached to this session")
        self._layer = handlers
        self._input_target = handlers.on_input

    # --- what the session's pieces report -----------------------------------------------------

    def on_input(self, frame: int, action: int) -> None:
        """A peer input, once (the receiver guards the call)."""
        self._input_target(frame, action)

    def on_control(self, kind: int, payload: bytes) -> None:
        """A control message of the peer's, once and in order (the control channel guards it)."""
        layer = self._layer
        if layer is not None and kind in layer.control_kinds:
            layer.on_control(kind, payload)
        elif self._callbacks.on_control is not None:
            self._callbacks.on_control(kind, payload)

    def on_desync(self, desync: Desync) -> None:
        """The first confirmed frame whose hashes differ: the layer's look first, then the
        game's (the desync checker guards this call)."""
        layer = self._layer
        if layer is not None and layer.on_desync is not None:
            self._call_game(layer.on_desync, desync, what="the layer's on_desync")
        if self._callbacks.on_desync is not None:
            self._callbacks.on_desync(desync)

    def on_route_change(self, change: RouteChange) -> None:
        self._telemetry.record_route_change(change)
        if self._callbacks.on_route_change is not None:
            self._callbacks.on_route_change(change)

    def on_rtt_sample(self, rtt_ms: float, path: Link) -> None:
        if path is Link.P2P:
            self._observe_health()
        self._call_game(self._callbacks.on_rtt, rtt_ms, path, what="on_rtt")

    def on_event(self, event: SessionEvent, detail: dict[str, Any]) -> None:
        """One of the session's events (the watchdog's, the peer's focus state)."""
        self._call_game(self._callbacks.on_event, event, detail, what=f"on_event ({event.value})")

    def _call_game(self, callback: Callable[..., Any] | None, *args: Any, what: str) -> None:
        if callback is not None and not call_guarded(callback, *args, what=what):
            self._counters.callback_errors += 1

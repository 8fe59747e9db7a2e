"""What the session counts itself, beside its pieces' own counters: :class:`SessionCounters`."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["SessionCounters"]


@dataclass(slots=True)
class SessionCounters:
    """Shown by ``stats()`` under the same names."""

    #: ``on_event``, ``on_rtt`` and a layer's ``on_desync`` raised (logged; the session went on).
    #: The other callbacks are counted by the piece that calls them; ``stats()["callback_errors"]``
    #: is the total.
    callback_errors: int = 0
    #: Exceptions inside message handling or a timer: a bug, logged and counted, never raised.
    handler_errors: int = 0
    #: Text messages on the DataChannel (see :meth:`~.edge.SessionEdge.on_text_message`).
    text_messages: int = 0
    #: Packets that arrived after ``close()``: dropped (the game may already play with a new
    #: session to the same peer, which a late one from the old must not reach).
    packets_after_close: int = 0
    #: Control messages of the game's own kinds, unacknowledged when the peer turned out to be a
    #: version-1 peer, which has no such messages: dropped, with a warning logged.
    control_undeliverable: int = 0

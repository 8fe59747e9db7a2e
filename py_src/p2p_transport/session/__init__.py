"""The session: one peer, both paths, and everything measured about them (:class:`P2PSession`).

======================  ======================================================================
module                  what
======================  ======================================================================
``session.py``          :class:`P2PSession`, what a game holds: builds and wires the pieces below
``config.py``           :class:`SessionConfig`
``callbacks.py``        :class:`Callbacks`: what the game hears
``delivery.py``         the game's callbacks, or a layer's :class:`LayerHandlers`, hear it
``edge.py``             :class:`SessionEdge`: what the I/O code calls; :class:`SessionState`
``intake.py``           packets in: counted, decoded once, dispatched
``control_routing.py``  control messages, state hashes, the version-1 fallback
``timers.py``           the ping, resend, watchdog and validation timers
``paths.py``            the DataChannel and the relay, and what crossed each
``inputs.py``           the game's inputs out (version 1 or acked, routed) and in (exactly once)
``pinger.py``           pings, pongs and RTT; the worker-held ping channel
``watchdog.py``         keepalives, the peer's silence, this side's own stalls
``counters.py``         the session's own counters
``parts.py``            :class:`SessionParts`: the pieces, for the report, a layer and tests
``report.py``           ``stats()`` and ``telemetry()``, read from the parts
``telemetry.py``        the bounded time series telemetry is made of
======================  ======================================================================
"""

from p2p_transport.session.callbacks import Callbacks
from p2p_transport.session.config import SessionConfig
from p2p_transport.session.delivery import LayerHandlers
from p2p_transport.session.edge import SessionEdge, SessionState
from p2p_transport.session.parts import SessionParts
from p2p_transport.session.pinger import PingChannelLike
from p2p_transport.session.session import P2PSession
from p2p_transport.session.watchdog import SessionEvent

__all__ = [
    "Callbacks",
    "LayerHandlers",
    "P2PSession",
    "PingChannelLike",
    "SessionConfig",
    "SessionEdge",
    "SessionEvent",
    "SessionParts",
    "SessionState",
]

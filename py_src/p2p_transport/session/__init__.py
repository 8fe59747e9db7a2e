"""The session: one peer, both paths, and everything measured about them (:class:`P2PSession`).

=================  =========================================================================
module             what
=================  =========================================================================
``session.py``     :class:`P2PSession`, the facade a game holds: wiring, timers, decoding
``config.py``      :class:`SessionConfig`
``callbacks.py``   :class:`Callbacks`: what the game hears
``paths.py``       the DataChannel and the relay, and what crossed each
``inputs.py``      the game's inputs out (version 1 or acked, routed) and in (exactly once)
``pinger.py``      pings, pongs and RTT; the worker-held ping channel
``watchdog.py``    keepalives, the peer's silence, this side's own stalls
``report.py``      ``stats()`` and ``telemetry()``
``telemetry.py``   the bounded time series telemetry is made of
=================  =========================================================================
"""

from p2p_transport.session.callbacks import Callbacks
from p2p_transport.session.config import SessionConfig
from p2p_transport.session.pinger import PingChannelLike
from p2p_transport.session.session import P2PSession, SessionState
from p2p_transport.session.watchdog import SessionEvent

__all__ = [
    "Callbacks",
    "P2PSession",
    "PingChannelLike",
    "SessionConfig",
    "SessionEvent",
    "SessionState",
]

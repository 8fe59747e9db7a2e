"""How one tab connects: :class:`TransportOptions` and :class:`IceServer`.

Plain data, importable anywhere (CPython too), so a page's configuration can be built and checked
outside the browser.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from p2p_transport.protocol.faults import FaultConfig
from p2p_transport.protocol.reconnect import ReconnectConfig
from p2p_transport.session.config import SessionConfig
from p2p_transport.wire.dialects import Dialect
from p2p_transport.wire.signaling import DEFAULT_ROOM

__all__ = ["IceServer", "TransportOptions"]


@dataclass(frozen=True, slots=True)
class IceServer:
    """One STUN or TURN server, as ``RTCPeerConnection``'s ``iceServers`` entries name it."""

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
    room: str = DEFAULT_ROOM
    #: No ICE servers by default: peers on one host or LAN connect over host candidates, and a
    #: STUN server that cannot be reached only slows gathering down.
    ice_servers: tuple[IceServer, ...] = ()
    #: Force every packet through a TURN server (``iceTransportPolicy: "relay"``).
    relay_only: bool = False
    session: SessionConfig = field(default_factory=SessionConfig)
    #: Fresh peer connections after the DataChannel is lost (``max_attempts=0``: never).
    reconnect: ReconnectConfig = field(default_factory=ReconnectConfig)
    #: Impair what this tab sends over the DataChannel (tests and the demo); ``None``: nothing.
    faults: FaultConfig | None = None
    #: Seeds the fault injection's random sequence (with the player index, so the two
    #: directions differ and each is reproducible).
    fault_seed: int = 0
    #: How the signaling server spells pairing, signals and the relay
    #: (:mod:`p2p_transport.wire.dialects`); ``None``: the reference server's, in ``room``.
    #: A dialect keeps what it learns of the pairing, so each transport needs its own.
    dialect: Dialect | None = None

    def rtc_configuration(self) -> dict[str, Any]:
        """The ``RTCPeerConnection`` configuration these options ask for."""
        config: dict[str, Any] = {"iceServers": [server.to_dict() for server in self.ice_servers]}
        if self.relay_only:
            config["iceTransportPolicy"] = "relay"
        return config

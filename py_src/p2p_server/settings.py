"""Everything an operator can set about one server process, in one value."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from p2p_server.input_recorder import MAX_RECORD_BYTES
from p2p_server.limits import ClientLimits
from p2p_server.turn import TurnCredentials
from p2p_transport.wire.signaling import MAX_SPECTATORS

__all__ = ["ServerOptions"]


@dataclass(frozen=True)
class ServerOptions:
    """What the server does beyond pairing and relaying (every default: off)."""

    #: Keep the telemetry records pages send here (``None``: refuse them).
    data_dir: Path | None = None
    #: Record every input the relay carries here, a file per room (:mod:`p2p_server.input_recorder`;
    #: ``None``: record nothing), each at most ``record_max_bytes``.
    record_dir: Path | None = None
    record_max_bytes: int = MAX_RECORD_BYTES
    #: Pages on these origins (e.g. ``https://study.example.org``) may use this server.
    allowed_origins: Sequence[str] = ()
    #: With a secret, a join needs a token signed with it (:mod:`p2p_server.tokens`);
    #: ``None``: rooms are open to anyone who knows their name.
    token_secret: bytes | None = None
    #: Mint TURN credentials per player and send them with ``paired`` (:mod:`p2p_server.turn`).
    turn: TurnCredentials | None = None
    limits: ClientLimits = field(default_factory=ClientLimits)
    #: Reverse proxies (IP addresses or networks) whose ``X-Forwarded-For`` names the client, e.g.
    #: the cluster's nginx; from anyone else the header is ignored (``()``: from nobody).
    trusted_proxies: Sequence[str] = ()
    #: Spectators one room takes (``0``: none); each costs the server a copy of every packet the
    #: room's players send to the room.
    max_spectators: int = MAX_SPECTATORS

    def __post_init__(self) -> None:
        if isinstance(self.max_spectators, bool) or not (
            isinstance(self.max_spectators, int) and self.max_spectators >= 0
        ):
            raise ValueError(
                f"max_spectators must be a whole number of 0 or more, got {self.max_spectators!r}"
            )
        object.__setattr__(self, "allowed_origins", tuple(self.allowed_origins))
        for proxy in self.trusted_proxies:
            try:
                ipaddress.ip_network(proxy, strict=False)
            except ValueError:
                raise ValueError(
                    f"trusted proxy {proxy!r} is not an IP address or network "
                    "(like 127.0.0.1 or 10.0.0.0/8)"
                ) from None
        object.__setattr__(self, "trusted_proxies", tuple(self.trusted_proxies))

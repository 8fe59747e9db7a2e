"""Who comes in: every new connection is checked against limits per client address.

One address may hold at most :attr:`ClientLimits.max_per_address` connections open, open new ones
at :attr:`ClientLimits.connects_per_address_per_s` (a burst of
:attr:`ClientLimits.connect_burst_per_address` at once) and hold at most
:attr:`ClientLimits.max_unjoined_per_address` that have not joined a room. When the process holds
:attr:`ClientLimits.max_connections`, a newcomer takes the place of the oldest socket that has not
joined, from the address holding the most of them; only when every socket has joined is it
refused. So sockets that never join can neither fill the process nor keep anyone out, and a
joined player is never dropped to make room.

The address is the TCP peer's, or behind a reverse proxy the one the proxy puts in
``X-Forwarded-For``, believed only from the proxies the operator names (``--trusted-proxy``; uvicorn
rewrites the peer before the app sees it). IPv6 clients are counted per /64, the prefix one
subscriber gets (an IPv6 host can pick any address in it). A connection is a Socket.IO session, on
either transport; the lean relay socket needs a ticket that a joined session was given, one at a
time, so it is bounded by the sessions.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Final

from p2p_server.limits import ClientLimits, TokenBucket

__all__ = ["REFUSAL_MESSAGES", "Door", "address_key"]

#: What a refused client is told (the HTTP 401 body of a long-polling handshake; a WebSocket
#: handshake is refused with 403 and no body), by the reason ``/stats`` counts it under.
REFUSAL_MESSAGES: Final[dict[str, str]] = {
    "address_rate": "too many new connections from your address: try again in a few seconds",
    "address_open": "too many connections from your address",
    "address_unjoined": "too many connections from your address that have not joined a room",
    "server_full": "the server is full",
}


def address_key(host: str) -> str:
    """What the limits count a client under: its IPv4 address, or its IPv6 /64."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return host  # not an IP address (a Unix socket's peer, a test's name): as it is
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


@dataclass
class _Address:
    bucket: TokenBucket
    open: int = 0
    #: Its sockets that have not joined, oldest first (session id -> when it connected).
    unjoined: dict[str, float] = field(default_factory=dict)


class Door:
    """The per-address bookkeeping of one process's connections (Engine.IO session ids)."""

    #: Addresses remembered with nothing open before the idle ones are forgotten.
    MAX_ADDRESSES: Final = 10_000

    def __init__(self, limits: ClientLimits) -> None:
        self.limits = limits
        self._addresses: dict[str, _Address] = {}
        self._sessions: dict[str, str] = {}

    @property
    def open(self) -> int:
        return len(self._sessions)

    @property
    def unjoined(self) -> int:
        return sum(len(a.unjoined) for a in self._addresses.values())

    @property
    def addresses(self) -> int:
        """Addresses with a connection open."""
        return sum(1 for a in self._addresses.values() if a.open)

    def admit(self, session: str, host: str, now: float) -> tuple[str | None, str | None]:
        """Whether ``session`` from ``host`` comes in: ``(reason, None)`` if it is refused (a key
        of :data:`REFUSAL_MESSAGES`), else ``(None, evicted)``: it is counted, and ``evicted`` is
        a session that has not joined which the caller closes to make room (or ``None``)."""
        limits = self.limits
        key = address_key(host)
        entry = self._addresses.get(key)
        if entry is None:
            if len(self._addresses) >= self.MAX_ADDRESSES:
                self._forget_idle(now)
            entry = self._addresses[key] = _Address(
                TokenBucket(
                    limits.connects_per_address_per_s, limits.connect_burst_per_address, now
                )
            )
        if not entry.bucket.take(now):
            return "address_rate", None
        if entry.open >= limits.max_per_address:
            return "address_open", None
        if len(entry.unjoined) >= limits.max_unjoined_per_address:
            return "address_unjoined", None
        evicted = None
        if len(self._sessions) >= limits.max_connections:
            evicted = self._oldest_unjoined()
            if evicted is None:
                return "server_full", None
            self.left(evicted)
        entry.open += 1
        entry.unjoined[session] = now
        self._sessions[session] = key
        return None, evicted

    def joined(self, session: str) -> None:
        key = self._sessions.get(session)
        if key is not None:
            self._addresses[key].unjoined.pop(session, None)

    def is_unjoined(self, session: str) -> bool:
        key = self._sessions.get(session)
        return key is not None and session in self._addresses[key].unjoined

    def left(self, session: str) -> None:
        """The session ended (or was evicted: then it is no longer counted from now on)."""
        key = self._sessions.pop(session, None)
        if key is None:
            return
        entry = self._addresses[key]
        entry.open -= 1
        entry.unjoined.pop(session, None)

    def _oldest_unjoined(self) -> str | None:
        """The oldest socket that has not joined, of the address that holds the most."""
        heaviest = max(self._addresses.values(), key=lambda a: len(a.unjoined), default=None)
        if heaviest is None or not heaviest.unjoined:
            return None
        return next(iter(heaviest.unjoined))

    def _forget_idle(self, now: float) -> None:
        """Drop the addresses with nothing open whose rate allowance has refilled."""
        self._addresses = {
            key: entry
            for key, entry in self._addresses.items()
            if entry.open or not entry.bucket.full(now)
        }

"""How one tab connects: :class:`TransportOptions` and :class:`IceServer`.

Plain data, importable anywhere (CPython too), so a page's configuration can be built and checked
outside the browser.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from p2p_transport._checks import check_int, check_positive
from p2p_transport.errors import UsageError
from p2p_transport.protocol.faults import FaultConfig
from p2p_transport.protocol.lifecycle import DEFAULT_CONNECT_TIMEOUT_MS, DEFAULT_ICE_TIMEOUT_MS
from p2p_transport.protocol.reconnect import ReconnectConfig
from p2p_transport.session.config import SessionConfig
from p2p_transport.wire.dialects import Dialect
from p2p_transport.wire.signaling import DEFAULT_ROOM, MAX_PLAYERS, MIN_PLAYERS, PLAYERS_PER_ROOM

__all__ = ["IceServer", "TransportOptions"]

#: The URL schemes of a TURN server (RFC 7065); ``stun:`` servers relay nothing.
TURN_SCHEMES = ("turn:", "turns:")


@dataclass(frozen=True, slots=True)
class IceServer:
    """One STUN or TURN server, as ``RTCPeerConnection``'s ``iceServers`` entries name it."""

    urls: str | Sequence[str]
    username: str | None = None
    credential: str | None = None

    def __post_init__(self) -> None:
        urls = [self.urls] if isinstance(self.urls, str) else list(self.urls)
        if not urls or not all(isinstance(url, str) and url for url in urls):
            raise UsageError(f"urls must be a non-empty URL or list of URLs, got {self.urls!r}")
        for name in ("username", "credential"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise UsageError(f"{name} must be a string, got {type(value).__name__}")

    @classmethod
    def of(cls, server: IceServer | Mapping[str, Any]) -> IceServer:
        """``server`` itself, or the ``{urls, username, credential}`` dict every WebRTC page
        writes, as an :class:`IceServer` (unknown keys refused, so a typo says so)."""
        if isinstance(server, IceServer):
            return server
        if not isinstance(server, Mapping):
            raise UsageError(
                f"an ICE server is an IceServer or a dict like {{'urls': ...}}, got {server!r}"
            )
        unknown = set(server) - {"urls", "username", "credential"}
        if unknown or "urls" not in server:
            raise UsageError(
                f"an ICE server dict has 'urls' and optionally 'username' and 'credential', "
                f"got keys {sorted(server)}"
            )
        return cls(server["urls"], server.get("username"), server.get("credential"))

    @property
    def is_turn(self) -> bool:
        """Whether one of its URLs is a TURN server's (``turn:`` or ``turns:``)."""
        urls = [self.urls] if isinstance(self.urls, str) else list(self.urls)
        return any(url.startswith(TURN_SCHEMES) for url in urls)

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
    #: A room token from the experiment's backend, sent with the join (the reference server's
    #: dialect); ``None``: none.
    token: str | None = None
    #: No ICE servers by default: peers on one host or LAN connect over host candidates, and a
    #: STUN server that cannot be reached only slows gathering down. Each an :class:`IceServer`
    #: or a ``{urls, username, credential}`` dict.
    ice_servers: Sequence[IceServer | Mapping[str, Any]] = ()
    #: Force every packet through a TURN server (``iceTransportPolicy: "relay"``): one of
    #: ``ice_servers`` must be a TURN server, or, with none given, one the server mints.
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
    #: Paired but no DataChannel after this long: ``ice_failed`` (see
    #: :mod:`~p2p_transport.protocol.lifecycle`).
    ice_timeout_ms: float = DEFAULT_ICE_TIMEOUT_MS
    #: ``connect()`` without reaching the signaling server this long: ``connect_failed`` (the
    #: JavaScript ``connect()`` rejects with its reason); ``None``: keep trying, say nothing.
    connect_timeout_ms: float | None = DEFAULT_CONNECT_TIMEOUT_MS
    #: The room's number of players, 2 to 8 (with tokens on, the token's claim must say the
    #: same). More than two is a mesh: :class:`~p2p_transport.browser.mesh.MeshTransport`.
    players: int = PLAYERS_PER_ROOM
    #: Watch the room instead of playing (a
    #: :class:`~p2p_transport.browser.spectator.SpectatorTransport`): no slot, no input; every
    #: player's inputs come from the server. ``players`` then need not be given (the room's own
    #: is told at ``room_ready``); given, it must match the room's.
    spectator: bool = False

    def __post_init__(self) -> None:
        # Each option checked where it is given, by name, with what is allowed.
        for name, kind, what in (
            ("server_url", str, "a URL string ('' for the page's own server)"),
            ("room", str, "a non-empty string"),
            ("relay_only", bool, "True or False"),
            ("session", SessionConfig, "a SessionConfig"),
            ("reconnect", ReconnectConfig, "a ReconnectConfig"),
        ):
            value = getattr(self, name)
            if not isinstance(value, kind):
                raise UsageError(f"{name} must be {what}, got {value!r}")
        if not self.room:
            raise UsageError("room must be a non-empty string, got ''")
        if self.token is not None and not isinstance(self.token, str):
            raise UsageError(f"token must be a string or None, got {self.token!r}")
        if self.faults is not None and not isinstance(self.faults, FaultConfig):
            raise UsageError(f"faults must be a FaultConfig or None, got {self.faults!r}")
        check_int("fault_seed", self.fault_seed)
        check_int("players", self.players, MAX_PLAYERS, minimum=MIN_PLAYERS)
        if not isinstance(self.spectator, bool):
            raise UsageError(f"spectator must be True or False, got {self.spectator!r}")
        if self.spectator and self.dialect is not None:
            raise UsageError("a spectator watches through the reference server (dialect=None)")
        if self.players != PLAYERS_PER_ROOM and self.dialect is not None:
            raise UsageError(
                f"a room of {self.players} players needs the reference server (dialect=None): "
                "the deployed servers' peers play two at a time"
            )
        check_positive(self, "ice_timeout_ms")
        if self.connect_timeout_ms is not None:
            check_positive(self, "connect_timeout_ms")
        # The shape every WebRTC page writes, {urls, username, credential}, is taken too.
        object.__setattr__(
            self, "ice_servers", tuple(IceServer.of(server) for server in self.ice_servers)
        )
        # With no ICE servers at all the signaling server may mint TURN credentials with
        # "paired" (the pairing then decides); ICE servers without a TURN one are a mistake.
        servers = [IceServer.of(s) for s in self.ice_servers]
        if self.relay_only and servers and not any(s.is_turn for s in servers):
            raise UsageError(
                "relay_only (relayOnly) needs a TURN server in ice_servers (iceServers), a "
                "turn: or turns: URL: through TURN alone, without one, nothing ever connects"
            )

    def rtc_configuration(
        self, extra: Sequence[IceServer] = (), force_relay: bool = False
    ) -> dict[str, Any]:
        """The ``RTCPeerConnection`` configuration these options ask for, with ``extra`` servers
        (the TURN credentials a server minted for this player) after the page's own, through
        TURN alone if these options or the server (``force_relay``) ask for it."""
        servers = [IceServer.of(server).to_dict() for server in (*self.ice_servers, *extra)]
        config: dict[str, Any] = {"iceServers": servers}
        if self.relay_only or force_relay:
            config["iceTransportPolicy"] = "relay"
        return config

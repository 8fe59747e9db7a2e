"""Room tokens: who may take which player slot of which room, until when.

An experiment's backend knows which participants play together. It mints one token per player
with :func:`mint_token` (or ``python -m p2p_server.tokens``) and hands it to that participant's
page, which sends it with the join; a server started with ``--token-secret-file`` lets a join in
only with a valid token for that room and slot. The holder of a token who comes back (a reload, a
dropped connection) takes its slot back at once; nobody else can take it.

The format is a JSON Web Token (RFC 7519) signed with HMAC-SHA256, through PyJWT: a backend in
any language has a well-kept library that mints one, its expiry claim (``exp``) is checked by the
library, and the secret never leaves the backend and the server. The claims are ``room`` (the
room's name), ``player`` (the slot, 0 to ``players`` - 1), ``players`` (the room's number of
players, :data:`MIN_PLAYERS` to :data:`MAX_PLAYERS`; absent: two, as tokens minted before rooms
of more had it) and ``exp`` (a Unix time in seconds). A spectator's token says ``spectator: true``
instead of a slot and a number of players: its bearer may watch the room, never play in it.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import jwt

from p2p_transport.wire.signaling import (
    MAX_PLAYERS,
    MAX_ROOM_NAME_CHARS,
    MIN_PLAYERS,
    PLAYERS_PER_ROOM,
)

__all__ = ["RoomClaim", "TokenError", "mint_token", "read_secret", "verify_token"]

ALGORITHM: Final = "HS256"
#: RFC 7518 section 3.2: an HS256 key must be at least as long as the hash, 256 bits.
MIN_SECRET_BYTES: Final = 32
#: A participant may load the page some time after the backend minted its token.
DEFAULT_TTL_S: Final = 3 * 3600
#: Clocks of the backend and the server may differ this much.
LEEWAY_S: Final = 30


class TokenError(ValueError):
    """A token that does not let its bearer in; the message says why."""


@dataclass(frozen=True, slots=True)
class RoomClaim:
    """What a valid token says: the room, the player slot (``None``: a spectator's) and the
    room's number of players, and when it expires."""

    room: str
    player: int | None
    expires_at: int
    players: int = PLAYERS_PER_ROOM

    @property
    def spectator(self) -> bool:
        return self.player is None


def read_secret(path: Path) -> bytes:
    """The secret in ``path`` (surrounding whitespace removed), checked for length."""
    secret = path.read_bytes().strip()
    if len(secret) < MIN_SECRET_BYTES:
        raise ValueError(
            f"{path}: a token secret needs at least {MIN_SECRET_BYTES} bytes, has {len(secret)} "
            "(make one with: python -c 'import secrets; print(secrets.token_urlsafe(48))')"
        )
    return secret


def _check_claim(room: object, player: object, players: object) -> None:
    if not isinstance(room, str) or not room or len(room) > MAX_ROOM_NAME_CHARS:
        raise TokenError(f"room must be 1-{MAX_ROOM_NAME_CHARS} characters, got {room!r}")
    if player is None:
        return  # a spectator's
    if (
        isinstance(players, bool)
        or not isinstance(players, int)
        or not MIN_PLAYERS <= players <= MAX_PLAYERS
    ):
        raise TokenError(f"players must be {MIN_PLAYERS}..{MAX_PLAYERS}, got {players!r}")
    if isinstance(player, bool) or not isinstance(player, int) or not 0 <= player < players:
        raise TokenError(
            f"player must be 0..{players - 1} in a {players}-player room, got {player!r}"
        )


def mint_token(
    secret: bytes,
    room: str,
    player: int | None,
    ttl_s: float = DEFAULT_TTL_S,
    now: float | None = None,
    players: int = PLAYERS_PER_ROOM,
) -> str:
    """A token that lets its bearer join ``room`` as ``player`` of ``players`` for ``ttl_s``
    seconds (``player=None``: as a spectator)."""
    _check_claim(room, player, players)
    if ttl_s <= 0:
        raise TokenError(f"ttl must be positive, got {ttl_s!r}")
    issued = int(time.time() if now is None else now)
    claims: dict[str, object] = {"room": room, "iat": issued, "exp": issued + int(ttl_s)}
    if player is None:
        claims["spectator"] = True
    else:
        claims["player"] = player
        if players != PLAYERS_PER_ROOM:
            # A two-player token stays what it was, for servers that predate the claim.
            claims["players"] = players
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def verify_token(secret: bytes, token: object) -> RoomClaim:
    """The claim of a valid token; :class:`TokenError` for a missing, forged, expired or
    malformed one."""
    if not isinstance(token, str) or not token:
        raise TokenError("this server's rooms need a token: join with {room, token}")
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            options={"require": ["exp", "room"]},
            leeway=LEEWAY_S,
        )
    except jwt.ExpiredSignatureError:
        raise TokenError("the token has expired") from None
    except jwt.InvalidTokenError as error:
        raise TokenError(f"invalid token ({error})") from None
    players = claims.get("players", PLAYERS_PER_ROOM)
    if claims.get("spectator") is True:
        _check_claim(claims["room"], None, players)
        return RoomClaim(claims["room"], None, int(claims["exp"]))
    if "player" not in claims:
        raise TokenError('invalid token (Token is missing the "player" claim)')
    _check_claim(claims["room"], claims["player"], players)
    return RoomClaim(claims["room"], claims["player"], int(claims["exp"]), players)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m p2p_server.tokens",
        description="Print a token that lets its bearer join ROOM as player N (or watch it).",
    )
    parser.add_argument("--secret-file", type=Path, required=True)
    parser.add_argument("--room", required=True)
    who = parser.add_mutually_exclusive_group(required=True)
    who.add_argument("--player", type=int, choices=range(MAX_PLAYERS))
    who.add_argument("--spectator", action="store_true", help="watch the room, take no slot")
    parser.add_argument(
        "--players",
        type=int,
        default=PLAYERS_PER_ROOM,
        choices=range(MIN_PLAYERS, MAX_PLAYERS + 1),
        help="the room's number of players (default: %(default)s)",
    )
    parser.add_argument(
        "--ttl",
        type=float,
        default=DEFAULT_TTL_S,
        help="seconds it stays valid (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    try:
        secret = read_secret(args.secret_file)
        print(mint_token(secret, args.room, args.player, args.ttl, players=args.players))
    except (OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

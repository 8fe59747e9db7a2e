"""TURN credentials that expire, minted per player (coturn's TURN REST API).

coturn started with ``use-auth-secret`` and ``static-auth-secret=SECRET`` accepts the username
``EXPIRY:SUBJECT`` (EXPIRY a Unix time in seconds) with the password
``base64(HMAC-SHA1(SECRET, username))``, and refuses it once EXPIRY has passed; an allocation made
before then keeps working. So the server, which shares the secret with coturn, can hand each page
credentials of its own that are worthless a day later, instead of one static password every page
of a study can read.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

__all__ = ["TurnCredentials", "turn_password"]

#: The draft TURN REST API's and Jitsi's common lifetime: a study session is shorter.
DEFAULT_TURN_TTL_S: Final = 86400
#: coturn's default ``rest-api-separator``.
SEPARATOR: Final = ":"
URL_SCHEMES: Final = ("turn:", "turns:", "stun:")


def turn_password(secret: bytes, username: str) -> str:
    """The password coturn expects for ``username``: base64(HMAC-SHA1(secret, username))."""
    digest = hmac.new(secret, username.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


@dataclass(frozen=True, slots=True)
class TurnCredentials:
    """The TURN servers a page is given, and the secret its credentials are minted with."""

    secret: bytes
    urls: tuple[str, ...]
    ttl_s: int = DEFAULT_TURN_TTL_S

    def __post_init__(self) -> None:
        if not self.secret:
            raise ValueError("the TURN secret is empty")
        if not self.urls:
            raise ValueError("no TURN URLs: give at least one, e.g. turn:turn.example.org:3478")
        for url in self.urls:
            if not url.startswith(URL_SCHEMES):
                raise ValueError(f"{url!r} is not a TURN URL (turn:, turns: or stun:)")
        if self.ttl_s <= 0:
            raise ValueError(f"the TURN credentials' ttl must be positive, got {self.ttl_s}")

    def mint(self, subject: str, now: float | None = None) -> list[dict[str, Any]]:
        """RTCIceServer entries for one player: ``subject`` names it in coturn's logs."""
        expiry = int(time.time() if now is None else now) + self.ttl_s
        username = f"{expiry}{SEPARATOR}{subject}"
        return [
            {
                "urls": list(self.urls),
                "username": username,
                "credential": turn_password(self.secret, username),
            }
        ]

    @classmethod
    def parse_urls(cls, secret: bytes, urls: Sequence[str], ttl_s: int) -> TurnCredentials:
        """From the command line: URLs may be given comma-separated or repeated."""
        split = tuple(u.strip() for entry in urls for u in entry.split(",") if u.strip())
        return cls(secret, split, ttl_s)

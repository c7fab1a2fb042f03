"""A feed's token: what it presents, when it expires, and getting a fresh one in time.

The client reads `exp` (it cannot verify: no keys) and calls the caller's refresh back
`refresh_before_s` ahead of it. A WebSocket sends the new token in flight (`["auth",
token]`); an SSE stream ends at `exp` and resumes with it. Never logs a token.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Final

log = logging.getLogger("ticker.client")

TokenRefresh = Callable[[], Awaitable[str]]
"""The caller's callback: returns the next token (it may await an identity provider)."""

MIN_REFRESH_WAIT_S: Final = 1.0
"""A refresh is never attempted more often than this, whatever the token says."""


def token_expiry(token: str) -> float | None:
    """The `exp` of a JWT's payload (Unix seconds), unverified; None if it has none or
    the token is not a JWT."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    body = parts[1]
    try:
        payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return None
    exp = payload.get("exp") if isinstance(payload, dict) else None
    if isinstance(exp, bool) or not isinstance(exp, int | float):
        return None
    return float(exp)


def refresh_delay_s(token: str, now_s: float, refresh_before_s: float) -> float | None:
    """How long to wait before refreshing `token` (None: it never expires).

    Args:
        token: the current token.
        now_s: the wall clock, Unix seconds.
        refresh_before_s: how long before `exp` to refresh.
    """
    exp = token_expiry(token)
    if exp is None:
        return None
    return max(MIN_REFRESH_WAIT_S, exp - refresh_before_s - now_s)


class Credentials:
    """The feed's current token and its refresh callback."""

    def __init__(
        self, token: str | None, refresh: TokenRefresh | None, refresh_before_s: float
    ) -> None:
        self.token = token
        self.refresh = refresh
        self.refresh_before_s = refresh_before_s
        self.refreshes = 0

    def headers(self) -> list[tuple[str, str]]:
        """The request headers that present the token (none without one)."""
        return [("Authorization", f"Bearer {self.token}")] if self.token else []

    async def renew(self) -> str:
        """Ask the callback for the next token and keep it.

        Raises:
            Exception: whatever the callback raises (the feed goes on with the old one).
        """
        assert self.refresh is not None
        token = await self.refresh()
        self.token = token
        self.refreshes += 1
        return token

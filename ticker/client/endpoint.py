"""Where a feed connects: the URL's transport, TLS, host, port and path.

`ws://` and `wss://` are the binary WebSocket endpoint, `http://` and `https://` the
SSE endpoint; a URL without a path gets the server's default path for its transport.
A feed may list several (the edges of a cluster): one transport and one TLS mode for
all. Pure parsing with clear errors; no sockets.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Final
from urllib.parse import urlsplit

from ticker.client.errors import FeedConfigError

WS_PATH: Final = "/v1/ws"
SSE_PATH: Final = "/v1/sse"


class Transport(enum.Enum):
    """How messages travel."""

    WEBSOCKET = "websocket"
    """Binary msgpack frames (optionally zstd): the trading clients' transport."""
    SSE = "sse"
    """Server-sent events of JSON text: the dashboards' transport."""


_SCHEMES: Final = {
    "ws": (Transport.WEBSOCKET, False),
    "wss": (Transport.WEBSOCKET, True),
    "http": (Transport.SSE, False),
    "https": (Transport.SSE, True),
}


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A parsed feed URL."""

    transport: Transport
    tls: bool
    host: str
    port: int
    path: str

    @classmethod
    def parse(cls, url: str) -> Endpoint:
        """Parse `ws://host:port/v1/ws`, `wss://...`, `http://host:port/v1/sse`, `https://...`.

        Raises:
            FeedConfigError: another scheme, no host, a bad port, or a query/fragment
                (the feed builds its own query).
        """
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise FeedConfigError(f"bad URL {url!r}: {exc}") from None
        scheme = _SCHEMES.get(parts.scheme.lower())
        if scheme is None:
            raise FeedConfigError(f"bad URL {url!r}: the scheme must be ws, wss, http or https")
        if not parts.hostname:
            raise FeedConfigError(f"bad URL {url!r}: no host")
        if parts.query or parts.fragment:
            raise FeedConfigError(f"bad URL {url!r}: no query or fragment, please")
        transport, tls = scheme
        default_path = WS_PATH if transport is Transport.WEBSOCKET else SSE_PATH
        path = parts.path if parts.path not in ("", "/") else default_path
        return cls(transport, tls, parts.hostname, port or (443 if tls else 80), path)

    def as_sse(self) -> Endpoint:
        """The SSE endpoint of the same server (the default WebSocket path becomes /v1/sse)."""
        if self.transport is Transport.SSE:
            return self
        path = SSE_PATH if self.path == WS_PATH else self.path
        return replace(self, transport=Transport.SSE, path=path)

    @property
    def host_header(self) -> str:
        """The Host header: the port is left out when it is the scheme's default."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == (443 if self.tls else 80) else f"{host}:{self.port}"

    def __str__(self) -> str:
        if self.transport is Transport.WEBSOCKET:
            scheme = "wss" if self.tls else "ws"
        else:
            scheme = "https" if self.tls else "http"
        return f"{scheme}://{self.host_header}{self.path}"


def parse_endpoints(urls: str | Sequence[str]) -> tuple[Endpoint, ...]:
    """Parse one URL or several (a feed moves between them in this order).

    All must speak the same transport (a feed cannot switch between msgpack frames and
    SSE mid-stream) and all or none must be TLS (a feed never falls back to plaintext).

    Raises:
        FeedConfigError: no URL, a bad one, or URLs that mix transports or TLS.
    """
    texts = [urls] if isinstance(urls, str) else list(urls)
    if not texts:
        raise FeedConfigError("give at least one URL, e.g. ws://127.0.0.1:8080/v1/ws")
    endpoints = tuple(Endpoint.parse(text) for text in texts)
    first = endpoints[0]
    for endpoint in endpoints[1:]:
        if endpoint.transport is not first.transport:
            raise FeedConfigError(
                f"every URL must use the same transport: {first} is {first.transport.value}, "
                f"{endpoint} is {endpoint.transport.value} (all ws/wss, or all http/https)"
            )
        if endpoint.tls is not first.tls:
            raise FeedConfigError(
                f"every URL must be TLS (wss/https) or none: {first} and {endpoint} differ "
                "(a feed never falls back from TLS to plaintext)"
            )
    return endpoints

"""Abuse limits of the front door and of each connection: pure decisions, no I/O.

Owns who is counted (the client address behind trusted proxies), how many streams a key
may hold, how fast an address may connect and a connection may send commands, which
browser origins may open a stream, the CORS answer, and the SSE rate a stream gets.
Takes `now` as an argument and never reads a clock or a socket; the listener and the
sessions act on what it returns. Must not know of authentication (a subject is a key).
"""

from __future__ import annotations

import enum
import ipaddress
import json
import math
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

from ticker.core.ratelimit import KeyedRateLimit
from ticker.errors import ConfigError
from ticker.wire.http import render_response

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

LIMIT_NAMES: Final = (
    "connections_per_ip",
    "connections_per_subject",
    "connect_rate_per_ip",
    "origin",
    "subscriptions",
    "command_rate",
    "command_rate_close",
    "sse_anonymous_rate",
    "cors_origin",
)
"""Every label of `ticker_limited_total{limit=...}` (docs/SECURITY.md)."""

CORS_MAX_AGE_S: Final = 600
"""How long a browser may cache a preflight answer."""
CORS_ALLOW_HEADERS: Final = "Authorization, Last-Event-ID"
"""Request headers a cross-origin page may send: a bearer token, the resume position."""


def parse_networks(texts: Iterable[str], setting: str) -> tuple[Network, ...]:
    """CIDRs (`10.0.0.0/8`, `::1/128`, or a bare address) as networks.

    Raises:
        ConfigError: one is not an address or a network (named with its `setting`).
    """
    networks = []
    for text in texts:
        try:
            networks.append(ipaddress.ip_network(text.strip(), strict=False))
        except ValueError:
            raise ConfigError(f"{setting}: {text!r} is not an address or CIDR") from None
    return tuple(networks)


def _address(text: str) -> Address | None:
    """An address from a peer or an `X-Forwarded-For` entry (a port or brackets allowed)."""
    text = text.strip()
    if text.startswith("["):  # [v6] or [v6]:port
        text = text[1 : text.find("]")] if "]" in text else ""
    elif text.count(":") == 1:  # v4:port
        text = text.partition(":")[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _in(address: Address, networks: tuple[Network, ...]) -> bool:
    return any(address in network for network in networks)


def client_address(peer_ip: str, forwarded_for: str, trusted: tuple[Network, ...]) -> str:
    """The address a request is counted and logged under.

    The peer's own address, unless the peer is a trusted proxy: then the rightmost
    `X-Forwarded-For` entry that is not a trusted proxy (each proxy appends the address
    it was connected from, so entries right of the first untrusted one were written by
    proxies we trust, and anything left of it may be forged by the client). An entry
    that is not an address ends the walk at the last trusted hop.

    Args:
        peer_ip: the TCP peer's address.
        forwarded_for: the `X-Forwarded-For` header (repeated headers joined by commas).
        trusted: the trusted proxies (`trusted_proxies`).

    Returns:
        The client's address as text.
    """
    peer = _address(peer_ip)
    if peer is None or not trusted or not _in(peer, trusted) or not forwarded_for:
        return peer_ip
    client = peer
    for entry in reversed(forwarded_for.split(",")):
        hop = _address(entry)
        if hop is None:
            break
        client = hop
        if not _in(hop, trusted):
            break
    return str(client)


def is_exempt(ip: str, exempt: tuple[Network, ...]) -> bool:
    """Whether `ip` is in the networks the per-address limits leave alone."""
    address = _address(ip)
    return address is not None and _in(address, exempt)


class ConnectionCounts:
    """Open streams per opaque key (a client address, or a subject once authenticated).

    Holds an entry only while its key has a stream open, so it is bounded by the open
    connections. `max_per_key` 0 means unlimited (counted all the same).
    """

    def __init__(self, max_per_key: int) -> None:
        if max_per_key < 0:
            raise ConfigError("max_per_key must be >= 0")
        self.max_per_key = max_per_key
        self._open: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._open)

    def held(self, key: str) -> int:
        """How many streams `key` holds now."""
        return self._open.get(key, 0)

    def acquire(self, key: str) -> bool:
        """Count one more stream for `key`; False (nothing counted) if it holds its
        maximum already."""
        held = self._open.get(key, 0)
        if self.max_per_key and held >= self.max_per_key:
            return False
        self._open[key] = held + 1
        return True

    def release(self, key: str) -> None:
        """One stream of `key` ended (each successful `acquire` is released once)."""
        held = self._open.get(key, 0)
        if held <= 1:
            self._open.pop(key, None)
        else:
            self._open[key] = held - 1


class EpisodeLog:
    """Says when a refusal is worth a log line: the first of an episode per key.

    An episode of `key` starts with a refusal and ends when `key` is admitted again.
    At most `max_keys` episodes are remembered (the least recently refused forgotten:
    its next refusal is logged again).
    """

    def __init__(self, max_keys: int) -> None:
        self.max_keys = max_keys
        self._open: OrderedDict[tuple[str, str], None] = OrderedDict()

    def refused(self, limit: str, key: str) -> bool:
        """A refusal of `key` by `limit`; True if it starts an episode (log it)."""
        episode = (limit, key)
        if episode in self._open:
            self._open.move_to_end(episode)
            return False
        if len(self._open) >= self.max_keys:
            self._open.popitem(last=False)
        self._open[episode] = None
        return True

    def admitted(self, limit: str, key: str) -> None:
        """`key` passed `limit`: its episode (if any) is over."""
        if self._open:
            self._open.pop((limit, key), None)


@dataclass(frozen=True, slots=True)
class Refusal:
    """A request refused before any stream byte: the status, the reason for the client,
    the limit's name (its counter label), when to retry (if known), and whether this
    refusal starts an episode and should be logged."""

    status: int
    message: str
    limit: str
    retry_after_s: float | None = None
    log: bool = True

    def response(self, *, as_json: bool = False) -> bytes:
        """The HTTP response: plain text, or the application's JSON error (`as_json`),
        with `Retry-After` (whole seconds, at least 1) when known."""
        if as_json:
            body = json.dumps({"error": self.message, "status": self.status}).encode()
            headers = [("Content-Type", "application/json"), ("Cache-Control", "no-store")]
        else:
            body = (self.message + "\n").encode()
            headers = [("Content-Type", "text/plain; charset=utf-8")]
        headers.append(("Connection", "close"))
        if self.retry_after_s is not None:
            headers.append(("Retry-After", str(max(1, math.ceil(self.retry_after_s)))))
        return render_response(self.status, headers, body)


class FrontDoor:
    """The per-address limits on new connections and open streams.

    Args:
        max_connections_per_ip: open streams per address; 0: unlimited.
        max_connections_per_subject: open streams per authenticated subject, from any
            address (`subjects`, never exempt); 0: unlimited.
        connect_rate_per_ip_per_s: new connections per address per second after the
            burst; 0: unlimited.
        connect_burst_per_ip: new connections an address may open at once.
        max_ips: addresses whose connect rate (and refusal episodes) are tracked.
        exempt: addresses none of these limits apply to.
    """

    def __init__(
        self,
        *,
        max_connections_per_ip: int,
        connect_rate_per_ip_per_s: float,
        connect_burst_per_ip: int,
        max_ips: int,
        exempt: tuple[Network, ...] = (),
        max_connections_per_subject: int = 0,
    ) -> None:
        self.streams = ConnectionCounts(max_connections_per_ip)
        self.subjects = ConnectionCounts(max_connections_per_subject)
        self.connect_rate = (
            KeyedRateLimit(connect_rate_per_ip_per_s, connect_burst_per_ip, max_ips)
            if connect_rate_per_ip_per_s > 0
            else None
        )
        self.episodes = EpisodeLog(max_ips)
        self.exempt = exempt

    def admit_connection(self, ip: str, now: float) -> Refusal | None:
        """A new connection from `ip` (any path), taken from its connect rate.

        Returns:
            None to serve it; a 429 `Refusal` with `Retry-After` when over the rate.
        """
        if self.connect_rate is None or is_exempt(ip, self.exempt):
            return None
        limited = self.connect_rate.take(ip, now)
        if limited is None:
            self.episodes.admitted("connect_rate_per_ip", ip)
            return None
        rate = self.connect_rate
        return Refusal(
            429,
            f"too many new connections from this address (at most {rate.rate_per_s:g}/s "
            f"after a burst of {rate.burst}); retry in {limited.retry_after_s:.1f} s",
            "connect_rate_per_ip",
            limited.retry_after_s,
            self.episodes.refused("connect_rate_per_ip", ip),
        )

    def open_stream(self, key: str, counts: ConnectionCounts | None = None) -> Refusal | None:
        """Count a stream for `key` in `counts` (default: per address, `self.streams`).

        The per-subject limit is the same call with another `ConnectionCounts` and the
        subject as key. Every None returned must be matched by `close_stream`.

        Returns:
            None when counted; a 429 `Refusal` when `key` holds its maximum already.
        """
        counts = self.streams if counts is None else counts
        if counts is self.streams and is_exempt(key, self.exempt):
            return None
        limit = "connections_per_ip" if counts is self.streams else "connections_per_subject"
        if counts.acquire(key):
            self.episodes.admitted(limit, key)
            return None
        return Refusal(
            429,
            f"too many open streams ({counts.max_per_key} at most); close one first",
            limit,
            None,
            self.episodes.refused(limit, key),
        )

    def close_stream(self, key: str, counts: ConnectionCounts | None = None) -> None:
        """A stream counted by `open_stream` ended."""
        counts = self.streams if counts is None else counts
        if counts is self.streams and is_exempt(key, self.exempt):
            return
        counts.release(key)


class Verdict(enum.Enum):
    """What to do with one client command."""

    APPLY = "apply"
    REFUSE = "refuse"
    """Over the rate: answer an error, do not apply it."""
    CLOSE = "close"
    """Persistently over the rate: close the connection."""


class CommandBudget:
    """One connection's command rate: a token bucket, and strikes for refusals.

    A command takes a token (`burst` at most, refilled at `rate_per_s`); without one it
    is refused and adds a strike. Strikes are forgiven at one per second; more than
    `max_strikes` outstanding closes the connection. So a client that stays over the
    rate is closed, and one that bursts past it now and then only gets errors.

    Args:
        rate_per_s: commands per second after the burst; 0: unlimited.
        burst: commands at once after a quiet spell.
        max_strikes: refused commands outstanding before the close.
        now: when the connection opened (the bucket starts full).
    """

    __slots__ = ("_strikes", "_then", "_tokens", "burst", "max_strikes", "rate_per_s", "refused")

    def __init__(self, rate_per_s: float, burst: int, max_strikes: int, now: float) -> None:
        self.rate_per_s = rate_per_s
        self.burst = burst
        self.max_strikes = max_strikes
        self.refused = 0
        """Commands refused over the connection's life."""
        self._tokens = float(burst)
        self._strikes = 0.0
        self._then = now

    def take(self, now: float) -> Verdict:
        """One command arrived at `now`."""
        if self.rate_per_s <= 0:
            return Verdict.APPLY
        elapsed = max(0.0, now - self._then)  # a clock stepping back drains nothing
        self._then = now
        self._tokens = min(float(self.burst), self._tokens + elapsed * self.rate_per_s)
        self._strikes = max(0.0, self._strikes - elapsed)
        if self._tokens >= 1:
            self._tokens -= 1
            return Verdict.APPLY
        self.refused += 1
        self._strikes += 1
        return Verdict.CLOSE if self._strikes > self.max_strikes else Verdict.REFUSE


def _origin_of(text: str) -> tuple[str, str] | None:
    """(the lower-case origin, its host name) of an `Origin` value; None if it is not
    `scheme://host[:port]`."""
    try:
        parts = urlsplit(text.strip())
        host = parts.hostname
        port = parts.port
    except ValueError:
        return None
    if not parts.scheme or not host or parts.path not in ("", "/") or parts.query:
        return None
    origin = f"{parts.scheme.lower()}://{parts.netloc.lower()}".rstrip("/")
    del port  # validated above (a bad port raises)
    return origin, host.lower()


def check_origins(texts: Iterable[str], setting: str) -> tuple[str, ...]:
    """Origins of a setting, lower-case: each `*` or `scheme://host[:port]` (or `null`).

    Raises:
        ConfigError: one is neither.
    """
    origins = []
    for text in texts:
        if text.strip() in ("*", "null"):
            origins.append(text.strip())
            continue
        parsed = _origin_of(text)
        if parsed is None:
            raise ConfigError(f"{setting}: {text!r} is not * or scheme://host[:port]")
        origins.append(parsed[0])
    return tuple(origins)


def origin_allowed(origin: str, host_header: str, allowed: tuple[str, ...]) -> bool:
    """Whether a browser page from `origin` may open a stream (WebSocket or SSE).

    Allowed: no `Origin` (not a browser, or a same-origin GET); an origin on the same
    host as the request's `Host` (any scheme or port: the dashboard's `?stream=`);
    one of `allowed`; anything when `allowed` holds `*`. A page elsewhere cannot ride
    a visitor's cookies or network position into a stream (cross-site WebSocket
    hijacking).
    """
    if not origin:
        return True
    if "*" in allowed:
        return True
    if origin.strip() == "null":
        return "null" in allowed
    parsed = _origin_of(origin)
    if parsed is None:
        return False
    text, host = parsed
    own = (urlsplit(f"//{host_header.strip()}").hostname or "") if host_header else ""
    return host == own.lower() or text in allowed


def cors_headers(
    origin: str, allowed: tuple[str, ...], *, preflight: bool = False
) -> list[tuple[str, str]]:
    """The CORS headers answering a request from `origin` (empty: not shared with it).

    `*` in `allowed` shares with every page; otherwise a listed origin is echoed back
    (with `Vary: Origin`, so a cache keeps answers apart). A preflight also names the
    method and the headers a page may send.
    """
    if "*" in allowed:
        headers = [("Access-Control-Allow-Origin", "*")]
    else:
        headers = [("Vary", "Origin")]
        parsed = _origin_of(origin) if origin else None
        if parsed is not None and parsed[0] in allowed:
            headers.append(("Access-Control-Allow-Origin", parsed[0]))
        elif origin.strip() == "null" and "null" in allowed:
            headers.append(("Access-Control-Allow-Origin", "null"))
        else:
            return headers
    if preflight:
        headers += [
            ("Access-Control-Allow-Methods", "GET"),
            ("Access-Control-Allow-Headers", CORS_ALLOW_HEADERS),
            ("Access-Control-Max-Age", str(CORS_MAX_AGE_S)),
        ]
    return headers


def shares_with(origin: str, allowed: tuple[str, ...]) -> bool:
    """Whether `cors_headers` grants `origin` (a page's request that CORS refuses is
    counted as `cors_origin`)."""
    return any(name == "Access-Control-Allow-Origin" for name, _ in cors_headers(origin, allowed))


def sse_max_rate(
    asked: float | None, *, anonymous: bool, anonymous_max_rate: float
) -> float | None:
    """The `max_rate` an SSE stream gets (None: every update).

    An anonymous stream is capped at `anonymous_max_rate` when it is set (> 0): asking
    for none, or for more, gets that rate. Other streams get what they asked for.
    """
    if not anonymous or anonymous_max_rate <= 0:
        return asked
    if asked is None:
        return anonymous_max_rate
    return min(asked, anonymous_max_rate)

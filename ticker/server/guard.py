"""The front door's and the sessions' hooks into the abuse limits: count, log, answer.

Applies the decisions of `ticker.server.limits` to one request or connection: who the
client is behind trusted proxies, the connect rate, the browser origin, streams per
address, the CORS answer. Each refusal is counted in `ServerStats.limited` and logged
once per address episode (or once per connection). Must not decide anything itself.
"""

from __future__ import annotations

import logging

import trio

from ticker.server.context import ServerContext
from ticker.server.limits import (
    Refusal,
    client_address,
    cors_headers,
    origin_allowed,
    shares_with,
    sse_max_rate,
)
from ticker.wire.http import RequestHead, render_response

log = logging.getLogger("ticker.server")

GUARDED_STREAMS = frozenset({"/v1/ws", "/v1/sse"})
"""The browser-facing streams: origin checked, counted per client address."""


def client_peer(peer: str, head: RequestHead, context: ServerContext) -> str:
    """`peer` (`address:port` of the TCP peer) with the client's address behind a
    trusted proxy (`X-Forwarded-For`), so every limit and log line names the client."""
    if not context.trusted_proxies:
        return peer
    ip, _, port = peer.rpartition(":")
    client = client_address(ip, head.header("x-forwarded-for"), context.trusted_proxies)
    return peer if client == ip else f"{client}:{port}"


def peer_ip(peer: str) -> str:
    """The address of an `address:port` peer."""
    return peer.rpartition(":")[0]


def check_request(head: RequestHead, peer: str, context: ServerContext) -> Refusal | None:
    """The limits on a new request from `peer` (after `client_peer`): the connect rate
    on every path, then the origin on the streams. Counts and logs a refusal."""
    front = context.front_door
    ip = peer_ip(peer)
    if front is not None:
        refusal = front.admit_connection(ip, trio.current_time())
        if refusal is not None:
            return counted(refusal, peer, context)
    if head.path in GUARDED_STREAMS:
        origin = head.header("origin")
        if not origin_allowed(origin, head.header("host"), context.config.stream_origins):
            episodes = front.episodes if front is not None else None
            log_it = episodes.refused("origin", ip) if episodes is not None else True
            refusal = Refusal(
                403, "streams are not open to pages of this origin", "origin", None, log_it
            )
            return counted(refusal, peer, context, detail=f"origin={origin[:100]!r}")
    return None


def open_stream(peer: str, context: ServerContext) -> Refusal | None:
    """Count a stream for `peer`'s address (its subject: `open_subject_stream`)."""
    front = context.front_door
    if front is None:
        return None
    refusal = front.open_stream(peer_ip(peer))
    return None if refusal is None else counted(refusal, peer, context)


def close_stream(peer: str, context: ServerContext) -> None:
    """The stream counted by a successful `open_stream` ended."""
    if context.front_door is not None:
        context.front_door.close_stream(peer_ip(peer))


def open_subject_stream(subject: str, peer: str, context: ServerContext) -> Refusal | None:
    """Count a stream for an authenticated `subject` (from any address)."""
    front = context.front_door
    if front is None:
        return None
    refusal = front.open_stream(subject, front.subjects)
    return None if refusal is None else counted(refusal, peer, context, f"(subject {subject})")


def close_subject_stream(subject: str, context: ServerContext) -> None:
    """The stream counted by a successful `open_subject_stream` ended."""
    if context.front_door is not None:
        context.front_door.close_stream(subject, context.front_door.subjects)


def counted(refusal: Refusal, peer: str, context: ServerContext, detail: str = "") -> Refusal:
    """Count `refusal` and log it if it starts an episode; returns it."""
    context.stats.limited[refusal.limit] += 1
    if refusal.log:
        log.warning(
            "limit %s refused %s%s: %s (further refusals of this address are counted in "
            "ticker_limited_total, not logged, until it is admitted again)",
            refusal.limit, peer, f" {detail}" if detail else "", refusal.message,
        )  # fmt: skip
    return refusal


def note_connection_limit(
    context: ServerContext, noted: set[str], limit: str, peer: str, message: str
) -> None:
    """Count a per-connection limit (`subscriptions`, `command_rate`); log it the first
    time on this connection (`noted` is the connection's own set)."""
    context.stats.limited[limit] += 1
    if limit not in noted:
        noted.add(limit)
        log.warning(
            "limit %s reached by %s: %s (not logged again for this connection)",
            limit,
            peer,
            message,
        )


def preflight(head: RequestHead, context: ServerContext) -> bytes:
    """The answer to a CORS preflight (`OPTIONS /v1/sse`): 204 with the CORS headers
    when the origin is shared with, without them (the browser refuses) otherwise."""
    origin = head.header("origin")
    allowed = context.config.cors_origins
    if origin and not shares_with(origin, allowed):
        context.stats.limited["cors_origin"] += 1
    headers = [*cors_headers(origin, allowed, preflight=True), ("Connection", "close")]
    return render_response(204, headers, content_length=False)


def stream_cors(head: RequestHead, context: ServerContext) -> list[tuple[str, str]]:
    """The CORS headers of an event stream's response (a refused origin counted)."""
    origin = head.header("origin")
    allowed = context.config.cors_origins
    if origin and not shares_with(origin, allowed):
        context.stats.limited["cors_origin"] += 1
    return cors_headers(origin, allowed)


def capped_max_rate(
    asked: float | None, peer: str, context: ServerContext, *, anonymous: bool
) -> float | None:
    """The `max_rate` an SSE stream gets (`sse_max_rate`); a stream capped below what it
    asked for is counted, and logged once per address."""
    rate = sse_max_rate(
        asked, anonymous=anonymous, anonymous_max_rate=context.config.sse_anonymous_max_rate_per_s
    )
    if rate != asked:
        context.stats.limited["sse_anonymous_rate"] += 1
        front = context.front_door
        if front is None or front.episodes.refused("sse_anonymous_rate", peer_ip(peer)):
            log.info(
                "anonymous SSE streams of %s are capped at max_rate=%g (asked for %s)",
                peer, rate, "none" if asked is None else f"{asked:g}",
            )  # fmt: skip
    return rate

"""The replayer's client for a server's publish endpoint (`GET /v1/publish`).

`open_publisher` connects with the bearer token and yields a `RemotePublisher`:
`publish(events)` sends one batch (split to fit the protocol's limits) and waits while
`window_batches` batches are unacknowledged (so the server's backpressure holds the replay
back), at most `window_timeout_s`; `drain()` waits for every acknowledgement, so at the end
the caller knows exactly what was accepted. Every way the target can fail becomes one
`TargetError` with a plain message, which never repeats the token.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import trio
from trio_websocket import (
    ConnectionClosed,
    ConnectionRejected,
    HandshakeError,
    WebSocketConnection,
    wrap_client_stream,
)

from ticker.capture.errors import TargetError
from ticker.errors import BadMessage
from ticker.model.events import NormalizedEvent
from ticker.wire.publish import (
    MAX_BATCH_EVENTS,
    MAX_MESSAGE_BYTES,
    PUBLISH_PATH,
    SUBPROTOCOL,
    Ack,
    decode_reply,
    encode_batch,
)

WINDOW_BATCHES = 8
"""Batches sent but not yet acknowledged, at most."""
WINDOW_TIMEOUT_S = 60.0
"""How long `publish` waits for the target to acknowledge a batch when the window is full."""
MAX_REASONS = 10
"""Refusal reasons kept for the report (the count is exact; the list is bounded)."""


@dataclass(frozen=True, slots=True)
class PublishUrl:
    host: str
    port: int
    path: str
    tls: bool

    def __str__(self) -> str:
        scheme = "wss" if self.tls else "ws"
        return f"{scheme}://{self.host}:{self.port}{self.path}"


def parse_target(url: str) -> PublishUrl:
    """`ws://host:port[/v1/publish]` (or wss, http, https) as its parts.

    Raises:
        ValueError: another scheme, no host, or a bad port.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("ws", "wss", "http", "https") or not parts.hostname:
        raise ValueError(f"target must look like ws://HOST:PORT, got {url!r}")
    tls = parts.scheme in ("wss", "https")
    try:
        port = parts.port or (443 if tls else 80)
    except ValueError:
        raise ValueError(f"bad port in target {url!r}") from None
    path = parts.path if parts.path not in ("", "/") else PUBLISH_PATH
    return PublishUrl(parts.hostname, port, path, tls)


@dataclass(slots=True)
class PublishCounts:
    """What was sent to the target and what it said about it."""

    batches_sent: int = 0
    events_sent: int = 0
    batches_acked: int = 0
    events_acked: int = 0
    batches_refused: int = 0
    events_refused: int = 0
    reasons: list[str] = field(default_factory=list)


class RemotePublisher:
    """Publishes batches over one connection; use through `open_publisher`."""

    def __init__(
        self,
        ws: WebSocketConnection,
        url: PublishUrl,
        window_batches: int,
        window_timeout_s: float = WINDOW_TIMEOUT_S,
    ) -> None:
        self._ws = ws
        self.url = url
        self.window_batches = window_batches
        self.window_timeout_s = window_timeout_s
        self.counts = PublishCounts()
        self._inflight: dict[int, int] = {}
        self._next_id = 1
        self._changed = trio.Event()
        self.failure: str | None = None

    def _notify(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    async def publish(self, events: Sequence[NormalizedEvent]) -> None:
        """Send one batch; waits while the window of unacknowledged batches is full.

        A batch of more than `MAX_BATCH_EVENTS` events, or too big for one message, goes
        as several.

        Raises:
            TargetError: the target failed, closed the connection, or acknowledged
                nothing for `window_timeout_s` while the window was full.
        """
        if len(events) > MAX_BATCH_EVENTS:
            for start in range(0, len(events), MAX_BATCH_EVENTS):
                await self.publish(events[start : start + MAX_BATCH_EVENTS])
            return
        with trio.move_on_after(self.window_timeout_s) as window:
            while self.failure is None and len(self._inflight) >= self.window_batches:
                await self._changed.wait()
        if window.cancelled_caught:
            self._fail(
                f"{self.url} acknowledged no batch in {self.window_timeout_s:g} s "
                "while the window was full"
            )
        if self.failure is not None:
            raise TargetError(self.failure)
        batch_id = self._next_id
        message = encode_batch(batch_id, events)
        if len(message) > MAX_MESSAGE_BYTES and len(events) > 1:
            # Too big for one message (deep book snapshots): send it in two halves.
            half = len(events) // 2
            await self.publish(events[:half])
            await self.publish(events[half:])
            return
        self._next_id += 1
        self._inflight[batch_id] = len(events)
        try:
            await self._ws.send_message(message)
        except ConnectionClosed as exc:
            self._fail(_closed_text(exc))
            raise TargetError(self.failure or "") from None
        except (trio.BrokenResourceError, OSError):
            self._fail("the connection to the target broke")
            raise TargetError(self.failure or "") from None
        self.counts.batches_sent += 1
        self.counts.events_sent += len(events)

    async def drain(self) -> None:
        """Wait until every batch sent is acknowledged or refused.

        Raises:
            TargetError: the target failed before answering them all.
        """
        while self.failure is None and self._inflight:
            await self._changed.wait()
        if self.failure is not None:
            raise TargetError(self.failure)

    def _fail(self, reason: str) -> None:
        if self.failure is None:
            unanswered = len(self._inflight)
            self.failure = f"{reason}; {unanswered} batches were not acknowledged"
        self._notify()

    async def read_replies(self) -> None:
        """Take the server's replies until the connection closes (a background task)."""
        counts = self.counts
        while True:
            try:
                message = await self._ws.get_message()
            except ConnectionClosed as exc:
                self._fail(_closed_text(exc))
                return
            try:
                if not isinstance(message, bytes):
                    raise BadMessage("text reply")
                reply = decode_reply(message)
            except BadMessage as exc:
                self._fail(f"the target sent an unreadable reply ({exc})")
                return
            if reply.batch_id is None or reply.batch_id not in self._inflight:
                reason = getattr(reply, "reason", "")
                self._fail(f"the target answered a batch it was not sent: {reason}")
                return
            size = self._inflight.pop(reply.batch_id)
            if isinstance(reply, Ack):
                counts.batches_acked += 1
                counts.events_acked += reply.accepted
            else:
                counts.batches_refused += 1
                counts.events_refused += size
                if len(counts.reasons) < MAX_REASONS:
                    counts.reasons.append(f"batch {reply.batch_id}: {reply.reason}")
            self._notify()


def _closed_text(exc: ConnectionClosed) -> str:
    reason = exc.reason
    if reason is None:
        return "the target closed the connection"
    detail = f": {reason.reason}" if reason.reason else ""
    return f"the target closed the connection ({reason.code}{detail})"


async def _connect(target: PublishUrl, timeout_s: float, ssl_context: ssl.SSLContext | None) -> Any:
    try:
        with trio.fail_after(timeout_s):
            if target.tls:
                return await trio.open_ssl_over_tcp_stream(
                    target.host, target.port, https_compatible=True,
                    ssl_context=ssl_context or ssl.create_default_context(),
                )  # fmt: skip
            return await trio.open_tcp_stream(target.host, target.port)
    except trio.TooSlowError:
        raise TargetError(f"cannot connect to {target}: no answer in {timeout_s:g} s") from None
    except OSError as exc:
        raise TargetError(f"cannot connect to {target}: {exc}") from None


def _translate(exc: BaseException, target: PublishUrl) -> BaseException:
    """Every way the connection can fail, as the one exception the caller should see."""
    if isinstance(exc, ConnectionRejected):
        body = bytes(exc.body or b"").decode("utf-8", "replace").strip()
        if exc.status_code == 401:
            return TargetError(f"{target} refused the token (HTTP 401): {body}")
        return TargetError(f"{target} refused to publish (HTTP {exc.status_code}): {body}")
    if isinstance(exc, ConnectionClosed):
        return TargetError(f"{target}: {_closed_text(exc)}")
    if isinstance(exc, HandshakeError | trio.BrokenResourceError | ssl.SSLError | OSError):
        cause = exc.__cause__ or exc
        if isinstance(cause, OSError | ssl.SSLError | trio.BrokenResourceError):
            return TargetError(f"connection to {target} failed: {cause!r}")
        return TargetError(f"connection to {target} failed ({type(cause).__name__})")
    if isinstance(exc, Exception) and not isinstance(exc, TargetError):
        # Something unforeseen (a protocol library's error may quote our own headers,
        # the token among them): say what failed, not what it said.
        return TargetError(f"connection to {target} failed unexpectedly ({type(exc).__name__})")
    return exc


def check_token(token: str) -> None:
    """A bearer token must be printable, without spaces or control characters.

    Raises:
        ValueError: it is not (the message does not repeat the token).
    """
    if not token:
        raise ValueError("the publish token is empty")
    if any(char.isspace() or not char.isprintable() for char in token):
        raise ValueError(
            "the publish token holds a space, line break or control character "
            "(it is not shown here); a token is printable characters only"
        )


def _single(group: BaseExceptionGroup[BaseException]) -> BaseException | None:
    """The one exception in `group` that is not a cancellation, if there is just one."""
    _, rest = group.split(trio.Cancelled)
    if rest is None:
        return None
    leaves: list[BaseException] = []
    pending: list[BaseException] = [rest]
    while pending:
        item = pending.pop()
        if isinstance(item, BaseExceptionGroup):
            pending.extend(item.exceptions)
        else:
            leaves.append(item)
    return leaves[0] if len(leaves) == 1 else None


@asynccontextmanager
async def open_publisher(
    url: str,
    token: str,
    *,
    window_batches: int = WINDOW_BATCHES,
    window_timeout_s: float = WINDOW_TIMEOUT_S,
    connect_timeout_s: float = 10.0,
    ssl_context: ssl.SSLContext | None = None,
) -> AsyncIterator[RemotePublisher]:
    """Connect to a server's publish endpoint with `token`.

    The connection is built here over our own stream (trio-websocket's `open_websocket`
    leaves the socket open when the server refuses the upgrade).

    Raises:
        ValueError: a malformed URL, or a token that cannot go in a header.
        TargetError: unreachable, refused (the message names the HTTP status and says
            so when the token was refused), or failed later.
    """
    target = parse_target(url)
    check_token(token)
    headers = [(b"Authorization", b"Bearer " + token.encode("utf-8"))]
    stream = await _connect(target, connect_timeout_s, ssl_context)
    from_caller: list[BaseException] = []  # what the caller's block raised passes unchanged
    try:
        async with trio.open_nursery() as nursery:
            with trio.move_on_after(connect_timeout_s) as handshake:
                ws = await wrap_client_stream(
                    nursery, stream, f"{target.host}:{target.port}", target.path,
                    subprotocols=[SUBPROTOCOL], extra_headers=headers,
                    message_queue_size=window_batches + 2, max_message_size=1 << 16,
                )  # fmt: skip
            if handshake.cancelled_caught:
                raise TargetError(f"{target} did not answer the upgrade in {connect_timeout_s:g} s")
            publisher = RemotePublisher(ws, target, window_batches, window_timeout_s)
            nursery.start_soon(publisher.read_replies)
            try:
                yield publisher
            except BaseException as exc:
                from_caller.append(exc)
                raise
            finally:
                with trio.CancelScope(shield=True), trio.move_on_after(connect_timeout_s):
                    await ws.aclose()
                nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        single = _single(group)
        if single is None:
            raise
        if single in from_caller:
            raise single from None
        raise _translate(single, target) from None
    except Exception as exc:
        if exc in from_caller or isinstance(exc, TargetError):
            raise
        raise _translate(exc, target) from None
    finally:
        with trio.CancelScope(shield=True), trio.move_on_after(connect_timeout_s):
            await stream.aclose()

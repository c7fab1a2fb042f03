"""A minimal Redis connection (RESP2) on trio: the cluster log's hot path, one socket each.

Owns the encoding of commands, the parsing of replies and one connection's socket. The
fenced append and the follower's blocking read go through it because coredis costs
~0.3-0.5 ms of CPU per command here (a pool, a writer and a reader task per connection,
anyio over trio), which was most of the Redis hop's latency. It must not retry, time out
or interpret a reply: `ticker.cluster.redis_log` does all three.
"""

from __future__ import annotations

import enum
import socket
import ssl
from dataclasses import dataclass
from typing import Final, Union

import trio

__all__ = [
    "INCOMPLETE",
    "Arg",
    "ConnectionLost",
    "Pending",
    "RedisTarget",
    "Reply",
    "ReplyParser",
    "RespConnection",
    "RespError",
    "connect",
    "encode_command",
]

Reply = Union[bytes, int, list["Reply"], "RespError", None]
"""A parsed reply: bulk and simple strings are bytes, nil is None; an error nested in an
array is a `RespError` value (a top-level error is raised)."""
Arg = bytes | str | int

MAX_REPLY_BYTES: Final = 256 * 1024 * 1024
"""A reply larger than this ends the connection (a log read of 256 entries is far smaller)."""
RECEIVE_BYTES: Final = 256 * 1024
"""Bytes asked of the socket per receive."""


class RespError(Exception):
    """An error reply from Redis; `code` is its first word (e.g. `NOSCRIPT`, `FENCED`)."""

    @property
    def code(self) -> str:
        return str(self).partition(" ")[0]


class ConnectionLost(Exception):
    """The connection ended or spoke something that is not RESP: it is closed, and
    whether the last command ran is unknown."""


class _Incomplete(Exception):
    """More bytes are needed (internal to the parser)."""


class Pending(enum.Enum):
    """What `ReplyParser.next` returns until a whole reply has arrived."""

    INCOMPLETE = "incomplete"


INCOMPLETE: Final = Pending.INCOMPLETE


def encode_command(args: tuple[Arg, ...]) -> bytes:
    """One command as a RESP array of bulk strings."""
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg if isinstance(arg, bytes) else str(arg).encode()
        parts.append(b"$%d\r\n" % len(data))
        parts.append(data)
        parts.append(b"\r\n")
    return b"".join(parts)


class ReplyParser:
    """Turns received bytes into replies, in order. Pure: no socket, no clock.

    Args:
        max_bytes: the most bytes one unparsed reply may take (`ConnectionLost` past it).
    """

    def __init__(self, max_bytes: int = MAX_REPLY_BYTES) -> None:
        # The received bytes as they came while nothing is left over (the usual case: a
        # whole reply in one receive), parsed without a copy; a bytearray once a reply
        # spans receives.
        self._buffer: bytes | bytearray = b""
        self._start = 0
        self._need = 0  # parse again only once the buffer holds this many bytes
        self._max_bytes = max_bytes

    def feed(self, data: bytes | bytearray) -> None:
        """Add received bytes.

        Raises:
            ConnectionLost: the reply being received is larger than `max_bytes`.
        """
        buffer, start = self._buffer, self._start
        if start >= len(buffer):  # everything before was parsed
            if len(data) > self._max_bytes:
                raise ConnectionLost(f"a reply from Redis is larger than {self._max_bytes} bytes")
            self._buffer, self._start, self._need = bytes(data), 0, 0
            return
        if len(buffer) - start + len(data) > self._max_bytes:
            raise ConnectionLost(f"a reply from Redis is larger than {self._max_bytes} bytes")
        if isinstance(buffer, bytearray):
            del buffer[:start]
            buffer += data
        else:
            self._buffer = buffer = bytearray(memoryview(buffer)[start:])
            buffer += data
        self._need -= start
        self._start = 0

    def next(self) -> Reply | Pending:
        """The next whole reply, or `INCOMPLETE`.

        Raises:
            ConnectionLost: the bytes are not RESP.
        """
        if len(self._buffer) < self._need or self._start >= len(self._buffer):
            return INCOMPLETE
        try:
            reply, end = self._parse(self._start)
        except _Incomplete:
            return INCOMPLETE
        except (ValueError, IndexError) as exc:
            raise ConnectionLost(f"Redis sent something that is not RESP: {exc}") from None
        self._start = end
        self._need = 0
        return reply

    def _parse(self, at: int) -> tuple[Reply, int]:
        buffer = self._buffer
        eol = buffer.find(b"\r\n", at)
        if eol < 0:
            self._need = len(buffer) + 1
            raise _Incomplete
        kind = buffer[at]
        line = buffer[at + 1 : eol]
        at = eol + 2
        if kind == 0x24:  # $ bulk string
            size = int(line)
            if size < 0:
                return None, at
            end = at + size
            if len(buffer) < end + 2:
                self._need = end + 2
                raise _Incomplete
            if buffer[end] != 0x0D or buffer[end + 1] != 0x0A:
                raise ValueError("a bulk string does not end with CRLF")
            return bytes(buffer[at:end]), end + 2
        if kind == 0x2A:  # * array
            count = int(line)
            if count < 0:
                return None, at
            items: list[Reply] = []
            for _ in range(count):
                item, at = self._parse(at)
                items.append(item)
            return items, at
        if kind == 0x3A:  # : integer
            return int(line), at
        if kind == 0x2B:  # + simple string
            return bytes(line), at
        if kind == 0x2D:  # - error
            return RespError(bytes(line).decode("utf-8", "replace")), at
        raise ValueError(f"unknown reply type {bytes([kind])!r}")


@dataclass(frozen=True, slots=True)
class RedisTarget:
    """Where and how to connect: a TCP host and port or a Unix socket path, credentials,
    the database, TLS. Built from coredis's reading of the same URL (`redis_log`)."""

    host: str = ""
    port: int = 0
    path: str = ""
    username: str | None = None
    password: str | None = None
    db: int = 0
    ssl_context: ssl.SSLContext | None = None


class RespConnection:
    """One connection to Redis: a command, then its reply, one at a time.

    Not safe for concurrent use: the caller serializes (`redis_log` holds a lock).

    Args:
        stream: the connection (`connect` makes one). A plain socket stream (TCP or a
            Unix socket) is taken over as a bare non-blocking socket (see `_Socket`).
    """

    def __init__(self, stream: trio.abc.Stream) -> None:
        self._transport: _Socket | _Stream = (
            _Socket(stream) if isinstance(stream, trio.SocketStream) else _Stream(stream)
        )
        self._parser = ReplyParser()

    async def call(self, *args: Arg) -> Reply:
        """Send one command and return its reply.

        Raises:
            RespError: Redis answered with an error.
            ConnectionLost: the connection ended or sent something that is not RESP.
            OSError, trio.BrokenResourceError: the socket failed.
        """
        transport = self._transport
        await trio.lowlevel.checkpoint_if_cancelled()
        waited = await transport.send_all(encode_command(args))
        while True:
            reply = self._parser.next()
            if not isinstance(reply, Pending):
                break
            data, blocked = await transport.receive(RECEIVE_BYTES)
            waited = waited or blocked
            if not data:
                raise ConnectionLost("Redis closed the connection")
            self._parser.feed(data)
        if not waited:
            # The reply was there without a wait (rare: Redis answers in microseconds):
            # still let other tasks run, as every trio socket call does.
            await trio.lowlevel.cancel_shielded_checkpoint()
        if isinstance(reply, RespError):
            raise reply
        return reply

    async def aclose(self) -> None:
        """Close the socket at once (an unanswered command is abandoned)."""
        await self._transport.aclose()


class _Socket:
    """A plain socket (TCP or Unix) used bare: send and receive at once, waiting for the
    socket only when it would block.

    Why not trio's SocketStream: each of its sends ends with a pass of the scheduler
    even when the bytes went at once, and its layers (conflict detector, error
    translation, `_try_sync`) cost tens of microseconds per command, all on the path of
    every message through the cluster log (docs/CLUSTER.md, "Latency of the hop").
    """

    def __init__(self, stream: trio.SocketStream) -> None:
        # Take the file descriptor over: the trio socket is closed without closing it.
        self._sock = socket.socket(fileno=stream.socket.detach())
        self._sock.setblocking(False)

    async def send_all(self, data: bytes) -> bool:
        """Send every byte; whether it had to wait for the socket."""
        waited = False
        view = memoryview(data)
        while view:
            try:
                view = view[self._sock.send(view) :]
            except BlockingIOError:
                waited = True
                await trio.lowlevel.wait_writable(self._sock)
        return waited

    async def receive(self, max_bytes: int) -> tuple[bytes | bytearray, bool]:
        """The bytes that have arrived (b"" at the end), and whether it had to wait."""
        try:
            return self._sock.recv(max_bytes), False
        except BlockingIOError:
            pass
        while True:
            await trio.lowlevel.wait_readable(self._sock)
            try:
                return self._sock.recv(max_bytes), True
            except BlockingIOError:
                continue

    async def aclose(self) -> None:
        trio.lowlevel.notify_closing(self._sock)
        self._sock.close()
        await trio.lowlevel.cancel_shielded_checkpoint()


class _Stream:
    """Any other trio stream (TLS): sends and receives through it."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self._stream = stream

    async def send_all(self, data: bytes) -> bool:
        await self._stream.send_all(data)
        return True  # a trio stream's send is a checkpoint

    async def receive(self, max_bytes: int) -> tuple[bytes | bytearray, bool]:
        return await self._stream.receive_some(max_bytes), True

    async def aclose(self) -> None:
        await trio.aclose_forcefully(self._stream)


async def connect(target: RedisTarget) -> RespConnection:
    """A connection to `target`, authenticated and on its database.

    Raises:
        OSError: Redis cannot be reached.
        RespError: Redis refused the credentials or the database.
    """
    stream: trio.abc.Stream
    if target.path:
        stream = await trio.open_unix_socket(target.path)
    else:
        stream = await trio.open_tcp_stream(target.host, target.port)  # sets TCP_NODELAY
        if target.ssl_context is not None:
            stream = trio.SSLStream(
                stream, target.ssl_context, server_hostname=target.host, https_compatible=True
            )
    connection = RespConnection(stream)
    try:
        if target.password is not None:
            if target.username:
                await connection.call(b"AUTH", target.username, target.password)
            else:
                await connection.call(b"AUTH", target.password)
        if target.db:
            await connection.call(b"SELECT", target.db)
    except BaseException:
        await connection.aclose()
        raise
    return connection

"""The minimal RESP connection of the cluster log's hot path: encoding and parsing (pure),
then the connection on a bare socket against a fake Redis, and the lanes of a
`ClusterLog` against a real redis-server."""

from __future__ import annotations

import socket

import pytest
import trio

from ticker.cluster.resp import (
    INCOMPLETE,
    ConnectionLost,
    Reply,
    ReplyParser,
    RespConnection,
    RespError,
    encode_command,
)

# One of every reply type Redis sends in RESP2, as an XREAD answer would nest them.
WIRE = (
    b"+OK\r\n"
    b":-42\r\n"
    b"$5\r\nhe\r\nl\r\n"
    b"$0\r\n\r\n"
    b"$-1\r\n"
    b"*-1\r\n"
    b"-NOSCRIPT No matching script\r\n"
    b"*1\r\n*2\r\n$9\r\nt:{x}:log\r\n*1\r\n*2\r\n$3\r\n7-1\r\n*2\r\n$1\r\nm\r\n$3\r\n\x00\xff\r\r\n"
    b"*2\r\n:1\r\n-FENCED not ours\r\n"
)


def parse_all(parser: ReplyParser) -> list[Reply]:
    replies: list[Reply] = []
    while True:
        reply = parser.next()
        if reply is INCOMPLETE:
            return replies
        replies.append(reply)


def expected() -> list[Reply]:
    return [
        b"OK",
        -42,
        b"he\r\nl",
        b"",
        None,
        None,
        RespError("NOSCRIPT No matching script"),
        [[b"t:{x}:log", [[b"7-1", [b"m", b"\x00\xff\r"]]]]],
        [1, RespError("FENCED not ours")],
    ]


def same(got: list[Reply], want: list[Reply]) -> bool:
    """Equality that compares errors by their message."""
    return repr(got) == repr(want)


def test_a_command_is_an_array_of_bulk_strings() -> None:
    assert encode_command((b"XREAD", "COUNT", 256, b"\r\n")) == (
        b"*4\r\n$5\r\nXREAD\r\n$5\r\nCOUNT\r\n$3\r\n256\r\n$2\r\n\r\n\r\n"
    )


def test_every_reply_type_parses_when_fed_at_once() -> None:
    parser = ReplyParser()
    parser.feed(WIRE)
    assert same(parse_all(parser), expected())
    assert parser.next() is INCOMPLETE


def test_replies_split_at_every_byte_parse_the_same() -> None:
    for cut in range(1, len(WIRE)):
        parser = ReplyParser()
        parser.feed(WIRE[:cut])
        got = parse_all(parser)
        parser.feed(WIRE[cut:])
        got += parse_all(parser)
        assert same(got, expected()), cut


def test_replies_fed_one_byte_at_a_time_parse_the_same() -> None:
    parser = ReplyParser()
    got: list[Reply] = []
    for i in range(len(WIRE)):
        parser.feed(WIRE[i : i + 1])
        got += parse_all(parser)
    assert same(got, expected())


@pytest.mark.parametrize(
    "wire",
    [b"?what\r\n", b":12x\r\n", b"$3\r\nabcd\r\n", b"*x\r\n", b"$z\r\n"],
)
def test_bytes_that_are_not_resp_end_the_connection(wire: bytes) -> None:
    parser = ReplyParser()
    parser.feed(wire)
    with pytest.raises(ConnectionLost):
        parser.next()


def test_a_reply_larger_than_the_bound_ends_the_connection() -> None:
    parser = ReplyParser(max_bytes=64)
    parser.feed(b"$100\r\n" + b"x" * 50)
    assert parser.next() is INCOMPLETE
    with pytest.raises(ConnectionLost):
        parser.feed(b"x" * 52)


def test_a_reply_larger_than_the_bound_in_one_receive_ends_the_connection() -> None:
    parser = ReplyParser(max_bytes=64)
    parser.feed(b"$3\r\nabc\r\n")
    assert parser.next() == b"abc"
    with pytest.raises(ConnectionLost):
        parser.feed(b"$100\r\n" + b"x" * 100 + b"\r\n")


def test_parsed_replies_do_not_count_against_the_bound() -> None:
    parser = ReplyParser(max_bytes=64)
    for _ in range(100):
        parser.feed(b"$40\r\n" + b"y" * 40 + b"\r\n")
        assert parser.next() == b"y" * 40


# -- the connection on a bare socket (a fake Redis on the other end of a socket pair) ---


async def fake_redis(
    sock: trio.socket.SocketType, command_bytes: int, chunks: list[bytes]
) -> bytes:
    """Read one command of `command_bytes`, then answer it in `chunks` (a pause between)."""
    received = bytearray()
    while len(received) < command_bytes:
        data = await sock.recv(1 << 16)
        assert data, "the client closed before sending the whole command"
        received += data
    for chunk in chunks:
        await sock.send(chunk)
        await trio.sleep(0.01)
    return bytes(received)


async def test_a_command_larger_than_the_socket_buffer_is_sent_whole_and_answered() -> None:
    # The bare socket's send would block: it waits for the socket and goes on.
    client, server = trio.socket.socketpair()
    client.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    connection = RespConnection(trio.SocketStream(client))
    value = bytes(range(256)) * 8192  # 2 MiB
    command = encode_command((b"SET", b"k", value))
    got: list[bytes] = []

    async def serve() -> None:
        got.append(await fake_redis(server, len(command), [b"+O", b"K\r", b"\n"]))

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(serve)
            assert await connection.call(b"SET", b"k", value) == b"OK"
    assert got == [command]
    await connection.aclose()
    server.close()


async def test_on_a_bare_socket_an_error_reply_is_raised_and_a_closed_peer_is_lost() -> None:
    client, server = trio.socket.socketpair()
    connection = RespConnection(trio.SocketStream(client))
    ping = encode_command((b"PING",))
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(fake_redis, server, len(ping), [b"-ERR no\r\n"])
            with pytest.raises(RespError, match="ERR no"):
                await connection.call(b"PING")
        server.close()
        with pytest.raises((ConnectionLost, OSError)):
            await connection.call(b"PING")
    await connection.aclose()


async def test_a_call_on_a_bare_socket_is_cancellable_while_it_waits() -> None:
    client, server = trio.socket.socketpair()
    connection = RespConnection(trio.SocketStream(client))
    with trio.move_on_after(0.05) as scope:
        await connection.call(b"PING")  # nobody answers
    assert scope.cancelled_caught
    await connection.aclose()
    server.close()

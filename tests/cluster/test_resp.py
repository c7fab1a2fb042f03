"""The minimal RESP connection of the cluster log's hot path: encoding and parsing (pure),
then the lanes of a `ClusterLog` against a real redis-server."""

from __future__ import annotations

import pytest

from ticker.cluster.resp import (
    INCOMPLETE,
    ConnectionLost,
    Reply,
    ReplyParser,
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


def test_parsed_replies_do_not_count_against_the_bound() -> None:
    parser = ReplyParser(max_bytes=64)
    for _ in range(100):
        parser.feed(b"$40\r\n" + b"y" * 40 + b"\r\n")
        assert parser.next() == b"y" * 40

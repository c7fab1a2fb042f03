from __future__ import annotations

import pytest

from ticker.wire.http import BadRequest, head_end, parse_head, render_error
from ticker.wire.sse import encode_chunk, encode_event, encode_retry, response_head


def test_parse_head_gives_path_query_and_headers() -> None:
    raw = (
        b"GET /v1/sse?topics=quote.*,book.BTC-USD&max_rate=2 HTTP/1.1\r\n"
        b"Host: x\r\nLast-Event-ID: 5-10\r\nAccept: a\r\nAccept: b\r\n\r\n"
    )
    assert head_end(raw) == len(raw)
    head = parse_head(raw)
    assert (head.method, head.path) == ("GET", "/v1/sse")
    assert head.query_value("topics") == "quote.*,book.BTC-USD"
    assert head.query_value("max_rate") == "2"
    assert head.header("last-event-id") == "5-10"
    assert head.header("accept") == "a, b"
    assert head.raw == raw


def test_incomplete_and_oversized_heads() -> None:
    assert head_end(b"GET / HTTP/1.1\r\n") == -1
    with pytest.raises(BadRequest) as info:
        head_end(b"GET /" + b"a" * 20_000)
    assert info.value.http_status == 431


@pytest.mark.parametrize(
    "raw",
    [
        b"NOT HTTP\r\n\r\n",
        b"GET / HTTP/1.1\r\n\r\n",
        # Found by tests/fuzz: urlsplit raised ValueError (an internal error, not a 400).
        b"GET //[? HTTP/1.1\r\nHost: t\r\n\r\n",
        b"GET //x]/v1/sse?topics=quote.* HTTP/1.1\r\nHost: t\r\n\r\n",
    ],
)
def test_malformed_heads_are_bad_requests(raw: bytes) -> None:
    # The second lacks Host, which HTTP/1.1 requires.
    with pytest.raises(BadRequest) as info:
        parse_head(raw)
    assert info.value.http_status == 400


def test_error_response_is_complete_http() -> None:
    response = render_error(404, "no such endpoint")
    assert response.startswith(b"HTTP/1.1 404 Not Found\r\n")
    assert response.endswith(b"\r\n\r\nno such endpoint\n")
    assert b"Content-Length: 17" in response


def test_sse_pieces() -> None:
    head = response_head()
    assert b"text/event-stream" in head and b"X-Accel-Buffering: no" in head
    assert b"Cache-Control: no-cache" in head and b"Content-Length" not in head
    assert encode_event("delta", '{"a":1}', "5-10") == 'event: delta\nid: 5-10\ndata: {"a":1}\n\n'
    assert encode_event("heartbeat", "{}") == "event: heartbeat\ndata: {}\n\n"
    assert encode_retry(2000) == "retry: 2000\n\n"
    assert encode_chunk(b"hello") == b"5\r\nhello\r\n"


def test_a_malformed_head_is_refused_without_quoting_its_bytes() -> None:
    """h11 quotes the bad line; it may carry a credential, and the message is logged."""
    from ticker.wire.http import BadRequest, parse_head

    raw = b"GET / HTTP/1.1\r\nHost: t\r\nAuthorization : Bearer s3cr3t\r\n\r\n"
    with pytest.raises(BadRequest, match="malformed request") as refused:
        parse_head(raw)
    assert "s3cr3t" not in str(refused.value)
    assert refused.value.http_status == 400


def test_the_publish_token_is_not_in_the_config_repr() -> None:
    from ticker.config import Config

    assert "s3cr3t" not in repr(Config(publish_token="s3cr3t"))


def test_only_http_1_0_and_1_1_heads_are_served() -> None:
    assert parse_head(b"GET / HTTP/1.0\r\n\r\n").http_version == "1.0"
    assert parse_head(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").http_version == "1.1"
    with pytest.raises(BadRequest) as info:
        parse_head(b"GET / HTTP/2.0\r\nHost: t\r\n\r\n")
    assert info.value.http_status == 505


def test_a_refused_query_names_its_path_and_renders_as_the_apps_json() -> None:
    import json

    from ticker.wire.http import render_json_error

    with pytest.raises(BadRequest) as info:
        parse_head(b"GET /v1/snapshot?" + b"a" * 5000 + b" HTTP/1.1\r\nHost: t\r\n\r\n")
    assert info.value.path == "/v1/snapshot"
    response = render_json_error(400, str(info.value))
    head, _, body = response.partition(b"\r\n\r\n")
    assert b"Content-Type: application/json" in head
    assert json.loads(body) == {"error": str(info.value), "status": 400}


def test_an_sse_head_for_http_1_0_is_not_chunked() -> None:
    head = response_head("1.0")
    assert b"Transfer-Encoding" not in head and b"Connection: close" in head
    assert b"Transfer-Encoding: chunked" in response_head("1.1")


def test_error_messages_quote_a_bounded_part_of_the_input() -> None:
    from ticker.core.position import Position
    from ticker.errors import MAX_ECHO_CHARS, MAX_ERROR_CHARS, BadPosition, ProtocolError, echo

    assert len(echo("x" * 100_000)) <= MAX_ECHO_CHARS + 30
    assert echo("short") == "'short'"
    assert len(str(ProtocolError("y" * 100_000))) <= MAX_ERROR_CHARS
    with pytest.raises(BadPosition) as info:
        Position.parse("z-" + "9" * 30)
    assert len(str(info.value)) < 200

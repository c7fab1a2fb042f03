"""Fuzz the request-head parser every connection starts with (`parse_head`, `head_end`)
and the SSE query checks behind it (`parse_sse_query`)."""

from __future__ import annotations

from urllib.parse import quote

from hypothesis import given
from hypothesis import strategies as st

from ticker.server.sse_session import parse_sse_query
from ticker.server.subscriptions import parse_patterns
from ticker.wire.http import MAX_HEAD_BYTES, BadRequest, head_end, parse_head

from .budget import FUZZ

KNOWN = frozenset({"BTC-USD", "ETH-USD", "SOL-USD"})
STATUSES = {400, 405, 413, 414, 426, 429, 431, 501, 505}

token = st.text("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_!#$%&'*+.^`|~",
                min_size=1, max_size=12)  # fmt: skip
latin1 = st.text(st.characters(max_codepoint=255), max_size=40)
anything = st.text(max_size=40)
method = st.sampled_from(["GET", "POST", "HEAD", "PUT"]) | token
target = st.one_of(
    st.just("/v1/sse").map(lambda p: p),
    st.tuples(
        st.sampled_from(["/v1/sse", "/v1/ws", "/", "//x", "//[", "http://h/p"]), anything
    ).map(lambda t: t[0] + "?" + t[1]),
    anything.map(lambda t: "/" + t),
)
version = st.sampled_from(["HTTP/1.1", "HTTP/1.0", "HTTP/2.0", "HTTP/1.1 ", "HTTP/9"])
header = st.tuples(st.sampled_from(["Host", "Last-Event-ID", "Upgrade", "X"]) | token, latin1)


def render(method: str, target: str, version: str, headers: list[tuple[str, str]]) -> bytes:
    lines = [f"{method} {target} {version}", *(f"{n}: {v}" for n, v in headers)]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8", "surrogatepass")


heads = st.builds(render, method, target, version, st.lists(header, max_size=6))


def check_head(raw: bytes) -> None:
    try:
        end = head_end(raw)
    except BadRequest as exc:
        assert exc.http_status == 431
        return
    if end < 0:
        return
    try:
        head = parse_head(raw[:end])
    except BadRequest as exc:
        assert exc.http_status in STATUSES
        return
    assert len(head.raw) == end <= MAX_HEAD_BYTES
    assert sum(len(v) for vs in head.query.values() for v in vs) <= end
    try:
        query = parse_sse_query(head, known_symbols=KNOWN, max_subscriptions=8, max_rate_per_s=50)
    except BadRequest as exc:
        assert exc.http_status in STATUSES
        return
    assert query.topics
    assert query.max_rate is None or 0 < query.max_rate <= 50


@FUZZ
@given(st.binary(max_size=512))
def test_any_bytes_give_a_head_or_a_bad_request(raw: bytes) -> None:
    check_head(raw)
    check_head(raw + b"\r\n\r\n")


@FUZZ
@given(heads)
def test_plausible_heads_give_a_head_or_a_bad_request(raw: bytes) -> None:
    check_head(raw)


patterns = st.sampled_from(["quote.*", "book.BTC-USD", "trade.ETH-USD", "ticker.*"])


@FUZZ
@given(
    st.lists(patterns, min_size=1, max_size=8),
    st.none()
    | st.tuples(st.integers(0, 10**15), st.integers(0, 10**15)).map(lambda p: f"{p[0]}-{p[1]}"),
    st.none() | st.floats(0.01, 50),
    st.booleans(),
)
def test_a_good_sse_query_round_trips(
    topics: list[str], position: str | None, max_rate: float | None, in_header: bool
) -> None:
    query = "topics=" + quote(",".join(topics), safe="")
    headers = ""
    if position is not None:
        if in_header:
            headers = f"Last-Event-ID: {position}\r\n"
        else:
            query += f"&last_event_id={position}"
    if max_rate is not None:
        query += f"&max_rate={max_rate!r}"
    raw = f"GET /v1/sse?{query} HTTP/1.1\r\nHost: t\r\n{headers}\r\n".encode()
    head = parse_head(raw)
    parsed = parse_sse_query(head, known_symbols=KNOWN, max_subscriptions=8, max_rate_per_s=50)
    assert parsed.topics == topics
    assert parse_patterns(parsed.topics, KNOWN)
    assert parsed.position == position
    assert parsed.max_rate == max_rate

"""The client's small pure parts: SSE parsing, URLs, endings, backoff and moving between
URLs, latency."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ticker.client.backoff import Attempt, Backoff, ReconnectPolicy, healthy_after_s
from ticker.client.endings import (
    Ending,
    EndingKind,
    ending_from_close,
    ending_from_status,
    ending_from_stream_end,
)
from ticker.client.endpoint import Endpoint, Transport, parse_endpoints
from ticker.client.errors import FeedConfigError, FeedProtocolError, FeedRejected
from ticker.client.event_stream import EventStreamParser, SseDecoder, SseEvent, StreamEnd
from ticker.client.feed import FeedOptions, parse_topics
from ticker.client.stats import LatencyHistogram
from ticker.client.tracker import decode_messages
from ticker.core.codec import decode_frame, encode_data
from ticker.core.messages import DataMessage, Heartbeat, Hello, Reset
from ticker.errors import BadMessage

STREAM = (
    b"retry: 1000\n\n"
    b'event: hello\ndata: {"version":1,"epoch":7,"offset":3}\n\n'
    b": a comment\n"
    b'event: snapshot\ndata: {"topic":"quote.BTC-USD","seq":2,"offset":3,"ts":1,'
    b'"data":{"bid":"1.5"}}\n\n'
    b'event: snapshot\nid: 7-3\ndata: {"topic":"quote.ETH-USD","seq":1,"offset":3,"ts":1,'
    b'"data":{"bid":"2"}}\n\n'
    b'event: delta\nid: 7-4\ndata: {"topic":"quote.ETH-USD","seq":2,"offset":4,"ts":2,'
    b'"data":{"ask":"3"}}\n\n'
    b'event: heartbeat\nid: 7-4\ndata: {"epoch":7,"offset":4,"ts":9}\n\n'
    b'event: reset\nid: 7-4\ndata: {"epoch":7,"offset":4,"reason":"too_old"}\n\n'
    b'event: end\ndata: {"reason":"slow_outbox","last":"7-4"}\n\n'
)


def test_sse_units_group_a_burst_like_one_websocket_frame() -> None:
    items = SseDecoder().feed(STREAM)
    assert len(items) == 6
    hello, burst, delta, heartbeat, reset, end = items
    assert hello == [Hello(1, 7, 3, 0.0, None)]
    assert isinstance(burst, list)
    assert [m.topic for m in burst if isinstance(m, DataMessage)] == [
        "quote.BTC-USD",
        "quote.ETH-USD",
    ]
    assert isinstance(burst[0], DataMessage) and burst[0].data == {"bid": 1_500_000_000}
    assert isinstance(delta, list) and isinstance(delta[0], DataMessage)
    assert not delta[0].snapshot
    assert heartbeat == [Heartbeat(7, 4, 9)]
    assert reset == [Reset(7, 4, "too_old")]
    assert end == StreamEnd("slow_outbox", "7-4")


def test_an_sse_reset_without_an_id_is_one_unit_with_its_snapshots() -> None:
    # The reset carries no id; the burst's last snapshot does: a cut before it leaves
    # the client at its old position, so it gets the reset again, never a bare reset.
    stream = (
        b'event: reset\ndata: {"epoch":7,"offset":9,"reason":"too_old"}\n\n'
        b'event: snapshot\ndata: {"topic":"quote.BTC-USD","seq":4,"offset":9,"ts":1,'
        b'"data":{"bid":"1"}}\n\n'
    )
    closing = (
        b'event: snapshot\nid: 7-9\ndata: {"topic":"quote.ETH-USD","seq":2,"offset":9,'
        b'"ts":1,"data":{"bid":"2"}}\n\n'
    )
    decoder = SseDecoder()
    assert decoder.feed(stream) == []  # nothing is a unit until the id arrives
    (unit,) = decoder.feed(closing)
    assert isinstance(unit, list)
    assert unit[0] == Reset(7, 9, "too_old")
    assert [m.topic for m in unit[1:] if isinstance(m, DataMessage)] == [
        "quote.BTC-USD",
        "quote.ETH-USD",
    ]
    # With nothing to snapshot, the reset carries the id itself: a unit of its own.
    alone = b'event: reset\nid: 7-9\ndata: {"epoch":7,"offset":9,"reason":"ahead"}\n\n'
    assert SseDecoder().feed(alone) == [[Reset(7, 9, "ahead")]]


@given(st.lists(st.integers(min_value=1, max_value=40), max_size=30), st.booleans())
def test_sse_parsing_does_not_depend_on_how_the_bytes_are_split(
    cuts: list[int], crlf: bool
) -> None:
    stream = STREAM.replace(b"\n", b"\r\n") if crlf else STREAM
    whole = SseDecoder().feed(stream)
    decoder = SseDecoder()
    pieces = []
    start = 0
    for cut in cuts:
        pieces.append(stream[start : start + cut])
        start += cut
    pieces.append(stream[start:])
    split = [item for piece in pieces for item in decoder.feed(piece)]
    assert split == whole


def test_event_stream_details() -> None:
    parser = EventStreamParser(max_event_bytes=64)
    # Multi-line data, a bare-CR line end, a UTF-8 character split across two reads.
    euro = "€".encode()
    assert parser.feed(b"data: a\rdata:b\n\n") == [SseEvent("message", "a\nb", None)]
    assert parser.feed(b"data: " + euro[:1]) == []
    assert parser.feed(euro[1:] + b"\n\n") == [SseEvent("message", "€", None)]
    with pytest.raises(FeedProtocolError, match="longer than 64"):
        parser.feed(b"data: " + b"x" * 100)
    with pytest.raises(FeedProtocolError, match="UTF-8"):
        EventStreamParser().feed(b"data: \xff\n\n")
    with pytest.raises(FeedProtocolError, match="bad 'delta' event"):
        SseDecoder().feed(b"event: delta\nid: 7-1\ndata: {nope}\n\n")


def test_an_sse_burst_without_an_id_is_bounded_in_bytes() -> None:
    snapshot = (
        b'event: snapshot\ndata: {"topic":"quote.BTC-USD","seq":2,"offset":3,"ts":1,'
        b'"data":{"bid":"1.5"}}\n\n'
    )
    size = len(snapshot) - len(b"event: snapshot\ndata: \n\n")  # the data's bytes
    decoder = SseDecoder(max_event_bytes=3 * size)
    assert decoder.feed(snapshot * 3) == []  # a burst of three fits, still open
    with pytest.raises(FeedProtocolError, match="4 events without an id: carry more than"):
        decoder.feed(snapshot)
    # A burst that ends (an event with an id) starts the count over.
    decoder = SseDecoder(max_event_bytes=3 * size)
    closing = snapshot.replace(b"data:", b"id: 7-3\ndata:")
    for _ in range(3):
        units = decoder.feed(snapshot * 2 + closing)
        (unit,) = units
        assert isinstance(unit, list) and len(unit) == 3


def test_urls_choose_the_transport_and_bad_ones_are_refused() -> None:
    ws = Endpoint.parse("ws://127.0.0.1:8080")
    assert (ws.transport, ws.tls, ws.host, ws.port, ws.path) == (
        Transport.WEBSOCKET,
        False,
        "127.0.0.1",
        8080,
        "/v1/ws",
    )
    assert str(ws.as_sse()) == "http://127.0.0.1:8080/v1/sse"
    secure = Endpoint.parse("wss://feed.example/v1/ws")
    assert (secure.tls, secure.port, secure.host_header) == (True, 443, "feed.example")
    assert Endpoint.parse("https://[::1]:9000/v1/sse").host_header == "[::1]:9000"
    for bad, reason in [
        ("ftp://x", "scheme"),
        ("ws://", "no host"),
        ("ws://x:99999", "bad URL"),
        ("ws://x/v1/ws?topics=a", "no query"),
    ]:
        with pytest.raises(FeedConfigError, match=reason):
            Endpoint.parse(bad)


def test_topics_and_options_are_checked_before_connecting() -> None:
    assert parse_topics(["quote.*", "quote.*", " book.BTC-USD"]) == ("quote.*", "book.BTC-USD")
    assert parse_topics("quote.*,trade.ETH-USD") == ("quote.*", "trade.ETH-USD")
    with pytest.raises(FeedConfigError, match="unknown channel"):
        parse_topics(["qoute.*"])
    with pytest.raises(FeedConfigError, match="at least one topic"):
        parse_topics([])
    with pytest.raises(FeedConfigError, match="compression"):
        FeedOptions(compression="gzip")
    with pytest.raises(FeedConfigError, match="queue_size"):
        FeedOptions(queue_size=0)
    with pytest.raises(FeedConfigError, match="reconnect"):
        FeedOptions(reconnect_min_s=2, reconnect_max_s=1)


def test_every_close_and_status_maps_to_what_the_feed_does() -> None:
    assert ending_from_close(4008, "slow consumer; last=7-9").kind is EndingKind.SLOW_CONSUMER
    assert ending_from_close(4001, "server shutdown").kind is EndingKind.SHUTDOWN
    assert ending_from_close(4429, "limit").kind is EndingKind.LIMIT
    assert ending_from_close(1006, None).kind is EndingKind.DROPPED
    rejected = ending_from_close(4400, "too many bad requests")
    assert rejected.kind is EndingKind.REJECTED and isinstance(rejected.error, FeedRejected)
    assert ending_from_close(1009, "too big").kind is EndingKind.PROTOCOL
    assert ending_from_status(404, "no endpoint").kind is EndingKind.REJECTED
    assert ending_from_status(503, "full").kind is EndingKind.LIMIT
    assert ending_from_status(502, "").kind is EndingKind.CONNECT_FAILED
    assert ending_from_stream_end("slow_write").kind is EndingKind.SLOW_CONSUMER
    assert ending_from_stream_end("shutdown").kind is EndingKind.SHUTDOWN


def test_backoff_doubles_with_jitter_up_to_its_ceiling_and_resets() -> None:
    backoff = Backoff(0.1, 1.0, random.Random(4))
    delays = [backoff.next_delay() for _ in range(8)]
    ceilings = [0.1, 0.2, 0.4, 0.8, 1.0, 1.0, 1.0, 1.0]
    for delay, ceiling in zip(delays, ceilings, strict=True):
        assert ceiling / 2 <= delay <= ceiling
    assert len(set(delays)) == len(delays)  # jittered, not a fixed schedule
    backoff.reset()
    assert backoff.next_delay() <= 0.1
    with pytest.raises(FeedConfigError):
        Backoff(0, 1, random.Random())


def test_only_a_connection_that_lived_long_enough_resets_the_backoff() -> None:
    # A server that drops every connection right after its hello and snapshots: data
    # arrived each time, but the connections were short, so they are failures.
    policy = ReconnectPolicy(Backoff(0.1, 2.0, random.Random(5)))
    assert policy.healthy_after_s == 2.0 and healthy_after_s(0.1) == 1.0
    quick = Ending(EndingKind.DROPPED, healthy=True, lifetime_s=0.05)
    delays = [policy.next_attempt(quick).delay_s for _ in range(8)]
    ceilings = [0.1, 0.2, 0.4, 0.8, 1.6, 2.0, 2.0, 2.0]
    for delay, ceiling in zip(delays, ceilings, strict=True):
        assert ceiling / 2 <= delay <= ceiling
    assert policy.failures == 8  # max_attempts would trip
    # One that lived its time worked: failures and backoff start over.
    lived = Ending(EndingKind.DROPPED, healthy=True, lifetime_s=2.0)
    assert 0.05 <= policy.next_attempt(lived).delay_s <= 0.1 and policy.failures == 0
    # Long but without data (only the hello) is no success either.
    silent = Ending(EndingKind.STALLED, healthy=False, lifetime_s=60.0)
    assert policy.next_attempt(silent).delay_s > 0 and policy.failures == 1


def test_a_gap_or_an_eviction_reconnects_at_once_only_the_first_time() -> None:
    policy = ReconnectPolicy(Backoff(0.1, 2.0, random.Random(6)))
    gap = Ending(EndingKind.GAP, healthy=True, lifetime_s=0.01)
    assert policy.next_attempt(gap) == Attempt(0.0, 0)
    assert policy.next_attempt(gap).delay_s > 0  # a gap that keeps coming back waits
    evicted = Ending(EndingKind.SLOW_CONSUMER, healthy=True, lifetime_s=30.0)
    assert policy.next_attempt(evicted).delay_s == 0.0 and policy.failures == 0
    # Evictions of short connections back off like any failure.
    quickly_evicted = Ending(EndingKind.SLOW_CONSUMER, healthy=True, lifetime_s=0.2)
    delays = [policy.next_attempt(quickly_evicted).delay_s for _ in range(4)]
    assert all(d > 0 for d in delays) and delays[-1] > delays[0]
    assert policy.failures == 4


def test_with_several_urls_each_reconnect_moves_on_and_the_backoff_grows_per_round() -> None:
    # Three URLs, all down: a move to a URL not yet tried in the round waits only the
    # first step; the growing backoff is paid once per full round.
    policy = ReconnectPolicy(Backoff(0.1, 2.0, random.Random(7)), endpoints=3)
    assert policy.endpoint == 0
    refused = Ending(EndingKind.CONNECT_FAILED)
    attempts = [policy.next_attempt(refused) for _ in range(9)]
    assert [a.endpoint for a in attempts] == [1, 2, 0] * 3
    delays = [a.delay_s for a in attempts]
    for step in (0, 1, 3, 4, 6, 7):  # moves within a round: [0.05, 0.1]
        assert 0.05 <= delays[step] <= 0.1
    # Each round's end: the backoff's next ceiling (0.1, 0.2, 0.4).
    assert 0.05 <= delays[2] <= 0.1 and 0.1 <= delays[5] <= 0.2 and 0.2 <= delays[8] <= 0.4
    assert policy.failures == 9  # max_attempts counts every URL's failures
    # A connection that worked and ended: the next URL at once (first step), with the
    # backoff and the round started over; the round ends back at the URL that worked.
    lived = Ending(EndingKind.SHUTDOWN, healthy=True, lifetime_s=5.0)
    moved = policy.next_attempt(lived)
    assert moved.endpoint == 1 and 0.05 <= moved.delay_s <= 0.1 and policy.failures == 0
    assert policy.next_attempt(refused).endpoint == 2
    back = policy.next_attempt(refused)
    assert back.endpoint == 0 and 0.05 <= back.delay_s <= 0.1  # the reset ceiling: 0.1
    # An eviction of a connection that worked moves on at once, like a gap.
    evicted = Ending(EndingKind.SLOW_CONSUMER, healthy=True, lifetime_s=5.0)
    assert policy.next_attempt(evicted) == Attempt(0.0, 1)
    with pytest.raises(FeedConfigError):
        ReconnectPolicy(Backoff(0.1, 1.0, random.Random()), endpoints=0)


def test_one_url_keeps_the_backoff_of_every_attempt() -> None:
    # The behaviour before several URLs: every failure waits the next, doubled, delay.
    policy = ReconnectPolicy(Backoff(0.1, 2.0, random.Random(8)))
    refused = Ending(EndingKind.CONNECT_FAILED)
    attempts = [policy.next_attempt(refused) for _ in range(4)]
    assert {a.endpoint for a in attempts} == {0}
    for attempt, ceiling in zip(attempts, [0.1, 0.2, 0.4, 0.8], strict=True):
        assert ceiling / 2 <= attempt.delay_s <= ceiling


def test_several_urls_must_share_one_transport_and_one_tls_mode() -> None:
    one = parse_endpoints("ws://a:1")
    assert one == (Endpoint.parse("ws://a:1"),)
    two = parse_endpoints(["ws://a:1", "ws://b:2/v1/ws"])
    assert [str(e) for e in two] == ["ws://a:1/v1/ws", "ws://b:2/v1/ws"]
    assert len(parse_endpoints(("https://a", "https://b:8443/v1/sse"))) == 2
    with pytest.raises(FeedConfigError, match="same transport: ws://a:1/v1/ws is websocket"):
        parse_endpoints(["ws://a:1", "http://b:2"])
    with pytest.raises(FeedConfigError, match="same transport"):
        parse_endpoints(("https://a", "wss://b"))
    with pytest.raises(FeedConfigError, match=r"TLS .* or none"):
        parse_endpoints(["wss://a", "ws://b"])
    with pytest.raises(FeedConfigError, match="at least one URL"):
        parse_endpoints([])
    with pytest.raises(FeedConfigError, match="scheme must be"):
        parse_endpoints(["ws://a", "ftp://b"])


def test_latency_histogram_quantiles_are_bucket_bounds() -> None:
    histogram = LatencyHistogram()
    assert histogram.quantile(0.5) == 0.0
    for latency in [0.0004] * 90 + [0.02] * 9 + [30.0]:
        histogram.observe(latency)
    assert histogram.quantile(0.5) == 0.0005
    assert histogram.quantile(0.99) == 0.025
    assert histogram.quantile(1.0) == 30.0
    assert histogram.max_s == 30.0
    assert histogram.mean_s == pytest.approx((0.0004 * 90 + 0.02 * 9 + 30) / 100)
    with pytest.raises(ValueError):
        histogram.quantile(0)


def test_frames_of_one_message_or_a_burst_decode_alike() -> None:
    messages = [
        DataMessage(True, f"quote.{symbol}", 3, 9, 1, {"bid": 5}) for symbol in ("BTC", "ETH")
    ]
    one = encode_data(messages[0])
    burst = b"".join(encode_data(m) for m in messages)
    assert decode_messages(one) == decode_frame(one) == messages[:1]
    assert decode_messages(burst) == decode_frame(burst) == messages
    with pytest.raises(BadMessage, match="middle of a message"):
        decode_messages(burst[:-2])


def test_the_sse_hello_gives_the_heartbeat_period_when_the_server_sends_it() -> None:
    hello = b'event: hello\ndata: {"version":1,"epoch":7,"offset":3,"heartbeat_s":15}\n\n'
    assert SseDecoder().feed(hello) == [[Hello(1, 7, 3, 15.0, None)]]

"""The publish endpoint and its client, against a real server on 127.0.0.1."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from functools import partial

import pytest
import trio
from trio_websocket import open_websocket_url

from ticker.capture.errors import TargetError
from ticker.capture.player import RemoteTarget, play
from ticker.capture.publisher import (
    WINDOW_BATCHES,
    check_token,
    open_publisher,
    parse_target,
)
from ticker.capture.replay import ReplayOptions
from ticker.config import Config
from ticker.core.codec import decode_frame, encode_client
from ticker.core.messages import DataMessage, Error, Subscribe
from ticker.core.mirror import Applied, Mirror
from ticker.model.events import BookUpdate, NormalizedEvent, Quote, TakerSide, Trade
from ticker.model.fixed import MAX_NANOS
from ticker.server.process import ServerHandle, serve
from ticker.wire.publish import MAX_BATCH_EVENTS, encode_batch

from .conftest import DEADLINE_S, Captured
from .test_player import hub_messages, reference_hub

TOKEN = "s3cret-publish-token"
CONFIG = Config(port=0, heartbeat_s=3600, ping_interval_s=3600, publish_token=TOKEN)


async def start(nursery: trio.Nursery, config: Config = CONFIG) -> ServerHandle:
    handle: ServerHandle = await nursery.start(partial(serve, config, run_venues=False, epoch=7))
    return handle


def url(handle: ServerHandle) -> str:
    return f"ws://127.0.0.1:{handle.port}"


def quote(i: int) -> Quote:
    return Quote("cbx", "BTC-USD", 1_704_067_200_000_000_000 + i, 100 + i, 1, 10_000, 1)


async def until(predicate: object, timeout_s: float = 20) -> None:
    with trio.fail_after(timeout_s):
        while not predicate():  # type: ignore[operator]  # noqa: ASYNC110
            await trio.sleep(0.01)


async def test_a_replay_into_a_running_server_publishes_what_live_ingest_did(
    capture: Captured,
) -> None:
    with trio.fail_after(DEADLINE_S):
        async with trio.open_nursery() as nursery:
            handle = await start(nursery)
            async with open_publisher(url(handle), TOKEN) as publisher:
                result = await play(
                    capture.opener(), ReplayOptions(speed=None), RemoteTarget(publisher),
                    batch_events=100,
                )  # fmt: skip
                counts = publisher.counts
            assert result.error is None
            assert counts.batches_acked == counts.batches_sent == result.batches
            assert counts.events_acked == len(capture.live) and counts.batches_refused == 0
            await until(lambda: handle.context.stats.ingest_events == len(capture.live))
            assert hub_messages(handle.hub) == hub_messages(reference_hub(capture.live))
            assert handle.context.stats.connections_total["publish"] == 1
            handle.stop()


async def test_backpressure_holds_the_publisher_to_its_window() -> None:
    with trio.fail_after(DEADLINE_S):
        async with trio.open_nursery() as nursery:
            handle = await start(nursery)
            # The endpoint's queue, swapped for one nobody reads: the hub is "behind".
            held_send, held_receive = trio.open_memory_channel[Sequence[NormalizedEvent]](1)
            handle.context.publish = held_send
            async with open_publisher(url(handle), TOKEN) as publisher:
                total = 3 * WINDOW_BATCHES

                async def publish_all() -> None:
                    for i in range(total):
                        await publisher.publish([quote(i)])

                def unacknowledged() -> int:
                    return publisher.counts.batches_sent - publisher.counts.batches_acked

                nursery.start_soon(publish_all)
                await until(lambda: unacknowledged() == WINDOW_BATCHES)
                await trio.sleep(0.2)  # room to overrun the window, if it could
                # The server took one batch into the (full) queue and waits to send the
                # next: nothing more is acknowledged, so nothing more is sent.
                assert unacknowledged() == WINDOW_BATCHES
                assert publisher.counts.batches_acked == 1
                received: list[Sequence[NormalizedEvent]] = []
                while len(received) < total:
                    received.append(await held_receive.receive())
                await publisher.drain()
                assert publisher.counts.batches_acked == total
                assert [batch[0] for batch in received] == [quote(i) for i in range(total)]
            handle.stop()


async def test_a_wrong_or_missing_token_is_refused_before_the_upgrade_and_counted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    with trio.fail_after(DEADLINE_S):
        async with trio.open_nursery() as nursery:
            handle = await start(nursery)
            with pytest.raises(TargetError, match=r"refused the token \(HTTP 401\)"):
                async with open_publisher(url(handle), "wrong-token-value"):
                    pass
            async with await trio.open_tcp_stream("127.0.0.1", handle.port) as stream:
                await stream.send_all(
                    b"GET /v1/publish HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\n"
                    b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                    b"Sec-WebSocket-Version: 13\r\n"
                    b"Sec-WebSocket-Protocol: ticker.publish.v1\r\n\r\n"
                )
                response = b""
                while chunk := await stream.receive_some(4096):
                    response += chunk
            assert response.startswith(b"HTTP/1.1 401 Unauthorized\r\n")
            assert b"WWW-Authenticate: Bearer" in response
            assert handle.context.stats.ends["unauthorized"] == 2
            assert handle.context.stats.connections_total["publish"] == 0
            assert TOKEN not in caplog.text and "wrong-token-value" not in caplog.text
            handle.stop()


async def test_publishing_disabled_is_403() -> None:
    with trio.fail_after(DEADLINE_S):
        async with trio.open_nursery() as nursery:
            handle = await start(nursery, replace(CONFIG, publish_token=""))
            with pytest.raises(TargetError, match=r"HTTP 403.*disabled"):
                async with open_publisher(url(handle), "anything"):
                    pass
            assert handle.context.stats.ends["publish_disabled"] == 1
            handle.stop()


async def test_bad_batches_are_refused_with_a_reason_and_the_connection_stays() -> None:
    unknown = Trade("cbx", "LTC-EUR", 1, 5, 1, TakerSide.BUY, "1")
    with trio.fail_after(DEADLINE_S):
        async with trio.open_nursery() as nursery:
            handle = await start(nursery)
            async with open_publisher(url(handle), TOKEN) as publisher:
                await publisher.publish([quote(1), unknown])
                await publisher.publish([quote(2)])
                await publisher.drain()
                counts = publisher.counts
            assert (counts.batches_refused, counts.events_refused) == (1, 2)
            assert counts.reasons == ["batch 1: event 1: unknown symbol 'LTC-EUR'"]
            assert (counts.batches_acked, counts.events_acked) == (1, 1)
            assert handle.context.stats.bad_requests == 1
            await until(lambda: handle.context.stats.ingest_events == 1)  # batch 1: nothing
            handle.stop()


async def test_malformed_messages_get_an_error_naming_the_problem() -> None:
    with trio.fail_after(DEADLINE_S):
        async with trio.open_nursery() as nursery:
            handle = await start(nursery)
            headers = [(b"Authorization", f"Bearer {TOKEN}".encode())]
            async with open_websocket_url(
                f"{url(handle)}/v1/publish", subprotocols=["ticker.publish.v1"],
                extra_headers=headers,
            ) as ws:  # fmt: skip
                await ws.send_message(b"\xc1")
                first = await ws.get_message()
                assert isinstance(first, bytes) and b"invalid msgpack" in first
                await ws.send_message(encode_batch(4, [quote(1)]).replace(b"\xa1q", b"\xa1z"))
                reply = await ws.get_message()
                assert isinstance(reply, bytes)
                assert b"event 0: unknown event type 'z'" in reply and reply.endswith(b"\x04")
            handle.stop()


async def test_the_publisher_limit_is_enforced() -> None:
    with trio.fail_after(DEADLINE_S):
        async with trio.open_nursery() as nursery:
            handle = await start(nursery, replace(CONFIG, max_publishers=1))
            async with open_publisher(url(handle), TOKEN):
                await until(lambda: handle.context.stats.connections_open["publish"] == 1)
                with pytest.raises(TargetError, match="HTTP 429"):
                    async with open_publisher(url(handle), TOKEN):
                        pass
            handle.stop()


async def test_subscribers_cannot_publish() -> None:
    with trio.fail_after(DEADLINE_S):
        async with trio.open_nursery() as nursery:
            handle = await start(nursery)
            ws_url = f"{url(handle)}/v1/ws"
            async with open_websocket_url(ws_url, subprotocols=["ticker.v1"]) as ws:
                await ws.get_message()  # hello
                await ws.send_message(encode_batch(1, [quote(1)]))
                reply = await ws.get_message()
                assert isinstance(reply, bytes)
                (error,) = decode_frame(reply)
                assert isinstance(error, Error) and error.code == 4400
            assert handle.context.stats.ingest_events == 0
            handle.stop()


async def test_an_unreachable_target_is_a_target_error() -> None:
    with trio.socket.socket() as probe:
        await probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # bound, never listening: connections are refused
        with trio.fail_after(DEADLINE_S), pytest.raises(TargetError, match="cannot connect"):
            async with open_publisher(f"ws://127.0.0.1:{port}", TOKEN):
                pass


async def test_a_server_going_away_fails_the_publisher() -> None:
    with trio.fail_after(DEADLINE_S):
        async with trio.open_nursery() as nursery:
            handle = await start(nursery)
            async with open_publisher(url(handle), TOKEN) as publisher:
                await publisher.publish([quote(1)])
                await publisher.drain()
                handle.stop()
                with pytest.raises(TargetError, match="4001"):
                    for i in range(1000):
                        await publisher.publish([quote(i)])
                        await trio.sleep(0.01)


def test_target_urls() -> None:
    assert str(parse_target("ws://h:9")) == "ws://h:9/v1/publish"
    assert str(parse_target("https://h")) == "wss://h:443/v1/publish"
    with pytest.raises(ValueError):
        parse_target("ftp://h")


async def test_a_batch_too_big_for_one_message_is_split() -> None:
    deep = tuple((10**12 - i * 10**6, 10**9) for i in range(1000))
    asks = tuple((10**12 + (i + 1) * 10**6, 10**9) for i in range(1000))
    books = [BookUpdate("cbx", "BTC-USD", i, deep, asks, True) for i in range(40)]
    with trio.fail_after(DEADLINE_S):
        async with trio.open_nursery() as nursery:
            handle = await start(nursery)
            async with open_publisher(url(handle), TOKEN) as publisher:
                await publisher.publish(books)
                await publisher.drain()
                counts = publisher.counts
            assert counts.batches_sent > 1 and counts.batches_refused == 0
            assert counts.events_acked == 40
            await until(lambda: handle.context.stats.ingest_events == 40)
            handle.stop()


async def test_more_events_than_a_batch_may_hold_go_as_several_batches() -> None:
    events = [quote(i) for i in range(2 * MAX_BATCH_EVENTS + 1)]
    with trio.fail_after(DEADLINE_S):
        async with trio.open_nursery() as nursery:
            handle = await start(nursery)
            async with open_publisher(url(handle), TOKEN) as publisher:
                await publisher.publish(events)
                await publisher.drain()
                counts = publisher.counts
            assert counts.batches_sent == 3 and counts.batches_refused == 0
            assert counts.events_acked == len(events)
            handle.stop()


async def test_a_replay_with_the_largest_batches_and_a_warm_up_is_accepted_whole(
    capture: Captured,
) -> None:
    records = capture.records()
    options = ReplayOptions(speed=None, start_ns=records[len(records) // 3].recv_ns)
    with trio.fail_after(DEADLINE_S):
        async with trio.open_nursery() as nursery:
            handle = await start(nursery)
            async with open_publisher(url(handle), TOKEN) as publisher:
                result = await play(
                    capture.opener(), options, RemoteTarget(publisher),
                    batch_events=MAX_BATCH_EVENTS, loops=3,
                )  # fmt: skip
                counts = publisher.counts
            assert result.error is None and result.published_events > MAX_BATCH_EVENTS
            assert counts.batches_refused == 0, counts.reasons
            assert counts.events_acked == result.published_events
            handle.stop()


def test_a_token_that_cannot_go_in_a_header_is_refused_without_repeating_it() -> None:
    for bad in ("s3cret\r", "s3cret\nX-Evil: 1", "s3cret words", "s3cret\there", "s3\x7fcret"):
        with pytest.raises(ValueError) as caught:
            check_token(bad)
        assert "s3" not in str(caught.value)
    with pytest.raises(ValueError, match="empty"):
        check_token("")
    check_token("t\u00f6k\u00e9n-\u00e0")  # printable non-ASCII is fine


async def test_open_publisher_checks_the_token_before_connecting() -> None:
    with trio.socket.socket() as probe:
        await probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nothing listens: a connection attempt would fail
        with trio.fail_after(DEADLINE_S), pytest.raises(ValueError, match="not shown"):
            async with open_publisher(f"ws://127.0.0.1:{port}", "s3cret-token\r"):
                pass


async def test_a_non_ascii_token_authenticates() -> None:
    token = "t\u00f6k\u00e9n-\u00e0"  # U+00E0 ends in byte 0xA0, which str.strip eats
    with trio.fail_after(DEADLINE_S):
        async with trio.open_nursery() as nursery:
            handle = await start(nursery, replace(CONFIG, publish_token=token))
            async with open_publisher(url(handle), token) as publisher:
                await publisher.publish([quote(1)])
                await publisher.drain()
                assert publisher.counts.events_acked == 1
            with pytest.raises(TargetError, match="HTTP 401"):
                async with open_publisher(url(handle), "t\u00f6k\u00e9n-\u00e1"):
                    pass
            handle.stop()


async def test_a_target_that_stops_acknowledging_fails_the_publisher_in_bounded_time() -> None:
    with trio.fail_after(DEADLINE_S):
        async with trio.open_nursery() as nursery:
            handle = await start(nursery)
            held_send, held_receive = trio.open_memory_channel[Sequence[NormalizedEvent]](1)
            handle.context.publish = held_send  # nobody reads it: acknowledgements stop
            async with open_publisher(
                url(handle), TOKEN, window_batches=2, window_timeout_s=0.5
            ) as publisher:
                with pytest.raises(TargetError, match=r"acknowledged no batch in 0\.5 s"):
                    for i in range(10):
                        await publisher.publish([quote(i)])
                # The server took one batch into its (full) queue, then acknowledged no more.
                assert publisher.counts.batches_sent == 2 + 1

                async def take_all() -> None:  # the server may now read the close
                    async for _ in held_receive:
                        pass

                nursery.start_soon(take_all)
            handle.stop()
            nursery.cancel_scope.cancel()


async def test_sums_past_64_bits_saturate_and_the_server_stays_up() -> None:
    top, p, t = MAX_NANOS, 10**9, 1_704_067_200_000_000_000
    # Every value is in range; summed over three venues, none of the sums is.
    batch: list[NormalizedEvent] = []
    for venue in ("cbx", "fxa", "itx"):
        batch += [
            BookUpdate(venue, "BTC-USD", t, ((100 * p, top - 1),), ((101 * p, top),), True),
            Quote(venue, "BTC-USD", t, 100 * p, top - 1, 101 * p, top),
            Trade(venue, "BTC-USD", t, 100 * p, top, TakerSide.BUY, f"{venue}-1"),
        ]
    topics = ("book.BTC-USD", "quote.BTC-USD", "ticker.BTC-USD", "trade.BTC-USD")
    with trio.fail_after(DEADLINE_S):
        async with trio.open_nursery() as nursery:
            handle = await start(nursery)
            ws_url = f"{url(handle)}/v1/ws"
            async with open_websocket_url(ws_url, subprotocols=["ticker.v1"]) as ws:
                await ws.get_message()  # hello
                await ws.send_message(encode_client(Subscribe(topics)))
                mirror = Mirror()
                async with open_publisher(url(handle), TOKEN) as publisher:
                    await publisher.publish(batch)
                    await publisher.publish([Trade("cbx", "BTC-USD", t, 1, 1, TakerSide.BUY, "2")])
                    one_past = Trade("fxa", "BTC-USD", t, 100 * p, top + 1, TakerSide.BUY, "3")
                    await publisher.publish([one_past])
                    await publisher.drain()
                    counts = publisher.counts
                assert (counts.batches_acked, counts.batches_refused) == (2, 1)
                assert counts.reasons == [
                    "batch 3: event 0: trade: price and size integers, side 'b' or 's', id a string"
                ]
                await until(lambda: handle.context.stats.ingest_events == len(batch) + 1)
                # Another client's stream goes on through all of it.
                offset, last = 0, handle.hub.position.offset
                while offset < last:
                    reply = await ws.get_message()
                    assert isinstance(reply, bytes)
                    for message in decode_frame(reply):
                        if isinstance(message, DataMessage):
                            assert isinstance(mirror.apply(message), Applied)
                            offset = message.offset
            assert mirror.data("book.BTC-USD") == {
                "bids": [[100 * p, top]],
                "asks": [[101 * p, top]],
            }
            assert mirror.data("quote.BTC-USD") == {
                "bid": 100 * p, "bid_size": top, "ask": 101 * p, "ask_size": top,
            }  # fmt: skip
            assert mirror.data("ticker.BTC-USD")["volume"] == top
            for topic in topics:
                assert mirror.data(topic) == handle.hub.snapshot(topic).data
            assert handle.context.stats.hub_rejected_events == 0
            handle.stop()

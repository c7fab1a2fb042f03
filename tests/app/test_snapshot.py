"""GET /v1/snapshot: the state of some topics at one position, continued by the stream."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest
import trio
from quart.typing import TestClientProtocol as AppClient

from tests.app.conftest import EPOCH, LiveHub
from tests.app.market import RandomMarket
from tests.server.conftest import SseClient, start_server, until
from ticker.app import create_app
from ticker.app.snapshot import parse_topics_query
from ticker.core.codec import parse_json, render_json
from ticker.core.messages import DataMessage
from ticker.core.mirror import Applied, Mirror
from ticker.core.position import Position
from ticker.core.replay import Replay
from ticker.core.topics import TopicPattern
from ticker.errors import BadTopic
from ticker.server.process import ServerHandle
from ticker.server.subscriptions import LimitReached, matching_topics

KNOWN = frozenset({"BTC-USD", "ETH-USD"})


async def get_json(client: AppClient, url: str) -> tuple[int, Any]:
    response = await client.get(url)
    return response.status_code, json.loads(await response.get_data())


def mirror_of(document: dict[str, Any]) -> Mirror:
    mirror = Mirror()
    for snapshot in document["snapshots"]:
        result = mirror.apply(parse_json(json.dumps(snapshot), snapshot=True))
        assert isinstance(result, Applied), result
    return mirror


async def test_snapshot_before_any_data_is_empty_at_offset_zero(client: AppClient) -> None:
    status, document = await get_json(client, "/v1/snapshot?topics=quote.*,trade.*")
    assert status == 200
    assert document == {"epoch": EPOCH, "position": f"{EPOCH}-0", "snapshots": []}


async def test_snapshot_holds_every_matching_topic_at_the_hub_position(
    client: AppClient, live_hub: LiveHub
) -> None:
    await live_hub.publish(*RandomMarket(random.Random(1)).events(300))
    hub = live_hub.context.hub
    stream = hub.since(Position(hub.epoch, 0))
    assert isinstance(stream, Replay)
    last_messages = {item.topic: item.message for item in stream.entries}
    status, document = await get_json(
        client, "/v1/snapshot?topics=quote.*,ticker.BTC-USD,trade.*,quote.BTC-USD"
    )
    assert status == 200
    assert document["epoch"] == EPOCH
    assert document["position"] == str(hub.position)
    topics = [s["topic"] for s in document["snapshots"]]
    expected = [t for t in hub.topics() if t.startswith("quote.")] + ["ticker.BTC-USD"]
    expected += [t for t in hub.topics() if t.startswith("trade.")]
    assert topics == expected  # each topic once, in the stream's order
    for snapshot in document["snapshots"]:
        # The same JSON object an SSE snapshot event of this topic carries now.
        reference = json.loads(render_json(hub.snapshot(snapshot["topic"])))
        assert snapshot == reference
        # Its offset and ts are its topic's last message's: when the topic last changed.
        last = last_messages[snapshot["topic"]]
        assert (snapshot["seq"], snapshot["offset"], snapshot["ts"]) == (
            last.seq,
            last.offset,
            last.ts_us,
        )
    assert any(s["offset"] < hub.position.offset for s in document["snapshots"])


async def test_exact_topic_without_state_has_seq_zero(client: AppClient, live_hub: LiveHub) -> None:
    await live_hub.publish(*RandomMarket(random.Random(2), ("BTC-USD",)).events(20))
    status, document = await get_json(client, "/v1/snapshot?topics=quote.ETH-USD,book.ETH-USD")
    assert status == 200
    assert document["position"] == str(live_hub.context.hub.position)
    snapshots = document["snapshots"]
    assert [(s["topic"], s["seq"], s["offset"], s["ts"], s["data"]) for s in snapshots] == [
        ("quote.ETH-USD", 0, 0, 0, {}),
        ("book.ETH-USD", 0, 0, 0, {"bids": [], "asks": []}),
    ]


async def test_snapshot_plus_replay_from_its_position_equals_the_hub_state(
    client: AppClient, live_hub: LiveHub
) -> None:
    market = RandomMarket(random.Random(3))
    hub = live_hub.context.hub
    # Every topic, venues' included (their books' checksums checked by the mirror).
    texts = ("quote.*", "book.*", "trade.*", "ticker.*", "quote@*.*", "book@*.*")
    patterns = [TopicPattern.parse(p) for p in texts]
    for _ in range(5):
        await live_hub.publish(*market.events(60))
        _, document = await get_json(client, f"/v1/snapshot?topics={','.join(texts)}")
        mirror = mirror_of(document)
        await live_hub.publish(*market.events(80))
        replay = hub.since(Position.parse(document["position"]))
        assert isinstance(replay, Replay)
        for item in replay.entries:
            if any(p.matches(item.topic) for p in patterns):
                result = mirror.apply(item.message)
                assert isinstance(result, Applied), (result, item.message)
        for topic in hub.topics():
            assert mirror.seq(topic) == hub.snapshot(topic).seq
            assert mirror.data(topic) == hub.snapshot(topic).data


BAD_QUERIES = [
    ("", 400, "give the topics"),
    ("?topics=", 400, "give the topics"),
    ("?topics=%20%20", 400, "give the topics"),
    ("?topics=quote", 400, "not <channel>.<symbol>"),
    ("?topics=news.*", 400, "unknown channel"),
    ("?topics=quote.btc-usd", 400, "bad symbol"),
    ("?topics=quote.NOPE-USD", 400, "unknown symbol"),
    ("?topics=quote.*,,trade.*", 400, "not <channel>.<symbol>"),
    ("?topics=quote." + "A" * 70, 400, "longer than 64"),
    ("?topics=" + ",".join(["book.*"] * 513), 429, "at most 512"),
    ("?topics=" + ",".join(["quote.BTC-USD"] * 300), 400, "longer than 4096"),
]


@pytest.mark.parametrize(("query", "status", "reason"), BAD_QUERIES)
async def test_bad_topics_get_a_json_error(
    client: AppClient, live_hub: LiveHub, query: str, status: int, reason: str
) -> None:
    got, body = await get_json(client, "/v1/snapshot" + query)
    assert got == status
    assert body["status"] == status
    assert reason in body["error"]
    assert live_hub.context.stats.bad_requests == 1


async def test_as_many_patterns_as_allowed_is_fine(client: AppClient) -> None:
    status, document = await get_json(client, "/v1/snapshot?topics=" + ",".join(["trade.*"] * 512))
    assert status == 200
    assert document["snapshots"] == []


async def test_only_get_is_allowed(client: AppClient) -> None:
    response = await client.post("/v1/snapshot?topics=quote.*")
    assert response.status_code == 405
    assert json.loads(await response.get_data())["status"] == 405


def test_query_parsing_matches_the_stream() -> None:
    assert parse_topics_query("quote.*, quote.BTC-USD,quote.*", KNOWN, 8) == [
        TopicPattern("quote", "*"),
        TopicPattern("quote", "BTC-USD"),
    ]
    with pytest.raises(BadTopic):
        parse_topics_query(None, KNOWN, 8)
    with pytest.raises(LimitReached):
        parse_topics_query("quote.*,trade.*,book.*", KNOWN, 2)
    patterns = [TopicPattern.parse(t) for t in ("trade.*", "quote.ETH-USD", "trade.BTC-USD")]
    existing = ["quote.BTC-USD", "trade.BTC-USD", "trade.ETH-USD"]
    assert matching_topics(existing, patterns) == [
        "trade.BTC-USD",
        "trade.ETH-USD",
        "quote.ETH-USD",
    ]


# -- against the real server: the stream continues the snapshot --------------------


async def read_data_events(sse: SseClient, count: int) -> list[tuple[str, DataMessage, str]]:
    """The next `count` data events as (event name, message, id)."""
    found: list[tuple[str, DataMessage, str]] = []
    while len(found) < count:
        event = await sse.event()
        name = event.get("event", "")
        if name in ("snapshot", "delta"):
            message = parse_json(event["data"], snapshot=name == "snapshot")
            found.append((name, message, event.get("id", "")))
        else:
            assert name in ("hello", "heartbeat", ""), event
    return found


async def publish_and_wait(server: ServerHandle, market: RandomMarket, count: int) -> None:
    before = server.context.stats.ingest_events
    await server.publish(*market.events(count))
    await until(lambda: server.context.stats.ingest_events >= before + count)


async def test_sse_from_the_snapshot_position_has_no_gap_and_no_duplicate(
    nursery: trio.Nursery, deadline: None
) -> None:
    server = await start_server(nursery)
    market = RandomMarket(random.Random(4))
    topics = "quote.*,trade.*,ticker.*,book.BTC-USD"
    patterns = [TopicPattern.parse(p) for p in topics.split(",")]
    app = create_app(server.context)
    async with app.test_app() as test_app:
        client = test_app.test_client()
        for round_ in range(3):
            await publish_and_wait(server, market, 120)
            _, document = await get_json(client, f"/v1/snapshot?topics={topics}")
            mirror = mirror_of(document)
            position = Position.parse(document["position"])
            # Published while the page renders, before it opens the stream: replayed.
            await publish_and_wait(server, market, 50 + round_ * 40)
            sse = await SseClient.connect(
                server.port, f"topics={topics}&last_event_id={document['position']}"
            )
            async with sse.stream:  # closed even when an assertion fails
                assert sse.status == 200
                await publish_and_wait(server, market, 60)  # and live ones
                replay = server.hub.since(position)
                assert isinstance(replay, Replay)
                expected = [
                    i.offset for i in replay.entries if any(p.matches(i.topic) for p in patterns)
                ]
                assert len(expected) > 50
                received = await read_data_events(sse, len(expected))
                assert [message.offset for _, message, _ in received] == expected
                assert all(name == "delta" or message.snapshot for name, message, _ in received)
                for _, message, event_id in received:
                    assert isinstance(mirror.apply(message), Applied), message
                    assert event_id == f"{server.hub.epoch}-{message.offset}"
                for topic in matching_topics(server.hub.topics(), patterns):
                    assert mirror.data(topic) == server.hub.snapshot(topic).data
    server.stop()


async def test_snapshot_and_stream_refuse_the_same_queries(
    nursery: trio.Nursery, deadline: None
) -> None:
    server = await start_server(nursery)
    app = create_app(server.context)
    async with app.test_app() as test_app:
        client = test_app.test_client()
        for query, status, _ in BAD_QUERIES:
            snapshot = await client.get("/v1/snapshot" + query)
            sse = await SseClient.connect(server.port, query.removeprefix("?"))
            async with sse.stream:
                assert (snapshot.status_code, sse.status) == (status, status), query[:80]
    server.stop()

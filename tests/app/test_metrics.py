"""GET /metrics: every counter as the server holds it, read at scrape time."""

from __future__ import annotations

import random
import socket
from collections.abc import Iterator

import prometheus_client
import trio
from prometheus_client.parser import text_string_to_metric_families
from quart.typing import TestClientProtocol as AppClient

from tests.app.conftest import LiveHub, make_context
from tests.app.market import RandomMarket
from tests.server.conftest import SseClient, start_server, until
from ticker.app import create_app
from ticker.app.metrics import metrics_registry, render_metrics
from ticker.ingest.contract import IngestCounters
from ticker.server.context import ServerContext
from ticker.server.stats import EndReason
from ticker.server.subscriber import Subscriber


class Scrape:
    """One parsed exposition: look a sample up by name and labels."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.samples: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
        self.types: dict[str, str] = {}
        for family in text_string_to_metric_families(text):
            self.types[family.name] = family.type
            for sample in family.samples:
                self.samples[(sample.name, frozenset(sample.labels.items()))] = sample.value

    def __call__(self, name: str, **labels: str) -> float:
        return self.samples[(name, frozenset(labels.items()))]

    def names(self) -> Iterator[str]:
        return (name for name, _ in self.samples)


async def scrape(client: AppClient) -> Scrape:
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.content_type.startswith("text/plain; version=0.0.4")
    return Scrape(await response.get_data(as_text=True))


def scrape_context(context: ServerContext) -> Scrape:
    body, _ = render_metrics(metrics_registry(context), None)
    return Scrape(body.decode())


async def test_every_counter_is_exposed_with_its_value(
    client: AppClient, live_hub: LiveHub
) -> None:
    context = live_hub.context
    await live_hub.publish(*RandomMarket(random.Random(1)).events(200))
    stats = context.stats
    stats.connections_open.update({"sse": 2, "ws": 5})
    stats.connections_total.update({"sse": 9, "ws": 12})
    stats.ends.update({"slow_outbox": 3, "slow_write": 1, "slow_replay": 5, "client_closed": 4})
    stats.messages_sent, stats.bytes_sent, stats.writes = 1000, 123_456, 400
    stats.coalesced_writes, stats.conflations = 150, 7
    stats.resumes, stats.resets, stats.bad_requests = 6, 2, 8
    stats.resumes_limited = 3
    stats.limited.update({"origin": 4, "command_rate": 9})
    stats.hub_rejected_events = 5
    context.ingest["cbx"] = IngestCounters(messages=50, events=70, gaps=3, resyncs=2)
    context.ingest["itx"] = IngestCounters(messages=40, duplicates=1, malformed=4, disconnects=1)

    got = await scrape(client)

    assert got("ticker_ready") == 1
    assert got("ticker_draining") == 0
    assert got("ticker_connections", transport="sse") == 2
    assert got("ticker_connections", transport="ws") == 5
    assert got("ticker_connections_accepted_total", transport="ws") == 12
    assert got("ticker_connection_ends_total", reason="slow_outbox") == 3
    assert got("ticker_connection_ends_total", reason="client_closed") == 4
    assert got("ticker_connection_ends_total", reason="ping_timeout") == 0
    assert got("ticker_evictions_total", reason="slow_outbox") == 3
    assert got("ticker_evictions_total", reason="slow_write") == 1
    assert got("ticker_evictions_total", reason="slow_replay") == 5
    assert ("ticker_evictions_total", frozenset({("reason", "client_closed")})) not in got.samples
    assert got("ticker_messages_sent_total") == 1000
    assert got("ticker_sent_bytes_total") == 123_456
    assert got("ticker_writes_total") == 400
    assert got("ticker_coalesced_writes_total") == 150
    assert got("ticker_conflations_total") == 7
    assert got("ticker_resumes_total") == 6
    assert got("ticker_resumes_limited_total") == 3
    assert got("ticker_limited_total", limit="origin") == 4
    assert got("ticker_limited_total", limit="command_rate") == 9
    assert got("ticker_limited_total", limit="connections_per_ip") == 0  # there before any
    assert got("ticker_resets_total") == 2
    assert got("ticker_bad_requests_total") == 8
    assert got("ticker_hub_events_total") == 200
    assert got("ticker_published_messages_total") == stats.published > 0
    assert got("ticker_hub_rejected_events_total") == 5
    hub = context.hub
    assert got("ticker_stream_epoch") == hub.epoch
    assert got("ticker_stream_offset") == hub.position.offset
    assert got("ticker_replay_messages") == len(hub.replay) == hub.position.offset
    assert got("ticker_replay_bytes") == hub.replay.bytes > 0
    assert got("ticker_replay_max_messages") == context.config.replay_max_messages
    assert got("ticker_replay_max_bytes") == context.config.replay_max_bytes
    assert got("ticker_replay_first_offset") == 1
    fill = max(len(hub.replay) / hub.replay.max_entries, hub.replay.bytes / hub.replay.max_bytes)
    assert got("ticker_replay_fill_ratio") == fill
    assert got("ticker_ingest_messages_total", venue="cbx") == 50
    assert got("ticker_ingest_events_total", venue="cbx") == 70
    assert got("ticker_ingest_gaps_total", venue="cbx") == 3
    assert got("ticker_ingest_resyncs_total", venue="cbx") == 2
    assert got("ticker_ingest_gaps_total", venue="itx") == 0
    assert got("ticker_ingest_malformed_total", venue="itx") == 4
    assert got("ticker_ingest_duplicates_total", venue="itx") == 1
    assert got("ticker_ingest_disconnects_total", venue="itx") == 1
    assert got("ticker_ingest_stale_dropped_total", venue="cbx") == 0


async def test_counters_are_read_at_scrape_time(client: AppClient, live_hub: LiveHub) -> None:
    assert (await scrape(client))("ticker_writes_total") == 0
    live_hub.context.stats.writes += 17
    assert (await scrape(client))("ticker_writes_total") == 17


def test_fanout_latency_is_a_cumulative_histogram_in_seconds() -> None:
    context = make_context()
    histogram = context.stats.fanout_latency
    for seconds in (0.00005, 0.0002, 0.0002, 0.003, 0.2, 7.0):
        histogram.observe(seconds)
    got = scrape_context(context)
    assert got.types["ticker_fanout_latency_seconds"] == "histogram"
    buckets = {
        labels: value
        for (name, labels), value in got.samples.items()
        if name == "ticker_fanout_latency_seconds_bucket"
    }
    le = {dict(labels)["le"]: value for labels, value in buckets.items()}
    assert le["0.0001"] == 1
    assert le["0.00025"] == 3
    assert le["0.001"] == 3
    assert le["0.005"] == 4
    assert le["0.1"] == 4
    assert le["+Inf"] == 6
    assert len(le) == len(histogram.bounds) + 1
    assert got("ticker_fanout_latency_seconds_count") == 6
    assert abs(got("ticker_fanout_latency_seconds_sum") - histogram.sum_s) < 1e-12


def test_outbox_bytes_are_summed_over_open_connections() -> None:
    context = make_context()
    published = []
    for event in RandomMarket(random.Random(2)).events(40, books=False):
        published += context.hub.publish(event, 1_763_762_000_000_000_000)
    shares = [published[:10], published[10:]]
    sockets: list[socket.socket] = []
    try:
        for share in shares:
            ours, theirs = socket.socketpair()
            sockets += [ours, theirs]
            subscriber = Subscriber(
                ours,
                "test",
                context.sse_framing,
                context.hub,
                context.stats,
                outbox_max_bytes=1 << 20,
                write_timeout_s=1.0,
            )
            context.fanout.add(subscriber)
            for item in share:
                subscriber.outbox.offer(item)  # waiting to be written
        got = scrape_context(context)
    finally:
        for sock in sockets:
            sock.close()
    sizes = [sum(item.size for item in share) for share in shares]
    assert got("ticker_outbox_bytes") == sum(sizes)
    assert got("ticker_outbox_largest_bytes") == max(sizes)


def test_each_application_has_its_own_registry() -> None:
    first, second = make_context(), make_context()
    first.stats.resumes, second.stats.resumes = 3, 5
    create_app(first)
    create_app(second)  # a second app in the same process must not collide
    assert scrape_context(first)("ticker_resumes_total") == 3
    assert scrape_context(second)("ticker_resumes_total") == 5
    global_names = {
        sample.name for family in prometheus_client.REGISTRY.collect() for sample in family.samples
    }
    assert not any(name.startswith("ticker_") for name in global_names)


async def test_openmetrics_when_asked(client: AppClient) -> None:
    response = await client.get(
        "/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"}
    )
    assert response.status_code == 200
    assert response.content_type.startswith("application/openmetrics-text")
    text = await response.get_data(as_text=True)
    assert "# UNIT ticker_sent_bytes bytes" in text
    assert text.endswith("# EOF\n")


async def test_metrics_follow_a_real_sse_client(nursery: trio.Nursery, deadline: None) -> None:
    server = await start_server(nursery)
    app = create_app(server.context)
    async with app.test_app() as test_app:
        client = test_app.test_client()
        before = await scrape(client)
        assert before("ticker_connections", transport="sse") == 0
        await server.publish(*RandomMarket(random.Random(3)).events(50))
        await until(lambda: server.context.stats.ingest_events >= 50)
        sse = await SseClient.connect(server.port, "topics=quote.*,trade.*")
        async with sse.stream:
            while (await sse.event()).get("event") != "snapshot":
                pass
            during = await scrape(client)
            stats = server.context.stats
            assert during("ticker_connections", transport="sse") == 1
            assert during("ticker_connections_accepted_total", transport="sse") == 1
            assert during("ticker_messages_sent_total") == stats.messages_sent > 0
            assert during("ticker_sent_bytes_total") == stats.bytes_sent > 0
        await until(lambda: server.context.stats.ends[EndReason.CLIENT_CLOSED.value] == 1)
        after = await scrape(client)
        assert after("ticker_connections", transport="sse") == 0
        assert after("ticker_connection_ends_total", reason="client_closed") == 1
    server.stop()

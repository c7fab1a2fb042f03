"""The cluster's failures, each against a real redis-server and real `ticker serve`
processes (kill -9, SIGSTOP, Redis stopped or restarted without its data).

Clients are the Python client (`open_feed` with several URLs): it checks every topic's
sequence and reports any possible loss as a RESET update, so "no RESET" is "no gap and
no repeat".
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest
import trio

from tests.cluster.nodes import Node
from tests.redis_server import RedisServer
from ticker.client import open_feed
from ticker.client.updates import Update, UpdateKind
from ticker.core.codec import parse_json
from ticker.core.messages import DataMessage

TOPICS = ["quote.*", "trade.*", "book.BTC-USD", "ticker.*"]
TEST_DEADLINE_S = 120


class Cluster:
    """Redis plus the nodes a test starts; every node is stopped at the end."""

    def __init__(self, directory: Path, redis: RedisServer, name: str) -> None:
        self.directory = directory
        self.redis = redis
        self.name = name
        self.nodes: list[Node] = []

    def node(self, role: str, *extra: str) -> Node:
        args = [
            "--role", role, "--redis-url", self.redis.url, "--cluster", self.name,
            "--lease-ttl-s", "1", "--checkpoint-interval-s", "1",
            "--venue-rate-per-s", "40", "--heartbeat-s", "1", "--log-level", "INFO",
            *extra,
        ]  # fmt: skip
        node = Node(self.directory, f"{role}{len(self.nodes)}", args)
        self.nodes.append(node)
        return node.start()

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


@pytest.fixture
def cluster(tmp_path: Path, redis_server: RedisServer) -> Iterator[Cluster]:
    made = Cluster(tmp_path, redis_server, "failover")
    try:
        yield made
    finally:
        made.stop()


@pytest.fixture
def persistent_cluster(tmp_path: Path, persistent_redis: RedisServer) -> Iterator[Cluster]:
    made = Cluster(tmp_path, persistent_redis, "persist")
    try:
        yield made
    finally:
        made.stop()


def snapshot_document(node: Node) -> tuple[int, list[DataMessage]]:
    """The node's `/v1/snapshot` of every topic: its offset and the snapshots (nanos)."""
    status, body = node.get("/v1/snapshot?topics=" + ",".join(TOPICS))
    assert status == 200, body
    document = json.loads(body)
    snapshots = [parse_json(json.dumps(s), snapshot=True) for s in document["snapshots"]]
    return int(document["position"].split("-")[1]), snapshots


def assert_client_held(recorder: Recorder, snapshots: list[DataMessage]) -> None:
    """Each topic's state in the client, at the snapshot's seq, equals the snapshot."""
    states = {(u.topic, u.seq): u.state for u in recorder.updates}
    compared = 0
    for snapshot in snapshots:
        if snapshot.seq and (snapshot.topic, snapshot.seq) in states:
            # A book's checksum travels with the snapshot; the client holds the levels.
            held = {k: v for k, v in snapshot.data.items() if k != "checksum"}
            assert states[(snapshot.topic, snapshot.seq)] == held, snapshot.topic
            compared += 1
    assert compared >= len(snapshots) // 2, (compared, len(snapshots))


def leader(*hubs: Node) -> Node:
    for hub in hubs:
        if hub.readiness().get("leading"):
            return hub
    raise AssertionError("no hub leads")


def offset(node: Node) -> int:
    position = node.readiness().get("position", "0-0")
    return int(str(position).split("-")[1])


class Recorder:
    """Consumes a feed in the background and keeps what the test asserts on."""

    def __init__(self) -> None:
        self.updates: list[Update] = []
        self.resets: list[Update] = []
        self.changed = trio.Event()
        self.connections = 0

    async def consume(self, urls: list[str]) -> None:
        async with open_feed(urls, TOPICS, reconnect_min_s=0.05, reconnect_max_s=0.5) as feed:
            async for update in feed:
                self.connections = feed.stats.connections
                self.updates.append(update)
                if update.kind is UpdateKind.RESET:
                    self.resets.append(update)
                self.changed.set()
                self.changed = trio.Event()

    def last_offset(self) -> int:
        return self.updates[-1].position.offset if self.updates else 0

    async def wait_past(self, offset: int, timeout_s: float = 30) -> None:
        with trio.fail_after(timeout_s):
            while self.last_offset() <= offset:
                await self.changed.wait()

    async def wait_for_reset(self, timeout_s: float) -> None:
        with trio.fail_after(timeout_s):
            while not self.resets:
                await self.changed.wait()


async def test_kill_an_edge_its_clients_move_and_lose_nothing(cluster: Cluster) -> None:
    with trio.fail_after(TEST_DEADLINE_S):
        hub = cluster.node("hub")
        edge_a, edge_b = cluster.node("edge"), cluster.node("edge")
        for node in (hub, edge_a, edge_b):
            node.wait_ready()
        recorder = Recorder()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(recorder.consume, [edge_a.ws_url, edge_b.ws_url])
            await recorder.wait_past(0)
            await recorder.wait_past(recorder.last_offset() + 50)
            edge_a.kill()
            await recorder.wait_past(recorder.last_offset() + 200)
            nursery.cancel_scope.cancel()
        assert recorder.resets == []
        assert recorder.updates[-1].position.epoch == recorder.updates[0].position.epoch


async def test_kill_the_leading_hub_the_standby_leads_with_no_reset(cluster: Cluster) -> None:
    with trio.fail_after(TEST_DEADLINE_S):
        hub_1 = cluster.node("hub").wait_ready()
        hub_2 = cluster.node("hub").wait_ready()
        edge = cluster.node("edge").wait_ready()
        recorder = Recorder()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(recorder.consume, [edge.ws_url])
            await recorder.wait_past(0)
            await recorder.wait_past(recorder.last_offset() + 50)
            first = leader(hub_1, hub_2)
            standby = hub_2 if first is hub_1 else hub_1
            killed_at = time.monotonic()
            before = offset(edge)
            first.kill()
            await recorder.wait_past(before + 1, timeout_s=20)
            takeover_s = time.monotonic() - killed_at
            await recorder.wait_past(recorder.last_offset() + 200)
            # Every client's state equals the new leader's snapshot at the same seq.
            position, snapshots = snapshot_document(standby)
            await recorder.wait_past(position + 50)
            nursery.cancel_scope.cancel()
        assert standby.readiness().get("leading") is True
        assert recorder.resets == []
        assert_client_held(recorder, snapshots)
        print(f"takeover: first new message {takeover_s:.2f} s after kill -9 (lease 1 s)")


async def test_a_leader_paused_past_its_lease_is_fenced_and_steps_down(cluster: Cluster) -> None:
    with trio.fail_after(TEST_DEADLINE_S):
        hub_1 = cluster.node("hub").wait_ready()
        hub_2 = cluster.node("hub").wait_ready()
        edge = cluster.node("edge").wait_ready()
        recorder = Recorder()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(recorder.consume, [edge.ws_url])
            await recorder.wait_past(0)
            first = leader(hub_1, hub_2)
            standby = hub_2 if first is hub_1 else hub_1
            first.pause()
            # The standby leads only once the paused leader's lease lapsed: wait for that
            # (however slow the machine), not for a fixed time.
            await trio.to_thread.run_sync(
                partial(
                    standby.wait_until,
                    "leading",
                    lambda: standby.readiness().get("leading") is True,
                )
            )
            await recorder.wait_past(recorder.last_offset() + 50)
            first.resume()
            first.wait_until("stepped down", lambda: first.readiness().get("leading") is False)
            await recorder.wait_past(recorder.last_offset() + 100)
            nursery.cancel_scope.cancel()
        assert recorder.resets == []
        assert "stepped down" in first.log()


async def test_redis_away_then_back_with_its_data_no_reset(persistent_cluster: Cluster) -> None:
    cluster = persistent_cluster
    with trio.fail_after(TEST_DEADLINE_S):
        hub = cluster.node("hub").wait_ready()
        edge = cluster.node("edge").wait_ready()
        recorder = Recorder()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(recorder.consume, [edge.ws_url])
            await recorder.wait_past(0)
            await recorder.wait_past(recorder.last_offset() + 30)
            connections = recorder.connections
            cluster.redis.stop()
            edge.wait_until("unready", lambda: not edge.ready(), timeout_s=10)
            assert "unreachable" in str(edge.readiness().get("reason"))
            # The leader holds what its venues publish meanwhile (bounded).
            hub.wait_until("holding", lambda: (hub.metric("ticker_cluster_held_batches") or 0) > 0)
            count = len(recorder.updates)
            await trio.sleep(10)
            cluster.redis.start()
            edge.wait_ready()
            hub.wait_ready()
            await recorder.wait_past(recorder.last_offset() + 200, timeout_s=40)
            nursery.cancel_scope.cancel()
        assert recorder.resets == []
        assert len(recorder.updates) > count
        assert recorder.connections == connections  # heartbeats kept it connected


async def test_redis_restarted_without_data_clients_get_other_epoch(cluster: Cluster) -> None:
    with trio.fail_after(TEST_DEADLINE_S):
        cluster.node("hub").wait_ready()
        edge = cluster.node("edge").wait_ready()
        recorder = Recorder()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(recorder.consume, [edge.ws_url])
            await recorder.wait_past(0)
            epoch = recorder.updates[-1].position.epoch
            cluster.redis.stop(wipe=True)
            cluster.redis.start()
            await recorder.wait_for_reset(40)
            nursery.cancel_scope.cancel()
        loss = recorder.resets[0].loss
        assert loss is not None and loss.reason == "other_epoch"
        assert recorder.updates[-1].position.epoch != epoch


async def test_a_paused_edge_catches_up(cluster: Cluster) -> None:
    with trio.fail_after(TEST_DEADLINE_S):
        hub = cluster.node("hub").wait_ready()
        edge = cluster.node("edge").wait_ready()
        edge.pause()
        await trio.sleep(5)
        edge.resume()
        target = offset(hub)
        edge.wait_until("caught up", lambda: offset(edge) >= target, timeout_s=20)


async def test_an_edge_whose_position_was_trimmed_resets_its_clients(cluster: Cluster) -> None:
    with trio.fail_after(TEST_DEADLINE_S):
        # About 2-3 s of log at this rate: the 1 s checkpoints stay inside it.
        hub = cluster.node("hub", "--cluster-log-max-entries", "200").wait_ready()
        edge = cluster.node("edge").wait_ready()
        recorder = Recorder()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(recorder.consume, [edge.ws_url])
            await recorder.wait_past(0)
            edge.pause()
            # Far more entries than the log keeps, counted (a loaded hub batches more, so
            # a fixed time may not be enough).
            appended = hub.metric("ticker_cluster_appended_batches") or 0
            await trio.to_thread.run_sync(
                partial(
                    hub.wait_until,
                    "past the log's length",
                    lambda: (hub.metric("ticker_cluster_appended_batches") or 0) > appended + 600,
                    timeout_s=60,
                )
            )
            edge.resume()
            await recorder.wait_for_reset(30)
            nursery.cancel_scope.cancel()
        loss = recorder.resets[0].loss
        assert loss is not None and loss.reason == "too_old"
        assert edge.log().count("trimmed from the log") == 1


def test_workers_share_one_port_and_a_dead_one_is_restarted(cluster: Cluster) -> None:
    """`--workers 2`: two edge processes on one port; kill -9 one and the parent starts
    another (each wait below is bounded by its own timeout)."""
    cluster.node("hub").wait_ready()
    edges = cluster.node("edge", "--workers", "2").wait_ready()
    edges.wait_until("two workers up", lambda: edges.log().count("following the") >= 2)
    pids = [int(line.rsplit("pid ", 1)[1].rstrip(")")) for line in edges.log().splitlines()
            if "started (pid" in line]  # fmt: skip
    assert len(pids) == 2
    os.kill(pids[0], signal.SIGKILL)
    edges.wait_until("restarted", lambda: edges.log().count("started (pid") == 3)
    edges.wait_until("three followers", lambda: edges.log().count("following the") >= 3)
    assert edges.ready()

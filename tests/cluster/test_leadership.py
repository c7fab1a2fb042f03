"""Taking the lease and rebuilding, against a real redis-server: a Redis failure while a
new leader rebuilds ends its term, not its process; a rebuild longer than the lease
keeps the lease (no standby takes it meanwhile, no term that never gets to write)."""

from __future__ import annotations

import json
import random
import urllib.error
import urllib.request
from dataclasses import replace
from typing import Any

import coredis
import pytest
import trio

from tests.cluster.test_roles import (
    TAKEOVER_LEASE_TTL_S,
    cluster_config,
    leading,
    market,
    publish,
    start,
)
from tests.redis_server import RedisServer
from tests.server.conftest import until
from ticker.cluster.redis_log import ClusterLog, LogEntry, LogUnavailable
from ticker.config import Config
from ticker.core.position import Position
from ticker.server.process import ServerHandle

DEADLINE_S = 60


async def test_redis_failing_during_the_rebuild_ends_the_term_not_the_process(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = ClusterLog.read_checkpoint
    failures = [LogUnavailable("Redis did not answer within 2 s")]

    async def flaky(self: ClusterLog) -> bytes | None:
        if failures:  # Redis goes away just after the lease was taken
            raise failures.pop()
        return await real(self)

    monkeypatch.setattr(ClusterLog, "read_checkpoint", flaky)
    with trio.fail_after(DEADLINE_S):
        async with trio.open_nursery() as nursery:
            hub = await start(nursery, replace(cluster_config(redis_server, "lead1"), role="hub"))
            status = hub.context.cluster
            assert status is not None
            await publish(hub, market(random.Random(1), 20))
            await until(lambda: status.appended_batches > 0)
            assert not failures
            assert status.leading
            nursery.cancel_scope.cancel()


async def test_a_rebuild_longer_than_the_lease_keeps_the_lease(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = cluster_config(redis_server, "lead2", lease_ttl_s=TAKEOVER_LEASE_TTL_S)
    real = ClusterLog.read_range

    async def slow(self: ClusterLog, after: Position, *, count: int) -> list[LogEntry]:
        await trio.sleep(base.lease_ttl_s * 1.5)  # a long log after the checkpoint
        return await real(self, after, count=count)

    monkeypatch.setattr(ClusterLog, "read_range", slow)
    with trio.fail_after(DEADLINE_S):
        async with trio.open_nursery() as nursery:
            first = await start(nursery, replace(base, role="hub"))
            first_status = first.context.cluster
            assert first_status is not None
            await until(lambda: first_status.leading)
            second = await start(nursery, replace(base, role="hub"))
            second_status = second.context.cluster
            assert second_status is not None
            await publish(first, market(random.Random(2), 20))
            await until(lambda: first_status.appended_batches > 0)
            assert second_status.lease_changes == 0  # the standby never took it
            assert first_status.lease_changes == 1  # one term, never stepped down
            nursery.cancel_scope.cancel()


async def test_a_new_leader_is_not_ready_until_it_has_rebuilt(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While a leader rebuilds from checkpoint + log it holds the lease but sequences
    nothing: /readyz says 503 "rebuilding", and 200 once the rebuild is done."""
    real = ClusterLog.read_range
    rebuild_may_go_on = trio.Event()

    async def held(self: ClusterLog, after: Position, *, count: int) -> list[LogEntry]:
        await rebuild_may_go_on.wait()
        return await real(self, after, count=count)

    monkeypatch.setattr(ClusterLog, "read_range", held)
    with trio.fail_after(DEADLINE_S):
        async with trio.open_nursery() as nursery:
            hub = await start(nursery, replace(cluster_config(redis_server, "lead3"), role="hub"))
            status = hub.context.cluster
            assert status is not None
            await until(lambda: status.leading)
            code, body = await trio.to_thread.run_sync(readyz, hub.port)
            assert code == 503
            assert body["leading"] is True
            assert body["reason"].startswith("rebuilding")
            assert not hub.context.ready
            rebuild_may_go_on.set()
            await until(lambda: not status.rebuilding)
            code, body = await trio.to_thread.run_sync(readyz, hub.port)
            assert (code, body["ready"], body["leading"]) == (200, True, True)
            nursery.cancel_scope.cancel()


def readyz(port: int) -> tuple[int, dict[str, Any]]:
    """GET /readyz: its status and JSON body."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


async def test_a_lease_that_lapsed_before_the_first_append_is_taken_back(
    redis_server: RedisServer,
) -> None:
    """A new leader's lease lapses before it appended anything (a machine too slow to
    renew in time; here the key is deleted): nobody else wrote, so it takes the lease back
    and appends, instead of stepping down and losing what it was publishing."""
    with trio.fail_after(DEADLINE_S):
        async with trio.open_nursery() as nursery:
            hub = await start(nursery, replace(cluster_config(redis_server, "lead4"), role="hub"))
            status = hub.context.cluster
            assert status is not None
            await until(lambda: status.leading and not status.rebuilding)
            redis = coredis.Redis.from_url(redis_server.url, decode_responses=False)
            async with redis:
                assert await redis.delete(["ticker:{lead4}:lease"]) == 1
            await publish(hub, market(random.Random(4), 20))
            await until(lambda: status.held_batches == 0)
            assert status.appended_batches > 0
            assert status.lease_changes == 1  # one term, never stepped down
            nursery.cancel_scope.cancel()


async def test_a_leader_that_stops_gracefully_frees_the_lease_at_once(
    redis_server: RedisServer,
) -> None:
    """A hub stopped gracefully (SIGTERM/Ctrl-C cancel its tasks) frees the lease on its
    way out, so a standby leads at once instead of after the lease's TTL. The lease here
    is long (60 s): only the release can free it within the test's deadline."""
    base = cluster_config(redis_server, "lead5", lease_ttl_s=60.0)
    key = "ticker:{lead5}:lease"
    redis = coredis.Redis.from_url(redis_server.url, decode_responses=False)
    with trio.fail_after(DEADLINE_S):
        async with redis, trio.open_nursery() as nursery:
            first_scope, first = await nursery.start(
                _serve_in_own_nursery, replace(base, role="hub")
            )
            await until(leading(first))
            second = await start(nursery, replace(base, role="hub"))
            second_status = second.context.cluster
            assert second_status is not None
            assert await redis.get(key) is not None
            assert not second_status.leading
            first_scope.cancel()  # the graceful stop
            await until(lambda: second_status.leading and not second_status.rebuilding)
            nursery.cancel_scope.cancel()


async def _serve_in_own_nursery(
    config: Config, *, task_status: trio.TaskStatus[tuple[trio.CancelScope, ServerHandle]]
) -> None:
    """Run one server in a scope of its own: the test cancels it alone (a graceful stop)."""
    with trio.CancelScope() as scope:
        async with trio.open_nursery() as nursery:
            handle = await start(nursery, config)
            task_status.started((scope, handle))

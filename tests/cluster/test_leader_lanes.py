"""The leader's periodic commands (lease renewal, checkpoint) on lanes, against a real redis-server.

They used to go through coredis, whose ~0.5 ms of CPU per command delayed a message
published meanwhile (docs/CLUSTER.md, "Latency of the hop"). On a lane a command cut by a
timeout or a cancellation drops its connection, and one whose connection dropped
mid-command is sent once more on a fresh one: each test here is one of those paths.
"""

from __future__ import annotations

import os
import signal
from typing import Any

import coredis
import pytest
import trio

from ticker.cluster.redis_log import Fenced, LogEntry, LogUnavailable, open_cluster_log
from ticker.core.position import Position

from ..redis_server import RedisServer
from .proxies import DropProxy

CLUSTER = "test"
TIMEOUT_S = 0.5
GUARD_S = 10.0
"""The absolute deadline of one step (a guard against a hang, not a timing assertion)."""
TTL_MS = 60_000


async def test_renewals_and_checkpoints_do_not_go_through_coredis(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with open_cluster_log(redis_server.url, CLUSTER, command_timeout_s=TIMEOUT_S) as log:
        assert await log.acquire_lease("hub-a", TTL_MS)

        async def refuse(self: Any, command: Any, **kwargs: Any) -> Any:
            raise AssertionError(f"through coredis: {command!r:.80}")

        monkeypatch.setattr(coredis.Redis, "execute_command", refuse)
        with trio.fail_after(GUARD_S):
            assert await log.renew_lease("hub-a", TTL_MS)
            assert not await log.renew_lease("hub-b", TTL_MS)
            await log.write_checkpoint("hub-a", b"checkpoint")
            await log.append("hub-a", Position(7, 1), b"d1", max_entries=100)
        monkeypatch.undo()
        assert await log.read_checkpoint() == b"checkpoint"


async def test_a_renewal_cut_by_a_timeout_or_a_cancellation_leaves_no_late_reply(
    persistent_redis: RedisServer,
) -> None:
    async with open_cluster_log(persistent_redis.url, CLUSTER, command_timeout_s=TIMEOUT_S) as log:
        assert await log.acquire_lease("hub-a", TTL_MS)
        assert await log.renew_lease("hub-a", TTL_MS)  # the lane's connection is up
        assert persistent_redis.process is not None
        pid = persistent_redis.process.pid
        os.kill(pid, signal.SIGSTOP)
        try:
            with trio.move_on_after(0.1) as cancelled:  # a cancellation mid-command
                await log.renew_lease("hub-a", TTL_MS)
            assert cancelled.cancelled_caught
            with trio.fail_after(GUARD_S), pytest.raises(LogUnavailable):
                await log.renew_lease("hub-a", TTL_MS)  # the timeout
        finally:
            os.kill(pid, signal.SIGCONT)
        with trio.fail_after(GUARD_S):
            # Redis now answers the cut commands (1, 1) on connections that were dropped:
            # a reused one would hand hub-b a 1.
            assert not await log.renew_lease("hub-b", TTL_MS)
            assert await log.renew_lease("hub-a", TTL_MS)


async def test_a_checkpoint_cut_by_a_timeout_leaves_no_late_reply_for_the_next_append(
    persistent_redis: RedisServer,
) -> None:
    async with open_cluster_log(persistent_redis.url, CLUSTER, command_timeout_s=TIMEOUT_S) as log:
        assert await log.acquire_lease("hub-a", TTL_MS)
        await log.append("hub-a", Position(7, 1), b"d1", max_entries=100)
        assert persistent_redis.process is not None
        pid = persistent_redis.process.pid
        os.kill(pid, signal.SIGSTOP)
        try:
            with trio.fail_after(GUARD_S), pytest.raises(LogUnavailable):
                await log.write_checkpoint("hub-a", b"late")
        finally:
            os.kill(pid, signal.SIGCONT)
        with trio.fail_after(GUARD_S):
            # The late reply to the checkpoint (1) must not be taken for this refusal.
            with pytest.raises(Fenced, match="not after the last entry"):
                await log.append("hub-a", Position(7, 1), b"other", max_entries=100)
            await log.append("hub-a", Position(7, 2), b"d2", max_entries=100)
            assert await log.last_position() == Position(7, 2)


@pytest.mark.parametrize("command", ["renew", "checkpoint"])
async def test_a_command_whose_connection_dropped_is_sent_again_on_a_fresh_one(
    redis_server: RedisServer, command: str
) -> None:
    proxy = DropProxy(redis_server.port)
    with trio.fail_after(GUARD_S * 3):
        async with trio.open_nursery() as nursery:
            await nursery.start(proxy.serve)
            url = f"redis://127.0.0.1:{proxy.port}/0"
            async with open_cluster_log(url, CLUSTER, command_timeout_s=TIMEOUT_S) as log:
                assert await log.acquire_lease("hub-a", TTL_MS)
                # Connect the lanes first, so that the drop hits an established one.
                assert await log.renew_lease("hub-a", TTL_MS)
                await log.write_checkpoint("hub-a", b"first")
                proxy.armed = True
                if command == "renew":
                    assert await log.renew_lease("hub-a", TTL_MS)
                else:
                    await log.write_checkpoint("hub-a", b"second")
                    assert await log.read_checkpoint() == b"second"
                assert proxy.dropped == 1
            nursery.cancel_scope.cancel()


async def test_after_redis_restarts_without_data_renewals_and_checkpoints_load_their_scripts(
    redis_server: RedisServer,
) -> None:
    async with open_cluster_log(redis_server.url, CLUSTER, command_timeout_s=TIMEOUT_S) as log:
        assert await log.acquire_lease("hub-a", TTL_MS)
        assert await log.renew_lease("hub-a", TTL_MS)  # both lanes connected, scripts loaded
        await log.write_checkpoint("hub-a", b"before")
        redis_server.stop(wipe=True)
        redis_server.start()
        with trio.fail_after(GUARD_S):
            # Dead connections, scripts forgotten (NOSCRIPT), the lease gone with the data.
            assert not await log.renew_lease("hub-a", TTL_MS)
            with pytest.raises(Fenced):
                await log.write_checkpoint("hub-a", b"fenced")
            assert await log.acquire_lease("hub-a", TTL_MS)
            assert await log.renew_lease("hub-a", TTL_MS)
            await log.write_checkpoint("hub-a", b"after")
        assert await log.read_checkpoint() == b"after"


# -- where a lane waits under its deadline (only there: see ClusterLog._on_lane) ---------


async def silent_redis(received: list[int], task_status: trio.TaskStatus[int]) -> None:
    """A TCP server that accepts, reads (or, once `received` holds -1, stops reading)
    and never answers: every command sent to it waits for its deadline."""

    async def handle(stream: trio.SocketStream) -> None:
        while received[-1:] != [-1]:
            data = await stream.receive_some(1 << 16)
            if not data:
                return
            received.append(len(data))
        await trio.sleep_forever()

    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    task_status.started(listeners[0].socket.getsockname()[1])
    await trio.serve_listeners(handle, listeners)


async def test_a_connect_that_gets_no_answer_is_cut_by_the_deadline() -> None:
    # With a password the lane's connect sends AUTH and waits for it.
    received: list[int] = []
    async with trio.open_nursery() as nursery:
        port = await nursery.start(silent_redis, received)
        url = f"redis://:secret@127.0.0.1:{port}"
        async with open_cluster_log(url, CLUSTER, command_timeout_s=0.2) as log:
            with trio.fail_after(GUARD_S), pytest.raises(LogUnavailable, match="did not answer"):
                await log.renew_lease("hub-a", TTL_MS)
            assert received  # the AUTH went out
        nursery.cancel_scope.cancel()


async def test_a_send_that_cannot_go_is_cut_by_the_deadline() -> None:
    received: list[int] = [-1]  # never read: the socket buffers fill
    async with trio.open_nursery() as nursery:
        port = await nursery.start(silent_redis, received)
        url = f"redis://127.0.0.1:{port}"
        async with open_cluster_log(url, CLUSTER, command_timeout_s=0.2) as log:
            with trio.fail_after(GUARD_S), pytest.raises(LogUnavailable, match="did not answer"):
                await log.write_checkpoint("hub-a", b"x" * (16 << 20))
        nursery.cancel_scope.cancel()


async def test_a_command_waiting_for_its_lane_is_cut_by_the_deadline_and_sends_nothing(
    redis_server: RedisServer,
) -> None:
    async with open_cluster_log(redis_server.url, CLUSTER, command_timeout_s=0.2) as log:
        assert await log.acquire_lease("hub-a", TTL_MS)
        got: list[list[LogEntry]] = []

        async def blocked_read() -> None:
            got.append(await log.read_after(Position(7, 0), count=10, block_ms=2_000))

        with trio.fail_after(GUARD_S):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(blocked_read)
                await trio.sleep(0.05)  # the read holds the lane, blocked in Redis
                with pytest.raises(LogUnavailable, match="did not answer"):
                    await log.read_after(Position(7, 0), count=10, block_ms=None)
                # The blocked read's connection is untouched: it gets the entry.
                await log.append("hub-a", Position(7, 1), b"d1", max_entries=100)
        assert got == [[LogEntry(Position(7, 1), b"d1")]]

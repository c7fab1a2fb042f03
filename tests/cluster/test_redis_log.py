"""The cluster log against a real redis-server: epoch, lease, fenced appends, reads, outages.

Lease expiry waits in real time (the TTL runs on Redis's clock, not trio's).
"""

from __future__ import annotations

import os
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import coredis
import pytest
import trio

from ticker.cluster.redis_log import (
    ClusterLog,
    Fenced,
    LogEntry,
    LogError,
    LogUnavailable,
    _lane_entry,
    open_cluster_log,
)
from ticker.core.position import Position
from ticker.errors import ConfigError

from ..redis_server import RedisServer
from .proxies import BlackholeProxy

CLUSTER = "test"
TIMEOUT_S = 0.5
"""command_timeout_s of the logs under test: short, so the outage tests stay short."""
GUARD_S = 10.0
"""The absolute deadline of one call in an outage test (a guard against a hang, not a
timing assertion)."""
TTL_MS = 5_000


@asynccontextmanager
async def raw_client(server: RedisServer) -> AsyncIterator[coredis.Redis[bytes]]:
    """A plain client, to look at and spoil Redis behind the log's back."""
    client: coredis.Redis[bytes] = coredis.Redis.from_url(server.url, decode_responses=False)
    async with client:
        yield client


def p(offset: int, epoch: int = 7) -> Position:
    return Position(epoch, offset)


async def fill(log: ClusterLog, offsets: list[int], token: str = "hub-a") -> None:
    """Take the lease (if free) and append one entry per offset, data b"d<offset>"."""
    assert await log.acquire_lease(token, TTL_MS)
    for offset in offsets:
        await log.append(token, p(offset), b"d%d" % offset, max_entries=1000)


def positions(entries: list[LogEntry]) -> list[int]:
    return [entry.position.offset for entry in entries]


# --- epoch ------------------------------------------------------------------------------


async def test_the_first_proposal_becomes_the_epoch_and_later_ones_get_it(
    redis_server: RedisServer,
) -> None:
    async with (
        open_cluster_log(redis_server.url, CLUSTER) as one,
        open_cluster_log(redis_server.url, CLUSTER) as two,
    ):
        assert await one.epoch(100) == 100
        assert await one.epoch(200) == 100
        assert await two.epoch(300) == 100


async def test_clusters_on_one_redis_keep_their_own_epoch(redis_server: RedisServer) -> None:
    async with (
        open_cluster_log(redis_server.url, "east") as east,
        open_cluster_log(redis_server.url, "west") as west,
    ):
        assert await east.epoch(1) == 1
        assert await west.epoch(2) == 2
        assert east.keys.log == "ticker:{east}:log"
        assert west.keys.lease == "ticker:{west}:lease"


async def test_a_restart_without_data_takes_a_new_epoch_and_reloads_the_scripts(
    redis_server: RedisServer,
) -> None:
    async with open_cluster_log(redis_server.url, CLUSTER) as log:
        assert await log.epoch(100) == 100
        await fill(log, [1])
        redis_server.stop(wipe=True)
        redis_server.start()
        # The same log, after Redis forgot every script: EVALSHA falls back to loading it.
        assert await log.epoch(200) == 200
        assert await log.acquire_lease("hub-b", TTL_MS)
        await log.append("hub-b", p(1, 200), b"again", max_entries=10)
        assert await log.read_range(Position(0, 0), count=10) == [LogEntry(p(1, 200), b"again")]


async def test_with_persistence_the_epoch_and_the_log_survive_a_restart(
    persistent_redis: RedisServer,
) -> None:
    async with open_cluster_log(persistent_redis.url, CLUSTER) as log:
        assert await log.epoch(100) == 100
        await fill(log, [1, 2])
        persistent_redis.stop()
        persistent_redis.start()
        assert await log.epoch(200) == 100
        assert await log.last_position() == p(2)


async def test_drop_epoch_if_deletes_only_the_given_epoch(redis_server: RedisServer) -> None:
    async with open_cluster_log(redis_server.url, CLUSTER) as log:
        assert await log.epoch(100) == 100
        await log.drop_epoch_if(99)
        assert await log.epoch(200) == 100
        await log.drop_epoch_if(100)
        assert await log.epoch(200) == 200


# --- lease ------------------------------------------------------------------------------


async def test_the_lease_is_taken_renewed_and_released_by_its_holder_only(
    redis_server: RedisServer,
) -> None:
    async with open_cluster_log(redis_server.url, CLUSTER) as log:
        assert await log.lease_holder() is None
        assert await log.acquire_lease("hub-a", TTL_MS)
        assert not await log.acquire_lease("hub-b", TTL_MS)
        assert await log.lease_holder() == "hub-a"
        assert await log.acquire_lease("hub-a", TTL_MS)  # ours: renewed
        assert await log.renew_lease("hub-a", TTL_MS)
        assert not await log.renew_lease("hub-b", TTL_MS)
        await log.release_lease("hub-b")  # not b's: nothing happens
        assert await log.lease_holder() == "hub-a"
        await log.release_lease("hub-a")
        assert await log.lease_holder() is None
        assert await log.acquire_lease("hub-b", TTL_MS)
        assert await log.lease_holder() == "hub-b"


async def test_renewing_extends_the_lease_past_its_first_ttl(redis_server: RedisServer) -> None:
    async with open_cluster_log(redis_server.url, CLUSTER) as log:
        # 1 s: a loaded machine may take a few hundred ms between the two calls.
        assert await log.acquire_lease("hub-a", 1000)
        assert await log.renew_lease("hub-a", 60_000)
        await trio.sleep(1.5)
        assert await log.lease_holder() == "hub-a"


async def test_after_expiry_another_hub_leads_and_the_old_one_writes_nothing(
    redis_server: RedisServer,
) -> None:
    async with open_cluster_log(redis_server.url, CLUSTER) as log:
        # The writes under a long lease (a slow machine must not fence them), then 100 ms.
        assert await log.acquire_lease("hub-a", TTL_MS)
        await log.append("hub-a", p(1), b"by a", max_entries=10)
        await log.write_checkpoint("hub-a", b"checkpoint a")
        assert await log.renew_lease("hub-a", 100)
        await trio.sleep(0.4)  # past the 100 ms TTL, on Redis's clock
        assert await log.lease_holder() is None
        assert await log.acquire_lease("hub-b", TTL_MS)

        with pytest.raises(Fenced):
            await log.append("hub-a", p(2), b"late a", max_entries=10)
        with pytest.raises(Fenced):
            await log.write_checkpoint("hub-a", b"late checkpoint a")
        assert not await log.renew_lease("hub-a", TTL_MS)
        assert await log.read_range(Position(0, 0), count=10) == [LogEntry(p(1), b"by a")]
        assert await log.read_checkpoint() == b"checkpoint a"

        await log.append("hub-b", p(2), b"by b", max_entries=10)
        await log.write_checkpoint("hub-b", b"checkpoint b")
        assert await log.last_position() == p(2)
        assert await log.read_checkpoint() == b"checkpoint b"


async def test_only_if_last_takes_a_free_lease_only_when_nobody_wrote_meanwhile(
    redis_server: RedisServer,
) -> None:
    async with open_cluster_log(redis_server.url, CLUSTER) as log:
        # An empty log has no last entry, so it matches no position.
        assert not await log.acquire_lease("hub-a", TTL_MS, only_if_last=p(1))
        assert await log.lease_holder() is None

        await fill(log, [1, 2, 3], token="hub-a")
        await log.release_lease("hub-a")
        assert not await log.acquire_lease("hub-a", TTL_MS, only_if_last=p(2))
        assert not await log.acquire_lease("hub-a", TTL_MS, only_if_last=p(4))
        assert await log.lease_holder() is None
        assert await log.acquire_lease("hub-a", TTL_MS, only_if_last=p(3))
        assert await log.lease_holder() == "hub-a"
        # A lease already ours is renewed whatever the log's last entry.
        assert await log.acquire_lease("hub-a", TTL_MS, only_if_last=p(1))
        # A lease held by another is never taken.
        assert not await log.acquire_lease("hub-b", TTL_MS, only_if_last=p(3))


async def test_a_leader_that_has_not_appended_takes_a_lapsed_lease_back_on_its_epoch(
    redis_server: RedisServer,
) -> None:
    """A new leader's lease lapses (a slow machine) before its first append: the log is
    empty, so it requires `<epoch>-0`, granted only while the stored epoch is its own."""
    async with open_cluster_log(redis_server.url, CLUSTER) as log:
        assert not await log.acquire_lease("hub-a", TTL_MS, only_if_last=p(0))  # no epoch
        assert await log.epoch(7) == 7
        assert not await log.acquire_lease("hub-a", TTL_MS, only_if_last=p(0, epoch=8))
        assert await log.lease_holder() is None
        assert await log.acquire_lease("hub-a", TTL_MS, only_if_last=p(0))
        assert await log.lease_holder() == "hub-a"


# --- append and reads -------------------------------------------------------------------


async def test_entry_ids_are_positions_and_must_increase(redis_server: RedisServer) -> None:
    async with (
        open_cluster_log(redis_server.url, CLUSTER) as log,
        raw_client(redis_server) as raw,
    ):
        await fill(log, [1, 5])
        stored = await raw.xrange(log.keys.log, "-", "+")
        assert [entry.identifier for entry in stored] == [b"7-1", b"7-5"]
        assert [entry.field_values[b"m"] for entry in stored] == [b"d1", b"d5"]

        for position, data in [(p(5), b"other"), (p(4), b"d4"), (Position(6, 9), b"d")]:
            with pytest.raises(Fenced):
                await log.append("hub-a", position, data, max_entries=10)
        assert await raw.xlen(log.keys.log) == 2

        # The last entry again, same data (a resent command): accepted, not duplicated.
        await log.append("hub-a", p(5), b"d5", max_entries=10)
        assert await raw.xlen(log.keys.log) == 2
        # A later epoch is after every position of an earlier one.
        await log.append("hub-a", Position(8, 1), b"e", max_entries=10)
        assert await log.last_position() == Position(8, 1)


async def test_append_trims_the_log_to_about_max_entries(redis_server: RedisServer) -> None:
    async with (
        open_cluster_log(redis_server.url, CLUSTER) as log,
        raw_client(redis_server) as raw,
    ):
        assert await log.acquire_lease("hub-a", TTL_MS)
        for offset in range(1, 1001):
            await log.append("hub-a", p(offset), b"x", max_entries=10)
        # MAXLEN ~ trims whole stream nodes (100 entries each by default): never below
        # max_entries, never a node more.
        length = await raw.xlen(log.keys.log)
        assert 10 <= length <= 110
        assert await log.last_position() == p(1000)
        assert await log.first_position() == p(1001 - length)


async def test_first_and_last_position_of_an_empty_log_are_none(
    redis_server: RedisServer,
) -> None:
    async with open_cluster_log(redis_server.url, CLUSTER) as log:
        assert await log.first_position() is None
        assert await log.last_position() is None
        assert await log.read_range(Position(0, 0), count=10) == []
        assert await log.read_before(p(5), count=10) == []
        assert await log.read_after(Position(0, 0), count=10, block_ms=None) == []
        await fill(log, [3, 4, 9])
        assert await log.first_position() == p(3)
        assert await log.last_position() == p(9)


async def test_read_after_returns_what_follows_up_to_count(redis_server: RedisServer) -> None:
    async with open_cluster_log(redis_server.url, CLUSTER) as log:
        await fill(log, [1, 2, 3, 4, 5])
        assert positions(await log.read_after(Position(0, 0), count=100, block_ms=None)) == [
            1,
            2,
            3,
            4,
            5,
        ]
        assert positions(await log.read_after(p(2), count=2, block_ms=None)) == [3, 4]
        assert (await log.read_after(p(4), count=10, block_ms=None)) == [LogEntry(p(5), b"d5")]
        assert await log.read_after(p(5), count=10, block_ms=None) == []


async def test_a_blocking_read_returns_nothing_on_timeout_and_an_entry_when_one_comes(
    redis_server: RedisServer,
) -> None:
    async with (
        open_cluster_log(redis_server.url, CLUSTER) as leader,
        open_cluster_log(redis_server.url, CLUSTER) as follower,
    ):
        await fill(leader, [1])
        with trio.fail_after(GUARD_S):
            assert await follower.read_after(p(1), count=10, block_ms=100) == []

        got: list[LogEntry] = []

        async def follow() -> None:
            got.extend(await follower.read_after(p(1), count=10, block_ms=5_000))

        with trio.fail_after(GUARD_S):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(follow)
                await trio.sleep(0.05)
                await leader.append("hub-a", p(2), b"new", max_entries=10)
        assert got == [LogEntry(p(2), b"new")]


async def test_read_range_and_read_before_exclude_their_bound_and_go_oldest_first(
    redis_server: RedisServer,
) -> None:
    async with open_cluster_log(redis_server.url, CLUSTER) as log:
        await fill(log, [1, 2, 3, 5, 8, 13])
        assert positions(await log.read_range(p(3), count=10)) == [5, 8, 13]
        assert positions(await log.read_range(p(4), count=2)) == [5, 8]
        assert positions(await log.read_range(Position(0, 0), count=2)) == [1, 2]
        assert await log.read_range(p(13), count=10) == []

        assert positions(await log.read_before(p(8), count=10)) == [1, 2, 3, 5]
        assert positions(await log.read_before(p(8), count=2)) == [3, 5]
        assert positions(await log.read_before(p(7), count=2)) == [3, 5]
        assert positions(await log.read_before(p(100), count=1)) == [13]
        assert await log.read_before(p(1), count=10) == []
        assert await log.read_before(Position(0, 0), count=10) == []
        assert (await log.read_before(p(3), count=1)) == [LogEntry(p(2), b"d2")]


async def test_the_checkpoint_is_written_by_the_lease_holder_only(
    redis_server: RedisServer,
) -> None:
    async with open_cluster_log(redis_server.url, CLUSTER) as log:
        assert await log.read_checkpoint() is None
        with pytest.raises(Fenced):
            await log.write_checkpoint("hub-a", b"nobody leads")
        assert await log.read_checkpoint() is None
        assert await log.acquire_lease("hub-a", TTL_MS)
        await log.write_checkpoint("hub-a", b"\x00\xffbinary")
        assert await log.read_checkpoint() == b"\x00\xffbinary"


# --- failures ---------------------------------------------------------------------------

Call = Callable[[ClusterLog], Awaitable[object]]

EVERY_CALL: list[tuple[str, Call]] = [
    ("epoch", lambda log: log.epoch(1)),
    ("drop_epoch_if", lambda log: log.drop_epoch_if(1)),
    ("acquire_lease", lambda log: log.acquire_lease("hub-a", TTL_MS)),
    ("acquire_lease only_if_last", lambda log: log.acquire_lease("b", 10, only_if_last=p(1))),
    ("renew_lease", lambda log: log.renew_lease("hub-a", TTL_MS)),
    ("release_lease", lambda log: log.release_lease("hub-a")),
    ("lease_holder", lambda log: log.lease_holder()),
    ("append", lambda log: log.append("hub-a", p(99), b"x", max_entries=10)),
    ("last_position", lambda log: log.last_position()),
    ("first_position", lambda log: log.first_position()),
    ("read_after", lambda log: log.read_after(p(1), count=10, block_ms=None)),
    ("read_after block", lambda log: log.read_after(p(1), count=10, block_ms=100)),
    ("read_range", lambda log: log.read_range(p(1), count=10)),
    ("read_before", lambda log: log.read_before(p(9), count=10)),
    ("write_checkpoint", lambda log: log.write_checkpoint("hub-a", b"c")),
    ("read_checkpoint", lambda log: log.read_checkpoint()),
    ("ping", lambda log: log.ping()),
]


async def unavailable_calls(log: ClusterLog) -> list[str]:
    """The names of the calls that raised LogUnavailable, each under the guard."""
    names = []
    for name, call in EVERY_CALL:
        with trio.fail_after(GUARD_S):
            try:
                await call(log)
            except LogUnavailable:
                names.append(name)
    return names


async def works_again(log: ClusterLog) -> None:
    with trio.fail_after(GUARD_S):
        await log.ping()
        assert await log.epoch(100) == 100
        assert await log.acquire_lease("hub-a", TTL_MS)
        await log.append("hub-a", p(2), b"after", max_entries=10)
        assert positions(await log.read_after(p(1), count=10, block_ms=100)) == [2]


async def test_every_call_raises_log_unavailable_while_redis_is_down(
    persistent_redis: RedisServer,
) -> None:
    async with open_cluster_log(persistent_redis.url, CLUSTER, command_timeout_s=TIMEOUT_S) as log:
        assert await log.epoch(100) == 100
        await fill(log, [1])
        persistent_redis.stop()
        try:
            assert await unavailable_calls(log) == [name for name, _ in EVERY_CALL]
        finally:
            persistent_redis.start()
        await works_again(log)


async def test_every_call_raises_log_unavailable_while_redis_does_not_answer(
    persistent_redis: RedisServer,
) -> None:
    async with open_cluster_log(persistent_redis.url, CLUSTER, command_timeout_s=TIMEOUT_S) as log:
        assert await log.epoch(100) == 100
        await fill(log, [1])
        assert persistent_redis.process is not None
        pid = persistent_redis.process.pid
        # A paused Redis keeps its sockets open and answers nothing: only our timeout ends
        # a call (a stopped one refuses connections at once).
        os.kill(pid, signal.SIGSTOP)
        try:
            assert await unavailable_calls(log) == [name for name, _ in EVERY_CALL]
        finally:
            os.kill(pid, signal.SIGCONT)
        await works_again(log)


async def test_after_a_partition_a_call_gets_its_own_reply_on_a_fresh_connection(
    redis_server: RedisServer,
) -> None:
    proxy = BlackholeProxy(redis_server.port)
    with trio.fail_after(GUARD_S * 3):
        async with trio.open_nursery() as nursery:
            await nursery.start(proxy.serve)
            url = f"redis://127.0.0.1:{proxy.port}/0"
            async with open_cluster_log(url, CLUSTER, command_timeout_s=TIMEOUT_S) as log:
                assert await log.epoch(100) == 100
                await fill(log, [1])
                proxy.blackhole = True
                for call in (log.ping(), log.lease_holder(), log.epoch(5)):
                    with pytest.raises(LogUnavailable):
                        await call
                proxy.blackhole = False
                # Each reply answers its own command: nothing queued behind the requests
                # that were lost, on a connection that never learned of their loss.
                assert await log.lease_holder() == "hub-a"
                assert await log.last_position() == p(1)
                assert await log.epoch(5) == 100
                assert await log.read_checkpoint() is None
            nursery.cancel_scope.cancel()


async def test_a_log_opens_while_redis_is_down_and_works_once_it_is_up(
    redis_server: RedisServer,
) -> None:
    redis_server.stop()
    async with open_cluster_log(redis_server.url, CLUSTER, command_timeout_s=TIMEOUT_S) as log:
        with trio.fail_after(GUARD_S), pytest.raises(LogUnavailable):
            await log.ping()
        redis_server.start()
        with trio.fail_after(GUARD_S):
            await log.ping()
            assert await log.epoch(5) == 5


async def test_a_redis_out_of_memory_is_unavailable_and_the_epoch_still_reads(
    redis_server: RedisServer,
) -> None:
    async with (
        open_cluster_log(redis_server.url, CLUSTER) as log,
        raw_client(redis_server) as raw,
    ):
        assert await log.epoch(100) == 100
        assert await log.acquire_lease("hub-a", TTL_MS)
        await raw.config_set({"maxmemory": "1", "maxmemory-policy": "noeviction"})
        with pytest.raises(LogUnavailable, match="OOM"):
            await log.append("hub-a", p(1), b"x" * 1000, max_entries=10)
        assert await log.epoch(200) == 100
        await raw.config_set({"maxmemory": "0"})
        await log.append("hub-a", p(1), b"x", max_entries=10)


async def test_a_key_of_the_wrong_type_is_a_log_error_not_an_outage(
    redis_server: RedisServer,
) -> None:
    async with (
        open_cluster_log(redis_server.url, CLUSTER) as log,
        raw_client(redis_server) as raw,
    ):
        await raw.set(log.keys.log, b"not a stream")
        with pytest.raises(LogError) as caught:
            await log.last_position()
        assert not isinstance(caught.value, LogUnavailable | Fenced)


async def test_an_entry_without_the_data_field_is_read_as_foreign(
    redis_server: RedisServer,
) -> None:
    """Not an error (the follower would stop): the entry comes back marked, to be skipped."""
    async with (
        open_cluster_log(redis_server.url, CLUSTER) as log,
        raw_client(redis_server) as raw,
    ):
        await raw.xadd(log.keys.log, {b"other": b"x"}, identifier="7-1")
        foreign = LogEntry(p(1), b"", "it has no 'm' field")
        assert await log.last_position() == p(1)
        assert await log.read_range(Position(0, 0), count=10) == [foreign]
        assert await log.read_after(Position(0, 0), count=10, block_ms=None) == [foreign]


@pytest.mark.parametrize("name", ["", "a{b}", "has space", "x" * 65])
async def test_a_bad_cluster_name_is_refused(name: str) -> None:
    with pytest.raises(ConfigError):
        async with open_cluster_log("redis://127.0.0.1:1/0", name):
            pass


async def test_arguments_redis_would_misread_are_refused_before_any_command() -> None:
    # No Redis listens on port 1: each refusal must come before any command is sent.
    async with open_cluster_log("redis://127.0.0.1:1/0", CLUSTER) as log:
        with pytest.raises(ValueError, match="BLOCK 0"):
            await log.read_after(p(1), count=10, block_ms=0)
        with pytest.raises(ValueError, match="count"):
            await log.read_range(p(1), count=0)
        with pytest.raises(ValueError, match="max_entries"):
            await log.append("hub-a", p(1), b"x", max_entries=0)
        with pytest.raises(ValueError, match="after 0-0"):
            await log.append("hub-a", Position(0, 0), b"x", max_entries=10)
        with pytest.raises(ValueError, match="ttl"):
            await log.acquire_lease("hub-a", 0)
    with pytest.raises(ConfigError):
        async with open_cluster_log("redis://127.0.0.1:1/0", CLUSTER, command_timeout_s=0):
            pass


async def test_a_command_that_timed_out_leaves_no_late_reply_for_the_next(
    persistent_redis: RedisServer,
) -> None:
    # Appends and blocking reads run on their own connections (lanes). Redis answers a
    # command that timed out once it resumes; the next command must not take that answer.
    async with open_cluster_log(persistent_redis.url, CLUSTER, command_timeout_s=TIMEOUT_S) as log:
        await fill(log, [1, 2])
        assert persistent_redis.process is not None
        pid = persistent_redis.process.pid
        os.kill(pid, signal.SIGSTOP)
        try:
            with trio.fail_after(GUARD_S), pytest.raises(LogUnavailable):
                await log.read_after(p(0), count=1, block_ms=None)  # would answer [1]
            with trio.fail_after(GUARD_S), pytest.raises(LogUnavailable):
                await log.append("hub-a", p(3), b"d3", max_entries=1000)  # would answer 1
        finally:
            os.kill(pid, signal.SIGCONT)
        with trio.fail_after(GUARD_S):
            assert positions(await log.read_after(p(1), count=1, block_ms=None)) == [2]
            with pytest.raises(Fenced):
                await log.append("hub-a", p(2), b"other", max_entries=1000)
            last = await log.last_position()
            assert last is not None  # p(3) may have been written after the resume
            await log.append("hub-a", p(last.offset + 1), b"next", max_entries=1000)
            assert (await log.read_after(last, count=10, block_ms=None)) == [
                LogEntry(p(last.offset + 1), b"next")
            ]


async def test_calls_that_share_a_lane_wait_their_turn_and_get_their_own_replies(
    redis_server: RedisServer,
) -> None:
    async with open_cluster_log(redis_server.url, CLUSTER) as log:
        await fill(log, [1, 2])
        got: dict[str, list[int]] = {}

        async def read(name: str, after: int, block_ms: int | None) -> None:
            got[name] = positions(await log.read_after(p(after), count=10, block_ms=block_ms))

        with trio.fail_after(GUARD_S):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(read, "blocked", 2, 5_000)
                await trio.sleep(0.05)
                nursery.start_soon(read, "behind it", 0, None)
                await trio.sleep(0.05)
                await log.append("hub-a", p(3), b"d3", max_entries=1000)
        assert got == {"blocked": [3], "behind it": [1, 2, 3]}


async def test_an_append_refused_by_a_foreign_entry_says_so(redis_server: RedisServer) -> None:
    """`XADD *` by hand takes the ID just after ours (Redis's clock is far behind the
    epoch): the leader's append at that ID is refused, naming the foreign entry."""
    async with (
        open_cluster_log(redis_server.url, CLUSTER) as log,
        raw_client(redis_server) as raw,
    ):
        big = 1_800_000_000_000_000
        assert await log.acquire_lease("hub-a", TTL_MS)
        await log.append("hub-a", p(1, big), b"d1", max_entries=100)
        foreign = await raw.xadd(log.keys.log, {b"note": b"by hand"})
        assert foreign == str(p(2, big)).encode()
        with pytest.raises(Fenced, match="which no ticker hub wrote"):
            await log.append("hub-a", p(2, big), b"d2", max_entries=100)
        await log.append("hub-a", p(3, big), b"d2d3", max_entries=100)  # further on: taken


@pytest.mark.parametrize(
    "identifier", [b"7", b"7-", b"-1", b"7-1x", b"7-\xd9\xa1", b"1" * 40 + b"-1"]
)
def test_an_entry_id_that_is_not_a_position_is_a_log_error(identifier: bytes) -> None:
    # Redis makes every stream ID `<ms>-<seq>`: anything else is not ours to read.
    assert _lane_entry([b"7-1", [b"m", b"d"]]) == LogEntry(p(1), b"d")
    with pytest.raises(LogError):
        _lane_entry([identifier, [b"m", b"d"]])

"""The cluster log in Redis: one stream of hub batches, the epoch, the leader's lease, a checkpoint.

Owns every Redis command and Lua script the cluster uses, the fencing of writes by the
lease, and the mapping of Redis failures to `LogUnavailable`/`Fenced`. It must not decide
anything about leadership or market data: callers act on what it returns or raises.

Keys of cluster NAME (one hash tag, so they share a slot and a script may touch them all):

    ticker:{NAME}:log         the stream; entry ID = position `<epoch>-<offset>` of the
                              entry's last message, field `m` = the encoded batch
    ticker:{NAME}:epoch       the cluster's epoch (decimal); gone only when Redis loses data
    ticker:{NAME}:lease       the leading hub's token, with a TTL in ms
    ticker:{NAME}:checkpoint  the leader's latest checkpoint (opaque bytes)
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import AsyncIterator, Awaitable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Final, TypeVar

import coredis
import trio
from coredis.connection import TCPLocation, UnixDomainSocketLocation
from coredis.exceptions import (
    ClusterDownError,
    ReadOnlyError,
    ResponseError,
    TryAgainError,
)
from coredis.exceptions import ConnectionError as RedisConnectionError
from coredis.response.types import StreamEntry
from coredis.retry import ConstantRetryPolicy

from ticker.cluster import resp
from ticker.core.position import Position
from ticker.errors import BadPosition, ConfigError, Fenced, LogError, LogUnavailable

__all__ = [
    "ClusterLog",
    "Fenced",
    "LogEntry",
    "LogError",
    "LogUnavailable",
    "open_cluster_log",
]

T = TypeVar("T")

DATA_FIELD: Final = b"m"
"""The stream field that holds an entry's batch."""
CLUSTER_NAME: Final = re.compile(r"[A-Za-z0-9_.-]{1,64}")
"""A cluster name: no braces (it sits inside the keys' hash tag) and no spaces."""
RETRIES: Final = 2
"""coredis retries a command this often on a dropped connection (e.g. a pooled connection
to a Redis that restarted). Safe for every script here: each is idempotent, `append`
included (a repeat of the last entry is accepted without writing it twice)."""
RETRY_DELAY_S: Final = 0.01

# Error codes of replies that mean "not now" rather than "never": Redis is out of memory,
# cannot persist, runs a slow script, or its primary is down. coredis keeps the code in
# the message of codes it does not know (it maps LOADING, READONLY, TRYAGAIN itself).
_TRANSIENT_CODES: Final = frozenset({"OOM", "MISCONF", "BUSY", "MASTERDOWN"})
# The same for replies on a lane (`resp`), where nothing is mapped for us.
_LANE_TRANSIENT_CODES: Final = _TRANSIENT_CODES | {"LOADING", "READONLY", "TRYAGAIN", "CLUSTERDOWN"}

# The epoch: keep the stored one, or store the proposal if there is none; one script so
# two hubs starting at once agree. GET first: Redis refuses any SET when it is out of
# memory, and reading an existing epoch must still work then.
# KEYS: epoch. ARGV: proposal. Returns the stored epoch.
EPOCH_SCRIPT: Final = """
local stored = redis.call('GET', KEYS[1])
if stored then
  return stored
end
redis.call('SET', KEYS[1], ARGV[1])
return ARGV[1]
"""

# Delete the epoch only if it is still the given one (a compare-and-delete, for tests and
# for an operator's deliberate reset). KEYS: epoch. ARGV: epoch. Returns 1 if deleted.
DROP_EPOCH_SCRIPT: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

# Take the lease if it is free, or renew it if it is ours. With ARGV[3] not empty, a free
# lease is taken only if the log's last entry ID is ARGV[3]: a leader that lost its lease
# while Redis was away takes it back only if nobody appended meanwhile. A leader that has
# not appended yet requires `<epoch>-0`: an empty log whose stored epoch is still that
# epoch (a log that was lost has no epoch, or another one).
# KEYS: lease, log, epoch. ARGV: token, ttl ms, required last ID or ''. Returns 1 if ours.
ACQUIRE_SCRIPT: Final = """
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if holder then
  return 0
end
if ARGV[3] ~= '' then
  local last = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)
  if #last == 0 then
    local epoch = redis.call('GET', KEYS[3])
    if not epoch or epoch .. '-0' ~= ARGV[3] then
      return 0
    end
  elseif last[1][1] ~= ARGV[3] then
    return 0
  end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""

# Renew the lease only if it is ours (a plain PEXPIRE would renew somebody else's).
# KEYS: lease. ARGV: token, ttl ms. Returns 1 if renewed.
RENEW_SCRIPT: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""

# Release the lease only if it is ours (a late release must not free a successor's lease).
# KEYS: lease. ARGV: token. Returns 1 if released.
RELEASE_SCRIPT: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

# The fenced append: nothing is written unless the lease holds our token and the ID is
# after the log's last one (XADD itself compares IDs exactly as 64-bit numbers; Lua
# numbers are doubles, so the script never parses an ID). Repeating the last entry with
# the same data succeeds without writing: a lane resends a command whose reply was
# lost with its connection. The last entry is read only when XADD refuses the ID (a
# resend, or a second writer): the common append costs GET + XADD. Trims to about
# ARGV[4] entries (MAXLEN ~: whole macro nodes).
# KEYS: lease, log. ARGV: token, ID, data, max entries. Returns 1 (written) or 0 (repeat).
APPEND_SCRIPT: Final = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return redis.error_reply('FENCED the lease is not held by this token')
end
local added = redis.pcall('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], ARGV[2], 'm', ARGV[3])
if type(added) == 'table' and added.err then
  if not string.find(added.err, 'equal or smaller', 1, true) then
    return added
  end
  local last = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)
  if #last > 0 then
    local fields = last[1][2]
    if last[1][1] == ARGV[2] and fields[1] == 'm' and fields[2] == ARGV[3] then
      return 0
    end
    if fields[1] ~= 'm' then
      return redis.error_reply('FENCED ' .. ARGV[2] .. ' is not after the last entry ' ..
        last[1][1] .. ', which no ticker hub wrote (an entry added by hand?)')
    end
  end
  return redis.error_reply('FENCED ' .. ARGV[2] .. ' is not after the last entry')
end
return 1
"""

# The fenced checkpoint write: only the lease holder may replace it.
# KEYS: lease, checkpoint. ARGV: token, data. Returns 1.
CHECKPOINT_SCRIPT: Final = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return redis.error_reply('FENCED the lease is not held by this token')
end
redis.call('SET', KEYS[2], ARGV[2])
return 1
"""


@dataclass(frozen=True, slots=True)
class LogEntry:
    """One entry of the cluster log: a hub batch and the position of its last message."""

    position: Position
    data: bytes
    foreign: str | None = None
    """Why this entry is not a ticker hub batch at all (no `m` field), or None."""


@dataclass(frozen=True, slots=True)
class ClusterKeys:
    """The Redis keys of one cluster (see the module docstring)."""

    log: str
    epoch: str
    lease: str
    checkpoint: str

    @classmethod
    def of(cls, cluster: str) -> ClusterKeys:
        """The keys of cluster `cluster`.

        Raises:
            ConfigError: a name that is not 1-64 of `A-Z a-z 0-9 _ . -`.
        """
        if CLUSTER_NAME.fullmatch(cluster) is None:
            raise ConfigError(f"bad cluster name {cluster!r}: use 1-64 of A-Z a-z 0-9 _ . -")
        prefix = f"ticker:{{{cluster}}}"
        return cls(
            log=f"{prefix}:log",
            epoch=f"{prefix}:epoch",
            lease=f"{prefix}:lease",
            checkpoint=f"{prefix}:checkpoint",
        )


@asynccontextmanager
async def open_cluster_log(
    url: str, cluster: str, *, command_timeout_s: float = 2.0
) -> AsyncIterator[ClusterLog]:
    """A `ClusterLog` on one Redis client; connects lazily, so Redis may be down now.

    A blocking read holds its connection: a follower should open its own log.

    Args:
        url: `redis://[user:password@]host:port/db`, `rediss://...` or `unix://...`.
        cluster: the cluster's name (part of every key).
        command_timeout_s: every command (plus its block time, for a blocking read)
            raises `LogUnavailable` if Redis has not answered by then.

    Raises:
        ConfigError: a bad cluster name or a timeout <= 0.
    """
    if command_timeout_s <= 0:
        raise ConfigError("command_timeout_s must be > 0")
    keys = ClusterKeys.of(cluster)
    client: coredis.Redis[bytes] = coredis.Redis.from_url(
        url,
        decode_responses=False,
        connect_timeout=command_timeout_s,
        retry_policy=ConstantRetryPolicy(
            (RedisConnectionError, TimeoutError), retries=RETRIES, delay=RETRY_DELAY_S
        ),
    )
    target = _target(client)
    async with client:
        cluster_log = ClusterLog(client, cluster, keys, command_timeout_s, target)
        try:
            yield cluster_log
        finally:
            await cluster_log.close_lanes()


class ClusterLog:
    """The cluster's Redis state, through one client. Use `open_cluster_log`.

    Every method raises `LogUnavailable` when Redis is unreachable, too slow or loading,
    and `LogError` when Redis refuses a command for another reason.
    """

    def __init__(
        self,
        client: coredis.Redis[bytes],
        cluster: str,
        keys: ClusterKeys,
        command_timeout_s: float,
        target: resp.RedisTarget,
    ) -> None:
        self.cluster = cluster
        self.keys = keys
        self._client = client
        self._timeout_s = command_timeout_s
        # Registered scripts run by EVALSHA; coredis loads one again on NOSCRIPT (after a
        # Redis restart or SCRIPT FLUSH) and retries it.
        self._epoch = client.register_script(EPOCH_SCRIPT)
        self._drop_epoch = client.register_script(DROP_EPOCH_SCRIPT)
        self._acquire = client.register_script(ACQUIRE_SCRIPT)
        # The hot path (every append, every blocking read) runs on lanes: one plain
        # connection each, a fraction of coredis's cost per command (see `resp`). Two, so
        # that a blocking read never delays an append of the same log. The leader's
        # periodic commands too: on coredis a renewal cost ~0.5 ms of the hub's CPU, and a
        # message published meanwhile waited for it. The renewal has a lane of its own (a
        # renewal stuck behind an append would let the lease lapse); the checkpoint goes
        # on the append lane, in order with the appends (the append task sends both).
        self._target = target
        self._append_lane = _Lane(target)
        self._read_lane = _Lane(target)
        self._lease_lane = _Lane(target)

    async def epoch(self, proposal: int) -> int:
        """The cluster's epoch: the stored one, or `proposal`, stored now if none is.

        Args:
            proposal: the epoch to store if Redis has none (e.g. the time in seconds).

        Returns:
            The epoch every hub and edge of the cluster uses.
        """
        stored: object = await self._call(self._epoch(keys=[self.keys.epoch], args=[str(proposal)]))
        return int(_as_bytes(stored))

    async def drop_epoch_if(self, epoch: int) -> None:
        """Delete the stored epoch if it is `epoch` (tests; a deliberate reset)."""
        await self._call(self._drop_epoch(keys=[self.keys.epoch], args=[str(epoch)]))

    async def acquire_lease(
        self, token: str, ttl_ms: int, *, only_if_last: Position | None = None
    ) -> bool:
        """Take the lease if it is free, or renew it if `token` holds it.

        Args:
            token: this hub's unique token.
            ttl_ms: the lease expires this long after now unless renewed.
            only_if_last: take a free lease only if the log's last entry is at this
                position (a held lease of ours is renewed regardless).

        Returns:
            Whether `token` holds the lease now.
        """
        required = "" if only_if_last is None else str(only_if_last)
        taken: object = await self._call(
            self._acquire(
                keys=[self.keys.lease, self.keys.log, self.keys.epoch],
                args=[token, _ttl(ttl_ms), required],
            )
        )
        return bool(taken == 1)

    async def renew_lease(self, token: str, ttl_ms: int) -> bool:
        """Extend the lease to `ttl_ms` from now if `token` holds it; whether it does."""
        renewed = await self._call(
            self._lease_lane.script(_RENEW, (1, self.keys.lease, token, _ttl(ttl_ms)))
        )
        return renewed == 1

    async def release_lease(self, token: str) -> None:
        """Free the lease if `token` holds it (so a standby need not wait for the TTL).

        On a connection of its own, opened for this one command: a hub releases on its
        way out, when cancellation may have torn the client's and the lanes' connections
        mid-command (call it shielded).
        """
        lane = _Lane(self._target)
        try:
            await self._call(lane.script(_RELEASE, (1, self.keys.lease, token)))
        finally:
            await lane.close()

    async def lease_holder(self) -> str | None:
        """The token holding the lease, or None if it is free."""
        holder = await self._call(self._client.get(self.keys.lease))
        return None if holder is None else holder.decode()

    async def append(
        self, token: str, position: Position, data: bytes, *, max_entries: int
    ) -> None:
        """Append one entry, fenced: written only if `token` holds the lease and
        `position` is after the log's last entry.

        Appending the log's last entry again with the same data is accepted and writes
        nothing (so a resent command cannot fail or duplicate).

        Args:
            token: the appending hub's lease token.
            position: the position of the batch's last message (the entry's ID).
            data: the encoded batch.
            max_entries: trim the log to about this many entries (never fewer).

        Raises:
            Fenced: the lease is not `token`'s, or `position` is not after the last
                entry; nothing was written.
            LogUnavailable: whether it was written is unknown (`last_position` tells).
        """
        if max_entries < 1:
            raise ValueError("max_entries must be >= 1")
        if position <= Position(0, 0):
            raise ValueError("a log position must be after 0-0")
        keys_and_args: tuple[resp.Arg, ...] = (
            2, self.keys.lease, self.keys.log, token, str(position), data, max_entries,
        )  # fmt: skip
        await self._call(self._append_lane.script(_APPEND, keys_and_args))

    async def last_position(self) -> Position | None:
        """The position of the log's last entry, or None if the log is empty."""
        entries = await self._call(self._client.xrevrange(self.keys.log, "+", "-", count=1))
        return _entries(entries)[0].position if entries else None

    async def first_position(self) -> Position | None:
        """The position of the log's oldest entry still kept, or None if it is empty."""
        entries = await self._call(self._client.xrange(self.keys.log, "-", "+", count=1))
        return _entries(entries)[0].position if entries else None

    async def read_after(
        self, position: Position, *, count: int, block_ms: int | None
    ) -> list[LogEntry]:
        """Up to `count` entries after `position`, oldest first (XREAD).

        Args:
            position: read what follows it (`Position(0, 0)`: from the start).
            count: at most this many entries.
            block_ms: wait up to this long for an entry if there is none yet; None
                returns at once.

        Returns:
            The entries; [] if none came.
        """
        if count < 1:
            raise ValueError("count must be >= 1")
        if block_ms is not None and block_ms < 1:
            raise ValueError("block_ms must be >= 1 (Redis reads BLOCK 0 as forever)")
        extra_s = 0.0 if block_ms is None else block_ms / 1000
        command: list[resp.Arg] = [b"XREAD", b"COUNT", count]
        if block_ms is not None:
            command += [b"BLOCK", block_ms]
        command += [b"STREAMS", self.keys.log, str(position)]
        reply = await self._call(self._read_lane.call(*command), extra_s=extra_s)
        if reply is None:
            return []
        # [[key, [[id, [field, value, ...]], ...]]]: one stream asked, one answered
        try:
            ((_key, entries),) = _as_list(reply)
            return [_lane_entry(entry) for entry in _as_list(entries)]
        except ValueError:
            raise LogError(f"unexpected reply from Redis: {reply!r:.200}") from None

    async def read_range(self, after: Position, *, count: int) -> list[LogEntry]:
        """Up to `count` entries after `after` (exclusive), oldest first (XRANGE)."""
        if count < 1:
            raise ValueError("count must be >= 1")
        entries = await self._call(
            self._client.xrange(self.keys.log, f"({after}", "+", count=count)
        )
        return _entries(entries)

    async def read_before(self, before: Position, *, count: int) -> list[LogEntry]:
        """The (up to) `count` entries just before `before` (exclusive), oldest first.

        An edge fills its replay buffer with this recent history (XREVRANGE).
        """
        if count < 1:
            raise ValueError("count must be >= 1")
        if before <= Position(0, 0):
            return []  # nothing is before the start; and "(0-0" is not a valid range end
        entries = await self._call(
            self._client.xrevrange(self.keys.log, f"({before}", "-", count=count)
        )
        return _entries(tuple(reversed(entries)))

    async def write_checkpoint(self, token: str, data: bytes) -> None:
        """Replace the checkpoint, fenced like `append`.

        Raises:
            Fenced: the lease is not `token`'s; nothing was written.
        """
        keys = (self.keys.lease, self.keys.checkpoint)
        keys_and_args: tuple[resp.Arg, ...] = (len(keys), *keys, token, data)
        await self._call(self._append_lane.script(_CHECKPOINT, keys_and_args))

    async def read_checkpoint(self) -> bytes | None:
        """The latest checkpoint, or None if there is none."""
        return await self._call(self._client.get(self.keys.checkpoint))

    async def ping(self) -> None:
        """Return once Redis answers; raise `LogUnavailable` if it does not."""
        await self._call(self._client.ping())

    async def close_lanes(self) -> None:
        """Close the lanes' connections (`open_cluster_log` does on exit)."""
        await self._append_lane.close()
        await self._read_lane.close()
        await self._lease_lane.close()

    async def _call(self, command: Awaitable[T], *, extra_s: float = 0.0) -> T:
        """Run one command within the timeout, mapping Redis failures to our errors."""
        timeout_s = self._timeout_s + extra_s
        try:
            # A bare cancel scope, not `fail_after` (two more context managers per
            # command, on the path of every message through the log).
            with trio.CancelScope(relative_deadline=timeout_s):
                return await command
        except (ReadOnlyError, TryAgainError, ClusterDownError) as exc:
            raise LogUnavailable(f"Redis cannot serve the cluster log now: {exc}") from exc
        except ResponseError as exc:
            message = str(exc)
            code = message.partition(" ")[0]
            if code == "FENCED":
                raise Fenced(message.partition(" ")[2]) from exc
            if code in _TRANSIENT_CODES:
                raise LogUnavailable(f"Redis cannot serve the cluster log now: {exc}") from exc
            raise LogError(f"Redis refused a cluster log command: {exc}") from exc
        except resp.RespError as exc:
            if exc.code == "FENCED":
                raise Fenced(str(exc).partition(" ")[2]) from exc
            if exc.code in _LANE_TRANSIENT_CODES:
                raise LogUnavailable(f"Redis cannot serve the cluster log now: {exc}") from exc
            raise LogError(f"Redis refused a cluster log command: {exc}") from exc
        except (
            RedisConnectionError,
            OSError,
            resp.ConnectionLost,
            trio.BrokenResourceError,
        ) as exc:
            # BusyLoadingError (Redis is loading its data) is a ConnectionError too.
            raise LogUnavailable(f"Redis is unreachable: {exc!r}") from exc
        # Here only when the deadline cut the command. The connection may be dead without
        # a reset (a paused or partitioned Redis): drop it so the next command connects
        # afresh instead of queueing behind it. (A lane drops its own connection when a
        # call is cancelled.)
        self._client.connection_pool.disconnect()
        raise LogUnavailable(f"Redis did not answer within {timeout_s:g} s")


@dataclass(frozen=True, slots=True)
class _Script:
    """A Lua script run by EVALSHA (EVAL once Redis answers NOSCRIPT)."""

    body: bytes
    sha: bytes

    @classmethod
    def of(cls, body: str) -> _Script:
        data = body.encode()
        return cls(data, hashlib.sha1(data).hexdigest().encode())


_APPEND: Final = _Script.of(APPEND_SCRIPT)
_RELEASE: Final = _Script.of(RELEASE_SCRIPT)
_RENEW: Final = _Script.of(RENEW_SCRIPT)
_CHECKPOINT: Final = _Script.of(CHECKPOINT_SCRIPT)


class _Lane:
    """One plain connection (`resp`), connected on first use and again after a failure;
    commands wait their turn. A command that failed on a dropped connection is sent once
    more on a fresh one (as coredis's retry policy does for the other commands): each
    command sent here is idempotent, the append included."""

    def __init__(self, target: resp.RedisTarget) -> None:
        self._target = target
        self._connection: resp.RespConnection | None = None
        self._lock = trio.Lock()

    async def call(self, *args: resp.Arg) -> resp.Reply:
        """One command's reply (see `resp.RespConnection.call` for what it raises)."""
        # Uncontended (the usual case: one task per lane), take the lock without the
        # scheduler pass `acquire` makes; the send that follows is the checkpoint.
        if self._lock.locked():
            await self._lock.acquire()
        else:
            self._lock.acquire_nowait()
        try:
            for attempt in range(RETRIES + 1):
                try:
                    return await self._call_once(args)
                except (OSError, resp.ConnectionLost, trio.BrokenResourceError):
                    if attempt == RETRIES:
                        raise
                await trio.sleep(RETRY_DELAY_S)
            raise AssertionError("unreachable")
        finally:
            self._lock.release()

    async def script(self, script: _Script, keys_and_args: tuple[resp.Arg, ...]) -> resp.Reply:
        """Run `script` (EVALSHA; on NOSCRIPT, after a Redis restart or SCRIPT FLUSH, EVAL
        loads it again)."""
        try:
            return await self.call(b"EVALSHA", script.sha, *keys_and_args)
        except resp.RespError as exc:
            if exc.code != "NOSCRIPT":
                raise
        return await self.call(b"EVAL", script.body, *keys_and_args)

    async def _call_once(self, args: tuple[resp.Arg, ...]) -> resp.Reply:
        if self._connection is None:
            self._connection = await resp.connect(self._target)
        try:
            return await self._connection.call(*args)
        except resp.RespError:
            raise  # an answer: the connection is in step
        except BaseException:
            # Failed or cancelled mid-command (a timeout): a late reply would be taken
            # for the next command's, so this connection is done.
            await self.close()
            raise

    async def close(self) -> None:
        """Drop the connection; the next command connects afresh."""
        connection, self._connection = self._connection, None
        if connection is not None:
            with trio.CancelScope(shield=True):
                await connection.aclose()


def _target(client: coredis.Redis[bytes]) -> resp.RedisTarget:
    """Where the lanes connect: coredis's own reading of the URL (one parser for both)."""
    pool = client.connection_pool
    location = pool.location
    options = pool.connection_kwargs
    ssl_context = options.get("ssl_context")  # for rediss://, made by coredis
    db = options.get("db")
    common: dict[str, Any] = {
        "username": options.get("username"),
        "password": options.get("password"),
        "db": int(db) if db else 0,
        "ssl_context": ssl_context,
    }
    if isinstance(location, UnixDomainSocketLocation):
        return resp.RedisTarget(path=location.path, **common)
    if isinstance(location, TCPLocation):
        return resp.RedisTarget(host=location.host, port=location.port, **common)
    raise ConfigError(f"cannot connect to Redis at {location!r}")


def _as_list(value: object) -> list[Any]:
    if not isinstance(value, list):
        raise ValueError
    return value


def _lane_entry(entry: object) -> LogEntry:
    """One stream entry of a lane's reply, `[id, [field, value, ...]]`, as a log entry."""
    identifier, fields = _as_list(entry)
    values = _as_list(fields)
    if len(values) == 2 and values[0] == DATA_FIELD:  # what a hub writes: m <batch>
        data = values[1]
    else:
        data = dict(zip(values[::2], values[1::2], strict=True)).get(DATA_FIELD)
    if not isinstance(identifier, bytes):
        raise ValueError
    try:
        position = Position.parse(identifier.decode())
    except BadPosition as exc:
        raise LogError(f"log entry ID {identifier!r} is not a position") from exc
    if data is None:
        return LogEntry(position, b"", f"it has no {DATA_FIELD.decode()!r} field")
    return LogEntry(position, _as_bytes(data))


def _entries(entries: Sequence[StreamEntry]) -> list[LogEntry]:
    """Stream entries as log entries: the ID parsed as a position, the batch from `m`."""
    out = []
    for entry in entries:
        data = entry.field_values.get(DATA_FIELD)
        identifier = _as_bytes(entry.identifier).decode()
        try:
            position = Position.parse(identifier)
        except BadPosition as exc:
            raise LogError(f"log entry ID {identifier!r} is not a position") from exc
        if data is None:
            out.append(LogEntry(position, b"", f"it has no {DATA_FIELD.decode()!r} field"))
        else:
            out.append(LogEntry(position, _as_bytes(data)))
    return out


def _as_bytes(value: Any) -> bytes:
    """A reply that must be a bulk string (the client does not decode responses)."""
    if not isinstance(value, bytes):
        raise LogError(f"unexpected reply from Redis: {value!r}")
    return value


def _ttl(ttl_ms: int) -> str:
    if ttl_ms < 1:
        raise ValueError("a lease ttl must be >= 1 ms")
    return str(ttl_ms)

"""The trio shell of a replay: paces the plan's steps into a target, loop after loop.

`play` takes the steps of `replay.replay_steps`, sleeps until each is due (unless at top
speed), gathers what is due into batches and awaits the target with each: an embedded
server's hub queue, a running server's publish endpoint, or nothing (validation). An
await that blocks is the target's backpressure. It measures how late each step left
(the pacing error) and reports progress; the plan itself decides nothing here.
"""

from __future__ import annotations

import bisect
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import trio

from ticker.capture.errors import CaptureError, TargetError
from ticker.capture.publisher import RemotePublisher
from ticker.capture.replay import OpenRecords, ReplayCounts, ReplayOptions, replay_steps
from ticker.model.events import NormalizedEvent

BATCH_EVENTS = 512
"""Events per publish batch, at most (what is due together goes together)."""
CHECKPOINT_STEPS = 256
"""Yield to other tasks at least this often while replaying ahead of time."""
PROGRESS_INTERVAL_S = 0.25
FINISH_TIMEOUT_S = 60.0
"""How long the end of a replay waits for the target to take the last batches."""


class Target(Protocol):
    """Where replayed events go."""

    description: str

    async def publish(self, events: Sequence[NormalizedEvent]) -> None:
        """Hand over one batch; blocks while the target is behind."""
        ...

    async def finish(self) -> None:
        """Wait until the target has taken everything handed over.

        Raises:
            TargetError: it failed before taking it all.
        """
        ...


class EmbeddedTarget:
    """An in-process server's hub queue (`ServerHandle.events`)."""

    def __init__(self, events: trio.MemorySendChannel[Sequence[NormalizedEvent]]) -> None:
        self._events = events
        self.description = "the embedded server"

    async def publish(self, events: Sequence[NormalizedEvent]) -> None:
        await self._events.send(tuple(events))

    async def finish(self) -> None:
        # The hub publishes each batch it takes without awaiting, so once the queue is
        # empty and the hub waits on it again, everything is published. (A batch handed
        # straight to a waiting hub never shows in the buffer: the hub's wait tells.)
        # There is no event to wait on: poll.
        with trio.move_on_after(FINISH_TIMEOUT_S) as scope:
            while True:
                stats = self._events.statistics()
                if not stats.current_buffer_used and stats.tasks_waiting_receive:
                    break
                await trio.sleep(0.005)
        if scope.cancelled_caught:
            raise TargetError("the embedded server did not take the last batches in time")


class RemoteTarget:
    """A running server's publish endpoint; `finish` waits for every acknowledgement."""

    def __init__(self, publisher: RemotePublisher) -> None:
        self.publisher = publisher
        self.description = str(publisher.url)

    async def publish(self, events: Sequence[NormalizedEvent]) -> None:
        await self.publisher.publish(events)

    async def finish(self) -> None:
        with trio.move_on_after(FINISH_TIMEOUT_S) as scope:
            await self.publisher.drain()
        if scope.cancelled_caught:
            raise TargetError(f"{self.description} did not acknowledge the last batches in time")


class NullTarget:
    """Publishes nothing (`--validate`): the replay only runs the normalizers."""

    description = "nothing (validation)"

    async def publish(self, events: Sequence[NormalizedEvent]) -> None:
        await trio.lowlevel.checkpoint()

    async def finish(self) -> None:
        await trio.lowlevel.checkpoint()


class Progress(Protocol):
    """Told what has been replayed, about every `PROGRESS_INTERVAL_S`."""

    def update(self, records: int, events: int, loop: int) -> None: ...


_BOUNDS_S: tuple[float, ...] = tuple(10 ** (exponent / 10) for exponent in range(-60, 21))
"""Histogram bucket upper bounds: 1 us to 100 s, ten per decade."""


@dataclass(slots=True)
class LatenessHistogram:
    """How late steps left against their due time (seconds), as a log histogram."""

    counts: list[int] = field(default_factory=lambda: [0] * (len(_BOUNDS_S) + 1))
    total: int = 0
    sum_s: float = 0.0
    max_s: float = 0.0

    def observe(self, seconds: float) -> None:
        seconds = max(seconds, 0.0)
        self.counts[bisect.bisect_left(_BOUNDS_S, seconds)] += 1
        self.total += 1
        self.sum_s += seconds
        self.max_s = max(self.max_s, seconds)

    def quantile(self, q: float) -> float:
        """An upper bound of the `q` quantile (within one bucket: about 26%)."""
        if not self.total:
            return math.nan
        rank = q * self.total
        seen = 0
        for index, count in enumerate(self.counts):
            seen += count
            if seen >= rank and count:
                return min(_BOUNDS_S[index] if index < len(_BOUNDS_S) else self.max_s, self.max_s)
        return self.max_s


@dataclass(slots=True)
class PlayResult:
    """What a replay did."""

    counts: ReplayCounts
    batches: int = 0
    published_events: int = 0
    loops: int = 0
    wall_s: float = 0.0
    lateness: LatenessHistogram = field(default_factory=LatenessHistogram)
    error: CaptureError | TargetError | None = None
    """Why the replay stopped early (everything before it was published)."""


async def play(
    open_records: OpenRecords,
    options: ReplayOptions,
    target: Target,
    *,
    loops: int = 1,
    batch_events: int = BATCH_EVENTS,
    progress: Progress | None = None,
    clock_ns: Callable[[], int] = time.time_ns,
) -> PlayResult:
    """Replay `loops` times into `target`; a damaged capture or a failed target ends it.

    Returns:
        The counts, and in `error` why it stopped early, if it did.
    """
    if loops < 1 or batch_events < 1:
        raise ValueError("loops and batch_events must be positive")
    result = PlayResult(ReplayCounts())
    started = trio.current_time()
    pending: list[NormalizedEvent] = []
    dues: list[float] = []
    loop_start = started

    async def flush() -> None:
        """Hand over everything pending, in batches of at most `batch_events`."""
        if not pending:
            return
        handed = trio.current_time()
        for due in dues:
            result.lateness.observe(handed - (loop_start + due))
        dues.clear()
        while pending:
            batch = pending[:batch_events]
            del pending[:batch_events]
            await target.publish(batch)
            result.batches += 1
            result.published_events += len(batch)

    paced = options.speed is not None
    records = 0
    next_progress = started
    try:
        for loop in range(loops):
            steps = replay_steps(
                open_records, options, result.counts, loop=loop, rebase_to_ns=clock_ns()
            )
            for index, step in enumerate(steps, 1):
                if index == 1:
                    loop_start = trio.current_time()  # after any warm-up: due times count from here
                if step.events:
                    if paced:
                        at = loop_start + step.due_s
                        if at > trio.current_time():
                            await flush()
                            await trio.sleep_until(at)
                        dues.append(step.due_s)
                    pending += step.events
                    if len(pending) >= batch_events:
                        await flush()
                records += step.records
                if index % CHECKPOINT_STEPS == 0:
                    await trio.lowlevel.checkpoint()
                    if progress is not None and trio.current_time() >= next_progress:
                        next_progress = trio.current_time() + PROGRESS_INTERVAL_S
                        progress.update(records, result.published_events, loop)
            await flush()
            result.loops += 1
        await target.finish()
    except CaptureError as exc:
        result.error = exc
        try:
            await flush()
            await target.finish()
        except TargetError as target_exc:
            result.error = target_exc
    except TargetError as exc:
        result.error = exc
    result.wall_s = trio.current_time() - started
    if progress is not None:
        progress.update(records, result.published_events, max(result.loops - 1, 0))
    return result

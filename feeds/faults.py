"""Reproducible feed faults: drops, duplicates, reordering, damage, stalls, disconnects.

Owns the fault plan (a rate per fault kind) and a pure wrapper that pulls a
simulator's frames and yields `Frame | Stall | Disconnect`, every decision drawn from
the rng it is given, so a seed reproduces a run exactly. Snapshot requests go back
through it. Must not sleep, read clocks or know wire formats (the simulator damages
its own bytes).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, fields
from random import Random

from feeds.engine import Frame, SimulatorEngine
from ticker.ingest.contract import RequestSnapshot


@dataclass(frozen=True, slots=True)
class Stall:
    """The feed goes silent for `duration_ns` of simulated time."""

    duration_ns: int


@dataclass(frozen=True, slots=True)
class Disconnect:
    """The connection dropped; the next frames start a new session."""


@dataclass(frozen=True, slots=True)
class FaultPlan:
    """Probability per pulled frame of each fault (at most one fault per frame).

    drop: the frame is lost (a gap). duplicate: it arrives twice (fxa marks the copy
    PossDup). reorder: it arrives after the next one. malformed: it arrives damaged.
    truncate: it arrives cut short. stall: silence for up to `stall_max_ns`.
    disconnect: the session ends and a new one starts.
    """

    drop: float = 0.0
    duplicate: float = 0.0
    reorder: float = 0.0
    malformed: float = 0.0
    truncate: float = 0.0
    stall: float = 0.0
    disconnect: float = 0.0
    stall_max_ns: int = 5_000_000_000

    def __post_init__(self) -> None:
        rates = [getattr(self, f.name) for f in fields(self) if f.name != "stall_max_ns"]
        if any(not 0.0 <= r <= 1.0 for r in rates) or sum(rates) > 1.0 or self.drop >= 1.0:
            raise ValueError("fault rates must be in [0, 1], sum to <= 1, and drop < 1")
        if self.stall_max_ns < 1:
            raise ValueError("stall_max_ns must be positive")

    @property
    def clean(self) -> bool:
        """No fault at all."""
        return not (
            self.drop
            or self.duplicate
            or self.reorder
            or self.malformed
            or self.truncate
            or self.stall
            or self.disconnect
        )


class FaultyFeed:
    """A simulator's frames with faults injected; connects on first use.

    `injected` counts the faults applied, by FaultPlan field name.
    """

    def __init__(self, sim: SimulatorEngine, plan: FaultPlan, rng: Random) -> None:
        self.sim = sim
        self.plan = plan
        self._rng = rng
        self._pending: deque[Frame] = deque()
        self._connected = False
        self.injected = dict.fromkeys(
            ("drop", "duplicate", "reorder", "malformed", "truncate", "stall", "disconnect"), 0
        )

    @property
    def idle(self) -> bool:
        """Nothing held back here and nothing queued in the simulator."""
        return not self._pending and self.sim.idle

    def set_plan(self, plan: FaultPlan) -> None:
        """Change the fault rates from the next frame on."""
        self.plan = plan

    def request(self, request: RequestSnapshot) -> None:
        """Hand an adapter's snapshot request to the simulator."""
        if request.venue == self.sim.venue:
            self.sim.request_snapshot(request.symbol)

    def _pull(self) -> Frame:
        if not self._connected:
            self._connected = True
            self._pending.extend(self.sim.connect())
        return self._pending.popleft() if self._pending else self.sim.next_frame()

    def next(self) -> Frame | Stall | Disconnect:
        """The next thing the feed's consumer sees."""
        plan = self.plan
        if plan.clean:
            return self._pull()
        rng = self._rng
        while True:
            r = rng.random()
            if r < plan.stall:
                self.injected["stall"] += 1
                duration = 1 + int(rng.random() * plan.stall_max_ns)
                self.sim.advance(duration)
                return Stall(duration)
            r -= plan.stall
            if r < plan.disconnect:
                self.injected["disconnect"] += 1
                self._connected = False
                self._pending.clear()
                return Disconnect()
            r -= plan.disconnect
            frame = self._pull()
            if r < plan.drop:
                self.injected["drop"] += 1
                continue
            r -= plan.drop
            if r < plan.duplicate:
                self.injected["duplicate"] += 1
                self._pending.appendleft(Frame(frame.ts_ns, self.sim.resend(frame.data)))
            elif r - plan.duplicate < plan.reorder:
                self.injected["reorder"] += 1
                later = self._pull()
                self._pending.appendleft(frame)
                return later
            elif r - plan.duplicate - plan.reorder < plan.malformed:
                self.injected["malformed"] += 1
                return Frame(frame.ts_ns, self.sim.corrupt(frame.data, rng))
            elif r - plan.duplicate - plan.reorder - plan.malformed < plan.truncate:
                self.injected["truncate"] += 1
                return Frame(frame.ts_ns, frame.data[: int(rng.random() * len(frame.data))])
            return frame

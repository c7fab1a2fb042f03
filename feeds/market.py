"""Synthetic market dynamics: one fair value per symbol, and each venue's book of it.

Owns the fair-value random walk of each symbol (a deterministic function of seed,
symbol and 100 ms time bucket, so every venue sees the same path), the quoting grid
venues follow it on, and the book dynamics of one venue (size changes, adds, cancels,
trades at the touch, re-quotes when the fair value moves, arbitrage fills), in integer
ticks and lots. Must not encode wire formats or read clocks.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections import deque
from random import Random
from typing import Final

from feeds.universe import SimInstrument

EPOCH_NS: Final = 1_704_067_200_000_000_000
"""2024-01-01T00:00:00Z: simulated time starts here unless told otherwise."""
BUCKET_NS: Final = 100_000_000
HISTORY_BUCKETS: Final = 16
"""How far back (in buckets) a path can still be asked about, for lagged venues."""
MIN_DEPTH: Final = 12
MAX_DEPTH: Final = 32
GAP_FILL_LEVELS: Final = 4
"""At most this many levels go between a moved touch and the rest of its side."""

Change = tuple[bool, int, int, bool]
"""(is bid, price in ticks, absolute size in lots (0 removes), the level is new)."""
Fill = tuple[bool, int, int]
"""(taker buys, price in ticks, size in lots)."""


class MidPath:
    """The fair value of one symbol, in ticks, over simulated time.

    The path starts at the instrument's start price in the 100 ms bucket holding
    `start_ns`; each later bucket adds a Gaussian step drawn from an rng seeded by
    (seed, symbol) alone. Simulators of different venues built with the same seed and
    start bucket therefore walk exactly the same path. Queries may look back at most
    HISTORY_BUCKETS behind the latest one asked (venues see the path with a latency).
    """

    __slots__ = ("_bucket", "_floor", "_history", "_mid", "_rng", "_sigma", "_start")

    def __init__(self, seed: int, instrument: SimInstrument, start_ns: int = EPOCH_NS) -> None:
        self._rng = Random(f"ticker-mid:{seed}:{instrument.symbol}")
        start = instrument.start_price / instrument.tick
        self._start = start
        self._mid = start
        self._sigma = instrument.sigma_ticks_per_s * (BUCKET_NS / 1e9) ** 0.5
        self._floor = max(2.0, start / 20)
        self._bucket = start_ns // BUCKET_NS
        self._history: deque[float] = deque([start], maxlen=HISTORY_BUCKETS)

    def value(self, t_ns: int) -> float:
        """The fair value at simulated time `t_ns`, in (fractional) ticks."""
        bucket = t_ns // BUCKET_NS
        newest = self._bucket
        if bucket > newest:
            gauss = self._rng.gauss
            mid, sigma, floor = self._mid, self._sigma, self._floor
            append = self._history.append
            for _ in range(bucket - newest):
                mid += gauss(0.0, sigma)
                if mid < floor:
                    mid = 2 * floor - mid
                append(mid)
            self._mid = mid
            self._bucket = bucket
            return mid
        back = newest - bucket
        history = self._history
        return history[-1 - back] if back < len(history) else history[0]

    def mid_ticks(self, t_ns: int) -> int:
        """The fair value at simulated time `t_ns`, rounded to a tick."""
        return round(self.value(t_ns))


class QuoteGrid:
    """Where a venue quotes a symbol's touch for a given fair value.

    The touch sits on a grid of `step` ticks: anchor `a` (a multiple of `step`) quotes
    bid `a - below` and ask `a + above`, a spread of `step + 1` ticks. A venue moves its
    anchor only when the fair value it sees leaves `a +- 3/4 step` (hysteresis, so a
    value hovering near a grid line costs no messages). Venues on neighbouring anchors
    are never locked or crossed (the spread is wider than a step); two steps apart they
    cross (lock, on a one-tick grid): a fair-value jump faster than a venue reacts.
    """

    __slots__ = ("above", "below", "step", "tolerance")

    def __init__(self, step: int) -> None:
        self.step = max(1, step)
        self.below = (self.step + 1) // 2
        self.above = self.step + 1 - self.below
        self.tolerance = 0.75 * self.step

    def anchor(self, value: float) -> int:
        """The grid anchor nearest `value` (never one whose bid is below 1 tick)."""
        step = self.step
        return max(step * round(value / step), step * -(-(self.below + 1) // step))

    def follow(self, anchor: int, value: float) -> int:
        """The anchor after seeing `value`: unchanged while within tolerance."""
        if abs(value - anchor) <= self.tolerance:
            return anchor
        return self.anchor(value)

    def touch(self, anchor: int) -> tuple[int, int]:
        """(bid, ask) in ticks for `anchor`."""
        return anchor - self.below, anchor + self.above


class SimBook:
    """One venue's book of one symbol, in ticks and lots; never crossed.

    The touch is where the venue's quoting grid puts it (`requote`); random events
    (size changes, trades at the touch, adds and cancels behind it) happen around it.
    Each side keeps between MIN_DEPTH and MAX_DEPTH levels after every step.
    """

    __slots__ = (
        "_gap",
        "_lots",
        "_lots2",
        "_random",
        "anchor",
        "ask_px",
        "asks",
        "bid_px",
        "bids",
        "grid",
    )

    def __init__(
        self, rng: Random, gap_ticks: int, typical_lots: int, grid: QuoteGrid, anchor: int
    ) -> None:
        self._random = rng.random
        self._gap = gap_ticks
        self._lots = typical_lots
        self._lots2 = 2 * typical_lots
        self.grid = grid
        self.anchor = anchor
        self.bids: dict[int, int] = {}
        self.asks: dict[int, int] = {}
        self.bid_px: list[int] = []
        self.ask_px: list[int] = []
        rnd = self._random
        bid, ask = grid.touch(anchor)
        for _ in range(MIN_DEPTH + 4):
            if bid >= 1:
                self._set(True, bid, self._new_lots())
            self._set(False, ask, self._new_lots())
            bid -= 1 + int(rnd() * 2 * gap_ticks)
            ask += 1 + int(rnd() * 2 * gap_ticks)

    def _new_lots(self) -> int:
        return 1 + int(self._random() * self._lots2)

    def _set(self, is_bid: bool, px: int, lots: int) -> Change:
        if is_bid:
            levels, prices = self.bids, self.bid_px
        else:
            levels, prices = self.asks, self.ask_px
        new = px not in levels
        if lots:
            if new:
                insort(prices, px)
            levels[px] = lots
        elif not new:
            del levels[px]
            del prices[bisect_left(prices, px)]
        return is_bid, px, lots, new

    @property
    def quoted(self) -> bool:
        """The touch is where the anchor puts it (no trade or cancel has eaten it)."""
        bid, ask = self.grid.touch(self.anchor)
        return self.ask_px[0] == ask and (bid < 1 or self.bid_px[-1] == bid)

    def step(self, buy_ok: bool = True, sell_ok: bool = True) -> tuple[list[Change], Fill | None]:
        """One random market event; a trade only on a side whose flag allows it.

        (A venue's takers buy there only when its ask is the market's best: the flags
        say so, so trades print within the consolidated touch.)
        """
        bid_px = self.bid_px
        ask_px = self.ask_px
        rnd = self._random
        r = rnd()
        if r < 0.5:
            # A size change near the touch, the commonest event, written out for speed;
            # r also picks the side (it is uniform below 0.5 too).
            u = rnd()
            if r < 0.25:
                px = bid_px[-1 - int(u * u * len(bid_px))]
                levels = self.bids
            else:
                px = ask_px[int(u * u * len(ask_px))]
                levels = self.asks
            lots = 1 + int(rnd() * self._lots2)
            if lots == levels[px]:
                lots += 1
            levels[px] = lots
            return [(r < 0.25, px, lots, False)], None
        if r < 0.64:
            taker_buys = rnd() < 0.5
            if buy_ok if taker_buys else sell_ok:
                return self._trade(taker_buys)
            return [self._modify()], None
        if r < 0.82:
            return self._add(), None
        return self._cancel(), None

    def _modify(self) -> Change:
        rnd = self._random
        is_bid = rnd() < 0.5
        prices = self.bid_px if is_bid else self.ask_px
        i = int(rnd() * rnd() * len(prices))  # favour levels near the touch
        px = prices[-1 - i] if is_bid else prices[i]
        lots = self._new_lots()
        if lots == (self.bids if is_bid else self.asks)[px]:
            lots += 1
        return self._set(is_bid, px, lots)

    def _add(self) -> list[Change]:
        """A new level behind the touch (the touch itself is the quoting grid's)."""
        rnd = self._random
        is_bid = rnd() < 0.5
        if is_bid:
            px = self.bid_px[-1] - 1 - int(rnd() * (len(self.bid_px) + 2) * self._gap)
        else:
            px = self.ask_px[0] + 1 + int(rnd() * (len(self.ask_px) + 2) * self._gap)
        if px < 1:
            return [self._modify()]
        levels, prices = (self.bids, self.bid_px) if is_bid else (self.asks, self.ask_px)
        changes = []
        if px not in levels and len(prices) >= MAX_DEPTH:
            changes.append(self._set(is_bid, prices[0] if is_bid else prices[-1], 0))
        changes.append(self._set(is_bid, px, self._new_lots()))
        return changes

    def _cancel(self) -> list[Change]:
        """A level behind the touch goes away."""
        rnd = self._random
        is_bid = rnd() < 0.5
        prices = self.bid_px if is_bid else self.ask_px
        if len(prices) <= MIN_DEPTH:
            return [self._modify()]
        i = 1 + int(rnd() * (len(prices) - 1))
        return [self._set(is_bid, prices[-1 - i] if is_bid else prices[i], 0)]

    def _trade(self, taker_buys: bool) -> tuple[list[Change], Fill]:
        rnd = self._random
        px = self.ask_px[0] if taker_buys else self.bid_px[-1]
        have = (self.asks if taker_buys else self.bids)[px]
        take = min(have, 1 + int(rnd() * have * 1.25))
        changes = [self._set(not taker_buys, px, have - take)]
        if take == have:
            changes.extend(self._refill(mid=px))
        return changes, (taker_buys, px, take)

    def arbitrage(self, taker_buys: bool, anchor: int) -> tuple[list[Change], Fill]:
        """An arbitrageur takes the whole touch on one side (it is through the market),
        then the venue quotes at `anchor` (where the fair value it sees puts it)."""
        px = self.ask_px[0] if taker_buys else self.bid_px[-1]
        have = (self.asks if taker_buys else self.bids)[px]
        changes = [self._set(not taker_buys, px, 0)]
        changes.extend(self.requote(anchor))
        return changes, (taker_buys, px, have)

    def _refill(self, mid: int) -> list[Change]:
        """Add deep levels to any side below MIN_DEPTH."""
        rnd = self._random
        gap = self._gap
        changes = []
        while len(self.ask_px) < MIN_DEPTH:
            base = self.ask_px[-1] if self.ask_px else mid
            changes.append(self._set(False, base + 1 + int(rnd() * 2 * gap), self._new_lots()))
        while len(self.bid_px) < MIN_DEPTH:
            px = (self.bid_px[0] if self.bid_px else mid) - 1 - int(rnd() * 2 * gap)
            if px < 1:
                break
            changes.append(self._set(True, px, self._new_lots()))
        return changes

    def requote(self, anchor: int) -> list[Change]:
        """Put the touch where `anchor` says: pull what is through it, then quote.

        Levels that would cross the new touch go first (so no prefix of the changes
        crosses the book), then the new touch, a few levels bridging any gap behind
        it, and depth back within bounds.
        """
        self.anchor = anchor
        bid, ask = self.grid.touch(anchor)
        rnd = self._random
        gap = self._gap
        changes = []
        while self.ask_px and self.ask_px[0] < ask:
            changes.append(self._set(False, self.ask_px[0], 0))
        while self.bid_px and self.bid_px[-1] > bid:
            changes.append(self._set(True, self.bid_px[-1], 0))
        for is_bid, px, levels in ((False, ask, self.asks), (True, bid, self.bids)):
            if px < 1:
                continue
            if px not in levels:
                changes.append(self._set(is_bid, px, self._new_lots()))
            prices = self.bid_px if is_bid else self.ask_px
            if len(prices) < 2:
                continue
            behind = prices[-2] if is_bid else prices[1]
            for _ in range(GAP_FILL_LEVELS):
                if is_bid:
                    px -= 1 + int(rnd() * 2 * gap)
                    if px <= behind or px < 1:
                        break
                else:
                    px += 1 + int(rnd() * 2 * gap)
                    if px >= behind:
                        break
                changes.append(self._set(is_bid, px, self._new_lots()))
        while len(self.bid_px) > MAX_DEPTH:
            changes.append(self._set(True, self.bid_px[0], 0))
        while len(self.ask_px) > MAX_DEPTH:
            changes.append(self._set(False, self.ask_px[-1], 0))
        changes.extend(self._refill(mid=anchor))
        return changes

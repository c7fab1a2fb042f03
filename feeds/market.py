"""Synthetic market dynamics: the shared mid-price path and one venue's L2 book.

Owns the random walk of each symbol's mid (a deterministic function of seed, symbol
and 100 ms time bucket, so every venue sees the same path) and the book dynamics of
one venue (adds, modifies, cancels, trades at the touch, re-centring on the mid),
in integer ticks and lots. Must not encode wire formats or read clocks.
"""

from __future__ import annotations

import math
from bisect import bisect_left, insort
from random import Random
from typing import Final

from feeds.universe import SimInstrument

EPOCH_NS: Final = 1_704_067_200_000_000_000
"""2024-01-01T00:00:00Z: simulated time starts here unless told otherwise."""
BUCKET_NS: Final = 100_000_000
MIN_DEPTH: Final = 12
MAX_DEPTH: Final = 32

Change = tuple[bool, int, int, bool]
"""(is bid, price in ticks, absolute size in lots (0 removes), the level is new)."""
Fill = tuple[bool, int, int]
"""(taker buys, price in ticks, size in lots)."""


class MidPath:
    """The mid of one symbol, in ticks, over simulated time.

    The path starts at the instrument's start price in the 100 ms bucket holding
    `start_ns`; each later bucket adds a Gaussian step drawn from an rng seeded by
    (seed, symbol) alone. Simulators of different venues built with the same seed and
    start bucket therefore walk exactly the same path. Queries must not go back in time.
    """

    __slots__ = ("_bucket", "_floor", "_mid", "_rng", "_sigma")

    def __init__(self, seed: int, instrument: SimInstrument, start_ns: int = EPOCH_NS) -> None:
        self._rng = Random(f"ticker-mid:{seed}:{instrument.symbol}")
        start = instrument.start_price / instrument.tick
        self._mid = start
        self._sigma = start * instrument.volatility * math.sqrt(BUCKET_NS / 1e9)
        self._floor = max(2.0, start / 20)
        self._bucket = start_ns // BUCKET_NS

    def mid_ticks(self, t_ns: int) -> int:
        """The mid at simulated time `t_ns`, rounded to a tick."""
        bucket = t_ns // BUCKET_NS
        if bucket > self._bucket:
            gauss = self._rng.gauss
            mid, sigma, floor = self._mid, self._sigma, self._floor
            for _ in range(bucket - self._bucket):
                mid += gauss(0.0, sigma)
                if mid < floor:
                    mid = 2 * floor - mid
            self._mid = mid
            self._bucket = bucket
        return round(self._mid)


class SimBook:
    """One venue's book of one symbol, in ticks and lots; never crossed.

    Each side keeps between MIN_DEPTH and MAX_DEPTH levels (after every step).
    """

    __slots__ = ("_gap", "_lots", "_lots2", "_random", "ask_px", "asks", "bid_px", "bids")

    def __init__(self, rng: Random, gap_ticks: int, typical_lots: int, mid: int) -> None:
        self._random = rng.random
        self._gap = gap_ticks
        self._lots = typical_lots
        self._lots2 = 2 * typical_lots
        self.bids: dict[int, int] = {}
        self.asks: dict[int, int] = {}
        self.bid_px: list[int] = []
        self.ask_px: list[int] = []
        rnd = self._random
        bid = mid - 1 - int(rnd() * gap_ticks)
        ask = mid + 1 + int(rnd() * gap_ticks)
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

    def step(self, mid: int) -> tuple[list[Change], Fill | None]:
        """One market event given the current mid: the level changes and any trade."""
        bid_px = self.bid_px
        ask_px = self.ask_px
        if mid <= bid_px[-1] or mid >= ask_px[0]:
            return self._recenter(mid), None
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
            return self._trade()
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
        rnd = self._random
        is_bid = rnd() < 0.5
        best_bid, best_ask = self.bid_px[-1], self.ask_px[0]
        if best_ask - best_bid > 1 and rnd() < 0.25:
            px = best_bid + 1 + int(rnd() * (best_ask - best_bid - 1))
        elif is_bid:
            px = best_bid - int(rnd() * (len(self.bid_px) + 2) * self._gap)
        else:
            px = best_ask + int(rnd() * (len(self.ask_px) + 2) * self._gap)
        if px < 1:
            return [self._modify()]
        levels, prices = (self.bids, self.bid_px) if is_bid else (self.asks, self.ask_px)
        changes = []
        if px not in levels and len(prices) >= MAX_DEPTH:
            changes.append(self._set(is_bid, prices[0] if is_bid else prices[-1], 0))
        changes.append(self._set(is_bid, px, self._new_lots()))
        return changes

    def _cancel(self) -> list[Change]:
        rnd = self._random
        is_bid = rnd() < 0.5
        prices = self.bid_px if is_bid else self.ask_px
        if len(prices) <= MIN_DEPTH:
            return [self._modify()]
        return [self._set(is_bid, prices[int(rnd() * len(prices))], 0)]

    def _trade(self) -> tuple[list[Change], Fill]:
        rnd = self._random
        taker_buys = rnd() < 0.5
        px = self.ask_px[0] if taker_buys else self.bid_px[-1]
        have = (self.asks if taker_buys else self.bids)[px]
        take = min(have, 1 + int(rnd() * have * 1.25))
        changes = [self._set(not taker_buys, px, have - take)]
        if take == have:
            changes.extend(self._refill(mid=px))
        return changes, (taker_buys, px, take)

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

    def _recenter(self, mid: int) -> list[Change]:
        """The mid moved through the touch: pull the stale side, follow with the other."""
        rnd = self._random
        gap = self._gap
        changes = []
        if mid >= self.ask_px[0]:
            while self.ask_px and self.ask_px[0] <= mid:
                changes.append(self._set(False, self.ask_px[0], 0))
            px = mid - 1 - int(rnd() * gap)
            for _ in range(3):
                if px <= self.bid_px[-1]:
                    break
                changes.append(self._set(True, px, self._new_lots()))
                px -= 1 + int(rnd() * 2 * gap)
            while len(self.bid_px) > MAX_DEPTH:
                changes.append(self._set(True, self.bid_px[0], 0))
        else:
            while self.bid_px and self.bid_px[-1] >= mid:
                changes.append(self._set(True, self.bid_px[-1], 0))
            px = mid + 1 + int(rnd() * gap)
            for _ in range(3):
                if px >= self.ask_px[0]:
                    break
                changes.append(self._set(False, px, self._new_lots()))
                px += 1 + int(rnd() * 2 * gap)
            while len(self.ask_px) > MAX_DEPTH:
                changes.append(self._set(False, self.ask_px[-1], 0))
        changes.extend(self._refill(mid))
        return changes

"""The venue-neutral simulator engine: simulated clock, market steps, frame queue.

Owns simulated time (advanced per frame at the configured rate, never read from a
clock), which symbol moves next, the per-symbol mid paths and books, heartbeats, and
the queue of encoded frames. A venue module subclasses it and encodes. Must not know
any wire format.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from random import Random

from feeds.market import BUCKET_NS, EPOCH_NS, Change, Fill, MidPath, QuoteGrid, SimBook
from feeds.universe import INSTRUMENTS, SIM_VENUES, SimInstrument, listings, venues_of
from ticker.model.events import PriceLevel
from ticker.venues.reference import Listing


@dataclass(frozen=True, slots=True)
class Frame:
    """One native message (or packet) as the venue sends it at simulated `ts_ns`."""

    ts_ns: int
    data: bytes


@dataclass(frozen=True, slots=True)
class _Assessment:
    """One symbol as this venue sees it at one moment."""

    arb: bool | None
    """An arbitrageur takes this venue's touch: True its offer, False its bid."""
    stale_by: float
    """How far the fair value this venue sees is from its anchor, in tolerances."""
    unquoted: bool
    """A trade or cancel ate the touch."""
    routes: tuple[bool, bool]
    """Takers may buy here, may sell here (this venue is at the market's best)."""
    anchor: int
    """Where this venue's grid puts its anchor now."""


class SimulatorEngine:
    """Shared machinery of the venue simulators; subclasses provide the encodings."""

    venue: str

    def __init__(
        self,
        seed: int,
        rate_per_s: float,
        symbols: Sequence[str] | None = None,
        *,
        start_ns: int = EPOCH_NS,
        heartbeat_interval_ns: int = 1_000_000_000,
    ) -> None:
        if not rate_per_s > 0:
            raise ValueError("rate_per_s must be positive")
        listed = {item.symbol: item for item in listings(self.venue)}
        chosen = list(listed) if symbols is None else list(symbols)
        unknown = [s for s in chosen if s not in listed]
        if unknown or not chosen:
            raise ValueError(f"{self.venue} does not list {unknown or 'no symbols'}")
        self.listings: dict[str, Listing] = {s: listed[s] for s in chosen}
        self.instruments: dict[str, SimInstrument] = {s: INSTRUMENTS[s] for s in chosen}
        self._symbols = chosen
        self._rng = Random(f"ticker-venue:{seed}:{self.venue}")
        self._random = self._rng.random
        self._clock_ns = start_ns
        self._interval_ns = max(1, round(1e9 / rate_per_s))
        self._heartbeat_interval_ns = heartbeat_interval_ns
        self._next_heartbeat_ns = start_ns + heartbeat_interval_ns
        self._next_market_ns = start_ns + self._interval_ns
        here = SIM_VENUES[self.venue]
        self._latency_ns = here.latency_ns
        self._paths = {s: MidPath(seed, self.instruments[s], start_ns) for s in chosen}
        self._grids = {s: QuoteGrid(inst.quote_step_ticks) for s, inst in self.instruments.items()}
        # The other venues of each symbol as this venue's takers and arbitrageurs see them:
        # their latencies and where their grids put them (a model, not their real books).
        self._other_latency = {
            s: [SIM_VENUES[v].latency_ns for v in venues_of(s) if v != self.venue] for s in chosen
        }
        self._other_anchor = {
            s: [self._grids[s].anchor(self._paths[s].value(start_ns - lat)) for lat in lats]
            for s, lats in self._other_latency.items()
        }
        self._books = {
            s: SimBook(
                self._rng,
                inst.level_gap_ticks * here.depth_gap,
                max(1, round(inst.typical_size * here.size) // inst.lot),
                self._grids[s],
                self._grids[s].anchor(self._paths[s].value(start_ns - here.latency_ns)),
            )
            for s, inst in self.instruments.items()
        }
        self._latencies = {here.latency_ns}.union(*self._other_latency.values())
        self._assess_at = start_ns
        self._assessed: dict[str, _Assessment] = {}
        self._stepped: str | None = None
        self._queue: deque[bytes] = deque()
        self._beats: deque[bytes] = deque()

    # ------------------------------------------------------------ public API

    @property
    def now_ns(self) -> int:
        """The simulated time of the last frame produced."""
        return self._clock_ns

    @property
    def idle(self) -> bool:
        """No encoded frame is waiting: `books()` matches everything sent so far."""
        return not self._queue and not self._beats

    def connect(self) -> list[Frame]:
        """Start a new session: anything unsent is lost; returns the session-start frames."""
        self._queue.clear()
        self._beats.clear()
        now = self._clock_ns
        return [Frame(now, data) for data in self._start_session()]

    def next_frame(self) -> Frame:
        """The next native message or packet.

        Market frames come one rate interval apart. Heartbeats come on their own
        schedule, at their due time and outside the rate, and only when everything
        generated has been sent (they carry the sequence numbers sent so far).
        """
        beats = self._beats
        if beats:
            return Frame(self._clock_ns, beats.popleft())
        queue = self._queue
        clock = self._next_market_ns
        if not queue:
            if self._next_heartbeat_ns <= clock:
                clock = self._clock_ns = max(self._clock_ns, self._next_heartbeat_ns)
                self._next_heartbeat_ns = clock + self._heartbeat_interval_ns
                beats.extend(self._heartbeats())
                return Frame(clock, beats.popleft())
            self._clock_ns = clock
            symbol, changes, fill = self._market_step(clock)
            queue.extend(self._encode_step(symbol, changes, fill))
        self._clock_ns = clock
        self._next_market_ns = clock + self._interval_ns
        return Frame(clock, queue.popleft())

    def _assess(self, symbol: str, now_ns: int) -> _Assessment:
        """Where `symbol` stands for this venue at `now_ns` (see `_market_step`)."""
        book = self._books[symbol]
        grid = self._grids[symbol]
        path = self._paths[symbol]
        anchors = self._other_anchor[symbol]
        best_bid, best_ask = book.bid_px[-1], book.ask_px[0]
        arb: bool | None = None
        routes = (True, True)
        if anchors:
            for i, lat in enumerate(self._other_latency[symbol]):
                anchors[i] = grid.follow(anchors[i], path.value(now_ns - lat))
            other_bid = max(anchors) - grid.below
            other_ask = min(anchors) + grid.above
            if best_ask < other_bid or best_bid > other_ask:
                arb = best_ask < other_bid
            routes = (best_ask <= other_ask, best_bid >= other_bid)
        value = path.value(now_ns - self._latency_ns)
        stale_by = abs(value - book.anchor) / grid.tolerance
        return _Assessment(arb, stale_by, not book.quoted, routes, grid.follow(book.anchor, value))

    def _market_step(self, now_ns: int) -> tuple[str, list[Change], Fill | None]:
        """What this venue does next, most urgent first.

        1. An arbitrage: this venue's touch is through another venue's (as modelled),
           so an arbitrageur takes it, and the venue re-quotes; the other leg is taken
           on the other venue by the same rule there. 2. A re-quote: the fair value this
           venue sees (with its latency) left its anchor's tolerance. 3. A touch a trade
           ate is quoted again. 4. Otherwise a random event on a random symbol, with
           trades only on a side where this venue is at the market's best.

        The fair values change only at bucket boundaries (shifted by each latency), so
        every symbol is assessed again only then; in between, only the symbol last
        stepped (its book changed).
        """
        assessed = self._assessed
        if now_ns >= self._assess_at:
            for symbol in self._symbols:
                assessed[symbol] = self._assess(symbol, now_ns)
            self._assess_at = min(
                ((now_ns - lat) // BUCKET_NS + 1) * BUCKET_NS + lat for lat in self._latencies
            )
        elif self._stepped is not None:
            assessed[self._stepped] = self._assess(self._stepped, now_ns)
        stale: str | None = None
        stale_by = 1.0
        unquoted: str | None = None
        for symbol, state in assessed.items():
            if state.arb is not None:
                self._stepped = symbol
                changes, taken = self._books[symbol].arbitrage(state.arb, state.anchor)
                return symbol, changes, taken
            if state.stale_by > stale_by:
                stale, stale_by = symbol, state.stale_by
            elif unquoted is None and state.unquoted:
                unquoted = symbol
        if stale is not None:
            self._stepped = stale
            return stale, self._books[stale].requote(assessed[stale].anchor), None
        if unquoted is not None:
            self._stepped = unquoted
            book = self._books[unquoted]
            return unquoted, book.requote(book.anchor), None
        symbol = self._symbols[int(self._random() * len(self._symbols))]
        self._stepped = symbol
        changes, fill = self._books[symbol].step(*assessed[symbol].routes)
        return symbol, changes, fill

    def request_snapshot(self, symbol: str) -> None:
        """Queue a snapshot of `symbol` behind the frames already queued.

        A symbol this simulator does not run is ignored (a venue would reject it).
        """
        if symbol in self._books:
            self._queue.append(self._encode_snapshot(symbol, requested=True))

    def advance(self, duration_ns: int) -> None:
        """Let simulated time pass without sending anything (a stall)."""
        self._clock_ns += max(0, duration_ns)
        self._next_market_ns = max(self._next_market_ns, self._clock_ns + self._interval_ns)

    def books(self) -> dict[str, tuple[tuple[PriceLevel, ...], tuple[PriceLevel, ...]]]:
        """The true book of every symbol in nanos (bids best first, asks best first)."""
        return {s: self.book_levels(s) for s in self._symbols}

    def book_levels(self, symbol: str) -> tuple[tuple[PriceLevel, ...], tuple[PriceLevel, ...]]:
        """The true book of one symbol in nanos (bids best first, asks best first)."""
        book = self._books[symbol]
        inst = self.instruments[symbol]
        tick, lot = inst.tick, inst.lot
        bids = tuple((p * tick, book.bids[p] * lot) for p in reversed(book.bid_px))
        asks = tuple((p * tick, book.asks[p] * lot) for p in book.ask_px)
        return bids, asks

    def resend(self, data: bytes) -> bytes:
        """The bytes the venue sends when it repeats `data` (default: identical)."""
        return data

    def corrupt(self, data: bytes, rng: Random) -> bytes:
        """A damaged copy of `data` that the venue's decoder must reject."""
        raise NotImplementedError

    # ------------------------------------------------------------ venue hooks

    def _start_session(self) -> list[bytes]:
        raise NotImplementedError

    def _heartbeats(self) -> list[bytes]:
        raise NotImplementedError

    def _encode_step(self, symbol: str, changes: list[Change], fill: Fill | None) -> list[bytes]:
        raise NotImplementedError

    def _encode_snapshot(self, symbol: str, *, requested: bool) -> bytes:
        raise NotImplementedError

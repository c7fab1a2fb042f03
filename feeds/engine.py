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

from feeds.market import EPOCH_NS, Change, Fill, MidPath, SimBook
from feeds.universe import INSTRUMENTS, SimInstrument, listings
from ticker.model.events import PriceLevel
from ticker.venues.reference import Listing


@dataclass(frozen=True, slots=True)
class Frame:
    """One native message (or packet) as the venue sends it at simulated `ts_ns`."""

    ts_ns: int
    data: bytes


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
        self._paths = {s: MidPath(seed, self.instruments[s], start_ns) for s in chosen}
        self._books = {
            s: SimBook(
                self._rng,
                inst.level_gap_ticks,
                max(1, inst.typical_size // inst.lot),
                self._paths[s].mid_ticks(start_ns),
            )
            for s, inst in self.instruments.items()
        }
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
            symbol = self._symbols[int(self._random() * len(self._symbols))]
            self._clock_ns = clock
            changes, fill = self._books[symbol].step(self._paths[symbol].mid_ticks(clock))
            queue.extend(self._encode_step(symbol, changes, fill))
        self._clock_ns = clock
        self._next_market_ns = clock + self._interval_ns
        return Frame(clock, queue.popleft())

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

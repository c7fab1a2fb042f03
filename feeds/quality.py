"""How believable the simulated market is, measured over a simulated session.

Owns one measurement: the venue simulators -> their adapters -> the consolidator, all
in simulated time (frames merged in time order, as the server's venue tasks would
deliver them), and per symbol the share of time the consolidated quote is crossed or
locked, how long each cross lasts, and how many trades print through the consolidated
touch. Pure and deterministic for a seed; must not read clocks or do I/O.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import dataclass, field

from feeds.market import EPOCH_NS
from feeds.simulator import make_simulator
from ticker.core.consolidate import Consolidator
from ticker.core.sequencer import Sequencer
from ticker.model.events import Quote, TakerSide, Trade
from ticker.venues import make_adapter
from ticker.venues.reference import VENUES

TIMER_EVERY_NS = 250_000_000
"""The adapters' `on_timer` runs this often in simulated time, as the server's does."""


@dataclass(slots=True)
class SymbolQuality:
    """What one symbol's consolidated quote and tape looked like over a session.

    Times are simulated ns, counted from the first moment both sides were quoted.
    """

    quoted_ns: int = 0
    crossed_ns: int = 0
    locked_ns: int = 0
    crosses: list[int] = field(default_factory=list)
    """The duration of every cross (a maximal crossed interval), in ns."""
    spread_bps_ns: float = 0.0
    """The consolidated spread in basis points of the mid, integrated over quoted time."""
    trades: int = 0
    trade_throughs: int = 0
    """Trades whose taker got a worse price than the consolidated touch just before it
    offered: a buy above the best ask or a sell below the best bid."""

    @property
    def crossed_fraction(self) -> float:
        return self.crossed_ns / self.quoted_ns if self.quoted_ns else 0.0

    @property
    def locked_fraction(self) -> float:
        return self.locked_ns / self.quoted_ns if self.quoted_ns else 0.0

    @property
    def mean_spread_bps(self) -> float:
        return self.spread_bps_ns / self.quoted_ns if self.quoted_ns else 0.0

    @property
    def trade_through_fraction(self) -> float:
        return self.trade_throughs / self.trades if self.trades else 0.0

    def cross_percentile_ns(self, q: float) -> int:
        """The `q` quantile (0..1, nearest rank) of cross durations; 0 with no cross."""
        if not self.crosses:
            return 0
        ordered = sorted(self.crosses)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@dataclass(slots=True)
class _Track:
    quality: SymbolQuality
    state: str = "empty"  # "empty" (a side missing), "crossed", "locked" or "normal"
    since_ns: int = 0
    spread_bps: float = 0.0
    cross_from_ns: int = 0


def _state(fields: dict[str, int | None]) -> str:
    bid, ask = fields.get("bid"), fields.get("ask")
    if bid is None or ask is None:
        return "empty"
    if bid > ask:
        return "crossed"
    return "locked" if bid == ask else "normal"


def measure_session(
    seed: int,
    *,
    rate_per_s: float = 20.0,
    duration_s: float = 600.0,
    venues: Sequence[str] = VENUES,
    start_ns: int = EPOCH_NS,
) -> dict[str, SymbolQuality]:
    """Run every venue for `duration_s` of simulated time; the quality of each symbol.

    Args:
        seed: the simulators' seed (the server's `--seed`).
        rate_per_s: each venue's message rate (the server's `--venue-rate-per-s`).
        duration_s: simulated seconds to run.
        venues: which simulated venues take part.
        start_ns: simulated start time, shared by every venue.

    Returns:
        Per canonical symbol, what its consolidated quote and trades looked like.
    """
    sims = {v: make_simulator(v, seed, rate_per_s, start_ns=start_ns) for v in venues}
    adapters = {v: make_adapter(v) for v in venues}
    consolidator = Consolidator(Sequencer(epoch=1))
    sequencer = consolidator.sequencer
    tracks: dict[str, _Track] = {}
    end_ns = start_ns + int(duration_s * 1e9)
    pending: list[tuple[int, int, str, bytes]] = []
    for order, (venue, sim) in enumerate(sims.items()):
        for frame in sim.connect():
            heapq.heappush(pending, (frame.ts_ns, order, venue, frame.data))
    order_of = {venue: order for order, venue in enumerate(sims)}
    next_timer = start_ns + TIMER_EVERY_NS

    def settle(track: _Track, now_ns: int) -> None:
        if track.state != "empty":
            span = now_ns - track.since_ns
            track.quality.quoted_ns += span
            track.quality.spread_bps_ns += span * track.spread_bps
            if track.state == "crossed":
                track.quality.crossed_ns += span
            elif track.state == "locked":
                track.quality.locked_ns += span
        track.since_ns = now_ns

    for venue, sim in sims.items():
        frame = sim.next_frame()
        heapq.heappush(pending, (frame.ts_ns, order_of[venue], venue, frame.data))
    while pending:
        ts_ns, _, venue, data = heapq.heappop(pending)
        if ts_ns > end_ns:
            break
        sim = sims[venue]
        output = adapters[venue].on_message(data, ts_ns)
        if ts_ns >= next_timer:
            next_timer = ts_ns + TIMER_EVERY_NS
            for adapter in adapters.values():
                timed = adapter.on_timer(ts_ns)
                for request in timed.requests:
                    sims[request.venue].request_snapshot(request.symbol)
        for request in output.requests:
            sims[request.venue].request_snapshot(request.symbol)
        for event in output.events:
            track = tracks.get(event.symbol)
            if track is None:
                track = tracks[event.symbol] = _Track(SymbolQuality(), since_ns=ts_ns)
            if isinstance(event, Trade):
                quote = sequencer.state(f"quote.{event.symbol}")
                bid, ask = quote.get("bid"), quote.get("ask")
                track.quality.trades += 1
                if event.side is TakerSide.BUY:
                    through = ask is not None and event.price > ask
                else:
                    through = bid is not None and event.price < bid
                track.quality.trade_throughs += through
            consolidator.on_event(event, ts_ns // 1000)
            if isinstance(event, Quote):
                fields = sequencer.state(f"quote.{event.symbol}")
                settle(track, ts_ns)
                state = _state(fields)
                if state != track.state:
                    if track.state == "crossed":
                        track.quality.crosses.append(ts_ns - track.cross_from_ns)
                    if state == "crossed":
                        track.cross_from_ns = ts_ns
                    track.state = state
                if state != "empty":
                    bid, ask = fields["bid"], fields["ask"]
                    assert bid is not None and ask is not None
                    track.spread_bps = (ask - bid) / (ask + bid) * 2e4
        following = sim.next_frame()
        heapq.heappush(pending, (following.ts_ns, order_of[venue], venue, following.data))
    for track in tracks.values():
        if track.state == "crossed":
            track.quality.crosses.append(end_ns - track.cross_from_ns)
        settle(track, end_ns)
    return {symbol: tracks[symbol].quality for symbol in sorted(tracks)}

"""Consolidation: per-venue normalized events become the hub's topics.

Published topics are venue-neutral: `book.SYM` is the composite depth (per price, the
total size across venues), `quote.SYM` the consolidated best bid/offer (best price
across venues, size summed over venues at that price), `trade.SYM` every venue's
trades, `ticker.SYM` session statistics computed from those trades. Beside them each
venue's own data: `book@VENUE.SYM` its depth, `quote@VENUE.SYM` its best bid/offer, for
at most `max_venues` venues (publishers may name any). Sums of sizes
(composite levels, quote sizes, the day's volume) saturate at MAX_NANOS: each input is
in range, their sum need not be, and the wire carries 64 bits. Venue-reported
statistics are counted, not published: venues use different windows (UTC day, rolling
24 h), so only our own computation is consistent with the trade topic. This module
keeps the per-venue inputs it needs and hands new values to the sequencer; it never
encodes and never does I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from ticker.core.delta import Levels
from ticker.core.messages import DataMessage
from ticker.core.sequencer import Sequencer
from ticker.core.topics import venue_channel
from ticker.model.events import BookUpdate, NormalizedEvent, Quote, TickerStats, Trade
from ticker.model.fixed import MAX_NANOS, saturate

NS_PER_DAY = 86_400 * 10**9
DEFAULT_MAX_VENUES = 0


@dataclass(slots=True)
class _SessionStats:
    """Statistics since the first trade of the current UTC day."""

    day: int = -1
    open: int | None = None
    high: int | None = None
    low: int | None = None
    last: int | None = None
    volume: int = 0

    def add(self, price: int, size: int, ts_ns: int) -> None:
        day = ts_ns // NS_PER_DAY
        if day > self.day:
            self.day, self.open, self.high, self.low, self.volume = day, price, price, price, 0
        assert self.high is not None and self.low is not None
        self.high = max(self.high, price)
        self.low = min(self.low, price)
        self.last = price
        # Saturating: sizes are each in range, a day of them need not be.
        self.volume = saturate(self.volume + size)

    def inherit(self, fields: dict[str, int | None], now_ns: int) -> None:
        """Continue today's statistics from a published ticker state (after a takeover)."""
        if fields.get("last") is None:
            return
        self.day = now_ns // NS_PER_DAY
        self.open, self.high, self.low = fields.get("open"), fields.get("high"), fields.get("low")
        self.last = fields.get("last")
        self.volume = int(fields.get("volume") or 0)

    def fields(self) -> dict[str, int | None]:
        change = None if self.last is None or self.open is None else self.last - self.open
        return {
            "last": self.last,
            "open": self.open,
            "high": self.high,
            "low": self.low,
            "volume": self.volume,
            "change": change,
        }


@dataclass(slots=True)
class _Symbol:
    """What the consolidator holds for one symbol."""

    book_topic: str
    quote_topic: str
    trade_topic: str
    ticker_topic: str
    venue_bids: dict[str, Levels] = field(default_factory=dict)
    venue_asks: dict[str, Levels] = field(default_factory=dict)
    quotes: dict[str, Quote] = field(default_factory=dict)
    stats: _SessionStats = field(default_factory=_SessionStats)
    venue_book_topics: dict[str, str] = field(default_factory=dict)
    """Each venue's own book topic for this symbol, once it has one (at most
    `max_venues` entries): named once, not per event."""
    venue_quote_topics: dict[str, str] = field(default_factory=dict)


def _venue_increments(
    venue_side: Levels, levels: tuple[tuple[int, int], ...], replace: bool
) -> list[tuple[int, int]]:
    """Apply one venue's levels to its side; return the size increment per price.

    The composite level is the sum over venues, so a venue's change moves it by exactly
    that venue's increment and the composite itself is kept once, by the sequencer.
    """
    if replace:
        new = {price: size for price, size in levels if size}
        levels = tuple((price, new.get(price, 0)) for price in venue_side.keys() | new.keys())
    increments: list[tuple[int, int]] = []
    for price, size in levels:
        old = venue_side.get(price, 0)
        if size == old:
            continue
        if size:
            venue_side[price] = size
        else:
            del venue_side[price]
        increments.append((price, size - old))
    return increments


def _composite(sides: Iterable[Levels]) -> Levels:
    """The composite of several venues' sides: per price, the sum of their sizes."""
    total: Levels = {}
    for side in sides:
        for price, size in side.items():
            total[price] = total.get(price, 0) + size
    return total


class Consolidator:
    """Turns normalized venue events into sequenced messages: the venue-neutral topics
    and, for the first `max_venues` venues seen, each venue's own book and quote.

    Args:
        sequencer: the stream's single writer.
        max_venues: venues that get topics of their own (0, the default: none; the hub
            passes `Config.max_venues`).
    """

    def __init__(self, sequencer: Sequencer, max_venues: int = DEFAULT_MAX_VENUES) -> None:
        self.sequencer = sequencer
        self.venue_stats_seen = 0
        self.max_venues = max_venues
        self.venues_without_topics = 0
        """Events of venues past `max_venues`: consolidated, with no topics of their own."""
        self._venues: dict[str, None] = {}
        """Venues that have topics of their own (the first `max_venues` seen), which
        bounds the topics a publisher naming new venues can create."""
        self._symbols: dict[str, _Symbol] = {}
        self._rebase: set[str] = set()
        """Book topics (composite or a venue's) whose next change replaces them whole."""
        self._inherited_stats: dict[str, dict[str, int | None]] = {}

    def adopt(self) -> None:
        """Take over a stream whose state the sequencer holds but this consolidator did not
        build (a standby hub that now leads): per-venue inputs start empty and are rebuilt
        from the venues' snapshots. Each book's first composite then replaces the inherited
        book whole (`Sequencer.replace_levels`), since increments would be added to levels
        of venues we have not heard from; session statistics continue from the inherited
        ticker state, so volume and the day's range do not start over.
        """
        self._symbols.clear()
        self._rebase.clear()
        self._inherited_stats.clear()
        for topic in self.sequencer.topics():
            channel, _, symbol = topic.partition(".")
            if channel == "book" or channel.startswith("book@"):
                self._rebase.add(topic)
            elif channel == "ticker":
                self._inherited_stats[symbol] = self.sequencer.state(topic)

    def on_event(self, event: NormalizedEvent, now_us: int) -> list[DataMessage]:
        """Consolidate one venue event; returns the messages published (often 0 or 1)."""
        symbol = self._symbols.get(event.symbol)
        if symbol is None:
            s = event.symbol
            symbol = _Symbol(f"book.{s}", f"quote.{s}", f"trade.{s}", f"ticker.{s}")
            self._symbols[s] = symbol
            inherited = self._inherited_stats.pop(s, None)
            if inherited:
                symbol.stats.inherit(inherited, now_us * 1000)
        kind = type(event)  # exact types first: one comparison each on the hot path
        if kind is BookUpdate:
            return self._on_book(symbol, event, now_us)  # type: ignore[arg-type]
        if kind is Quote:
            return self._on_quote(symbol, event, now_us)  # type: ignore[arg-type]
        if isinstance(event, BookUpdate):
            return self._on_book(symbol, event, now_us)
        if isinstance(event, Quote):
            return self._on_quote(symbol, event, now_us)
        if isinstance(event, Trade):
            return self._on_trade(symbol, event, now_us)
        assert isinstance(event, TickerStats)
        self.venue_stats_seen += 1
        return []

    def topics_of(self, event: NormalizedEvent) -> tuple[str, ...]:
        """The topics `on_event(event)` may change (none for venue statistics)."""
        s = event.symbol
        if isinstance(event, BookUpdate | Quote):
            kind = "book" if isinstance(event, BookUpdate) else "quote"
            if event.venue in self._venues:
                return (f"{kind}.{s}", f"{venue_channel(kind, event.venue)}.{s}")
            return (f"{kind}.{s}",)
        if isinstance(event, Trade):
            return (f"trade.{s}", f"ticker.{s}")
        return ()

    def _venue_topic(self, kind: str, venue: str, symbol: str) -> str | None:
        """The venue's own topic of `kind` for `symbol`, None past `max_venues`."""
        if venue not in self._venues:
            if len(self._venues) >= self.max_venues:
                self.venues_without_topics += 1
                return None
            self._venues[venue] = None
        return f"{venue_channel(kind, venue)}.{symbol}"

    def forget(self, topic: str) -> None:
        """Drop the per-venue inputs behind `topic`, as the sequencer empties it.

        Part of the hub's repair after a failure: the inputs may hold what failed, and
        the next change must build on what subscribers hold (nothing), not on them. A
        venue's book comes back whole with its next snapshot, level by level before.
        """
        channel, _, name = topic.partition(".")
        symbol = self._symbols.get(name)
        if symbol is None:
            return
        if channel.startswith("book@"):
            # The venue's inputs also feed the composite: keep them, and publish the
            # venue's whole book over the emptied topic at its next change.
            self._rebase.add(topic)
        elif channel == "book":
            symbol.venue_bids.clear()
            symbol.venue_asks.clear()
            # Venue books built on those inputs are rebuilt whole from the venues' next
            # snapshots, like the composite.
            self._rebase.update(f"{venue_channel('book', venue)}.{name}" for venue in self._venues)
        elif channel == "quote":
            symbol.quotes.clear()
        elif channel == "ticker":
            symbol.stats = _SessionStats()

    def _on_book(self, symbol: _Symbol, event: BookUpdate, now_us: int) -> list[DataMessage]:
        venue = event.venue
        bids = symbol.venue_bids.get(venue)
        if bids is None:
            bids = symbol.venue_bids[venue] = {}
            symbol.venue_asks[venue] = {}
        asks = symbol.venue_asks[venue]
        snapshot = event.snapshot
        bid_moves = _venue_increments(bids, event.bids, snapshot) if event.bids or snapshot else []
        ask_moves = _venue_increments(asks, event.asks, snapshot) if event.asks or snapshot else []
        sequencer = self.sequencer
        topic = symbol.book_topic
        if topic in self._rebase:
            self._rebase.discard(topic)
            message = sequencer.replace_levels(
                topic,
                _composite(symbol.venue_bids.values()),
                _composite(symbol.venue_asks.values()),
                now_us,
            )
        else:
            message = sequencer.add_to_levels(topic, bid_moves, ask_moves, now_us)
        venue_topic = symbol.venue_book_topics.get(venue)
        if venue_topic is None:
            venue_topic = self._venue_topic("book", venue, event.symbol)
            if venue_topic is None:
                return [message] if message is not None else []
            symbol.venue_book_topics[venue] = venue_topic
        # The venue's book is its own inputs: the same increments move it.
        if venue_topic in self._rebase:
            self._rebase.discard(venue_topic)
            own = sequencer.replace_levels(venue_topic, bids, asks, now_us)
        else:
            # Its delta often equals the composite's (a symbol one venue quotes): `like`
            # lets the two messages share their data.
            own = sequencer.add_to_levels(venue_topic, bid_moves, ask_moves, now_us, message)
        if message is None:
            return [own] if own is not None else []
        return [message, own] if own is not None else [message]

    def _on_quote(self, symbol: _Symbol, event: Quote, now_us: int) -> list[DataMessage]:
        symbol.quotes[event.venue] = event
        bid = ask = None
        bid_size = ask_size = 0
        for quote in symbol.quotes.values():
            if quote.bid_price is not None and quote.bid_size:
                if bid is None or quote.bid_price > bid:
                    bid, bid_size = quote.bid_price, quote.bid_size
                elif quote.bid_price == bid:
                    bid_size += quote.bid_size
            if quote.ask_price is not None and quote.ask_size:
                if ask is None or quote.ask_price < ask:
                    ask, ask_size = quote.ask_price, quote.ask_size
                elif quote.ask_price == ask:
                    ask_size += quote.ask_size
        # `saturate`, inlined: once per quote.
        fields = {
            "bid": bid,
            "bid_size": (bid_size if bid_size < MAX_NANOS else MAX_NANOS)
            if bid is not None
            else None,
            "ask": ask,
            "ask_size": (ask_size if ask_size < MAX_NANOS else MAX_NANOS)
            if ask is not None
            else None,
        }
        message = self.sequencer.set_fields(symbol.quote_topic, fields, now_us)
        venue = event.venue
        venue_topic = symbol.venue_quote_topics.get(venue)
        if venue_topic is None:
            venue_topic = self._venue_topic("quote", venue, event.symbol)
            if venue_topic is None:
                return [message] if message is not None else []
            symbol.venue_quote_topics[venue] = venue_topic
        has_bid = event.bid_price is not None and bool(event.bid_size)
        has_ask = event.ask_price is not None and bool(event.ask_size)
        own = self.sequencer.set_fields(
            venue_topic,
            {
                "bid": event.bid_price if has_bid else None,
                "bid_size": event.bid_size if has_bid else None,
                "ask": event.ask_price if has_ask else None,
                "ask_size": event.ask_size if has_ask else None,
            },
            now_us,
            message,  # the composite quote: equal data is shared (see `set_fields`)
        )
        if message is None:
            return [own] if own is not None else []
        return [message, own] if own is not None else [message]

    def _on_trade(self, symbol: _Symbol, event: Trade, now_us: int) -> list[DataMessage]:
        trade = self.sequencer.add_event(
            symbol.trade_topic,
            {
                "price": event.price,
                "size": event.size,
                "side": event.side.value,
                "id": event.trade_id,
                "venue": event.venue,
                "venue_ts": event.ts_ns // 1000,
            },
            now_us,
        )
        symbol.stats.add(event.price, event.size, event.ts_ns)
        stats = self.sequencer.set_fields(symbol.ticker_topic, symbol.stats.fields(), now_us)
        return [trade] if stats is None else [trade, stats]

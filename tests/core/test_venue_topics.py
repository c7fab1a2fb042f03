"""Venue topics (`quote@<venue>.SYM`, `book@<venue>.SYM`): their grammar, entitlements
naming them, how the consolidator publishes them within a bound, and a simulated
session in which no venue's book is ever crossed while every checksum holds."""

from __future__ import annotations

import pytest

from feeds.drive import make_run
from feeds.faults import FaultPlan
from ticker.auth.grants import narrow, parse_grants
from ticker.config import Config
from ticker.core.checksum import CHECKSUM_EVERY, CHECKSUM_KEY
from ticker.core.consolidate import Consolidator
from ticker.core.hub import Hub
from ticker.core.messages import DataMessage
from ticker.core.mirror import Applied, Mirror
from ticker.core.sequencer import Sequencer
from ticker.core.topics import ChannelKind, TopicPattern, channel_kind
from ticker.errors import BadTopic
from ticker.model.events import BookUpdate, Quote
from ticker.server.subscriptions import matching_topics
from ticker.venues.reference import VENUES


def test_consolidated_patterns_never_match_venue_topics() -> None:
    for text in ("quote.*", "quote.BTC-USD", "book.*"):
        pattern = TopicPattern.parse(text)
        assert not pattern.matches("quote@cbx.BTC-USD")
        assert not pattern.matches("book@cbx.BTC-USD")


def test_a_pattern_names_one_venue_or_every_venue_of_a_kind() -> None:
    one = TopicPattern.parse("book@cbx.*")
    assert one.matches("book@cbx.BTC-USD") and one.matches("book@cbx.ETH-USD")
    assert not one.matches("book@itx.BTC-USD") and not one.matches("book.BTC-USD")
    every = TopicPattern.parse("quote@*.BTC-USD")
    assert every.matches("quote@cbx.BTC-USD") and every.matches("quote@fxa.BTC-USD")
    assert not every.matches("quote.BTC-USD") and not every.matches("quote@cbx.ETH-USD")
    assert not every.matches("book@cbx.BTC-USD")
    assert not every.exact and not TopicPattern.parse("book@*.*").exact
    assert TopicPattern.parse("book@cbx.BTC-USD").exact
    existing = ["book.BTC-USD", "book@cbx.BTC-USD", "book@itx.BTC-USD", "quote@cbx.BTC-USD"]
    assert matching_topics(existing, [TopicPattern.parse("book@*.BTC-USD")]) == [
        "book@cbx.BTC-USD",
        "book@itx.BTC-USD",
    ]
    assert channel_kind("book@cbx.X-Y") is ChannelKind.BOOK
    assert channel_kind("quote@cbx.X-Y") is ChannelKind.LATEST


@pytest.mark.parametrize(
    "text", ["trade@cbx.*", "ticker@cbx.*", "quote@.*", "quote@CBX.*", "quote@c.x.*", "quote@*@*.*"]
)
def test_bad_venue_patterns_are_refused(text: str) -> None:
    with pytest.raises(BadTopic):
        TopicPattern.parse(text)


SYMBOLS = frozenset({"BTC-USD", "ETH-USD"})


def _narrow(patterns: list[str], grants: list[str]) -> tuple[list[str], list[str]]:
    result = narrow([TopicPattern.parse(p) for p in patterns], parse_grants(grants), SYMBOLS)
    return [str(p) for p in result.allowed], result.forbidden


def test_entitlements_name_venue_topics() -> None:
    grants = parse_grants(["book@cbx.*", "quote@*.ETH-USD"])
    assert grants[0].allows("book@cbx.BTC-USD")
    assert not grants[0].allows("book@itx.BTC-USD") and not grants[0].allows("book.BTC-USD")
    assert grants[1].allows("quote@fxa.ETH-USD") and not grants[1].allows("quote.ETH-USD")
    # A consolidated grant does not reach venue topics, and the reverse.
    assert _narrow(["book@cbx.*"], ["book.*"]) == ([], ["book@cbx.*"])
    assert _narrow(["book.*"], ["book@*.*"]) == ([], ["book.*"])
    # Every venue's books, narrowed to the one venue allowed; a symbol wildcard narrowed.
    assert _narrow(["book@*.*"], ["book@cbx.*"]) == (["book@cbx.*"], [])
    assert _narrow(["quote@*.*"], ["quote@*.ETH-USD"]) == (["quote@*.ETH-USD"], [])
    assert _narrow(["book@itx.*"], ["*.BTC-USD"]) == (["book@itx.BTC-USD"], [])
    # `*` covers every channel, a venue's too.
    assert _narrow(["quote@*.*"], ["*.*"]) == (["quote@*.*"], [])
    with pytest.raises(BadTopic):
        parse_grants(["trade@cbx.*"])


def test_the_consolidator_publishes_each_venue_s_own_book_and_quote() -> None:
    c = Consolidator(Sequencer(epoch=1), max_venues=4)
    c.on_event(BookUpdate("a", "X-Y", 0, ((100, 3),), ((102, 4),), True), 0)
    out = c.on_event(BookUpdate("b", "X-Y", 0, ((100, 5), (99, 1)), ((103, 1),), True), 0)
    assert [m.topic for m in out] == ["book.X-Y", "book@b.X-Y"]
    seq = c.sequencer
    assert seq.state("book@a.X-Y")["bids"] == [[100, 3]]
    assert seq.state("book@b.X-Y")["bids"] == [[100, 5], [99, 1]]
    assert seq.state("book.X-Y")["bids"] == [[100, 8], [99, 1]]
    out = c.on_event(BookUpdate("a", "X-Y", 0, ((100, 0),), (), False), 0)
    assert [m.data["bids"] for m in out] == [[[100, 5]], [[100, 0]]]
    out = c.on_event(Quote("a", "X-Y", 0, 100, 3, 102, 4), 0)
    assert [m.topic for m in out] == ["quote.X-Y", "quote@a.X-Y"]
    assert out[1].data == {"bid": 100, "bid_size": 3, "ask": 102, "ask_size": 4}
    out = c.on_event(Quote("a", "X-Y", 0, None, None, 102, 4), 0)
    assert out[-1].topic == "quote@a.X-Y" and out[-1].data == {"bid": None, "bid_size": None}


def test_a_venue_delta_equal_to_the_composite_s_shares_its_data() -> None:
    """The replay buffer holds every message: a venue's delta equal to the composite's
    holds the composite's data, not a copy; one that differs (in levels, or a checksum
    on one side only) holds its own, and every checksum is its own book's."""
    c = Consolidator(Sequencer(epoch=1), max_venues=4)
    seq = c.sequencer

    def check(out: list[DataMessage]) -> None:
        for m in out:
            assert (CHECKSUM_KEY in m.data) == (m.seq % CHECKSUM_EVERY == 0)
            if CHECKSUM_KEY in m.data:
                assert m.data[CHECKSUM_KEY] == seq.snapshot_message(m.topic).data[CHECKSUM_KEY]

    c.on_event(BookUpdate("a", "X-Y", 0, ((100, 3),), ((102, 4),), True), 0)
    for size in range(4, 26):  # one venue: equal books, checksums at the same seqs
        comp, own = c.on_event(BookUpdate("a", "X-Y", 0, ((100, size),), (), False), 0)
        check([comp, own])
        assert own.data is comp.data
        assert comp.data["bids"] == [[100, size]] and comp.data["asks"] == []
    c.on_event(BookUpdate("b", "X-Y", 0, ((90, 1),), (), True), 0)  # the composite's seq moves on
    shared = 0
    for size in range(30, 52):  # equal deltas, checksums at different seqs and of other books
        comp, own = c.on_event(BookUpdate("a", "X-Y", 0, ((100, size),), (), False), 0)
        check([comp, own])
        assert comp.data["bids"] == own.data["bids"] == [[100, size]]
        if CHECKSUM_KEY in comp.data or CHECKSUM_KEY in own.data:
            assert own.data is not comp.data
        else:
            assert own.data is comp.data
            shared += 1
    assert shared == 18
    comp, own = c.on_event(BookUpdate("b", "X-Y", 0, ((100, 2),), (), False), 0)
    assert comp.data["bids"] == [[100, 53]] and own.data["bids"] == [[100, 2]]
    c.on_event(Quote("a", "X-Y", 0, 100, 3, 102, 4), 0)  # seq 1 of each: snapshots
    comp, own = c.on_event(Quote("a", "X-Y", 0, 100, 5, 102, 4), 0)
    assert own.data is comp.data == {"bid_size": 5}
    c.on_event(Quote("b", "X-Y", 0, 101, 1, None, None), 0)
    (own,) = c.on_event(Quote("a", "X-Y", 0, 100, 6, 102, 4), 0)  # the composite's bid is b's
    assert (own.topic, own.data) == ("quote@a.X-Y", {"bid_size": 6})


def test_venue_topics_are_bounded_by_max_venues() -> None:
    c = Consolidator(Sequencer(epoch=1), max_venues=2)
    for venue in ("a", "b", "c", "d"):
        c.on_event(BookUpdate(venue, "X-Y", 0, ((100, 1),), (), True), 0)
        c.on_event(Quote(venue, "X-Y", 0, 100, 1, None, None), 0)
    topics = set(c.sequencer.topics())
    assert topics == {
        "book.X-Y",
        "quote.X-Y",
        "book@a.X-Y",
        "book@b.X-Y",
        "quote@a.X-Y",
        "quote@b.X-Y",
    }
    assert c.venues_without_topics == 4
    # The later venues still count in the consolidated topics.
    assert c.sequencer.state("book.X-Y")["bids"] == [[100, 4]]
    with pytest.raises(Exception, match="max_venues"):
        Config(max_venues=-1)


def test_an_emptied_venue_book_comes_back_whole() -> None:
    c = Consolidator(Sequencer(epoch=1), max_venues=4)
    c.on_event(BookUpdate("a", "X-Y", 0, ((100, 3), (99, 2)), (), True), 0)
    c.sequencer.empty_topic("book@a.X-Y", 0)
    c.forget("book@a.X-Y")
    c.on_event(BookUpdate("a", "X-Y", 0, ((98, 1),), (), False), 0)
    assert c.sequencer.state("book@a.X-Y")["bids"] == [[100, 3], [99, 2], [98, 1]]
    assert c.sequencer.state("book.X-Y")["bids"] == [[100, 3], [99, 2], [98, 1]]


def test_a_simulated_session_never_crosses_a_venue_book_and_every_checksum_holds() -> None:
    """Three venues into one hub, with faults (resyncs, snapshots, disconnects): after
    every message no venue's book is crossed, and a client mirror following every
    topic applies every message (each checksum it carries holds)."""
    hub, mirror = Hub(Config(), epoch=1), Mirror()
    venue_books = 0
    checked = 0

    def sink(event: object, now_ns: int) -> None:
        nonlocal venue_books, checked
        for published in hub.publish(event, now_ns):  # type: ignore[arg-type]
            message = published.message
            assert isinstance(mirror.apply(message), Applied), message
            checked += "checksum" in message.data
            if message.topic.startswith("book@"):
                venue_books += 1
                state = hub.sequencer.state(message.topic)
                if state["bids"] and state["asks"]:
                    assert state["bids"][0][0] < state["asks"][0][0], message.topic

    plan = FaultPlan(drop=0.01, duplicate=0.01, reorder=0.01, disconnect=0.001)
    runs = [make_run(venue, 7, plan, sink=sink) for venue in VENUES]
    for _ in range(1500):
        for run in runs:
            run.step()
    assert venue_books > 1000 and checked > 100
    assert {t.partition(".")[0] for t in hub.topics()} >= {f"book@{v}" for v in VENUES}
    assert mirror.snapshot_checksum_mismatches == 0

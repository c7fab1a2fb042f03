"""A hub that follows another hub's stream holds the same state, positions and bytes, and
a follower that takes over continues the same stream with seq-continuous messages."""

from __future__ import annotations

import random

import pytest

from ticker.config import Config
from ticker.core.hub import Hub, Published
from ticker.core.messages import DataMessage
from ticker.core.mirror import Applied, Mirror
from ticker.core.position import Position
from ticker.core.replay import Replay
from ticker.core.sequencer import StreamBroken
from ticker.model.events import BookUpdate, NormalizedEvent, Quote, TakerSide, Trade

SYMBOLS = ("BTC-USD", "ETH-USD")
VENUES = ("cbx", "fxa", "itx")


def events(rng: random.Random, count: int) -> list[NormalizedEvent]:
    out: list[NormalizedEvent] = []
    for i in range(count):
        venue, symbol = rng.choice(VENUES), rng.choice(SYMBOLS)
        kind = rng.random()
        ts = 1_700_000_000_000_000_000 + i * 1_000_000
        if kind < 0.4:
            bids = tuple((100 - rng.randrange(5), rng.randrange(0, 4)) for _ in range(2))
            asks = tuple((101 + rng.randrange(5), rng.randrange(0, 4)) for _ in range(2))
            out.append(BookUpdate(venue, symbol, ts, bids, asks, rng.random() < 0.1))
        elif kind < 0.7:
            out.append(Quote(venue, symbol, ts, 100, rng.randrange(1, 9), 101, rng.randrange(1, 9)))
        else:
            side = TakerSide.BUY if rng.random() < 0.5 else TakerSide.SELL
            out.append(Trade(venue, symbol, ts, 100 + rng.randrange(3), 1, side, f"t{i}"))
    return out


def publish_all(hub: Hub, batch: list[NormalizedEvent]) -> list[Published]:
    out: list[Published] = []
    for i, event in enumerate(batch):
        out += hub.publish(event, now_ns=1_700_000_000_000_000_000 + i)
    return out


def test_a_follower_holds_the_writers_state_positions_and_bytes() -> None:
    writer, follower = Hub(Config(), 7), Hub(Config(), 7)
    published = publish_all(writer, events(random.Random(1), 400))
    applied = follower.apply([(p.message, p.payload) for p in published])
    assert [a.payload for a in applied] == [p.payload for p in published]
    assert applied[0].payload is published[0].payload  # the writer's bytes, not re-encoded
    assert follower.position == writer.position
    for topic in writer.topics():
        assert follower.snapshot(topic) == writer.snapshot(topic)
    assert follower.since(Position(7, 10)) == Replay(applied[10:])


def test_a_follower_refuses_a_hole_and_a_seq_skip() -> None:
    writer, follower = Hub(Config(), 1), Hub(Config(), 1)
    published = publish_all(writer, events(random.Random(2), 50))
    with pytest.raises(StreamBroken):
        follower.apply([(published[1].message, published[1].payload)])
    follower.apply([(published[0].message, published[0].payload)])
    message = published[1].message
    wrong = message._replace(seq=message.seq + 5, snapshot=False)
    with pytest.raises(StreamBroken):
        follower.apply([(wrong, b"")])


def test_restore_from_a_checkpoint_then_follow() -> None:
    writer = Hub(Config(), 3)
    rng = random.Random(3)
    first = publish_all(writer, events(rng, 200))
    snapshots, at = writer.checkpoint(), writer.position
    later = publish_all(writer, events(rng, 200))
    follower = Hub(Config(), 0)
    history = [(p.message, p.payload) for p in first[-20:]]
    follower.restore(at.epoch, at.offset, snapshots, history)
    assert follower.epoch == 3
    follower.apply([(p.message, p.payload) for p in later])
    for topic in writer.topics():
        assert follower.snapshot(topic) == writer.snapshot(topic)
    # The history before the checkpoint serves resumes.
    answer = follower.since(Position(3, at.offset - 20))
    assert isinstance(answer, Replay) and len(answer.entries) == 20 + len(later)


def test_a_follower_that_takes_over_continues_the_stream_for_clients() -> None:
    """A standby follows, then leads with empty venue inputs: every client's mirror keeps
    applying (no gap, no stale), and once every venue has resent its book, the composite
    equals what a hub that never stopped computes from the same venue books."""
    rng = random.Random(4)
    leader, standby = Hub(Config(), 5), Hub(Config(), 5)
    mirror = Mirror()
    stream: list[DataMessage] = [p.message for p in publish_all(leader, events(rng, 300))]
    standby.apply([(m, b"") for m in stream])
    standby.consolidator.adopt()
    # The new leader hears each venue's whole book again (a resync), then more events.
    resync: list[NormalizedEvent] = []
    for symbol in SYMBOLS:
        for venue in VENUES:
            bids = ((99, 2), (98, 1))
            asks = ((102, 3),)
            resync.append(BookUpdate(venue, symbol, 0, bids, asks, True))
    after = publish_all(standby, resync + events(rng, 200))
    for message in stream + [p.message for p in after]:
        assert isinstance(mirror.apply(message), Applied), message
    assert [p.offset for p in after] == list(
        range(stream[-1].offset + 1, stream[-1].offset + 1 + len(after))
    )
    for topic in standby.topics():
        assert mirror.data(topic) == standby.snapshot(topic).data
    # Session statistics continue: volume did not start over.
    volume_before = leader.snapshot("ticker.BTC-USD").data["volume"]
    assert standby.snapshot("ticker.BTC-USD").data["volume"] >= volume_before


def test_replace_levels_publishes_exactly_the_difference() -> None:
    hub = Hub(Config(), 1)
    hub.publish(BookUpdate("a", "X-Y", 0, ((10, 1), (9, 2)), ((11, 1),), True), 0)
    message = hub.sequencer.replace_levels("book.X-Y", {10: 1, 8: 4}, {12: 2}, 0)
    assert message is not None and not message.snapshot
    assert sorted(message.data["bids"]) == [[8, 4], [9, 0]]
    assert sorted(message.data["asks"]) == [[11, 0], [12, 2]]
    assert hub.sequencer.replace_levels("book.X-Y", {10: 1, 8: 4}, {12: 2}, 0) is None

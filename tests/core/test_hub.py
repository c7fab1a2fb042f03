from __future__ import annotations

import pytest

from ticker.config import Config
from ticker.core.codec import decode_server, parse_json
from ticker.core.hub import EventRejected, Hub, Published
from ticker.core.messages import DataMessage
from ticker.core.mirror import Applied, Mirror
from ticker.core.position import Position
from ticker.core.replay import Replay, Reset, ResetReason
from ticker.model.events import BookUpdate, NormalizedEvent, Quote, TakerSide, Trade

CONSOLIDATED_ONLY = Config(max_venues=0)
"""These tests follow the consolidated topics; venue topics are tested on their own."""


def test_publish_encodes_once_and_buffers_for_resume() -> None:
    hub = Hub(Config(replay_max_messages=3, max_venues=0), epoch=9)
    out = []
    for i in range(5):
        out += hub.publish(Quote("a", "X-Y", 0, 100 + i, 1, 200, 1), now_ns=1_000_000 * i)
    assert [p.message.offset for p in out] == [1, 2, 3, 4, 5]
    assert decode_server(out[-1].payload) == out[-1].message
    assert out[-1].json is out[-1].json  # rendered once, then shared
    assert parse_json(out[-1].json, snapshot=False) == out[-1].message
    assert hub.since(Position(9, 3)) == Replay(out[3:])
    assert hub.since(Position(9, 1)) == Reset(ResetReason.TOO_OLD)
    assert hub.position == Position(9, 5)


def test_keyframe_goes_into_the_stream() -> None:
    hub = Hub(CONSOLIDATED_ONLY, epoch=1)
    hub.publish(Quote("a", "X-Y", 0, 100, 1, 200, 1), 0)
    frame = hub.keyframe("quote.X-Y", 0)
    assert frame.message.snapshot and frame.message.offset == 2
    assert hub.snapshot("quote.X-Y").data == frame.message.data


# ------------------------------------------------------------ one event fails midway


def follow(hub: Hub, mirror: Mirror, published: list[Published]) -> None:
    """Apply what went out, decoded from its bytes, as a subscriber would."""
    for item in published:
        message = decode_server(item.payload)
        assert isinstance(message, DataMessage)
        assert mirror.apply(message) == Applied(message.seq)


def publish(hub: Hub, mirror: Mirror, event: NormalizedEvent) -> list[Published]:
    published = hub.publish(event, 0)
    follow(hub, mirror, published)
    return published


def rejected(hub: Hub, mirror: Mirror, event: NormalizedEvent) -> EventRejected:
    with pytest.raises(EventRejected) as info:
        hub.publish(event, 0)
    follow(hub, mirror, info.value.published)
    return info.value


def assert_consistent(hub: Hub, mirror: Mirror) -> None:
    """No hole in the offsets, and a subscriber holds what the hub holds."""
    replay = hub.since(Position(hub.epoch, 0))
    assert isinstance(replay, Replay)
    assert [item.offset for item in replay.entries] == list(range(1, hub.position.offset + 1))
    for topic in hub.topics():
        assert mirror.data(topic) == hub.snapshot(topic).data


def test_a_message_that_cannot_be_encoded_is_replaced_without_a_hole() -> None:
    hub, mirror = Hub(CONSOLIDATED_ONLY, epoch=3), Mirror()
    publish(hub, mirror, Trade("a", "X-Y", 0, 100, 2, TakerSide.BUY, "t1"))
    # A lone surrogate is a str but not UTF-8: the trade's encoding fails after the
    # sequencer gave it offset 3.
    error = rejected(hub, mirror, Trade("a", "X-Y", 0, 101, 3, TakerSide.BUY, "\ud800"))
    assert isinstance(error.__cause__, UnicodeEncodeError)
    # The trade's offset is filled by an empty keyframe of its topic; its statistics
    # (which encode) go out as they are.
    trade, ticker = error.published
    assert (trade.topic, trade.offset, trade.message.snapshot) == ("trade.X-Y", 3, True)
    assert trade.message.data == {} and (ticker.topic, ticker.offset) == ("ticker.X-Y", 4)
    assert_consistent(hub, mirror)
    after = publish(hub, mirror, Trade("a", "X-Y", 0, 102, 1, TakerSide.SELL, "t3"))
    assert after[0].offset == 5 and after[0].message.seq == 3
    assert_consistent(hub, mirror)


def test_a_value_beyond_the_wire_empties_only_its_topic() -> None:
    hub, mirror = Hub(CONSOLIDATED_ONLY, epoch=3), Mirror()
    publish(hub, mirror, BookUpdate("a", "X-Y", 0, ((100, 5),), ((101, 1),), True))
    publish(hub, mirror, Quote("a", "X-Y", 0, 100, 5, 101, 1))
    # Past the door's checks (say a future adapter's bug): a price msgpack cannot carry.
    error = rejected(hub, mirror, BookUpdate("b", "X-Y", 0, ((2**64, 1),), (), False))
    assert isinstance(error.__cause__, OverflowError)
    (keyframe,) = error.published
    assert keyframe.offset == 3 and keyframe.message.snapshot
    assert keyframe.message.data == {"bids": [], "asks": [], "checksum": 0}
    assert_consistent(hub, mirror)
    # The book starts again from what subscribers hold (nothing), per venue level.
    publish(hub, mirror, BookUpdate("a", "X-Y", 0, ((99, 2),), (), False))
    publish(hub, mirror, BookUpdate("b", "X-Y", 0, ((99, 3),), (), False))
    assert hub.snapshot("book.X-Y").data == {"bids": [[99, 5]], "asks": []}
    assert mirror.data("quote.X-Y") == {"bid": 100, "bid_size": 5, "ask": 101, "ask_size": 1}
    assert_consistent(hub, mirror)


def test_a_failure_before_the_sequencer_empties_the_topic_the_event_touched(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    hub, mirror = Hub(CONSOLIDATED_ONLY, epoch=3), Mirror()
    publish(hub, mirror, BookUpdate("a", "X-Y", 0, ((100, 5),), (), True))

    def broken(*args: object) -> None:
        raise RuntimeError("bug")

    # The consolidator has applied venue b's levels; the sequencer never hears of them.
    with monkeypatch.context() as patch:
        patch.setattr(hub.sequencer, "add_to_levels", broken)
        error = rejected(hub, mirror, BookUpdate("b", "X-Y", 0, ((100, 7),), (), True))
    assert isinstance(error.__cause__, RuntimeError)
    assert [(p.topic, p.offset, p.message.data) for p in error.published] == [
        ("book.X-Y", 2, {"bids": [], "asks": [], "checksum": 0})  # CRC32 of no levels
    ]
    publish(hub, mirror, BookUpdate("b", "X-Y", 0, ((100, 0),), (), False))
    # Without the consolidator forgetting b's level, this would be a size of -7.
    assert hub.snapshot("book.X-Y").data == {"bids": [], "asks": []}
    publish(hub, mirror, BookUpdate("a", "X-Y", 0, ((100, 6),), (), False))
    assert hub.snapshot("book.X-Y").data == {"bids": [[100, 6]], "asks": []}
    assert_consistent(hub, mirror)


def test_a_failure_after_the_sequencer_keeps_what_it_published(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    hub, mirror = Hub(CONSOLIDATED_ONLY, epoch=3), Mirror()
    real = hub.sequencer.set_fields

    def raises_after(topic: str, fields: dict[str, object], now_us: int) -> object:
        real(topic, fields, now_us)
        raise RuntimeError("bug after the state moved")

    with monkeypatch.context() as patch:
        patch.setattr(hub.sequencer, "set_fields", raises_after)
        error = rejected(hub, mirror, Trade("a", "X-Y", 0, 100, 2, TakerSide.BUY, "t1"))
    # Both messages were spent and both encode: both go out as they are (each is its
    # topic's first message, so a snapshot).
    assert [(p.topic, p.offset, p.message.snapshot) for p in error.published] == [
        ("trade.X-Y", 1, True),
        ("ticker.X-Y", 2, True),
    ]
    assert_consistent(hub, mirror)
    publish(hub, mirror, Trade("a", "X-Y", 0, 90, 1, TakerSide.SELL, "t2"))
    assert hub.snapshot("ticker.X-Y").data["volume"] == 3
    assert_consistent(hub, mirror)

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ticker.core.outbox import Offer, Outbox
from ticker.errors import ConfigError


@dataclass(frozen=True)
class Item:
    topic: str
    conflatable: bool
    size: int
    n: int = 0


def quote(n: int, size: int = 10, topic: str = "quote.A-B") -> Item:
    return Item(topic, True, size, n)


def trade(n: int, size: int = 10) -> Item:
    return Item("trade.A-B", False, size, n)


def test_queues_in_order_until_the_byte_bound() -> None:
    box: Outbox[Item] = Outbox(max_bytes=30)
    assert [box.offer(quote(i)) for i in range(3)] == [Offer.QUEUED] * 3
    assert box.bytes == 30
    batch = box.take()
    assert [item.n for item in batch.items] == [0, 1, 2]
    assert batch.snapshot_topics == [] and box.bytes == 0 and not box


def test_overflow_conflates_latest_value_topics_and_keeps_trades_in_order() -> None:
    box: Outbox[Item] = Outbox(max_bytes=30)
    box.offer(quote(1))
    box.offer(trade(2))
    box.offer(quote(3, topic="book.A-B"))
    assert box.offer(quote(4)) is Offer.CONFLATED
    assert box.conflations == 1
    assert box.offer(quote(5)) is Offer.CONFLATED  # absorbed: the snapshot will carry it
    assert box.offer(trade(6)) is Offer.QUEUED
    batch = box.take()
    assert [item.n for item in batch.items] == [2, 6]
    assert batch.snapshot_topics == ["quote.A-B", "book.A-B"]


def test_evicts_when_trades_alone_overflow() -> None:
    box: Outbox[Item] = Outbox(max_bytes=25)
    assert box.offer(trade(1)) is Offer.QUEUED
    assert box.offer(trade(2)) is Offer.QUEUED
    assert box.offer(trade(3)) is Offer.EVICT


def test_retain_drops_unsubscribed_topics() -> None:
    box: Outbox[Item] = Outbox(max_bytes=25)
    box.offer(trade(1))
    box.offer(quote(2))
    box.offer(quote(3))  # conflates quote.A-B
    box.retain(lambda topic: topic != "quote.A-B")
    batch = box.take()
    assert [item.topic for item in batch.items] == ["trade.A-B"]
    assert batch.snapshot_topics == []


def test_bound_must_be_positive() -> None:
    with pytest.raises(ConfigError):
        Outbox(0)


@given(st.lists(st.tuples(st.booleans(), st.integers(1, 40)), max_size=60), st.integers(1, 100))
def test_bytes_never_exceed_the_bound_and_order_is_kept(
    offers: list[tuple[bool, int]], bound: int
) -> None:
    box: Outbox[Item] = Outbox(max_bytes=bound)
    expected: list[int] = []
    for n, (conflatable, size) in enumerate(offers):
        item = Item("quote.A-B" if conflatable else "trade.A-B", conflatable, size, n)
        result = box.offer(item)
        assert box.bytes <= bound
        if result is Offer.EVICT:
            break
        if result is Offer.QUEUED and not conflatable:
            expected.append(n)
    taken = [item.n for item in box.take().items if not item.conflatable]
    assert taken == expected


@given(
    st.lists(
        st.lists(st.tuples(st.booleans(), st.integers(1, 40), st.sampled_from("ABC")), max_size=8),
        max_size=12,
    ),
    st.integers(1, 120),
)
def test_offer_all_is_the_same_as_offering_one_by_one(
    batches: list[list[tuple[bool, int, str]]], max_bytes: int
) -> None:
    together: Outbox[Item] = Outbox(max_bytes)
    one_by_one: Outbox[Item] = Outbox(max_bytes)
    n = 0
    for batch in batches:
        items = []
        for conflatable, size, symbol in batch:
            topic = f"{'quote' if conflatable else 'trade'}.{symbol}-X"
            items.append(Item(topic, conflatable, size, n))
            n += 1
        result, conflated = together.offer_all(items)
        expected_conflated = 0
        expected = Offer.QUEUED
        for item in items:
            single = one_by_one.offer(item)
            if single is Offer.EVICT:
                expected = Offer.EVICT
                break
            expected_conflated += single is Offer.CONFLATED
        assert (result, conflated) == (expected, expected_conflated)
        assert together.bytes == one_by_one.bytes <= max_bytes
        if result is Offer.EVICT:
            break
    assert together.take() == one_by_one.take()


def test_held_bytes_count_against_the_bound_and_a_lone_burst_always_fits() -> None:
    box: Outbox[Item] = Outbox(max_bytes=30)
    assert box.hold(100)  # nothing waits: one burst fits whatever its size
    assert box.offer(trade(1)) is Offer.EVICT  # ...but nothing fits behind it
    box.release(100)
    assert box.offer(trade(1)) is Offer.QUEUED
    assert box.hold(20)
    assert not box.hold(1)  # 10 queued + 20 held: full
    assert box.held == 20
    assert box.offer(quote(2)) is Offer.CONFLATED
    box.take()
    box.release(20)
    assert box.held == 0 and box.hold(30)


def test_holding_conflates_what_waits_to_make_room() -> None:
    box: Outbox[Item] = Outbox(max_bytes=30)
    box.offer(quote(1, size=25))
    assert box.hold(10)
    assert box.take().snapshot_topics == ["quote.A-B"]


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["offer", "offer_all", "conflate", "hold", "retain", "take"]),
            st.booleans(),
            st.integers(1, 40),
            st.sampled_from("AB"),
        ),
        max_size=40,
    ),
    st.integers(1, 100),
)
def test_waiting_says_whether_anything_waits_after_every_change(
    operations: list[tuple[str, bool, int, str]], bound: int
) -> None:
    """The fanout writes straight into the socket when `waiting` is false: it must be
    false exactly when a `take` would return nothing, or a write would overtake what
    waits."""
    box: Outbox[Item] = Outbox(max_bytes=bound)
    for n, (name, conflatable, size, symbol) in enumerate(operations):
        item = Item(f"{'quote' if conflatable else 'trade'}.{symbol}-X", conflatable, size, n)
        if name == "offer":
            box.offer(item)
        elif name == "offer_all":
            box.offer_all([item] * (size % 4))  # zero to three of it
        elif name == "conflate":
            box.conflate(f"quote.{symbol}-X")
        elif name == "hold":
            box.hold(size)
        elif name == "retain":
            dropped = f".{symbol}-X"
            box.retain(lambda topic: not topic.endswith(dropped))  # noqa: B023 (called here)
        else:
            box.take()
        waiting = box.waiting
        taken = box.take()
        assert waiting is bool(taken.items or taken.snapshot_topics)
        assert not box.waiting
        # Put back what was taken, so that the operations also meet a busy outbox.
        box.offer_all(taken.items)
        for topic in taken.snapshot_topics:
            box.conflate(topic)

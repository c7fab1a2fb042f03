"""L2Book against a plain dict model, for any sequence of level changes."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from ticker.ingest.book import APPLIED, APPLIED_AT_TOP, EMPTY_BBO, REJECTED, L2Book

changes = st.lists(
    st.tuples(st.booleans(), st.integers(1, 40), st.sampled_from([0, 0, 1, 2, 5])), max_size=80
)


@given(changes)
def test_book_matches_a_dict_model(ops: list[tuple[bool, int, int]]) -> None:
    book = L2Book()
    bids: dict[int, int] = {}
    asks: dict[int, int] = {}
    for is_bid, price, size in ops:
        model = bids if is_bid else asks
        result = (book.set_bid if is_bid else book.set_ask)(price, size, 1000)
        assert result in (APPLIED, APPLIED_AT_TOP)
        if size:
            model[price] = size
        else:
            model.pop(price, None)
    assert book.bid_levels() == tuple(sorted(bids.items(), reverse=True))
    assert book.ask_levels() == tuple(sorted(asks.items()))
    assert book.bid_levels(3) == book.bid_levels()[:3]
    assert book.ask_levels(3) == book.ask_levels()[:3]
    assert book.depth() == (len(bids), len(asks))
    best_bid = max(bids, default=None)
    best_ask = min(asks, default=None)
    assert book.bbo() == (
        best_bid,
        None if best_bid is None else bids[best_bid],
        best_ask,
        None if best_ask is None else asks[best_ask],
    )
    assert book.crossed() == (
        best_bid is not None and best_ask is not None and best_bid >= best_ask
    )


@given(changes)
def test_top_of_book_is_reported_exactly_when_the_bbo_may_move(
    ops: list[tuple[bool, int, int]],
) -> None:
    book = L2Book()
    for is_bid, price, size in ops:
        before = book.bbo()
        result = (book.set_bid if is_bid else book.set_ask)(price, size, 1000)
        if result == APPLIED:
            assert book.bbo() == before


def test_a_full_side_refuses_new_levels_but_not_changes() -> None:
    book = L2Book()
    for price in (1, 2, 3):
        book.set_bid(price, 1, 3)
    assert book.set_bid(4, 1, 3) == REJECTED
    assert book.set_bid(2, 9, 3) == APPLIED
    assert book.set_bid(2, 0, 3) == APPLIED
    assert book.set_bid(4, 1, 3) == APPLIED_AT_TOP


def test_replace_and_clear() -> None:
    book = L2Book()
    book.replace([(5, 1), (7, 0), (6, 2), (5, 3)], [(9, 1)])
    assert book.bid_levels() == ((6, 2), (5, 3))
    assert book.bbo() == (6, 2, 9, 1)
    book.clear()
    assert book.bbo() == EMPTY_BBO
    assert book.bid_levels() == book.ask_levels() == ()

"""Fuzz what a publisher sends (`decode_batch`, then `check_event` on each event)."""

from __future__ import annotations

import msgpack
from hypothesis import given
from hypothesis import strategies as st

from ticker.errors import BadMessage
from ticker.model.event_codec import MAX_VALUE, check_event, decode_event, encode_event
from ticker.model.events import BookUpdate, NormalizedEvent, Quote, TakerSide, TickerStats, Trade
from ticker.wire.publish import MAX_BATCH_EVENTS, decode_batch, encode_batch

from .budget import FUZZ, values

KNOWN = frozenset({"BTC-USD", "ETH-USD"})


def packed(value: object) -> bytes:
    return msgpack.packb(value, use_bin_type=True)  # type: ignore[no-any-return]


any_int = st.integers(-(2**63), 2**64 - 1)
field = st.one_of(any_int, st.none(), st.booleans(), values)
event_shaped = st.one_of(
    st.lists(field, max_size=11),
    st.tuples(st.sampled_from(["t", "q", "b", "k", "x"]), st.text(max_size=20),
              st.sampled_from(["BTC-USD", "ETH-USD", "NOPE", ""]), any_int,
              st.lists(field | st.sampled_from(["b", "s"]), max_size=7))
    .map(lambda t: [t[0], t[1], t[2], t[3], *t[4]]),
    st.tuples(st.integers(0, 9), st.integers(0, 9), field | st.sampled_from(["b", "s"]),
              field | st.text(max_size=70))
    .map(lambda t: ["t", "cbx", "BTC-USD", 1, t[0], t[1], t[2], t[3]]),
    st.tuples(st.sampled_from(["cbx", "Bad Venue"]), any_int, st.booleans(),
              st.lists(any_int, max_size=9), st.lists(any_int, max_size=9))
    .map(lambda t: ["b", t[0], "BTC-USD", t[1], t[2], t[3], t[4]]),
)  # fmt: skip
batch_shaped = st.one_of(
    values,
    st.tuples(field, st.lists(event_shaped, max_size=6)).map(lambda t: ["pub", t[0], t[1]]),
)


def check_batch(data: bytes) -> None:
    try:
        batch = decode_batch(data)
    except BadMessage:  # BadEvent is one
        return
    assert 1 <= len(batch.events) <= MAX_BATCH_EVENTS
    assert len(batch.events) <= len(data)
    for event in batch.events:
        reason = check_event(event, KNOWN)
        assert reason is None or isinstance(reason, str)
        assert decode_event(encode_event(event)) == event
    assert decode_batch(encode_batch(batch.batch_id, batch.events)) == batch


@FUZZ
@given(st.binary(max_size=512))
def test_any_bytes_give_a_batch_or_a_bad_message(data: bytes) -> None:
    check_batch(data)


@FUZZ
@given(batch_shaped.map(packed))
def test_batch_shaped_messages_give_a_batch_or_a_bad_message(data: bytes) -> None:
    check_batch(data)


@FUZZ
@given(event_shaped)
def test_an_event_array_gives_an_event_or_a_bad_event(array: list[object]) -> None:
    check_batch(packed(["pub", 1, [array]]))


value = st.integers(-MAX_VALUE, MAX_VALUE)
opt = st.none() | value
symbol = st.sampled_from(["BTC-USD", "ETH-USD", "DOGE-USD"])
venue = st.sampled_from(["cbx", "fxa", "x y"])
levels = st.lists(st.tuples(value, value), max_size=5).map(tuple)
events = st.one_of(
    st.builds(Trade, venue, symbol, value, value, value, st.sampled_from(TakerSide),
              st.text(max_size=70)),
    st.builds(Quote, venue, symbol, value, opt, opt, opt, opt),
    st.builds(BookUpdate, venue, symbol, value, levels, levels, st.booleans()),
    st.builds(TickerStats, venue, symbol, value, opt, opt, opt, opt, value, opt),
)  # fmt: skip


@FUZZ
@given(st.integers(-(2**63), 2**63 - 1), st.lists(events, min_size=1, max_size=8))
def test_batches_round_trip(batch_id: int, sent: list[NormalizedEvent]) -> None:
    batch = decode_batch(encode_batch(batch_id, sent))
    assert (batch.batch_id, list(batch.events)) == (batch_id, sent)
    for event in batch.events:
        reason = check_event(event, KNOWN)
        assert reason is None or isinstance(reason, str)

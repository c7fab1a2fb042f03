from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.strategies import data_messages, server_messages
from ticker.core.codec import (
    NANOS_FIELDS,
    _render_json_general,
    decode_client,
    decode_frame,
    decode_server,
    encode_client,
    encode_data,
    encode_server,
    parse_json,
    render_json,
)
from ticker.core.messages import (
    DataMessage,
    Heartbeat,
    Hello,
    ServerMessage,
    Subscribe,
    Unsubscribe,
)
from ticker.errors import BadMessage


@given(server_messages)
def test_decode_of_encode_is_identity_for_every_server_message(message: ServerMessage) -> None:
    assert decode_server(encode_server(message)) == message


@given(st.lists(server_messages, max_size=6))
def test_a_frame_of_concatenated_messages_decodes_in_order(messages: list[ServerMessage]) -> None:
    frame = b"".join(encode_server(m) for m in messages)
    assert decode_frame(frame) == messages


@given(data_messages())
def test_json_form_round_trips_exactly(message: DataMessage) -> None:
    assert parse_json(render_json(message), snapshot=message.snapshot) == message


topic_lists = st.lists(st.text(max_size=20), max_size=4).map(tuple)


@given(
    st.one_of(
        st.builds(Subscribe, topic_lists, st.none() | st.text(max_size=20)),
        st.builds(Unsubscribe, topic_lists),
    )
)
def test_decode_of_encode_is_identity_for_client_commands(command: Subscribe | Unsubscribe) -> None:
    assert decode_client(encode_client(command)) == command


def test_json_renders_prices_as_exact_decimals() -> None:
    message = DataMessage(
        False, "book.BTC-USD", 3, 10, 5, {"bids": [[43_250_500_000_000, 1]], "asks": []}
    )
    assert render_json(message) == (
        '{"topic":"book.BTC-USD","seq":3,"offset":10,"ts":5,'
        '"data":{"bids":[["43250.5","0.000000001"]],"asks":[]}}'
    )


@pytest.mark.parametrize(
    "raw",
    [
        b"\xc1",  # never-used msgpack byte
        msgpack.packb({"a": 1}),
        msgpack.packb([]),
        msgpack.packb(["nope", 1]),
        msgpack.packb(["sub", "quote.*"]),
        msgpack.packb(["sub", ["quote.*"], 5]),
        msgpack.packb(["unsub"]),
        msgpack.packb([1, 2]),
    ],
)
def test_bad_client_bytes_raise_bad_message(raw: bytes) -> None:
    with pytest.raises(BadMessage) as info:
        decode_client(raw)
    assert info.value.close_code == 4400


@pytest.mark.parametrize(
    "raw",
    [
        msgpack.packb(["d", "quote.X-Y", "1", 2, 3, {}]),
        msgpack.packb(["d", "quote.X-Y", 1, 2, 3]),
        msgpack.packb(["hb", 1, 2]),
        msgpack.packb(["h", 1, 2, 3, 4.0, "gzip"]),
        msgpack.packb(["h", 1, 2, 3, 4.0, "zstd", "32769"]),
        msgpack.packb(["r", 1, 2, 3]),
        msgpack.packb(["e", "x", "y"]),
        msgpack.packb(["zz"]),
        msgpack.packb(["d", "quote.X-Y", True, 2, 3, {}]),
    ],
)
def test_ill_formed_server_messages_raise_bad_message(raw: bytes) -> None:
    with pytest.raises(BadMessage):
        decode_server(raw)


def test_truncated_frame_is_refused() -> None:
    frame = encode_data(DataMessage(False, "quote.X-Y", 1, 1, 1, {"bid": 5}))
    with pytest.raises(BadMessage):
        decode_frame(frame + frame[:-1])


@pytest.mark.parametrize(
    "text", ["{", '{"topic":"x"}', '{"topic":"t","seq":1,"offset":1,"ts":1,"data":{"bid":"1.2.3"}}']
)
def test_bad_json_raises_bad_message(text: str) -> None:
    with pytest.raises(BadMessage):
        parse_json(text, snapshot=False)


def test_the_hello_names_the_zstd_dictionary_at_its_end() -> None:
    hello = Hello(1, 7, 12, 15.0, "zstd", 32769)
    assert msgpack.unpackb(encode_server(hello)) == ["h", 1, 7, 12, 15.0, "zstd", 32769]
    # A server from before the field: six elements, no dictionary named.
    assert decode_server(msgpack.packb(["h", 1, 7, 12, 15.0, None])) == Hello(
        1, 7, 12, 15.0, None, None
    )


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (["h", 1, 7, 12, 15.0, None, 32769, "later"], Hello(1, 7, 12, 15.0, None, 32769)),
        (["hb", 7, 12, 5, {"later": 1}], Heartbeat(7, 12, 5)),
        (
            ["d", "quote.X-Y", 2, 12, 5, {"bid": 1}, 9],
            DataMessage(False, "quote.X-Y", 2, 12, 5, {"bid": 1}),
        ),
    ],
)
def test_elements_a_reader_does_not_know_are_ignored(array: list[object], message: object) -> None:
    # Fields are only ever added at the end of a message's array: a reader keeps
    # understanding a newer server.
    assert decode_frame(msgpack.packb(array)) == [message]


# -- the fast JSON renderer writes exactly what the json module writes ----------------

MAX = 2**63 - 1
EXTREMES = [0, 1, -1, 10**9, -(10**9), 10**9 + 1, 123_456_789, -123_456_789, MAX, -MAX, 2**64]


def _reference(message: DataMessage) -> str:
    """The JSON form built independently: json.dumps over Decimal-formatted nanos."""

    def dec(nanos: int) -> str:
        text = format(Decimal(f"{int(nanos)}e-9"), "f")  # exact at any size: no context
        return text.rstrip("0").rstrip(".") if "." in text else text

    data: dict[str, object] = {}
    for name, value in message.data.items():
        if name in ("bids", "asks"):
            data[name] = [[dec(p), dec(s)] for p, s in value]
        elif name in NANOS_FIELDS and value is not None:
            data[name] = dec(value)
        else:
            data[name] = value
    obj = {"topic": message.topic, "seq": message.seq, "offset": message.offset}
    obj |= {"ts": message.ts_us, "data": data}
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


@given(data_messages())
def test_json_equals_an_independent_rendering(message: DataMessage) -> None:
    assert render_json(message) == _reference(message) == _render_json_general(message)


@pytest.mark.parametrize("value", EXTREMES)
def test_json_renders_extreme_nanos_exactly(value: int) -> None:
    data = {"bid": value, "bid_size": None, "last": value, "bids": [[value, value]]}
    message = DataMessage(False, "quote.X-Y", MAX, 0, -5, data)
    assert render_json(message) == _reference(message)
    for _ in range(2):  # the second time from the renderer's cache
        assert render_json(message) == _reference(message)
    assert parse_json(render_json(message), snapshot=False) == message


def test_json_fractions_keep_their_zeros_and_drop_trailing_ones() -> None:
    data = {"price": 1, "size": -1_000_000_010, "change": -500_000_000, "volume": 0}
    message = DataMessage(True, "trade.X-Y", 1, 2, 3, data | {"id": 'a"\\é\n', "venue_ts": 7})
    assert render_json(message) == (
        '{"topic":"trade.X-Y","seq":1,"offset":2,"ts":3,"data":{"price":"0.000000001",'
        '"size":"-1.00000001","change":"-0.5","volume":"0","id":"a\\"\\\\é\\n","venue_ts":7}}'
    )


@pytest.mark.parametrize(
    "data",
    [
        {"bid": 2.5},  # a float where nanos belong: the json module decides (here: fails)
        {"other": 1.5, "flag": True, "none": None, "nested": {"a": [1, "b"]}},
        {1: "int key"},
        {"bid": True},
    ],
)
def test_unusual_values_render_as_the_json_module_would(data: dict[str, object]) -> None:
    message = DataMessage(False, "quote.X-Y", 1, 2, 3, data)
    try:
        expected = _render_json_general(message)
    except (TypeError, ValueError) as exc:
        with pytest.raises(type(exc)):
            render_json(message)
    else:
        assert render_json(message) == expected


# -- every shape the hub publishes, and the values around them -------------------------

# Every size of int: the wire's int64 and past it (msgpack carries up to uint64, Python
# any), a small pool so values repeat and come from the renderer's caches, and both signs.
wide_ints = st.one_of(
    st.integers(),
    st.integers(min_value=-(2**64), max_value=2**64),
    st.sampled_from([*EXTREMES, 2**63, -(2**63), 10**30, -(10**30), 999_999_999]),
    st.integers(min_value=-3 * 10**9, max_value=3 * 10**9),
)
wide_nanos = st.none() | wide_ints
# Unicode of every plane, control characters (escaped) and lone surrogates (passed
# through as the json module passes them).
any_text = st.text(st.characters(codec=None) | st.characters(categories=["Cs"]), max_size=12)
wide_levels = st.lists(st.lists(wide_ints, min_size=2, max_size=2), max_size=40)
# What the fast path hands to the json module: shapes and numbers it does not render.
odd_level = st.one_of(
    st.lists(wide_ints, max_size=3),
    st.tuples(wide_ints, wide_ints),
    st.tuples(st.sampled_from([2.0, 2e9, 1.5, True, False, None, "1"]), wide_ints),
    st.tuples(wide_ints, st.sampled_from([2e9, True, None, Decimal(2), "2"])),
    st.just(5),
)
odd_side = st.one_of(
    st.lists(st.one_of(st.lists(wide_ints, min_size=2, max_size=2), odd_level), max_size=6),
    st.tuples(st.lists(wide_ints, min_size=2, max_size=2)),
    st.just(()),
    st.none(),
)


def _wide_data(channel: str) -> st.SearchStrategy[dict[str, Any]]:
    if channel.startswith("book"):
        sides = st.fixed_dictionaries({"bids": wide_levels, "asks": wide_levels})
        return sides | sides.map(lambda d: d | {"checksum": 2**32 - 1})
    if channel == "quote":
        return st.dictionaries(st.sampled_from(["bid", "bid_size", "ask", "ask_size"]), wide_nanos)
    if channel == "ticker":
        names = ["last", "open", "high", "low", "volume", "change"]
        return st.dictionaries(st.sampled_from(names), wide_nanos)
    if channel == "trade":
        trade = {"price": wide_ints, "size": wide_ints, "side": st.sampled_from(["buy", "sell"])}
        trade |= {"id": any_text, "venue": any_text, "venue_ts": wide_ints}
        return st.fixed_dictionaries(trade)
    plain = st.none() | st.booleans() | wide_ints | any_text
    return st.dictionaries(any_text, plain, max_size=4)


@st.composite
def wide_messages(draw: st.DrawFn) -> DataMessage:
    channel = draw(
        st.sampled_from(["book", "book@itx", "book@cbx", "quote", "ticker", "trade", "x"])
    )
    symbol = draw(st.sampled_from(["BTC-USD", "ETH-USD"]) | any_text)
    seq, offset, ts_us = draw(wide_ints), draw(wide_ints), draw(wide_ints)
    data = draw(_wide_data(channel))
    return DataMessage(draw(st.booleans()), f"{channel}.{symbol}", seq, offset, ts_us, data)


def _same_as_reference(message: DataMessage) -> str | None:
    """render_json's text, asserted equal to the json module's (or the same exception)."""
    try:
        expected = _render_json_general(message)
    except (TypeError, ValueError) as exc:
        with pytest.raises(type(exc)):
            render_json(message)
        return None
    assert render_json(message) == expected
    assert render_json(message) == expected  # again, from the caches the first one filled
    return expected


@settings(max_examples=400)
@given(wide_messages())
def test_json_equals_the_json_module_for_every_channel_and_value(message: DataMessage) -> None:
    text = _same_as_reference(message)
    if text is not None:  # the json module took it: so does the Decimal-built one
        assert text == _reference(message)


@settings(max_examples=300)
@given(st.lists(wide_levels, min_size=1, max_size=3), odd_side, st.booleans())
def test_book_sides_the_fast_path_does_not_take_render_as_the_json_module_would(
    warm: list[list[list[int]]], side: object, bids: bool
) -> None:
    for levels in warm:  # fill the caches first: an odd value must not find an int's text
        _same_as_reference(DataMessage(False, "book.X-Y", 1, 2, 3, {"bids": levels}))
    data = {"bids": side, "asks": []} if bids else {"bids": [[1, 1]], "asks": side}
    _same_as_reference(DataMessage(False, "book.X-Y", 1, 2, 3, data))


@pytest.mark.parametrize(
    "level",
    [
        [2e9, 1],  # 2.0 equals 2 and hashes as 2: the cache must not answer for it
        [2_000_000_000, 1e9],
        [Decimal(2_000_000_000), 1],
        [True, 1],  # a bool formats as its int
        [2_000_000_000, 1, 0],  # not a pair
        [2_000_000_000],
    ],
)
def test_a_level_that_is_not_two_ints_is_not_taken_for_a_cached_one(level: list[object]) -> None:
    cached = DataMessage(False, "book.X-Y", 1, 2, 3, {"bids": [[2_000_000_000, 1_000_000_000]]})
    assert render_json(cached) == _reference(cached)
    for side in ([level], [[1, 1], level, [1, 1]]):  # a delta's one level, and a book's
        data = {"bids": side, "asks": []}
        _same_as_reference(DataMessage(False, "book.X-Y", 1, 2, 3, data))


# -- the paths of their own (one-level book delta, one-field delta, trade) and the text a
# pair's second message takes from its first: never for data that only compares equal --


class _Int(int):
    """An int subclass: equal to its int, and not an exact int."""


def _lookalikes(value: int) -> list[object]:
    """Values equal to `value` (or that render like it) that are not an exact int."""
    out: list[object] = [_Int(value), Decimal(value), str(value), float(value)]
    if value in (0, 1):
        out.append(bool(value))
    return out


def _replace_leaf(data: Any, path: tuple[Any, ...], value: object) -> Any:
    """A deep copy of `data` (dicts and lists) with the leaf at `path` set to `value`."""
    copied = json.loads(json.dumps(data))  # data here is ints, strs, lists and dicts only
    target = copied
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    return copied


def _leaves(data: dict[str, Any]) -> list[tuple[Any, ...]]:
    paths: list[tuple[Any, ...]] = []
    for name, value in data.items():
        if isinstance(value, list):
            paths += [(name, i, j) for i, level in enumerate(value) for j in range(len(level))]
        elif type(value) is int:
            paths.append((name,))
    return paths


def _twins(data: dict[str, Any]) -> list[dict[str, Any]]:
    """Data equal to `data`, or nearly: a copy, each int leaf as each look-alike, the keys
    in the other order, a level as a tuple, the level on the other side."""
    twins = [json.loads(json.dumps(data))]
    for path in _leaves(data):
        value = data[path[0]] if len(path) == 1 else data[path[0]][path[1]][path[2]]
        twins += [_replace_leaf(data, path, other) for other in _lookalikes(value)]
        twins.append(_replace_leaf(data, path, value + 1))
    twins.append(dict(reversed(list(data.items()))))
    if "bids" in data and "asks" in data:
        twins.append({"bids": [tuple(level) for level in data["bids"]], "asks": data["asks"]})
        twins.append(
            {"bids": data["asks"], "asks": data["bids"]}
            | {k: v for k, v in data.items() if k not in ("bids", "asks")}
        )
    return twins


def _as_reference(message: DataMessage) -> None:
    """render_json renders `message` as the json module does, or raises as it does (a
    look-alike Decimal past the int64 range raises decimal's own error there)."""
    try:
        expected = _render_json_general(message)
    except Exception as exc:
        with pytest.raises(type(exc)):
            render_json(message)
    else:
        assert render_json(message) == expected


small_ints = st.one_of(st.integers(0, 3), st.sampled_from(EXTREMES), wide_ints)
one_level_books = st.builds(
    lambda price, size, bids: (
        {"bids": [[price, size]], "asks": []} if bids else {"bids": [], "asks": [[price, size]]}
    ),
    small_ints,
    small_ints,
    st.booleans(),
)
one_field_deltas = st.builds(
    lambda name, value: {name: value}, st.sampled_from(sorted(NANOS_FIELDS)), small_ints
)
trades = st.fixed_dictionaries(
    {
        "price": small_ints,
        "size": small_ints,
        "side": st.sampled_from(["buy", "sell"]),
        "id": any_text,
        "venue": any_text,
        "venue_ts": small_ints,
    }
)


@settings(max_examples=300)
@given(st.one_of(one_level_books, one_field_deltas, trades), small_ints, st.booleans())
def test_a_pairs_second_message_renders_from_its_own_data(
    data: dict[str, Any], ts_us: int, same_ts: bool
) -> None:
    first = DataMessage(False, "book.X-Y", 7, 100, ts_us, data)
    twin_stamps: list[Any] = [ts_us if same_ts else ts_us + 1, _Int(ts_us)]
    if abs(ts_us) < 2**1000:  # a float past that is not a float
        twin_stamps.append(float(ts_us))
    for twin in _twins(data):
        for twin_ts in twin_stamps:
            _as_reference(first)  # the composite's, then its venue's
            _as_reference(DataMessage(False, "book@itx.X-Y", 8, 101, twin_ts, twin))


@pytest.mark.parametrize(
    "twin",
    [
        {"bids": [[1, True]], "asks": []},  # True == 1 and hashes as 1
        {"bids": [[1, 1.0]], "asks": []},
        {"bids": [[1, Decimal(1)]], "asks": []},
        {"bids": [], "asks": [[1, 1]]},  # the same level on the other side
        {"asks": [], "bids": [[1, 1]]},  # the same keys in the other order
        {"bids": [(1, 1)], "asks": []},  # a tuple renders as the list does
        {"bid": 1},
        {"bid": True},
        {"bid_size": 1},  # the same value under another name
    ],
)
def test_the_pair_cache_answers_only_for_the_same_exact_data(twin: dict[str, object]) -> None:
    for first in ({"bids": [[1, 1]], "asks": []}, {"bid": 1}):
        _as_reference(DataMessage(False, "book.X-Y", 1, 2, 3, first))
        _as_reference(DataMessage(False, "book@itx.X-Y", 1, 3, 3, twin))

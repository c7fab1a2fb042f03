"""Hypothesis strategies for protocol values, shared by the core's tests."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from ticker.core.messages import DataMessage, Error, Heartbeat, Hello, Reset

SYMBOLS = ["BTC-USD", "ETH-USD", "SOL-USD", "X1-Y2"]
nanos = st.integers(min_value=1, max_value=10**15)
maybe_nanos = st.none() | nanos
u63 = st.integers(min_value=0, max_value=2**63 - 1)
levels = st.lists(st.lists(nanos, min_size=2, max_size=2), max_size=8)


def _data(channel: str) -> st.SearchStrategy[dict[str, Any]]:
    if channel == "book":
        return st.fixed_dictionaries({"bids": levels, "asks": levels})
    if channel == "quote":
        names = ["bid", "bid_size", "ask", "ask_size"]
        return st.dictionaries(st.sampled_from(names), maybe_nanos)
    if channel == "ticker":
        names = ["last", "open", "high", "low", "volume", "change"]
        return st.dictionaries(st.sampled_from(names), maybe_nanos)
    return st.fixed_dictionaries(
        {
            "price": nanos,
            "size": nanos,
            "side": st.sampled_from(["buy", "sell"]),
            "id": st.text(max_size=12),
            "venue": st.sampled_from(["cbx", "fxa", "itx"]),
            "venue_ts": u63,
        }
    )


@st.composite
def data_messages(draw: st.DrawFn) -> DataMessage:
    channel = draw(st.sampled_from(["book", "quote", "ticker", "trade"]))
    topic = f"{channel}.{draw(st.sampled_from(SYMBOLS))}"
    return DataMessage(
        draw(st.booleans()), topic, draw(u63), draw(u63), draw(u63), draw(_data(channel))
    )


server_messages = st.one_of(
    data_messages(),
    st.builds(
        Hello,
        st.integers(1, 9),
        u63,
        u63,
        st.floats(0.1, 60),
        st.sampled_from([None, "zstd"]),
        st.none() | st.integers(1, 2**32 - 1),
    ),
    st.builds(Heartbeat, u63, u63, u63),
    st.builds(Reset, u63, u63, st.sampled_from(["too_old", "other_epoch", "ahead"])),
    st.builds(Error, st.integers(4000, 4999), st.text(max_size=40)),
)

"""Fuzz the client command decoder (`decode_client`) and, for clients reading a hostile
server, the server message decoders (`decode_server`, `decode_frame`)."""

from __future__ import annotations

import contextlib

import msgpack
from hypothesis import given
from hypothesis import strategies as st

from ticker.core.codec import (
    decode_client,
    decode_frame,
    decode_server,
    encode_client,
    encode_server,
)
from ticker.core.messages import Authenticate, Subscribe, Unsubscribe
from ticker.errors import BadMessage

from ..strategies import server_messages
from .budget import FUZZ, values


def packed(value: object) -> bytes:
    return msgpack.packb(value, use_bin_type=True)  # type: ignore[no-any-return]


command_shaped = st.one_of(
    values,
    st.lists(values, max_size=4).map(lambda rest: ["sub", *rest]),
    st.lists(values, max_size=3).map(lambda rest: ["unsub", *rest]),
    st.lists(values, max_size=2).map(lambda rest: ["auth", *rest]),
    st.tuples(st.lists(st.text(max_size=10) | values, max_size=4), values).map(
        lambda t: ["sub", t[0], t[1]]
    ),
)
inputs = st.binary(max_size=256) | command_shaped.map(packed)


@FUZZ
@given(inputs)
def test_a_command_decodes_or_is_bad_and_round_trips(data: bytes) -> None:
    try:
        command = decode_client(data)
    except BadMessage:
        return
    assert isinstance(command, Subscribe | Unsubscribe | Authenticate)
    if isinstance(command, Authenticate):
        assert isinstance(command.token, str) and len(command.token) <= len(data)
    else:
        assert len(command.topics) <= len(data)  # bounded by the input
        assert all(isinstance(t, str) for t in command.topics)
    assert decode_client(encode_client(command)) == command


@FUZZ
@given(
    st.one_of(
        st.builds(
            Subscribe,
            st.lists(st.text(max_size=70), max_size=8).map(tuple),
            st.none() | st.text(max_size=50),
        ),
        st.builds(Unsubscribe, st.lists(st.text(max_size=70), max_size=8).map(tuple)),
        st.builds(Authenticate, st.text(max_size=200)),
    )
)
def test_every_command_round_trips(command: Subscribe | Unsubscribe | Authenticate) -> None:
    assert decode_client(encode_client(command)) == command


@FUZZ
@given(st.binary(max_size=256) | values.map(packed) | st.lists(values, max_size=6).map(packed))
def test_a_server_frame_decodes_or_is_bad(data: bytes) -> None:
    for decode in (decode_server, decode_frame):
        with contextlib.suppress(BadMessage):
            decode(data)


@FUZZ
@given(st.lists(server_messages, min_size=1, max_size=5))
def test_server_frames_round_trip(messages: list) -> None:  # type: ignore[type-arg]
    frame = b"".join(encode_server(m) for m in messages)
    assert decode_frame(frame) == messages

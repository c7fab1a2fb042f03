"""The tracker's one-pass frame path and the updates' book state built when read.

`Tracker.receive_frame` (what the WebSocket feed calls) must give exactly what
`receive(decode_messages(frame))` gives, and every update's `state` must be the
topic's state at that update, however late the caller reads it: a book side shared
with later updates must never change.
"""

from __future__ import annotations

import base64
import copy
import json
import pickle
import random
from dataclasses import FrozenInstanceError
from pathlib import Path
from typing import Any

import msgpack
import pytest

from feeds.simulator import make_simulator
from ticker.client.errors import FeedProtocolError
from ticker.client.tracker import Step, Tracker, decode_messages
from ticker.client.updates import Update, UpdateKind, book_update
from ticker.config import Config
from ticker.core.checksum import book_checksum
from ticker.core.codec import encode_data, encode_server
from ticker.core.delta import apply_levels, book_data
from ticker.core.hub import Hub
from ticker.core.messages import DataMessage, Heartbeat, Hello
from ticker.core.mirror import BookSide
from ticker.core.position import Position
from ticker.core.topics import ChannelKind, channel_kind
from ticker.errors import BadMessage
from ticker.model.fixed import MAX_NANOS
from ticker.venues import make_adapter

NOW_NS = 1_763_762_000_000_000_000
TS_US = NOW_NS // 1000 - 1_000
CASES_DIR = Path(__file__).resolve().parents[2] / "conformance" / "cases"
HELLO = encode_server(Hello(1, 7, 0, 15.0, None))


def session_frames(frames_per_venue: int, keyframe_interval: int) -> list[bytes]:
    """A hello, then every message the hub publishes for three simulated venues, one
    per frame (books, quotes, trades, ticker; venue topics too), with keyframes."""
    hub = Hub(Config(keyframe_interval=keyframe_interval), epoch=7)
    out = [HELLO]
    for venue in ("itx", "cbx", "fxa"):
        adapter = make_adapter(venue)
        simulator = make_simulator(venue, seed=3, rate_per_s=10_000)
        frames = [frame.data for frame in simulator.connect()]
        frames += [simulator.next_frame().data for _ in range(frames_per_venue)]
        for i, frame in enumerate(frames):
            for event in adapter.on_message(frame, i).events:
                out += [item.payload for item in hub.publish(event, NOW_NS + i)]
    return out


def render(step: Step) -> list[tuple[Any, ...]]:
    return [
        (u.kind, u.topic, u.seq, u.position, u.ts_us, u.data, u.state, u.loss, u.skipped)
        for u in step.updates
    ] + [(step.resync, step.refusal)]


def test_a_session_gives_the_same_updates_by_frame_and_by_messages() -> None:
    frames = session_frames(400, keyframe_interval=25)
    by_frame, by_messages = Tracker(), Tracker()
    books = 0
    for frame in frames:
        step = by_frame.receive_frame(frame, NOW_NS)
        assert render(step) == render(by_messages.receive(decode_messages(frame), NOW_NS))
        books += sum(u.topic.startswith("book") for u in step.updates)
        assert by_frame.position == by_messages.position
    assert books > 500  # book deltas were there, checksums included
    assert by_frame.stats == by_messages.stats
    assert by_frame.stats.latency.total == len(frames) - 1
    for topic in by_frame.topics():
        assert by_frame.state(topic) == by_messages.state(topic)


def plain_state(held: dict[str, dict[str, Any]], message: DataMessage) -> dict[str, Any]:
    """The topic's state after `message`, kept the plain way (dicts changed in place,
    `book_data` built at once): an oracle apart from the mirror's copy-on-write sides."""
    kind, data = channel_kind(message.topic), message.data
    if message.snapshot or message.topic not in held:
        held[message.topic] = {"bids": {}, "asks": {}} if kind is ChannelKind.BOOK else {}
    state = held[message.topic]
    if kind is ChannelKind.BOOK:
        apply_levels(state["bids"], data.get("bids", ()))
        apply_levels(state["asks"], data.get("asks", ()))
        return book_data(state["bids"], state["asks"])
    if kind is ChannelKind.LATEST:
        state.update(data)
    else:
        held[message.topic] = state = dict(data)
    return dict(state)


def test_every_state_is_the_state_at_its_update_however_late_it_is_read() -> None:
    """Read after the whole session, each update's state is still the topic's state
    right after that message (it fails if a later delta changed a shared side)."""
    frames = session_frames(300, keyframe_interval=40)
    tracker, reference = Tracker(), dict[str, dict[str, Any]]()
    updates: list[Update] = []
    expected: list[tuple[Any, ...]] = []
    for frame in frames:
        updates += tracker.receive_frame(frame, NOW_NS).updates
        for message in decode_messages(frame):
            if isinstance(message, DataMessage):
                kind = UpdateKind.SNAPSHOT if message.snapshot else UpdateKind.DELTA
                position = Position(7, message.offset)
                state = plain_state(reference, message)
                expected.append((kind, message.topic, message.seq, position, state))
    assert len(updates) == len(expected) > 1000
    assert [(u.kind, u.topic, u.seq, u.position, u.state) for u in updates] == expected


def book_frame(seq: int, offset: int, **data: Any) -> bytes:
    return encode_data(DataMessage(seq == 1, "book.BTC-USD", seq, offset, TS_US, data))


def holding_a_book() -> tuple[Tracker, Update]:
    tracker = Tracker()
    tracker.receive_frame(HELLO, NOW_NS)
    step = tracker.receive_frame(book_frame(1, 1, bids=[[99, 2]], asks=[[101, 3]]), NOW_NS)
    (update,) = step.updates
    return tracker, update


def test_a_state_the_caller_changes_changes_nothing_else() -> None:
    tracker, first = holding_a_book()
    (second,) = tracker.receive_frame(book_frame(2, 2, bids=[[98, 1]]), NOW_NS).updates
    second.state["bids"].append([1, 1])
    second.state["asks"][0][1] = 0
    assert second.state is second.state  # built once, then kept
    assert first.state == {"bids": [[99, 2]], "asks": [[101, 3]]}
    assert tracker.state("book.BTC-USD") == {"bids": [[99, 2], [98, 1]], "asks": [[101, 3]]}
    (third,) = tracker.receive_frame(book_frame(3, 3, asks=[[101, 0]]), NOW_NS).updates
    assert third.state == {"bids": [[99, 2], [98, 1]], "asks": []}
    quote = encode_data(DataMessage(True, "quote.BTC-USD", 1, 4, TS_US, {"bid": 5}))
    (snapshot,) = tracker.receive_frame(quote, NOW_NS).updates
    snapshot.state["bid"] = 6
    assert tracker.state("quote.BTC-USD") == {"bid": 5}


def test_an_update_is_a_frozen_value() -> None:
    _, update = holding_a_book()
    with pytest.raises(FrozenInstanceError):
        update.seq = 2
    with pytest.raises(FrozenInstanceError):
        del update.topic
    copied = pickle.loads(pickle.dumps(update))
    assert copied == update and copied is not update
    assert copy.deepcopy(update) == update
    assert "state={'bids': [[99, 2]], 'asks': [[101, 3]]}" in repr(update)
    u = update
    rest = (u.position, u.ts_us, u.latency_s, u.data, u.state, u.loss, u.skipped)
    assert Update(u.kind, u.topic, u.seq, *rest) == update
    assert Update(u.kind, u.topic, 2, *rest) != update
    fields = "kind topic seq position ts_us latency_s data state loss skipped"
    assert Update.__match_args__ == tuple(fields.split())
    with pytest.raises(TypeError):
        hash(update)  # its data and state are dicts, as a frozen dataclass's would be
    match update:
        case Update(UpdateKind.SNAPSHOT, "book.BTC-USD", 1, Position(7, 1)):
            pass
        case _:
            pytest.fail("positional patterns match the fields in order")


def test_a_book_delta_failing_its_checksum_changes_nothing_and_resnapshots() -> None:
    tracker, first = holding_a_book()
    good = book_checksum({99: 2, 98: 1}, {101: 3})
    step = tracker.receive_frame(book_frame(2, 2, bids=[[98, 1]], checksum=good + 1), NOW_NS)
    assert step.resync and step.updates == []
    assert tracker.stats.checksum_mismatches == 1 and tracker.topics() == []
    assert first.state == {"bids": [[99, 2]], "asks": [[101, 3]]}
    tracker, _ = holding_a_book()
    step = tracker.receive_frame(book_frame(2, 2, bids=[[98, 1]], checksum=good), NOW_NS)
    assert [u.seq for u in step.updates] == [2] and tracker.stats.checksum_mismatches == 0


def test_frames_off_the_usual_path_take_every_rule() -> None:
    tracker, _ = holding_a_book()
    # A duplicate (a replay overlapping what is held) is skipped and counted.
    assert tracker.receive_frame(book_frame(1, 1, bids=[[97, 1]]), NOW_NS).updates == []
    assert tracker.stats.duplicates == 1
    # Several messages in one frame: each applied in order, one resume point.
    burst = book_frame(2, 2, bids=[[97, 1]]) + book_frame(3, 3, bids=[[97, 0]])
    assert [u.seq for u in tracker.receive_frame(burst, NOW_NS).updates] == [2, 3]
    assert tracker.position == Position(7, 3)
    # A heartbeat moves the resume point.
    tracker.receive_frame(encode_server(Heartbeat(7, 9, TS_US)), NOW_NS)
    assert tracker.position == Position(7, 9)
    # A gap: nothing applied, resume from the topic's last offset.
    step = tracker.receive_frame(book_frame(5, 10, bids=[[96, 1]]), NOW_NS)
    assert step.resync and tracker.resume_position() == Position(7, 3)
    assert tracker.stats.gaps == 1 and tracker.mirror.seq("book.BTC-USD") == 3


@pytest.mark.parametrize(
    "array",
    [
        ["d", "book.BTC-USD", True, 2, TS_US, {"bids": [[98, 1]]}],  # a bool is no int
        ["d", "book.BTC-USD", 2, 2, TS_US, [["bids"]]],  # data must be a map
        ["d", "book.BTC-USD", 2, 2.0, TS_US, {"bids": [[98, 1]]}],
        ["d", 5, 2, 2, TS_US, {}],
        ["d", "book.BTC-USD", 2, 2, TS_US],  # too short
        ["x", "book.BTC-USD", 2, 2, TS_US, {}],  # unknown type
    ],
)
def test_an_ill_formed_message_raises_and_changes_nothing(array: list[Any]) -> None:
    tracker, _ = holding_a_book()
    with pytest.raises(BadMessage):
        tracker.receive_frame(msgpack.packb(array), NOW_NS)
    assert tracker.mirror.seq("book.BTC-USD") == 1 and tracker.position == Position(7, 1)
    assert tracker.stats.units == 2


def test_a_frame_cut_mid_message_or_not_msgpack_raises_before_applying_any() -> None:
    tracker, _ = holding_a_book()
    burst = book_frame(2, 2, bids=[[97, 1]]) + book_frame(3, 3, bids=[[97, 0]])
    for frame in (burst[:-1], b"\xc1", book_frame(2, 2, bids=[[97, 1]]) + b"\xc1"):
        with pytest.raises(BadMessage):
            tracker.receive_frame(frame, NOW_NS)
    assert tracker.mirror.seq("book.BTC-USD") == 1


def test_data_before_the_hello_is_a_protocol_error() -> None:
    with pytest.raises(FeedProtocolError, match="before the hello"):
        Tracker().receive_frame(book_frame(2, 2, bids=[[97, 1]]), NOW_NS)


@pytest.mark.parametrize(
    "path",
    [*sorted(CASES_DIR.glob("ws-*.json")), CASES_DIR / "recorded-ws-live.json"],
    ids=lambda p: p.stem,
)
def test_conformance_frames_give_the_same_steps_by_frame(path: Path) -> None:
    """tests/conformance checks `receive(decode_frame(...))` against each case; the
    frame path must take the same steps."""
    case = json.loads(path.read_text(encoding="utf-8"))
    by_frame, by_messages = Tracker(), Tracker()
    for step in case["steps"]:
        if "connect" in step:
            by_frame.connected()
            by_messages.connected()
            continue
        frame = base64.b64decode(step["ws"])
        got = by_frame.receive_frame(frame, NOW_NS)
        assert render(got) == render(by_messages.receive(decode_messages(frame), NOW_NS))
        assert by_frame.resume_position() == by_messages.resume_position()
        held = sorted(by_frame.topics())
        assert held == sorted(by_messages.topics())
        assert [by_frame.state(t) for t in held] == [by_messages.state(t) for t in held]


@pytest.mark.parametrize("seed", range(5))
def test_a_book_state_is_exactly_what_the_core_builds_saturated_sizes_included(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(200):
        sizes = [1, MAX_NANOS - 1] * 8 + [MAX_NANOS, 2**62]  # saturated now and then
        bids, asks = (
            {rng.randrange(1, 10**6): rng.choice(sizes) for _ in range(rng.randrange(12))}
            for _ in range(2)
        )
        at = Position(1, 1)
        sides = BookSide(bids, descending=True), BookSide(asks, descending=False)
        update = book_update(UpdateKind.DELTA, "book.X-Y", 1, at, 0, 0.0, {}, *sides)
        assert update.state == book_data(bids, asks)

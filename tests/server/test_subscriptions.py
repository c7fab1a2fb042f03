"""A resume's replay: bounded work per turn of the loop, continued without new traffic,
exactly the matching messages, and an end when the buffer moves on before it is sent."""

from __future__ import annotations

import random
import socket
import time
from collections.abc import Iterator

import pytest
import trio

from tests.server.test_resume import random_event
from ticker.config import Config
from ticker.core.codec import decode_frame
from ticker.core.hub import Hub
from ticker.core.messages import DataMessage, Heartbeat, ServerMessage
from ticker.core.position import Position
from ticker.core.replay import Replay
from ticker.core.topics import TopicPattern
from ticker.errors import CLOSE_SLOW_CONSUMER
from ticker.server.fanout import Fanout
from ticker.server.framing import WebSocketFraming
from ticker.server.stats import EndReason, ServerStats
from ticker.server.subscriber import MAX_REPLAY_SCAN, ReplayBacklog, SnapshotBurst, Subscriber
from ticker.server.subscriptions import subscribe, unsubscribe

SYMBOLS = frozenset({"BTC-USD", "ETH-USD"})
TOPICS = ("quote.*", "trade.*")


def full_hub(messages: int) -> Hub:
    hub = Hub(Config(replay_max_messages=messages), epoch=7)
    rng = random.Random(4)
    i = 0
    while hub.position.offset < messages + 50:
        hub.publish(random_event(rng, i), time.time_ns())
        i += 1
    return hub


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    ours, theirs = socket.socketpair()
    for sock in (ours, theirs):
        sock.setblocking(False)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 * 1024 * 1024)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
    yield ours, theirs
    ours.close()
    theirs.close()


def new_subscriber(sock: socket.socket, hub: Hub, stats: ServerStats) -> Subscriber:
    return Subscriber(
        sock,
        "127.0.0.1:1",
        WebSocketFraming(),
        hub,
        stats,
        outbox_max_bytes=512 * 1024,
        write_timeout_s=30,
    )


def resume(subscriber: Subscriber, hub: Hub, fanout: Fanout, position: str) -> None:
    subscribe(
        subscriber,
        TOPICS,
        position,
        hub=hub,
        fanout=fanout,
        stats=subscriber.stats,
        known_symbols=SYMBOLS,
        max_subscriptions=16,
    )


class FrameReader:
    """Reads the WebSocket frames the subscriber writes into its end of the pair."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = bytearray()

    def read_available(self) -> None:
        while True:
            try:
                data = self.sock.recv(1 << 20)
            except BlockingIOError:
                return
            if not data:
                return
            self.buffer += data

    def frames(self) -> Iterator[tuple[int, bytes]]:
        buffer = self.buffer
        start = 0
        while len(buffer) - start >= 2:
            length = buffer[start + 1] & 0x7F
            offset = start + 2
            if length == 126:
                length, offset = int.from_bytes(buffer[offset : offset + 2], "big"), offset + 2
            elif length == 127:
                length, offset = int.from_bytes(buffer[offset : offset + 8], "big"), offset + 8
            if len(buffer) < offset + length:
                break
            yield buffer[start] & 0x0F, bytes(buffer[offset : offset + length])
            start = offset + length
        del buffer[:start]


def data_offsets(frames: list[tuple[int, bytes]]) -> list[int]:
    offsets = []
    for opcode, payload in frames:
        assert opcode == 0x2
        for message in decode_frame(payload):
            if isinstance(message, Heartbeat):
                continue  # ends a burst of snapshots
            assert isinstance(message, DataMessage)
            offsets.append(message.offset)
    return offsets


def expected_offsets(hub: Hub, after: int, patterns: tuple[str, ...]) -> list[int]:
    parsed = [TopicPattern.parse(text) for text in patterns]
    return [
        offset
        for offset in range(after + 1, hub.position.offset + 1)
        if any(p.matches(hub.replay.get(offset).topic) for p in parsed)  # type: ignore[union-attr]
    ]


class SliceWatch(trio.abc.Instrument):
    """How many replay entries each task step scanned."""

    def __init__(self, entry: ReplayBacklog) -> None:
        self.entry = entry
        self.before = 0
        self.largest = 0
        self.slices = 0

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        self.before = self.entry.run.scanned

    def after_task_step(self, task: trio.lowlevel.Task) -> None:
        scanned = self.entry.run.scanned - self.before
        self.largest = max(self.largest, scanned)
        self.slices += scanned > 0


async def test_a_resume_from_the_oldest_position_does_bounded_work_per_turn(
    pair: tuple[socket.socket, socket.socket], monkeypatch: pytest.MonkeyPatch
) -> None:
    hub = full_hub(20_000)
    oldest = hub.replay.first_offset - 1
    ours, theirs = pair
    stats = ServerStats()
    fanout = Fanout(16)
    subscriber = new_subscriber(ours, hub, stats)
    reader = FrameReader(theirs)
    # Count the entries looked at: each costs one topic match per pattern (or less).
    matches = 0
    real_matches = TopicPattern.matches

    def counting(self: TopicPattern, topic: str) -> bool:
        nonlocal matches
        matches += 1
        return real_matches(self, topic)

    monkeypatch.setattr(TopicPattern, "matches", counting)
    async with trio.open_nursery() as nursery:
        subscriber.nursery = nursery
        fanout.add(subscriber)
        resume(subscriber, hub, fanout, f"7-{oldest}")
        # subscribe() returned having walked at most one slice of the 20,000 entries
        # (its first part is written at once) and left the rest queued as a run.
        assert matches <= (MAX_REPLAY_SCAN + len(hub.topics())) * len(TOPICS)
        [entry] = subscriber.backlog
        assert isinstance(entry, ReplayBacklog)
        assert 0 < entry.run.scanned <= MAX_REPLAY_SCAN
        reader.read_available()
        frames = list(reader.frames())
        assert 0 < len(frames) <= MAX_REPLAY_SCAN
        # The rest goes out on later turns of the loop, with no publish or heartbeat to
        # push it: at most one slice per task step.
        watch = SliceWatch(entry)
        trio.lowlevel.add_instrument(watch)
        while subscriber.backlog or subscriber.draining:
            await trio.lowlevel.checkpoint()
            reader.read_available()
            frames += reader.frames()
        trio.lowlevel.remove_instrument(watch)
        assert entry.run.done and subscriber.ended is None
        assert watch.largest <= MAX_REPLAY_SCAN
        assert watch.slices >= (20_000 - MAX_REPLAY_SCAN) // MAX_REPLAY_SCAN
        nursery.cancel_scope.cancel()
    assert data_offsets(frames) == expected_offsets(hub, oldest, TOPICS)
    assert stats.resumes == 1


async def test_unsubscribing_narrows_a_replay_in_progress(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    hub = full_hub(5_000)
    oldest = hub.replay.first_offset - 1
    ours, theirs = pair
    fanout = Fanout(16)
    subscriber = new_subscriber(ours, hub, ServerStats())
    reader = FrameReader(theirs)
    async with trio.open_nursery() as nursery:
        subscriber.nursery = nursery
        fanout.add(subscriber)
        resume(subscriber, hub, fanout, f"7-{oldest}")
        [entry] = subscriber.backlog
        assert isinstance(entry, ReplayBacklog)
        first_slice = entry.run.scanned
        unsubscribe(subscriber, ["trade.*"], fanout)
        assert [str(p) for p in entry.patterns] == ["quote.*"]
        while subscriber.backlog or subscriber.draining:
            await trio.lowlevel.checkpoint()
            reader.read_available()
        reader.read_available()
        offsets = data_offsets(list(reader.frames()))
        nursery.cancel_scope.cancel()
    split = oldest + first_slice  # what was written before the unsubscribe
    wanted = [o for o in expected_offsets(hub, oldest, TOPICS) if o <= split]
    wanted += [o for o in expected_offsets(hub, split, ("quote.*",))]
    assert offsets == wanted
    # Unsubscribing from everything the replay serves drops it.
    subscriber = new_subscriber(ours, hub, ServerStats())
    async with trio.open_nursery() as nursery:
        subscriber.nursery = nursery
        fanout.add(subscriber)
        resume(subscriber, hub, fanout, f"7-{oldest}")
        unsubscribe(subscriber, list(TOPICS), fanout)
        assert subscriber.backlog == []
        nursery.cancel_scope.cancel()


async def test_a_replay_overtaken_by_the_buffer_ends_as_a_slow_consumer(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    hub = full_hub(2_000)
    oldest = hub.replay.first_offset - 1
    expected = expected_offsets(hub, oldest, TOPICS)
    ours, theirs = pair
    fanout = Fanout(16)
    stats = ServerStats()
    subscriber = new_subscriber(ours, hub, stats)
    reader = FrameReader(theirs)
    rng = random.Random(8)
    async with trio.open_nursery() as nursery:
        subscriber.nursery = nursery
        fanout.add(subscriber)
        resume(subscriber, hub, fanout, f"7-{oldest}")
        # Before the next slice, the stream moves a whole buffer on: what the replay
        # has not sent yet is gone, and sending anything after it would be a gap.
        while hub.replay.first_offset <= oldest + MAX_REPLAY_SCAN + 1:
            hub.publish(random_event(rng, 0), time.time_ns())
    assert subscriber.ended is EndReason.SLOW_REPLAY
    reader.read_available()
    frames = list(reader.frames())
    opcode, payload = frames.pop()
    assert opcode == 0x8
    assert int.from_bytes(payload[:2], "big") == CLOSE_SLOW_CONSUMER
    offsets = data_offsets(frames)
    assert 0 < len(offsets) < len(expected)
    assert offsets == expected[: len(offsets)]
    assert payload[2:].decode().endswith(f"last=7-{offsets[-1]}")


# -- a later sub: its position is ignored, its snapshots follow what is queued -----------


def later_sub(subscriber: Subscriber, hub: Hub, fanout: Fanout, position: str | None) -> None:
    subscribe(
        subscriber,
        ("book.*",),
        position,
        hub=hub,
        fanout=fanout,
        stats=subscriber.stats,
        known_symbols=SYMBOLS,
        max_subscriptions=16,
    )


def units(frames: list[tuple[int, bytes]]) -> list[list[ServerMessage]]:
    out = []
    for opcode, payload in frames:
        assert opcode == 0x2
        out.append(decode_frame(payload))
    return out


async def test_a_later_sub_ignores_its_position_and_gets_snapshots_of_its_new_topics(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    hub = full_hub(500)
    ours, theirs = pair
    fanout = Fanout(16)
    subscriber = new_subscriber(ours, hub, ServerStats())
    reader = FrameReader(theirs)
    async with trio.open_nursery() as nursery:
        subscriber.nursery = nursery
        fanout.add(subscriber)
        resume(subscriber, hub, fanout, str(hub.position))  # nothing to replay
        # The spec: later subs get snapshots for their new topics, whatever position
        # they name (a resume into a running stream would break its order).
        later_sub(subscriber, hub, fanout, "7-1")
        reader.read_available()
        [burst] = units(list(reader.frames()))
        nursery.cancel_scope.cancel()
    *snapshots, heartbeat = burst
    books = [t for t in hub.topics() if t.startswith("book.")]
    assert [m.topic for m in snapshots if isinstance(m, DataMessage)] == books
    # What a burst carries: the state, and a book's checksum.
    expected = [
        hub.current_snapshot(m.topic).message for m in snapshots if isinstance(m, DataMessage)
    ]
    assert [m for m in snapshots if isinstance(m, DataMessage)] == expected
    assert isinstance(heartbeat, Heartbeat)
    assert Position(heartbeat.epoch, heartbeat.offset) == hub.position
    assert subscriber.stats.resumes == 1 and subscriber.stats.resets == 0


async def test_a_later_subs_snapshots_go_out_after_what_the_connection_has_queued(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    # A client behind (a replay being written, live messages waiting behind it) that
    # subscribes to more: the new topics' burst ends with a resume point, so it must
    # not overtake messages at or below that position that the client has not got.
    hub = full_hub(3_000)
    oldest = hub.replay.first_offset - 1
    ours, theirs = pair
    fanout = Fanout(16)
    subscriber = new_subscriber(ours, hub, ServerStats())
    reader = FrameReader(theirs)
    rng = random.Random(9)
    frames: list[tuple[int, bytes]] = []
    replay = hub.since(Position(7, oldest))
    assert isinstance(replay, Replay)
    log = {item.offset: item.topic for item in replay.entries}  # the stream, by offset

    def publish(count: int) -> None:
        for _ in range(count):
            published = hub.publish(random_event(rng, 0), time.time_ns())
            log.update((item.offset, item.topic) for item in published)
            fanout.publish(published)

    async with trio.open_nursery() as nursery:
        subscriber.nursery = nursery
        fanout.add(subscriber)
        resume(subscriber, hub, fanout, f"7-{oldest}")
        assert subscriber.backlog  # the replay is still being written
        publish(30)  # live messages, queued behind the replay
        assert subscriber.outbox
        later_sub(subscriber, hub, fanout, None)
        at_sub = hub.position.offset
        publish(30)  # and more after the sub
        while subscriber.backlog or subscriber.draining or subscriber.outbox:
            await trio.lowlevel.checkpoint()
            reader.read_available()
            frames += reader.frames()
        reader.read_available()
        frames += reader.frames()
        nursery.cancel_scope.cancel()
    received = units(frames)
    [index] = [
        i
        for i, unit in enumerate(received)
        if any(isinstance(m, DataMessage) and m.topic.startswith("book.") for m in unit)
        and all(
            isinstance(m, Heartbeat) or (isinstance(m, DataMessage) and m.snapshot) for m in unit
        )
    ]
    burst = received[index]
    last = burst[-1]
    position = last.offset if isinstance(last, Heartbeat) else at_sub
    assert position >= at_sub
    before = [m.offset for u in received[:index] for m in u if isinstance(m, DataMessage)]
    after = [m.offset for u in received[index + 1 :] for m in u if isinstance(m, DataMessage)]
    old = [o for o, topic in sorted(log.items()) if topic.split(".")[0] in ("quote", "trade")]
    # Every quote or trade at or below the burst's position came before it; every
    # message after it is past that position, so resuming from it misses nothing.
    assert before == [o for o in old if o <= position]
    assert after == [o for o in sorted(log) if o > position]
    assert subscriber.ended is None


# -- subscribe/unsubscribe churn: snapshot bursts count, commands cost bounded work ----


def stuck_pair() -> tuple[socket.socket, socket.socket]:
    """A pair whose far end never reads: the subscriber's writes soon stay pending."""
    ours, theirs = socket.socketpair()
    for sock in (ours, theirs):
        sock.setblocking(False)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    return ours, theirs


def churn_subscribe(subscriber: Subscriber, hub: Hub, fanout: Fanout, topics: list[str]) -> None:
    subscribe(
        subscriber,
        topics,
        None,
        hub=hub,
        fanout=fanout,
        stats=subscriber.stats,
        known_symbols=SYMBOLS,
        max_subscriptions=16,
    )


def busy(subscriber: Subscriber) -> bool:
    return bool(subscriber.backlog or subscriber.outbox or subscriber.draining)


def queued_bytes(subscriber: Subscriber) -> int:
    bursts = sum(e.size for e in subscriber.backlog if isinstance(e, SnapshotBurst))
    return subscriber.outbox.bytes + bursts


async def test_subscribe_churn_on_a_connection_that_does_not_read_is_evicted_at_the_bound() -> None:
    # Holding wildcards, a connection that never reads subscribes and unsubscribes an
    # exact topic over and over. Snapshot bursts count against the outbox bound; a later
    # sub queues none, so however many commands it sends, it holds at most the bound.
    hub = full_hub(200)
    ours, theirs = stuck_pair()
    fanout = Fanout(16)
    stats = ServerStats()
    subscriber = Subscriber(
        ours, "127.0.0.1:1", WebSocketFraming(), hub, stats,
        outbox_max_bytes=16 * 1024, write_timeout_s=30,
    )  # fmt: skip
    async with trio.open_nursery() as nursery:
        subscriber.nursery = nursery
        fanout.add(subscriber)
        churn_subscribe(subscriber, hub, fanout, list(TOPICS))
        largest = 0
        for _ in range(5_000):
            churn_subscribe(subscriber, hub, fanout, ["quote.BTC-USD"])
            unsubscribe(subscriber, ["quote.BTC-USD"], fanout)
            if subscriber.ended is not None:
                break
            largest = max(largest, queued_bytes(subscriber))
        # A later sub queues no burst (its topics conflate in the outbox), so the churn
        # holds at most the bound; past it the connection would be a slow consumer.
        assert subscriber.ended in (None, EndReason.SLOW_OUTBOX)
        assert largest <= 16 * 1024
        assert len(subscriber.backlog) <= 1
        nursery.cancel_scope.cancel()
    ours.close()
    theirs.close()


async def test_an_unsubscribe_does_not_walk_what_is_queued_and_queued_items_still_filter(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    hub = full_hub(200)
    ours, theirs = stuck_pair()
    fanout = Fanout(16)
    subscriber = new_subscriber(ours, hub, ServerStats())  # 512 KiB outbox: no eviction
    reader = FrameReader(theirs)
    async with trio.open_nursery() as nursery:
        subscriber.nursery = nursery
        fanout.add(subscriber)
        churn_subscribe(subscriber, hub, fanout, list(TOPICS))
        for _ in range(2_000):
            churn_subscribe(subscriber, hub, fanout, ["quote.BTC-USD"])
            unsubscribe(subscriber, ["quote.BTC-USD"], fanout)
        # Live messages wait behind the bursts too.
        rng = random.Random(9)
        published = []
        for i in range(300):
            items = hub.publish(random_event(rng, i), time.time_ns())
            fanout.publish(items)
            published += items
        assert subscriber.ended is None and subscriber.draining
        assert len(subscriber.backlog) <= 1 and subscriber.outbox  # the churn queued nothing
        matches = 0
        real_matches = TopicPattern.matches

        def counting(self: TopicPattern, topic: str) -> bool:
            nonlocal matches
            matches += 1
            return real_matches(self, topic)

        monkeypatch.setattr(TopicPattern, "matches", counting)
        unsubscribe(subscriber, ["quote.*"], fanout)
        # O(1) in what is queued: nothing was matched against the queue.
        assert matches == 0
        monkeypatch.undo()
        sent_before = subscriber.messages
        while busy(subscriber):
            await trio.lowlevel.checkpoint()
            reader.read_available()
        reader.read_available()
        received = [m for _, p in reader.frames() for m in decode_frame(p)]
        assert all(isinstance(m, DataMessage | Heartbeat) for m in received)
        nursery.cancel_scope.cancel()
    ours.close()
    theirs.close()
    # Every data message written arrived (heartbeats end bursts and are not counted).
    assert sum(isinstance(m, DataMessage) for m in received) == subscriber.messages
    # Quotes went out only in writes made before the unsubscribe; what was queued for
    # them after that point was dropped, and every trade still went out.
    data = [m for m in received if isinstance(m, DataMessage)]
    written_quotes = sum(1 for m in data if m.topic.startswith("quote."))
    assert written_quotes <= sent_before
    trades = [m for m in data if m.topic.startswith("trade.") and not m.snapshot]
    expected_trades = [p.offset for p in published if p.topic.startswith("trade.")]
    assert expected_trades
    assert [m.offset for m in trades] == expected_trades

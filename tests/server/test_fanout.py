"""The fanout tree on real socket pairs: each connection gets exactly its part of a
batch, in offset order; connections with the same patterns share one framed write; a
connection that breaks mid-batch does not disturb the others."""

from __future__ import annotations

import socket

import trio

from ticker.config import Config
from ticker.core.codec import decode_frame
from ticker.core.hub import Hub, Published
from ticker.core.messages import DataMessage
from ticker.core.topics import TopicPattern
from ticker.model.events import Quote, TakerSide, Trade
from ticker.server.fanout import Fanout
from ticker.server.framing import Framing, SseFraming, WebSocketFraming
from ticker.server.stats import EndReason, ServerStats
from ticker.server.subscriber import Subscriber


def frames(data: bytes) -> list[bytes]:
    """Payloads of unmasked server frames."""
    out = []
    while data:
        length, offset = data[1] & 0x7F, 2
        if length == 126:
            length, offset = int.from_bytes(data[2:4], "big"), 4
        elif length == 127:
            length, offset = int.from_bytes(data[2:10], "big"), 10
        out.append(data[offset : offset + length])
        data = data[offset + length :]
    return out


def read_all(sock: socket.socket) -> bytes:
    sock.setblocking(False)
    data = b""
    while True:
        try:
            chunk = sock.recv(1 << 20)
        except BlockingIOError:
            return data
        if not chunk:
            return data
        data += chunk


def batch(hub: Hub) -> list[Published]:
    published: list[Published] = []
    for i in range(12):
        symbol = ("BTC-USD", "ETH-USD", "SOL-USD")[i % 3]
        published += hub.publish(Quote("cbx", symbol, i, 100 + i, 1, 200 + i, 1), i)
        published += hub.publish(Trade("cbx", symbol, i, 100 + i, 1, TakerSide.BUY, str(i)), i)
    return published


async def test_each_connection_gets_its_part_in_order_and_groups_share_bytes() -> None:
    hub = Hub(Config(), 7)
    fanout = Fanout(leaf_size=4)  # several leaves
    framing = WebSocketFraming()
    wants = [
        ("quote.*",),
        ("quote.*",),
        ("quote.*",),
        ("trade.BTC-USD", "quote.ETH-USD"),
        ("quote.ETH-USD", "trade.BTC-USD"),  # the same set, another order
        ("book.BTC-USD",),  # nothing in this batch
        (),
    ]
    pairs = [socket.socketpair() for _ in wants]
    async with trio.open_nursery() as nursery:
        subscribers = []
        for (server_end, _), patterns in zip(pairs, wants, strict=True):
            server_end.setblocking(False)
            subscriber = Subscriber(
                server_end, "test", framing, hub, ServerStats(),
                outbox_max_bytes=1 << 20, write_timeout_s=5,
            )  # fmt: skip
            subscriber.nursery = nursery
            fanout.add(subscriber)
            for text in patterns:
                subscriber.patterns[text] = TopicPattern.parse(text)
            fanout.patterns_changed(subscriber)
            subscribers.append(subscriber)
        assert len(fanout.leaves) == 2
        items = batch(hub)
        fanout.publish(items)
        received = [read_all(client_end) for _, client_end in pairs]

    for data, patterns in zip(received, wants, strict=True):
        got = [m for f in frames(data) for m in decode_frame(f) if isinstance(m, DataMessage)]
        expected = [
            p.message
            for p in items
            if any(TopicPattern.parse(t).matches(p.topic) for t in patterns)
        ]
        assert got == expected
    assert received[0] == received[1] == received[2] != b""
    assert received[3] == received[4] != b""
    assert received[5] == received[6] == b""
    assert all(s.delivered_offset == s.pending_offset for s in subscribers)
    for server_end, client_end in pairs:
        server_end.close()
        client_end.close()


async def test_a_connection_that_breaks_mid_batch_leaves_the_rest_alone() -> None:
    hub = Hub(Config(), 7)
    fanout = Fanout(leaf_size=256)
    pairs = [socket.socketpair() for _ in range(5)]
    pairs[2][1].close()  # this peer is gone: its send fails
    async with trio.open_nursery() as nursery:
        subscribers = []
        for server_end, _ in pairs:
            server_end.setblocking(False)
            subscriber = Subscriber(
                server_end, "test", WebSocketFraming(), hub, ServerStats(),
                outbox_max_bytes=1 << 20, write_timeout_s=5,
            )  # fmt: skip
            subscriber.nursery = nursery
            fanout.add(subscriber)
            subscriber.patterns["trade.*"] = TopicPattern.parse("trade.*")
            fanout.patterns_changed(subscriber)
            subscribers.append(subscriber)
        fanout.publish(batch(hub))
    assert [s.ended for s in subscribers] == [None, None, EndReason.PEER_RESET, None, None]
    assert len(fanout) == 4
    for i, (server_end, client_end) in enumerate(pairs):
        if i != 2:
            trades = [m for f in frames(read_all(client_end)) for m in decode_frame(f)]
            assert len(trades) == 12
            client_end.close()
        server_end.close()


async def test_a_connection_that_left_the_tree_is_ignored_by_patterns_changed() -> None:
    """A subscribe handled after the connection ended (its reply's write failed) must
    not raise: the tree no longer knows it."""
    hub = Hub(Config(), 7)
    fanout = Fanout(leaf_size=4)
    mine, peer = socket.socketpair()
    subscriber = Subscriber(
        mine, "test", WebSocketFraming(), hub, ServerStats(),
        outbox_max_bytes=1 << 20, write_timeout_s=5,
    )  # fmt: skip
    fanout.add(subscriber)
    fanout.remove(subscriber)
    subscriber.patterns["quote.*"] = TopicPattern.parse("quote.*")
    fanout.patterns_changed(subscriber)
    assert len(fanout) == 0 and fanout.leaves == []
    mine.close()
    peer.close()


async def test_counters_add_up_per_server_when_a_group_mixes_framings_and_servers() -> None:
    """One group, its connections in turn on two servers' counters and two framings:
    each server counts exactly the writes, messages and bytes of its own connections,
    and each connection its own."""
    hub = Hub(Config(), 7)
    fanout = Fanout(leaf_size=256)
    first, second = ServerStats(), ServerStats()
    ws, sse = WebSocketFraming(), SseFraming()
    setups: list[tuple[ServerStats, Framing]] = [
        (first, ws), (first, sse), (second, ws), (first, ws), (second, sse), (first, sse),
    ]  # fmt: skip
    pairs = [socket.socketpair() for _ in setups]
    async with trio.open_nursery() as nursery:
        subscribers = []
        for (server_end, _), (stats, framing) in zip(pairs, setups, strict=True):
            server_end.setblocking(False)
            subscriber = Subscriber(
                server_end, "test", framing, hub, stats,
                outbox_max_bytes=1 << 20, write_timeout_s=5,
            )  # fmt: skip
            subscriber.nursery = nursery
            fanout.add(subscriber)
            subscriber.patterns["trade.*"] = TopicPattern.parse("trade.*")
            fanout.patterns_changed(subscriber)
            subscribers.append(subscriber)
        assert len(fanout.leaves[0].groups) == 1
        fanout.publish(batch(hub))
        received = [read_all(client_end) for _, client_end in pairs]

    for subscriber, data in zip(subscribers, received, strict=True):
        assert (subscriber.messages, subscriber.bytes) == (12, len(data))
    for stats in (first, second):
        mine = [len(d) for (s, _), d in zip(setups, received, strict=True) if s is stats]
        assert (stats.writes, stats.messages_sent, stats.bytes_sent) == (
            len(mine), 12 * len(mine), sum(mine),
        )  # fmt: skip
        assert stats.coalesced_writes == len(mine)
    assert received[0] == received[2] == received[3] != received[1] == received[4]
    for server_end, client_end in pairs:
        server_end.close()
        client_end.close()

"""The fanout tree: from the hub's published messages down to connection outboxes.

Two tiers inside one process: the root keeps, per topic, the leaves that have a
subscriber to it; each leaf holds at most `leaf_size` connections and, per topic, the
ones subscribed (exact topics and `channel.*` patterns resolved once and cached). A
message costs the root one step per interested leaf and a leaf one step per interested
connection. Delivery is synchronous: when `publish` returns, every outbox holds every
message up to the hub's position, which is what lets a conflated snapshot or a heartbeat
carry the current position truthfully. Never awaits.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from ticker.core.hub import Published
from ticker.core.topics import WILDCARD, TopicPattern

if TYPE_CHECKING:
    from ticker.server.subscriber import Subscriber


class Leaf:
    """Up to `leaf_size` connections and their subscriptions."""

    __slots__ = ("_exact", "_resolved", "_wild", "subscribers")

    def __init__(self) -> None:
        self.subscribers: dict[Subscriber, None] = {}
        self._exact: dict[str, dict[Subscriber, None]] = {}
        self._wild: dict[str, dict[Subscriber, None]] = {}
        self._resolved: dict[str, list[Subscriber]] = {}

    def subscribe(self, subscriber: Subscriber, pattern: TopicPattern) -> None:
        if pattern.symbol == WILDCARD:
            self._wild.setdefault(pattern.channel, {})[subscriber] = None
        else:
            self._exact.setdefault(str(pattern), {})[subscriber] = None
        self._resolved.clear()

    def unsubscribe(self, subscriber: Subscriber, pattern: TopicPattern) -> None:
        table = self._wild if pattern.symbol == WILDCARD else self._exact
        key = pattern.channel if pattern.symbol == WILDCARD else str(pattern)
        members = table.get(key)
        if members is not None:
            members.pop(subscriber, None)
            if not members:
                del table[key]
        self._resolved.clear()

    def has_topic(self, topic: str) -> bool:
        return bool(self.resolve(topic))

    def resolve(self, topic: str) -> list[Subscriber]:
        """Connections subscribed to `topic`, exactly or by pattern, each once."""
        members = self._resolved.get(topic)
        if members is None:
            found = dict(self._exact.get(topic, {}))
            found.update(self._wild.get(topic.partition(".")[0], {}))
            members = self._resolved[topic] = list(found)
        return members


class Fanout:
    """The root of the tree; the hub task calls `publish` with every batch."""

    def __init__(self, leaf_size: int) -> None:
        self.leaf_size = leaf_size
        self.leaves: list[Leaf] = []
        self._leaf_of: dict[Subscriber, Leaf] = {}
        self._topic_leaves: dict[str, list[Leaf]] = {}

    def __len__(self) -> int:
        return len(self._leaf_of)

    def subscribers(self) -> Iterable[Subscriber]:
        """Every connection in the tree."""
        return list(self._leaf_of)

    def add(self, subscriber: Subscriber) -> None:
        """Place a connection in the first leaf with room (or a new leaf)."""
        for leaf in self.leaves:
            if len(leaf.subscribers) < self.leaf_size:
                break
        else:
            leaf = Leaf()
            self.leaves.append(leaf)
        leaf.subscribers[subscriber] = None
        self._leaf_of[subscriber] = leaf
        subscriber.fanout = self

    def remove(self, subscriber: Subscriber) -> None:
        """Take a connection and all its subscriptions out of the tree."""
        leaf = self._leaf_of.pop(subscriber, None)
        if leaf is None:
            return
        for pattern in subscriber.patterns.values():
            leaf.unsubscribe(subscriber, pattern)
        del leaf.subscribers[subscriber]
        if not leaf.subscribers:
            self.leaves.remove(leaf)
        self._topic_leaves.clear()

    def subscribe(self, subscriber: Subscriber, pattern: TopicPattern) -> None:
        self._leaf_of[subscriber].subscribe(subscriber, pattern)
        self._topic_leaves.clear()

    def unsubscribe(self, subscriber: Subscriber, pattern: TopicPattern) -> None:
        self._leaf_of[subscriber].unsubscribe(subscriber, pattern)
        self._topic_leaves.clear()

    def publish(self, items: list[Published]) -> None:
        """Offer every item to every subscribed outbox, then write to idle sockets."""
        touched: dict[Leaf, None] = {}
        topic_leaves = self._topic_leaves
        for item in items:
            topic = item.topic
            leaves = topic_leaves.get(topic)
            if leaves is None:
                leaves = [leaf for leaf in self.leaves if leaf.has_topic(topic)]
                topic_leaves[topic] = leaves
            for leaf in leaves:
                touched[leaf] = None
                for subscriber in leaf.resolve(topic):
                    subscriber.deliver(item)
        for leaf in touched:
            for subscriber in list(leaf.subscribers):
                # A rate-limited stream writes on its own ticks, never on publish.
                if subscriber.outbox and not subscriber.rate_limited:
                    subscriber.flush_nowait()

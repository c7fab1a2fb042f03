"""The fanout tree: from the hub's published messages down to connection outboxes.

Three tiers inside one process. The root keeps, per topic, the groups that want it.
Each leaf holds at most `leaf_size` connections, and within a leaf a group is the
connections with the same set of topic patterns: they want the same messages of any
batch, so a batch is filtered once per group, not once per connection, and the framed
bytes of what a group gets are built once per framing and shared by every member whose
socket is idle (`SharedWrite`). A message costs the root one step per interested group
and a group one step per member.

Delivery is synchronous: when `publish` returns, every connection has been written to
or holds the batch in its outbox, which is what lets a conflated snapshot or a heartbeat
carry the current position truthfully. Never awaits.
"""

from __future__ import annotations

from collections.abc import Iterable

from ticker.core.hub import Published
from ticker.core.topics import TopicPattern
from ticker.server.shared_write import SharedWrite
from ticker.server.subscriber import Subscriber, publish_to


class Group:
    """Connections of one leaf that hold exactly the same topic patterns."""

    __slots__ = ("key", "members", "patterns")

    def __init__(self, key: frozenset[str], patterns: tuple[TopicPattern, ...]) -> None:
        self.key = key
        self.patterns = patterns
        self.members: dict[Subscriber, None] = {}

    def wants(self, topic: str) -> bool:
        return any(pattern.matches(topic) for pattern in self.patterns)


class Leaf:
    """Up to `leaf_size` connections, grouped by their pattern sets."""

    __slots__ = ("_group_of", "groups", "subscribers")

    def __init__(self) -> None:
        self.subscribers: dict[Subscriber, None] = {}
        self.groups: dict[frozenset[str], Group] = {}
        self._group_of: dict[Subscriber, Group] = {}

    def regroup(self, subscriber: Subscriber) -> None:
        """Move `subscriber` to the group of its current patterns (none if it has none)."""
        self._leave_group(subscriber)
        if not subscriber.patterns:
            return
        key = frozenset(subscriber.patterns)
        group = self.groups.get(key)
        if group is None:
            group = self.groups[key] = Group(key, tuple(subscriber.patterns.values()))
        group.members[subscriber] = None
        self._group_of[subscriber] = group

    def remove(self, subscriber: Subscriber) -> None:
        self._leave_group(subscriber)
        del self.subscribers[subscriber]

    def _leave_group(self, subscriber: Subscriber) -> None:
        group = self._group_of.pop(subscriber, None)
        if group is not None:
            del group.members[subscriber]
            if not group.members:
                del self.groups[group.key]


class Fanout:
    """The root of the tree; the hub task calls `publish` with every batch."""

    def __init__(self, leaf_size: int) -> None:
        self.leaf_size = leaf_size
        self.leaves: list[Leaf] = []
        self._leaf_of: dict[Subscriber, Leaf] = {}
        self._topic_groups: dict[str, list[Group]] = {}

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
        if subscriber.patterns:
            self.patterns_changed(subscriber)

    def remove(self, subscriber: Subscriber) -> None:
        """Take a connection and all its subscriptions out of the tree."""
        leaf = self._leaf_of.pop(subscriber, None)
        if leaf is None:
            return
        leaf.remove(subscriber)
        if not leaf.subscribers:
            self.leaves.remove(leaf)
        self._topic_groups.clear()

    def patterns_changed(self, subscriber: Subscriber) -> None:
        """Call after `subscriber.patterns` changed (subscribe or unsubscribe); a
        connection that already left the tree (it ended) is ignored."""
        leaf = self._leaf_of.get(subscriber)
        if leaf is None:
            return
        leaf.regroup(subscriber)
        self._topic_groups.clear()

    def publish(self, items: list[Published]) -> None:
        """Give every connection its part of `items`: written at once where the socket is
        idle, queued in its outbox otherwise."""
        parts: dict[Group, list[Published]] = {}
        topic_groups = self._topic_groups
        for item in items:
            groups = topic_groups.get(item.topic)
            if groups is None:
                groups = topic_groups[item.topic] = self._groups_wanting(item.topic)
            for group in groups:
                part = parts.get(group)
                if part is None:
                    parts[group] = [item]
                else:
                    part.append(item)
        for group, part in parts.items():
            # A copy: a connection may end (and leave its group) while it is written.
            publish_to(tuple(group.members), SharedWrite(part))

    def _groups_wanting(self, topic: str) -> list[Group]:
        return [g for leaf in self.leaves for g in leaf.groups.values() if g.wants(topic)]

"""Opening and closing subscriptions for a connection: snapshots, replay or reset.

Runs synchronously between two publishes, so the three steps (register in the fanout,
queue the replay or snapshots, go live) see one consistent position: nothing published
in between can be missed or sent twice. A replay is queued as a run over the replay
buffer, walked a bounded slice at a time by the subscriber. Both transports use it.
"""

from __future__ import annotations

from collections.abc import Iterable

from ticker.auth.grants import Grant, narrow
from ticker.core.hub import Hub
from ticker.core.messages import Reset as ResetMessage
from ticker.core.position import Position
from ticker.core.ratelimit import KeyedRateLimit
from ticker.core.replay import Replay, ReplayRun, ResetReason
from ticker.core.topics import WILDCARD, TopicPattern
from ticker.errors import CLOSE_LIMIT_REACHED, BadTopic, Forbidden, ProtocolError
from ticker.server.deep_replay import DeepSource, run_deep_replay
from ticker.server.fanout import Fanout
from ticker.server.stats import ServerStats
from ticker.server.subscriber import DeepReplay, ReplayBacklog, SnapshotBurst, Subscriber


class LimitReached(ProtocolError):
    """Too many subscriptions on one connection."""

    close_code = CLOSE_LIMIT_REACHED
    http_status = 429


class ResumeLimited(ProtocolError):
    """Too many resumes from one source address: retry later."""

    close_code = CLOSE_LIMIT_REACHED
    http_status = 429


def admit_resume(peer: str, limit: KeyedRateLimit | None, stats: ServerStats, now_s: float) -> None:
    """Take a resume from `peer`'s address out of the rate limit (None: unlimited).

    A resume makes the server walk the replay buffer, so each address gets a bucket of
    them; a reconnect storm from one address is spread out instead of piling up.

    Args:
        peer: the connection's `address:port`.
        limit: the server's per-address limit, or None when it is off.
        stats: counts refusals.
        now_s: a monotonic time in seconds.

    Raises:
        ResumeLimited: the address is over its limit (counted).
    """
    if limit is None:
        return
    limited = limit.take(peer.rpartition(":")[0], now_s)
    if limited is not None:
        stats.resumes_limited += 1
        raise ResumeLimited(
            f"too many resumes from this address; retry in {limited.retry_after_s:.1f} s"
        )


def parse_patterns(texts: Iterable[str], known_symbols: frozenset[str]) -> list[TopicPattern]:
    """Parse topic patterns and refuse symbols the hub does not carry.

    Raises:
        BadTopic: a malformed pattern or an unknown symbol.
    """
    patterns = []
    for text in texts:
        pattern = TopicPattern.parse(text.strip())
        if pattern.symbol != WILDCARD and pattern.symbol not in known_symbols:
            known = ", ".join(sorted(known_symbols))
            raise BadTopic(f"unknown symbol {pattern.symbol!r}; known: {known}")
        patterns.append(pattern)
    if not patterns:
        raise BadTopic("no topics given")
    return patterns


def takes_position(subscriber: Subscriber) -> bool:
    """Whether a `sub` on this connection now would honour a resume position: only the
    first one taken (no topics yet and nothing sent), since replaying older offsets
    into a running stream would break its order."""
    return not (subscriber.patterns or subscriber.messages)


def subscribe(
    subscriber: Subscriber,
    texts: Iterable[str],
    position_text: str | None,
    *,
    hub: Hub,
    fanout: Fanout,
    stats: ServerStats,
    known_symbols: frozenset[str],
    max_subscriptions: int,
    deep: DeepSource | None = None,
    grants: tuple[Grant, ...] | None = None,
) -> list[str]:
    """Add patterns to a connection and queue what it must see before going live.

    With `grants` (the connection's entitlements; None: everything), each pattern is
    narrowed to them first (`ticker.auth.grants.narrow`): the connection holds only
    patterns inside its entitlements, so its fanout, replay, reset and snapshots never
    carry a topic outside them. Patterns with no allowed topic are returned; the
    allowed ones proceed.

    The first subscribe, with no position: a snapshot of every matching topic. With a
    position inside the replay buffer: exactly the matching messages after it. Older
    than the buffer but in the `deep` log (a cluster's Redis stream): the same, read
    from there first (`ticker.server.deep_replay`). Otherwise: a reset and the
    snapshots, as one unit. A later subscribe ignores its position (see
    `takes_position`): its new topics get snapshots, written after everything already
    queued for the connection and consistent with the position they are written at.

    Returns:
        The requested patterns refused as outside `grants` (empty: none).

    Raises:
        BadTopic, BadPosition, LimitReached: nothing was changed.
        Forbidden: every pattern is outside `grants`; nothing was changed.
    """
    requested = parse_patterns(texts, known_symbols)
    forbidden: list[str] = []
    if grants is not None:
        narrowed = narrow(requested, grants, known_symbols)
        requested, forbidden = narrowed.allowed, narrowed.forbidden
        if not requested:
            raise Forbidden(f"not entitled to: {', '.join(forbidden)}")
    patterns = [p for p in requested if str(p) not in subscriber.patterns]
    if len(subscriber.patterns) + len(patterns) > max_subscriptions:
        raise LimitReached(f"at most {max_subscriptions} topic patterns per connection")
    first = takes_position(subscriber)
    position = Position.parse(position_text) if first and position_text is not None else None
    for pattern in patterns:
        subscriber.patterns[str(pattern)] = pattern
    fanout.patterns_changed(subscriber)
    subscriber.patterns_changed(narrowed=False)
    if not first:
        # Marked like conflated topics: the next write sends what is queued first (all
        # at or below the current position), then one snapshot of each new topic and a
        # heartbeat at the position they reflect; what is published meanwhile for them
        # is in those snapshots. A burst queued now, at today's position, would go out
        # ahead of the queued messages, and its heartbeat would be a resume point past
        # messages the client had not received yet.
        for topic in matching_topics(hub.topics(), patterns):
            subscriber.outbox.conflate(topic)
        subscriber.flush_nowait()
        return forbidden
    reset: ResetMessage | None = None
    if position is not None:
        answer = hub.since(position)
        if isinstance(answer, Replay):
            stats.resumes += 1
            # Not walked here: the subscriber writes it a bounded slice per turn of the
            # loop, and live messages wait in its outbox until the run is written.
            subscriber.backlog.append(ReplayBacklog(ReplayRun(answer.entries), patterns))
            subscriber.flush_nowait()
            return forbidden
        if (
            deep is not None
            and answer.reason is ResetReason.TOO_OLD
            and position.epoch == hub.epoch
            and subscriber.nursery is not None
        ):
            stats.resumes += 1
            stats.deep_resumes += 1
            entry = DeepReplay(position.offset, patterns)
            subscriber.backlog.append(entry)
            subscriber.nursery.start_soon(
                run_deep_replay,
                subscriber,
                entry,
                hub,
                deep,
                lambda wanted: matching_topics(hub.topics(), wanted),
                hub.position.offset,
            )
            subscriber.flush_nowait()
            return forbidden
        stats.resets += 1
        current = hub.position
        reset = ResetMessage(current.epoch, current.offset, answer.reason.value)
    snapshots = [hub.current_snapshot(topic) for topic in matching_topics(hub.topics(), patterns)]
    if snapshots or reset is not None:
        # The reset and its snapshots are one unit (one frame; on SSE one id), so the
        # reset's position is a resume point only together with the state it names.
        # Counted against the outbox bound: a connection too far behind is evicted.
        subscriber.add_snapshots(SnapshotBurst(snapshots, hub.position, reset))
    else:
        subscriber.flush_nowait()
    return forbidden


def unsubscribe(
    subscriber: Subscriber,
    texts: Iterable[str],
    fanout: Fanout,
    grants: tuple[Grant, ...] | None = None,
    known_symbols: frozenset[str] = frozenset(),
) -> None:
    """Remove patterns (unknown ones are ignored); what waits for them is not sent.

    With `grants`, a pattern also removes what `subscribe` narrowed it to (`quote.*`
    held as `quote.BTC-USD` under a grant of that one topic).

    Bounded work whatever is queued: queued messages and snapshots are filtered as they
    are written (`Subscriber.patterns_changed`); only a resume's replay, always at the
    front of the backlog, is narrowed here.

    Raises:
        BadTopic: a malformed pattern.
    """
    removed: set[str] = set()
    for text in texts:
        pattern = TopicPattern.parse(text.strip())
        names = [str(pattern)]
        if grants is not None:
            names += [str(p) for p in narrow([pattern], grants, known_symbols).allowed]
        for name in names:
            if subscriber.patterns.pop(name, None) is not None:
                removed.add(name)
    if not removed:
        return
    fanout.patterns_changed(subscriber)
    subscriber.patterns_changed(narrowed=True)
    backlog = subscriber.backlog
    index = 0
    # A replay is queued only by a connection's first subscribe, so replays lead the
    # backlog; the snapshot bursts behind them are not walked.
    while index < len(backlog) and not isinstance(backlog[index], SnapshotBurst):
        entry = backlog[index]
        assert isinstance(entry, ReplayBacklog | DeepReplay)
        entry.narrow([p for p in entry.patterns if str(p) not in removed])
        if isinstance(entry, ReplayBacklog) and not entry.patterns:
            del backlog[index]
            continue
        # A deep replay stays until it hands over, even with nothing left to send.
        index += 1


def matching_topics(existing: Iterable[str], patterns: list[TopicPattern]) -> list[str]:
    """Topics a subscription to `patterns` starts with.

    A wildcard (for the symbol or a venue) matches the topics that have state; an
    exact topic is always included (with no state yet, its snapshot has seq 0 and
    empty data).
    """
    existing = list(existing)
    topics: dict[str, None] = {}
    for pattern in patterns:
        if not pattern.exact:
            topics.update((topic, None) for topic in existing if pattern.matches(topic))
        else:
            topics[str(pattern)] = None
    return list(topics)

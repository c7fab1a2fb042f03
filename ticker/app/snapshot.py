"""The snapshot document: the current state of some topics and the position it reflects.

`GET /v1/snapshot?topics=...` lets a page render at once and then follow the stream from
the document's position. The document is built without yielding to the event loop, so
the hub cannot publish in the middle of it: every snapshot in it reflects exactly that
position, and `/v1/sse?last_event_id=<position>` continues with no gap and no duplicate.
Owns the query's validation and the document's shape; must not await or change state.
"""

from __future__ import annotations

import json

from ticker.core.hub import Hub
from ticker.core.topics import TopicPattern
from ticker.errors import BadTopic
from ticker.server.subscriptions import LimitReached, matching_topics, parse_patterns
from ticker.wire.http import MAX_QUERY_BYTES

TOPICS_EXAMPLE = "?topics=quote.*,ticker.BTC-USD"


def parse_topics_query(
    text: str | None, known_symbols: frozenset[str], max_patterns: int
) -> list[TopicPattern]:
    """The comma-separated topic patterns of a query, validated as the SSE endpoint does.

    Raises:
        BadTopic: no topics, a malformed pattern, an unknown symbol, or more text than
            the stream accepts in a query (HTTP 400).
        LimitReached: more than `max_patterns` patterns (HTTP 429, as on the stream).
    """
    if text is None or not text.strip():
        raise BadTopic(f"give the topics to snapshot, e.g. {TOPICS_EXAMPLE}")
    if len(text) > MAX_QUERY_BYTES:
        raise BadTopic(f"topics longer than {MAX_QUERY_BYTES} characters")
    texts = text.split(",")
    if len(texts) > max_patterns:
        raise LimitReached(f"at most {max_patterns} topic patterns, got {len(texts)}")
    patterns = parse_patterns(texts, known_symbols)
    return list(dict.fromkeys(patterns))  # a repeated pattern is asked for once


def render_snapshot(
    hub: Hub, patterns: list[TopicPattern], forbidden: list[str] | None = None
) -> str:
    """The snapshot document as compact JSON text.

    `{"epoch": E, "position": "E-O", "snapshots": [...]}`, each snapshot the same JSON
    object an SSE `snapshot` event carries, all consistent with `position`: each
    carries its topic's own last offset and time, `position` is the document's.
    `patterns` are already narrowed to the client's entitlements
    (`ticker.server.stream_auth.narrow_or_refuse`); the requested patterns refused for
    that are listed under `"forbidden"`.
    """
    position = hub.position
    parts = [hub.current_snapshot(topic).json for topic in matching_topics(hub.topics(), patterns)]
    extra = f',"forbidden":{json.dumps(forbidden)}' if forbidden else ""
    return (
        f'{{"epoch":{position.epoch},"position":"{position}",'
        f'"snapshots":[{",".join(parts)}]{extra}}}'
    )

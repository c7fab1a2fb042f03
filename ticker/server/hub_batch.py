"""Publishing one batch of events into a hub so that no single event ends the task.

The embedded hub task (`ticker.server.process.run_hub`) and a cluster leader's writer
(`ticker.cluster.leader`) both publish through `publish_batch`: an event the hub cannot
publish is repaired by the hub (`EventRejected`), counted, logged once per reason and
then rate-limited, and the batch goes on. Owns that guard; it never fans out.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from ticker.core.hub import EventRejected, Hub, Published
from ticker.ingest.ratelog import RateLimitedLog
from ticker.model.events import NormalizedEvent
from ticker.server.stats import ServerStats

log = logging.getLogger("ticker.server")


def publish_batch(
    hub: Hub, batch: Sequence[NormalizedEvent], now_ns: int, rejections: HubRejections
) -> list[Published]:
    """Publish every event of `batch`; returns what went out (repairs included)."""
    published: list[Published] = []
    for event in batch:
        try:
            published += hub.publish(event, now_ns)
        except EventRejected as exc:
            published += exc.published  # the repair: offsets stay without holes
            rejections.note(exc, event, now_ns)
        except Exception as exc:  # the repair itself failed; still skip, go on
            rejections.note(exc, event, now_ns)
    return published


class HubRejections:
    """Counts the events the hub rejected; logs the first of each reason with its
    traceback, then at most `REPEAT_LINES_PER_S` lines a second for all of them."""

    MAX_REASONS = 64
    REPEAT_LINES_PER_S = 1

    def __init__(self, stats: ServerStats) -> None:
        self.stats = stats
        self._seen: set[str] = set()
        self._repeats = RateLimitedLog("hub", self.REPEAT_LINES_PER_S, log)

    def note(self, exc: Exception, event: NormalizedEvent, now_ns: int) -> None:
        """Count one rejected event and log it (see the class)."""
        self.stats.hub_rejected_events += 1
        cause = (exc.__cause__ if isinstance(exc, EventRejected) else None) or exc
        reason = _reason(cause)
        if reason not in self._seen and len(self._seen) < self.MAX_REASONS:
            self._seen.add(reason)
            log.error(
                "hub rejected an event, skipped it and repaired the stream (reason %s; "
                "repeats are rate-limited): %.200r",
                reason, event, exc_info=cause,
            )  # fmt: skip
        else:
            self._repeats.warning(now_ns, f"rejected an event again: {reason}: {cause!s:.200}")


def _reason(exc: BaseException) -> str:
    """What makes two failures the same: the exception type and where it was raised."""
    where = "?"
    traceback = exc.__traceback__
    while traceback is not None:
        code = traceback.tb_frame.f_code
        where = f"{code.co_filename.rpartition('/')[2]}:{traceback.tb_lineno}"
        traceback = traceback.tb_next
    return f"{type(exc).__name__} at {where}"

"""What `ticker record` and `ticker replay` show: progress while running, a report after.

A rich progress bar (rate and ETA) on a terminal, a plain log line every few seconds
otherwise; the final statistics as text on stderr or as one JSON object. Formatting
only: the numbers come from the recorder and the player.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from typing import IO, Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from ticker.capture.player import PlayResult
from ticker.capture.publisher import PublishCounts
from ticker.capture.record import iso_utc

log = logging.getLogger("ticker.capture")

LOG_INTERVAL_S = 5.0
"""Without a terminal, a progress line this often."""


class _RateColumn(ProgressColumn):
    def __init__(self, unit: str) -> None:
        super().__init__()
        self.unit = unit

    def render(self, task: Task) -> Text:
        return Text(f"{task.speed or 0:,.0f} {self.unit}/s", style="progress.data.speed")


class ProgressDisplay:
    """Progress of a count towards an optional total: a bar on a TTY, log lines if not."""

    def __init__(
        self,
        what: str,
        total: float | None,
        *,
        tty: bool,
        stream: IO[str],
        rate_unit: str | None = "",
    ) -> None:
        self.what = what
        self.total = total
        self._bar: Progress | None = None
        self._last_log = time.monotonic()
        self._started = time.monotonic()
        if tty:
            columns: list[ProgressColumn] = [
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
            ]
            if rate_unit is not None:
                columns.append(_RateColumn(rate_unit or what))
            self._bar = Progress(
                *columns,
                TextColumn("{task.fields[detail]}"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=Console(file=stream),
                transient=False,
            )
            self._task = self._bar.add_task(what, total=total, detail="")
            self._bar.start()

    def update(self, done: float, detail: str = "") -> None:
        if self._bar is not None:
            self._bar.update(self._task, completed=done, detail=detail)
            return
        now = time.monotonic()
        if now - self._last_log < LOG_INTERVAL_S:
            return
        self._last_log = now
        elapsed = now - self._started
        rate = done / elapsed if elapsed > 0 else 0.0
        if self.total:
            eta = (self.total - done) / rate if rate > 0 else math.inf
            log.info(
                "%s: %s/%s (%.0f%%) %s, %.0f/s, ETA %.0f s",
                self.what, f"{done:,.0f}", f"{self.total:,.0f}", 100 * done / self.total,
                detail, rate, eta,
            )  # fmt: skip
        else:
            log.info("%s: %s %s, %.0f/s", self.what, f"{done:,.0f}", detail, rate)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()


class ReplayProgress:
    """`player.Progress` onto a `ProgressDisplay` of records."""

    def __init__(self, display: ProgressDisplay) -> None:
        self.display = display

    def update(self, records: int, events: int, loop: int) -> None:
        self.display.update(records, f"{events:,} events, loop {loop + 1}")


def _ms(seconds: float) -> float | None:
    return None if math.isnan(seconds) else round(seconds * 1000, 3)


def replay_report(
    result: PlayResult, *, target: str, files: int, publish: PublishCounts | None
) -> dict[str, Any]:
    """Everything a replay measured, JSON-ready."""
    counts = result.counts
    lateness = result.lateness
    report: dict[str, Any] = {
        "target": target,
        "files": files,
        "loops": result.loops,
        "records": counts.records,
        "warmup_records": counts.warmup_records,
        "events": counts.events,
        "state_events": counts.state_events,
        "published_events": result.published_events,
        "batches": result.batches,
        "filtered_events": counts.filtered_events,
        "malformed_event_records": counts.malformed_events,
        "unanswered_snapshot_requests": counts.snapshot_requests,
        "first": iso_utc(counts.first_ns) if counts.first_ns is not None else None,
        "last": iso_utc(counts.last_ns) if counts.last_ns is not None else None,
        "wall_s": round(result.wall_s, 3),
        "records_per_s": round(counts.records / result.wall_s) if result.wall_s > 0 else None,
        "faults": dict(counts.faults),
        "venues": {v: dataclasses.asdict(c) for v, c in sorted(counts.venues.items())},
        "problems": counts.problems,
        "lateness_ms": {
            "steps": lateness.total,
            "p50": _ms(lateness.quantile(0.5)),
            "p99": _ms(lateness.quantile(0.99)),
            "max": _ms(lateness.max_s) if lateness.total else None,
            "mean": _ms(lateness.sum_s / lateness.total) if lateness.total else None,
        },
        "error": str(result.error) if result.error is not None else None,
    }
    if publish is not None:
        report["publish"] = dataclasses.asdict(publish)
    return report


def print_replay_report(report: dict[str, Any], stream: IO[str]) -> None:
    """The report as a few readable lines."""

    def out(text: str) -> None:
        print(text, file=stream)

    out(
        f"replayed {report['records']:,} records from {report['files']} file(s) in "
        f"{report['loops']} loop(s): {report['published_events']:,} events in "
        f"{report['batches']:,} batches to {report['target']}; {report['wall_s']} s, "
        f"{report['records_per_s'] or 0:,} records/s"
    )
    if report["first"] is not None:
        out(f"  recorded time {report['first']} .. {report['last']}")
    late = report["lateness_ms"]
    if late["steps"]:
        out(
            f"  pacing error (late vs due, ms): p50 <= {late['p50']}, p99 <= {late['p99']}, "
            f"max {late['max']}, mean {late['mean']} over {late['steps']:,} steps"
        )
    if any(report["faults"].values()):
        out("  faults injected: " + " ".join(f"{k}={v}" for k, v in report["faults"].items()))
    for venue, c in report["venues"].items():
        out(f"  {venue}: " + " ".join(f"{k}={v:,}" for k, v in c.items()))
    out(
        f"  warm-up records {report['warmup_records']:,}, state events "
        f"{report['state_events']:,}, filtered events {report['filtered_events']:,}, "
        f"malformed event records {report['malformed_event_records']:,}, unanswered "
        f"snapshot requests {report['unanswered_snapshot_requests']:,}"
    )
    publish = report.get("publish")
    if publish is not None:
        out(
            f"  target acknowledged {publish['batches_acked']:,} batches "
            f"({publish['events_acked']:,} events), refused {publish['batches_refused']:,} "
            f"({publish['events_refused']:,} events)"
        )
        for reason in publish["reasons"]:
            out(f"    refused {reason}")

"""`/metrics`: the server's counters in the Prometheus text format, read at scrape time.

A custom collector reads `ServerStats`, the venues' `IngestCounters`, the replay buffer
and the open connections' outboxes when Prometheus scrapes, so the hot path keeps
bumping plain integers and never calls into prometheus-client. Each application gets
its own `CollectorRegistry` (never the global one), so several servers in one process
(tests, benchmarks) do not collide. Owns metric names, units and help texts; must not
change any counter.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import CollectorRegistry

from ticker.server.context import ServerContext
from ticker.server.limits import LIMIT_NAMES
from ticker.server.stats import STREAM_TRANSPORTS, EndReason

EVICTIONS = (
    EndReason.SLOW_OUTBOX,
    EndReason.SLOW_WRITE,
    EndReason.SLOW_REPLAY,
    EndReason.SLOW_PING,
)
"""End reasons that are slow-consumer evictions."""
VENUE_COUNTERS = (
    ("messages", "Native venue messages the adapter read."),
    ("events", "Normalized events the adapter produced."),
    ("gaps", "Per-symbol sequence gaps the adapter detected."),
    ("resyncs", "Per-symbol resyncs (snapshot recoveries) the adapter completed."),
    ("duplicates", "Venue messages dropped as duplicates."),
    ("malformed", "Venue messages that did not parse and were skipped."),
    ("stale_dropped", "Venue messages dropped as older than the state held."),
    ("disconnects", "Times the venue connection dropped."),
)


class ServerCollector:
    """Reads one server's counters into metric families on every scrape."""

    def __init__(self, context: ServerContext) -> None:
        self.context = context

    def describe(self) -> list[Metric]:
        # Nothing to declare up front: the registry then skips the name-clash check,
        # which would otherwise call `collect` at registration.
        return []

    def collect(self) -> Iterator[Metric]:
        yield from self._server()
        yield from self._connections()
        yield from self._delivery()
        yield from self._hub()
        yield from self._ingest()
        yield from self._cluster()
        yield from self._auth()

    def _auth(self) -> Iterator[Metric]:
        gate = self.context.auth
        if gate is None:
            return
        # Counts only: no label ever carries a subject, a token id or a token.
        yield CounterMetricFamily(
            "ticker_auth_refused",
            "Requests and refreshes refused for a missing, bad or revoked token (401, 4401).",
            gate.refused,
        )
        yield CounterMetricFamily(
            "ticker_auth_revoked",
            "Live streams ended because the deny list revoked their token.",
            gate.revoked,
        )
        yield GaugeMetricFamily(
            "ticker_auth_streams", "Open streams with a known principal.", len(gate.live)
        )
        yield GaugeMetricFamily(
            "ticker_auth_deny_entries", "Entries (jti and sub) in the deny list.", len(gate.deny)
        )

    def _server(self) -> Iterator[Metric]:
        context = self.context
        yield GaugeMetricFamily(
            "ticker_ready", "1 when the server takes new clients, else 0.", int(context.ready)
        )
        yield GaugeMetricFamily(
            "ticker_draining",
            "1 while the server drains before shutdown.",
            int(context.shutting_down),
        )

    def _connections(self) -> Iterator[Metric]:
        stats = self.context.stats
        open_now = GaugeMetricFamily(
            "ticker_connections", "Streaming connections open now.", labels=["transport"]
        )
        accepted = CounterMetricFamily(
            "ticker_connections_accepted",
            "Streaming connections accepted since start.",
            labels=["transport"],
        )
        # The streaming transports always, so their series exist (at 0) before any client.
        for transport in sorted({*STREAM_TRANSPORTS, *stats.connections_total}):
            open_now.add_metric([transport], stats.connections_open[transport])
            accepted.add_metric([transport], stats.connections_total[transport])
        ends = CounterMetricFamily(
            "ticker_connection_ends", "Streaming connections ended, by reason.", labels=["reason"]
        )
        for name in sorted({*(r.value for r in EndReason), *stats.ends}):
            ends.add_metric([name], stats.ends[name])
        evictions = CounterMetricFamily(
            "ticker_evictions",
            "Slow consumers evicted, by reason (a subset of ticker_connection_ends_total).",
            labels=["reason"],
        )
        for reason in EVICTIONS:
            evictions.add_metric([reason.value], stats.ends[reason.value])
        yield from (open_now, accepted, ends, evictions)
        yield CounterMetricFamily(
            "ticker_bad_requests",
            "Requests refused as malformed or over a limit.",
            stats.bad_requests,
        )
        yield CounterMetricFamily(
            "ticker_accept_errors",
            "Accepts that failed for lack of resources (the fd limit, memory).",
            stats.accept_errors,
        )
        yield CounterMetricFamily(
            "ticker_tls_failures",
            "Connections dropped for a failed TLS handshake or a bad TLS record.",
            stats.tls_failures,
        )
        yield CounterMetricFamily(
            "ticker_internal_errors",
            "Connections closed because serving them raised an unexpected error (a bug).",
            stats.internal_errors,
        )
        yield CounterMetricFamily(
            "ticker_resumes", "Subscriptions resumed from the replay buffer.", stats.resumes
        )
        yield CounterMetricFamily(
            "ticker_resumes_limited",
            "Resumes refused by the per-address rate limit (error 4429 / HTTP 429).",
            stats.resumes_limited,
        )
        limited = CounterMetricFamily(
            "ticker_limited",
            "Requests, commands and streams refused or capped by an abuse limit, by limit.",
            labels=["limit"],
        )
        for name in sorted({*LIMIT_NAMES, *stats.limited}):
            limited.add_metric([name], stats.limited[name])
        yield limited
        yield CounterMetricFamily(
            "ticker_resets",
            "Resume positions that could not be served: reset plus fresh snapshots.",
            stats.resets,
        )
        yield CounterMetricFamily(
            "ticker_deep_resumes",
            "Resumes older than the replay buffer, served from the cluster log.",
            stats.deep_resumes,
        )

    def _delivery(self) -> Iterator[Metric]:
        stats = self.context.stats
        yield CounterMetricFamily(
            "ticker_messages_sent", "Data messages written to clients.", stats.messages_sent
        )
        yield CounterMetricFamily(
            "ticker_sent_bytes",
            "Bytes written to streaming clients.",
            stats.bytes_sent,
            unit="bytes",
        )
        yield CounterMetricFamily("ticker_writes", "Writes to client sockets.", stats.writes)
        yield CounterMetricFamily(
            "ticker_coalesced_writes",
            "Writes that carried more than one message.",
            stats.coalesced_writes,
        )
        yield CounterMetricFamily(
            "ticker_conflations",
            "Times an outbox overflowed and conflated its latest-value topics.",
            stats.conflations,
        )
        queued = 0
        largest = 0
        for subscriber in self.context.fanout.subscribers():
            size = subscriber.outbox.bytes + subscriber.outbox.held  # snapshots held too
            queued += size
            largest = max(largest, size)
        yield GaugeMetricFamily(
            "ticker_outbox_bytes",
            "Bytes queued in every connection's outbox.",
            queued,
            unit="bytes",
        )
        yield GaugeMetricFamily(
            "ticker_outbox_largest_bytes",
            "Bytes queued in the fullest outbox.",
            largest,
            unit="bytes",
        )
        histogram = stats.fanout_latency
        buckets: list[tuple[str, float]] = []
        cumulative = 0
        for bound, count in zip(histogram.bounds, histogram.counts, strict=False):
            cumulative += count
            buckets.append((repr(float(bound)), cumulative))
        buckets.append(("+Inf", histogram.total))
        yield HistogramMetricFamily(
            "ticker_fanout_latency_seconds",
            "Per hub batch: from taking it off the channel to the end of its fanout.",
            buckets=buckets,
            sum_value=histogram.sum_s,
            unit="seconds",
        )

    def _hub(self) -> Iterator[Metric]:
        context = self.context
        hub, stats = context.hub, context.stats
        yield CounterMetricFamily(
            "ticker_hub_events", "Normalized events the hub took in.", stats.ingest_events
        )
        yield CounterMetricFamily(
            "ticker_published_messages", "Messages the hub published.", stats.published
        )
        yield CounterMetricFamily(
            "ticker_hub_rejected_events",
            "Events the hub could not publish and skipped, repairing its stream (a bug).",
            stats.hub_rejected_events,
        )
        yield GaugeMetricFamily("ticker_stream_epoch", "Epoch of the hub's stream.", hub.epoch)
        yield GaugeMetricFamily(
            "ticker_stream_offset", "Offset of the last published message.", hub.position.offset
        )
        replay = hub.replay
        yield GaugeMetricFamily(
            "ticker_replay_messages", "Messages held in the replay buffer.", len(replay)
        )
        yield GaugeMetricFamily(
            "ticker_replay_max_messages",
            "Messages the replay buffer may hold.",
            replay.max_entries,
        )
        yield GaugeMetricFamily(
            "ticker_replay_bytes",
            "Memory held by the replay buffer's messages: each one's value and bytes "
            "(estimated) and every form of it built for clients.",
            replay.bytes,
            unit="bytes",
        )
        yield GaugeMetricFamily(
            "ticker_replay_max_bytes",
            "Bytes the replay buffer may hold.",
            replay.max_bytes,
            unit="bytes",
        )
        fill = max(len(replay) / replay.max_entries, replay.bytes / replay.max_bytes)
        yield GaugeMetricFamily(
            "ticker_replay_fill_ratio",
            "Replay buffer fill: the larger of its message and byte fill (1 = evicting).",
            fill,
            unit="ratio",
        )
        yield GaugeMetricFamily(
            "ticker_replay_first_offset",
            "Offset of the oldest message held; resuming from before it gets a reset.",
            replay.first_offset,
        )

    def _cluster(self) -> Iterator[Metric]:
        """Leadership and log following; only for a process in a cluster."""
        status = self.context.cluster
        if status is None:
            return
        yield GaugeMetricFamily(
            "ticker_cluster_leading", "1 while this process holds the lease.", int(status.leading)
        )
        yield CounterMetricFamily(
            "ticker_cluster_lease_changes",
            "Times this process took or lost the lease.",
            status.lease_changes,
        )
        yield CounterMetricFamily(
            "ticker_cluster_appended_batches",
            "Hub batches this process appended to the cluster log.",
            status.appended_batches,
        )
        yield GaugeMetricFamily(
            "ticker_cluster_held_batches",
            "Batches published but not yet in the log (Redis slow or away).",
            status.held_batches,
        )
        yield CounterMetricFamily(
            "ticker_cluster_checkpoints", "Checkpoints written.", status.checkpoints
        )
        yield CounterMetricFamily(
            "ticker_cluster_log_errors",
            "Redis commands that failed (unreachable, timed out).",
            status.log_errors,
        )
        yield CounterMetricFamily(
            "ticker_cluster_applied_entries",
            "Log entries followed into this process's hub.",
            status.applied_entries,
        )
        yield GaugeMetricFamily(
            "ticker_cluster_follow_lag_seconds",
            "Now minus the publish time of the newest message followed from the log.",
            status.follow_lag_s,
        )
        yield CounterMetricFamily(
            "ticker_cluster_appended_entries",
            "Log entries this process appended (a batch over cluster_log_max_entry_bytes "
            "is several).",
            status.appended_entries,
        )
        yield CounterMetricFamily(
            "ticker_cluster_foreign_entries",
            "Log entries skipped because they are not a ticker hub batch (added by hand, "
            "or of a format this version cannot read).",
            status.foreign_entries,
        )
        yield CounterMetricFamily(
            "ticker_cluster_rebuilds",
            "Times the follower started over from a checkpoint (start, epoch change, trim).",
            status.rebuilds,
        )

    def _ingest(self) -> Iterator[Metric]:
        venues = sorted(self.context.ingest.items())
        for name, help_text in VENUE_COUNTERS:
            family = CounterMetricFamily(f"ticker_ingest_{name}", help_text, labels=["venue"])
            for venue, counters in venues:
                family.add_metric([venue], getattr(counters, name))
            yield family


def metrics_registry(context: ServerContext) -> CollectorRegistry:
    """A registry of its own holding one collector over `context`."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ServerCollector(context))
    return registry


def render_metrics(registry: CollectorRegistry, accept: str | None) -> tuple[bytes, str]:
    """The exposition body and its content type, in the format `accept` asks for
    (OpenMetrics when asked, else the Prometheus text format)."""
    encode, content_type = choose_encoder(accept or "")
    return encode(registry), content_type

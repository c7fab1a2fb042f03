"""`serve`: the wiring of one ticker process, all its tasks in one nursery.

Embedded (no Redis): venue feed tasks -> bounded channel -> the hub task (the single
writer: consolidate, sequence, encode, buffer, fan out) -> outboxes -> sockets. In a
cluster the roles are the same parts wired differently: a hub (`hub`, `all`) leads or
stands by (`ticker.cluster.leader`), writing the log; the fanout half (`edge`, `all`)
follows the log (`ticker.cluster.follower`) into the same hub, fanout and sessions.
Plus the heartbeat task and the listener. `task_status.started` hands back a
`ServerHandle` once the port listens.
"""

from __future__ import annotations

import logging
import random
import ssl
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import trio

from feeds.faults import FaultPlan
from ticker.auth.publishers import load_publishers
from ticker.cluster.follower import run_follower
from ticker.cluster.leader import run_leadership, writer_config
from ticker.cluster.status import ClusterStatus
from ticker.config import Config
from ticker.core.hub import Hub
from ticker.core.position import new_epoch
from ticker.core.ratelimit import KeyedRateLimit
from ticker.errors import ConfigError
from ticker.ingest.contract import IngestCounters
from ticker.model.events import NormalizedEvent
from ticker.server.context import ServerContext
from ticker.server.drain import DrainResult, drain
from ticker.server.fanout import Fanout
from ticker.server.gateway import Gateway
from ticker.server.hub_batch import HubRejections, publish_batch
from ticker.server.limits import FrontDoor, parse_networks
from ticker.server.listener import serve_listener
from ticker.server.reloads import run_reloads
from ticker.server.stats import ServerStats
from ticker.server.stream_auth import build_gate
from ticker.server.venue_feed import run_venue
from ticker.venues.reference import LISTINGS
from ticker.wire.tls import server_context

log = logging.getLogger("ticker.server")


@dataclass(slots=True)
class ServerHandle:
    """What a started server exposes to its caller (tests, the CLI, benchmarks)."""

    port: int
    context: ServerContext
    events: trio.MemorySendChannel[Sequence[NormalizedEvent]]
    """Send batches of normalized events here to publish them (as the venues do)."""
    ingest: dict[str, IngestCounters]
    cancel_scope: trio.CancelScope

    @property
    def hub(self) -> Hub:
        return self.context.hub

    async def publish(self, *events: NormalizedEvent) -> None:
        """Publish `events` as one batch; waits while the hub's queue is full."""
        await self.events.send(events)

    async def drain(self) -> DrainResult:
        """Refuse new clients and send every open stream away (see `ticker.server.drain`),
        within `drain_timeout_s`; then stop the server."""
        config = self.context.config
        result = await drain(
            self.context,
            deadline_s=config.drain_timeout_s,
            batch_size=config.drain_batch_size,
            rng=random.Random(),
        )
        self.stop()
        return result

    def stop(self) -> None:
        """Stop the server: every connection gets the shutdown close, then tasks end."""
        self.context.shutting_down = True
        self.cancel_scope.cancel()


AppFactory = Callable[[ServerContext], object]
"""Makes the ASGI application served on every non-streaming path."""


def default_app(context: ServerContext) -> object:
    """The application of `ticker.app` (dashboard, snapshot, health, metrics)."""
    from ticker.app import create_app

    return create_app(context)


def known_symbols(venues: tuple[str, ...]) -> frozenset[str]:
    """Every canonical symbol listed on at least one of `venues`."""
    return frozenset(listing.symbol for v in venues for listing in LISTINGS[v])


async def serve(
    config: Config,
    *,
    run_venues: bool = True,
    faults: FaultPlan | None = None,
    epoch: int | None = None,
    app: AppFactory | None = None,
    task_status: trio.TaskStatus[ServerHandle] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run a server until cancelled.

    Args:
        config: every setting.
        run_venues: start the simulated venues (tests may publish through the handle).
        faults: fault injection for the simulated venues.
        epoch: the stream epoch of an embedded server; default a new one
            (`new_epoch`), since its history does not survive a restart. In a cluster
            the epoch is the cluster log's.
        app: makes the ASGI application for every non-streaming path from the context
            (default `ticker.app.create_app`).

    Raises:
        ConfigError: the certificate or key, a token key or the deny list cannot be
            loaded.
    """
    hub = Hub(config, epoch if epoch is not None else new_epoch(time.time_ns(), random.Random()))
    context = ServerContext(
        config, hub, Fanout(config.fanout_leaf_size), ServerStats(), known_symbols(config.venues)
    )
    if config.redis_url:
        context.cluster = ClusterStatus(config.role)
    if config.resume_rate_per_ip_per_s > 0:
        context.resume_limit = KeyedRateLimit(
            config.resume_rate_per_ip_per_s, config.resume_burst_per_ip, config.resume_rate_max_ips
        )
    context.auth = build_gate(config)  # keys and deny list: a ConfigError at start-up
    context.publishers = load_publishers(config.publish_token, config.publish_tokens_file)
    context.front_door = FrontDoor(
        max_connections_per_ip=config.max_connections_per_ip,
        max_connections_per_subject=config.max_connections_per_subject,
        connect_rate_per_ip_per_s=config.connect_rate_per_ip_per_s,
        connect_burst_per_ip=config.connect_burst_per_ip,
        max_ips=config.connect_rate_max_ips,
        exempt=parse_networks(config.limit_exempt_networks, "limit_exempt_networks"),
    )
    context.trusted_proxies = parse_networks(config.trusted_proxies, "trusted_proxies")
    if config.certfile:
        try:
            context.tls = server_context(config.certfile, config.keyfile or None)
        except (OSError, ssl.SSLError) as exc:
            # server_context's messages name the file; the "[Errno N]" adds nothing.
            raise ConfigError(exc.strerror or f"cannot load certfile/keyfile: {exc}") from exc
    gateway = Gateway(
        (app or default_app)(context),
        read_timeout_s=config.handshake_timeout_s,
        write_timeout_s=config.write_timeout_s,
    )
    send, receive = trio.open_memory_channel[Sequence[NormalizedEvent]](config.ingest_queue_batches)
    context.publish = send
    ingest = context.ingest

    async def start_venues(nursery: trio.Nursery) -> None:
        if run_venues:
            start_ns = time.time_ns()
            for venue in config.venues:
                await nursery.start(
                    run_venue, venue, config, send.clone(), ingest, faults, start_ns
                )

    async with trio.open_nursery() as nursery:
        nursery.start_soon(run_heartbeats, context)
        nursery.start_soon(run_reloads, context)  # deny list, publish tokens (if any)
        if not config.redis_url:
            nursery.start_soon(run_hub, context, receive)
            await start_venues(nursery)
        else:
            if config.role in ("all", "hub"):
                # A hub node's own hub is the writer; `all` keeps a separate writer so its
                # clients only ever see what the log holds (what every edge serves too).
                writer = hub if config.role == "hub" else Hub(writer_config(config), 0)
                await nursery.start(run_leadership, context, writer, receive, start_venues)
            if config.role in ("all", "edge"):
                nursery.start_soon(run_follower, context)
        await nursery.start(gateway.run)
        port = await nursery.start(serve_listener, context, gateway)
        task_status.started(ServerHandle(port, context, send, ingest, nursery.cancel_scope))


async def run_hub(
    context: ServerContext, events: trio.MemoryReceiveChannel[Sequence[NormalizedEvent]]
) -> None:
    """The single writer: take what waits (up to a batch), publish it, fan it out once.

    Producers send batches (one venue message's events, say); the hub takes every batch
    that waits until it holds `publish_batch_events`, so one fanout pass carries as many
    messages as arrived meanwhile and the connections get them in one write. No single
    event ends this task: one the hub cannot publish is counted, logged and skipped.
    """
    hub, fanout, stats = context.hub, context.fanout, context.stats
    limit = context.config.publish_batch_events
    rejections = HubRejections(stats)
    async with events:
        async for first in events:
            batch = list(first)
            try:
                while len(batch) < limit:
                    batch += events.receive_nowait()
            except trio.WouldBlock:
                pass
            started = time.perf_counter()
            published = publish_batch(hub, batch, time.time_ns(), rejections)
            stats.ingest_events += len(batch)
            stats.published += len(published)
            if published:
                fanout.publish(published)
                stats.fanout_latency.observe(time.perf_counter() - started)


async def run_heartbeats(context: ServerContext) -> None:
    """Every `heartbeat_s`, each connection that follows topics gets a heartbeat with
    the current position."""
    period = context.config.heartbeat_s
    while True:
        await trio.sleep(period)
        for subscriber in context.fanout.subscribers():
            if not subscriber.patterns:
                # Not before the first `sub` is taken: that heartbeat would go out ahead
                # of the sub's answer (its replay or snapshots), naming a position the
                # client does not hold, and a client cut there would skip the answer.
                continue
            subscriber.heartbeat_due = True
            subscriber.flush_nowait()

"""What every task of one server shares: settings, hub, fanout tree, counters.

A plain container created by `ticker.server.process.serve`; no behaviour of its own.
"""

from __future__ import annotations

import ssl
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import trio

from ticker.auth.publishers import Publisher
from ticker.cluster.status import ClusterStatus
from ticker.config import Config
from ticker.core.compression import FrameCompressor, load_dictionary
from ticker.core.hub import Hub
from ticker.core.ratelimit import KeyedRateLimit
from ticker.ingest.contract import IngestCounters
from ticker.model.events import NormalizedEvent
from ticker.server.deep_replay import DeepSource
from ticker.server.fanout import Fanout
from ticker.server.framing import SseFraming, WebSocketFraming
from ticker.server.limits import FrontDoor, Network
from ticker.server.stats import ServerStats

if TYPE_CHECKING:
    from ticker.server.stream_auth import Gate


@dataclass(slots=True)
class ServerContext:
    """The shared state of one server process."""

    config: Config
    hub: Hub
    fanout: Fanout
    stats: ServerStats
    known_symbols: frozenset[str]
    ws_framing: WebSocketFraming = field(default_factory=WebSocketFraming)
    ws_zstd_framing: WebSocketFraming | None = None
    sse_framing: SseFraming = field(default_factory=SseFraming)
    sse_framing_http10: SseFraming = field(default_factory=lambda: SseFraming(chunked=False))
    """For HTTP/1.0 clients, which must not get chunked encoding."""
    ingest: dict[str, IngestCounters] = field(default_factory=dict)
    """Each running venue's adapter counters, by venue name."""
    tls: ssl.SSLContext | None = None
    """Set when the server has a certificate: every connection is TLS."""
    accepting: trio.CancelScope | None = None
    """The listener's accept loop; cancelled when the drain begins."""
    publish: trio.MemorySendChannel[Sequence[NormalizedEvent]] | None = None
    """The hub's input queue, for the publish endpoint (`publish_session`)."""
    shutting_down: bool = False
    """Set when the drain starts: readiness turns false and new connections are refused."""
    cluster: ClusterStatus | None = None
    """Set when the process is part of a cluster (a Redis URL is configured)."""
    deep_source: DeepSource | None = None
    """Reads the cluster log for resumes older than the replay buffer (set by the
    follower while it runs)."""
    resume_limit: KeyedRateLimit | None = None
    """Resumes per client address (None: not limited)."""
    auth: Gate | None = None
    """Tokens, entitlements and live principals (None: `auth` is off, all is open)."""
    publishers: tuple[Publisher, ...] = ()
    """Who may publish on /v1/publish (none: publishing is disabled)."""
    front_door: FrontDoor | None = None
    """Connections and streams per client address (None: not limited; set by `serve`)."""
    trusted_proxies: tuple[Network, ...] = ()
    """Peers whose X-Forwarded-For names the client (`Config.trusted_proxies`)."""

    @property
    def ready(self) -> bool:
        """Ready to take clients: not draining, the cluster log (if any) is working, and
        the hub has data (a hub-role node serves no streams: it needs only the log)."""
        if self.shutting_down:
            return False
        if self.cluster is not None:
            if self.cluster.problem is not None or self.cluster.rebuilding:
                return False
            if self.config.role == "hub":
                return True
            # An edge that restored the log's state is ready even in a quiet market.
            return self.cluster.rebuilds > 0 or self.stats.published > 0
        return self.stats.published > 0

    def zstd_framing(self) -> WebSocketFraming:
        """The framing for zstd clients, created (and the dictionary loaded) on first use."""
        if self.ws_zstd_framing is None:
            self.ws_zstd_framing = WebSocketFraming(FrameCompressor(load_dictionary()))
        return self.ws_zstd_framing

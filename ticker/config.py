"""The one configuration object: every buffer size, interval and limit with its default.

Frozen; the CLI flags map onto it. Validation happens here so a bad value fails at
start-up with a clear message, never deep inside a task.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from ticker.errors import ConfigError, ProtocolError
from ticker.server.limits import check_origins, parse_networks

VENUES = ("cbx", "fxa", "itx")
ROLES = ("all", "hub", "edge")
AUTH_MODES = ("off", "optional", "required")
AUTH_ALGORITHMS = ("HS256", "RS256", "ES256", "ES384", "EdDSA")
MAX_AUTH_LEEWAY_S = 300.0


@dataclass(frozen=True, slots=True)
class Config:
    """Every setting of ticker with its default (units are in the names)."""

    # Listening.
    host: str = "127.0.0.1"
    """Address to listen on."""
    port: int = 8080
    """TCP port for every endpoint; 0 picks a free one."""
    certfile: str = ""
    """PEM certificate chain: set it (with keyfile) to serve https and wss on the port."""
    keyfile: str = ""
    """PEM private key of certfile (empty: the key is in certfile)."""

    # Cluster (docs/CLUSTER.md). Without redis_url, `all` is the embedded single process.
    role: str = "all"
    """`all`: venues, hub and streams in one process (with redis_url it also writes the
    cluster log); `hub`: venues and hub, writing the cluster log, no streams; `edge`:
    streams fed from the cluster log, no venues."""
    redis_url: str = field(default="", repr=False)
    """Redis holding the cluster log, e.g. redis://127.0.0.1:6379/0 (may hold a password:
    never logged)."""
    cluster: str = "ticker"
    """The cluster's name: its keys in Redis are ticker:{NAME}:*."""
    workers: int = 1
    """Edge processes sharing the port with SO_REUSEPORT (role edge only)."""
    reuse_port: bool = False
    """Listen with SO_REUSEPORT, so several processes share the port (`workers` sets it
    for the processes it starts)."""
    lease_ttl_s: float = 1.0
    """The leading hub's lease; a standby takes over at most this long after the leader
    stops renewing it."""
    checkpoint_interval_s: float = 5.0
    """How often the leading hub writes every topic's snapshot to Redis."""
    cluster_log_max_entries: int = 200_000
    """The cluster log keeps about this many entries (hub batches); older ones are trimmed."""
    cluster_log_max_entry_bytes: int = 64 * 1024
    """A hub batch larger than this goes to the log as several entries (a single message
    is never split, so one larger message is an entry of its own). With
    cluster_log_max_entries it bounds the log's memory in Redis (docs/SECURITY.md)."""
    cluster_hold_batches: int = 1024
    """Batches the leading hub holds while Redis cannot take them; beyond, ingest waits."""
    redis_timeout_s: float = 2.0
    """Longest wait for one Redis command (a blocking read waits this much longer)."""

    # Venues and ingest.
    venues: tuple[str, ...] = VENUES
    """Simulated venues to run in-process."""
    venue_rate_per_s: float = 20.0
    """Messages per second each simulated venue sends."""
    seed: int = 1
    """Seed of the venue simulators; the same seed gives the same market."""
    ingest_queue_batches: int = 1024
    """Batches (one venue message's events each) waiting between the venue tasks and the
    hub; full blocks the venues."""
    reconnect_min_s: float = 0.1
    """First reconnect delay after a venue disconnect (doubles, with jitter)."""
    reconnect_max_s: float = 5.0
    """Longest reconnect delay."""

    # Hub.
    keyframe_interval: int = 100
    """A topic publishes a whole-state keyframe after this many deltas."""
    max_venues: int = 16
    """Venues that get topics of their own (`quote@<venue>.*`, `book@<venue>.*`), the
    first seen; later ones (a publisher may name any venue) are consolidated without
    them. Bounds the topics: 2 x symbols x max_venues. 0: no venue topics."""
    replay_max_messages: int = 100_000
    """The replay buffer keeps at most this many messages..."""
    replay_max_bytes: int = 128 * 1024 * 1024
    """...and at most this many bytes of memory: each message's value and bytes (an
    estimate, ~700 bytes for a typical 66-byte message) plus every form of it built for a
    client (WebSocket frame, zstd frame, JSON and SSE event: up to ~550 bytes more)."""
    gc_gen0_threshold: int = 50_000
    """`ticker serve` only (not a server embedded in another program): Python's youngest
    GC generation is collected after this many new container objects (Python's default:
    700), and what start-up built is frozen out of the collector (`gc.freeze`). The
    replay buffer keeps up to 100,000 messages of tracked objects alive, which the default
    made the collector walk again and again (benchmarks/RESULTS.md, Core 2026-12-03 GC);
    refcounting still frees all non-cyclic garbage at once, so only garbage cycles wait
    longer. 0 leaves Python's GC settings as they are."""
    publish_batch_events: int = 64
    """The hub takes at most this many waiting events before fanning out once (more
    coalesces better; fewer keeps the loop responsive while a batch fans out)."""

    # Fanout and connections.
    fanout_leaf_size: int = 256
    """Connections per leaf of the fanout tree."""
    outbox_max_bytes: int = 512 * 1024
    """Bytes queued for one connection before conflation, then eviction."""
    send_buffer_bytes: int = 128 * 1024
    """Kernel send buffer per connection (SO_SNDBUF; Linux reserves twice this); 0 keeps
    the OS default, which autotunes up to net.ipv4.tcp_wmem's maximum (4 MiB). Fixed, it
    bounds kernel memory per client and what a stalled client absorbs before a write
    blocks and evicts it; 128 KiB delivered as much as the OS default on 127.0.0.1
    (benchmarks/bench_send_buffer.py) and allows ~2.6 MB/s per client at 100 ms RTT."""
    write_timeout_s: float = 2.0
    """A write that does not finish in this time evicts the connection."""
    heartbeat_s: float = 15.0
    """Heartbeat period on every stream, carrying the current position."""
    ping_interval_s: float = 20.0
    """WebSocket ping after this long without input from the client."""
    ping_timeout_s: float = 10.0
    """Close a WebSocket whose pong does not come within this time."""
    handshake_timeout_s: float = 10.0
    """Close a connection whose request head does not arrive in this time."""
    max_connections: int = 20_000
    """Streaming connections accepted at once; more get 503 / close 4429."""
    max_http_connections: int = 1024
    """Connections served by the application (dashboard, snapshot, metrics) at once; more
    get 503."""
    max_subscriptions: int = 512
    """Topic patterns one connection may hold."""
    resume_rate_per_ip_per_s: float = 2.0
    """Resumes (a subscribe with a position, an SSE Last-Event-ID) each client address may
    make per second, after its burst; more get error 4429 / HTTP 429. 0 turns the limit
    off (behind a proxy every client has the proxy's address)."""
    resume_burst_per_ip: int = 30
    """Resumes one address may make at once after a quiet spell (a reconnect storm)."""
    resume_rate_max_ips: int = 10_000
    """Addresses whose resume rate is tracked at once; past it the least recently seen is
    forgotten (about 200 bytes each)."""
    max_frame_bytes: int = 64 * 1024
    """Largest client WebSocket message accepted."""
    max_message_fragments: int = 128
    """Frames one client WebSocket message (on /v1/ws and /v1/publish) may arrive in;
    more closes the connection with 1009. Bounds the work and memory a message of
    endless tiny or empty fragments costs."""
    sse_retry_ms: int = 1000
    """The `retry:` SSE tells browsers to wait before reconnecting."""
    sse_max_rate_per_s: float = 50.0
    """Upper limit for an SSE client's `max_rate`."""
    drain_timeout_s: float = 10.0
    """On SIGTERM, open streams are sent away within this time, then the process exits."""
    drain_batch_size: int = 500
    """Streams sent away per batch during a drain (batches spread over half the timeout)."""

    # Authentication and entitlements (docs/SECURITY.md, docs/OPERATIONS.md).
    auth: str = "off"
    """`off`: anyone may stream everything (the embedded demo); `optional`: a token is
    verified when given, else the connection is anonymous (`auth_anonymous_topics`);
    `required`: no token or a bad one gets HTTP 401 before any upgrade or stream byte."""
    auth_secret: str = field(default="", repr=False)
    """HS256 shared secret (>= 32 bytes) tokens are verified with. Never logged."""
    auth_public_key_file: str = ""
    """PEM file of public keys (RSA >= 2048 bits: RS256; P-256: ES256; Ed25519: EdDSA)."""
    auth_jwks_file: str = ""
    """JWKS file of public keys, chosen by the token's `kid` (rotation: publish the new
    key, then sign with it)."""
    auth_algorithms: tuple[str, ...] = ("HS256", "RS256", "ES256", "EdDSA")
    """Algorithms accepted (never `none`); a token's `alg` must also be its key's."""
    auth_audience: str = ""
    """The `aud` every token must carry (empty: not checked)."""
    auth_issuer: str = ""
    """The `iss` every token must carry (empty: not checked)."""
    auth_leeway_s: float = 30.0
    """Clock skew tolerated on `exp` and `nbf` (at most 300 s)."""
    auth_max_token_bytes: int = 4096
    """Longer tokens are refused before they are parsed."""
    auth_topics_claim: str = "topics"
    """The claim listing the topic patterns a subject may see (`quote.*`, `*.BTC-USD`)."""
    auth_anonymous_topics: tuple[str, ...] = ("*.*",)
    """What a connection without a token may see under `auth optional` (empty: nothing,
    every pattern is refused with 4403)."""
    auth_query_token: bool = True
    """Accept `?token=` (for browsers' EventSource, which cannot send headers; weaker:
    URLs reach proxy logs and history)."""
    auth_cookie: str = "ticker_token"
    """Cookie holding a token (the dashboard's); empty: cookies are not read."""
    auth_deny_file: str = ""
    """Deny list (`jti:<id>` / `sub:<subject>` lines), reloaded when it changes or on
    SIGHUP; live connections of a revoked token end within a second."""
    auth_deny_poll_s: float = 0.5
    """How often the deny list's and `publish_tokens_file`'s modification times are
    checked (at most 1 s)."""
    # Abuse limits (ticker/server/limits.py; docs/SECURITY.md, docs/OPERATIONS.md).
    max_connections_per_ip: int = 256
    """Streams (WebSocket and SSE) one client address may hold open; more get HTTP 429
    before the upgrade. 0: no limit."""
    max_connections_per_subject: int = 1024
    """Streams one authenticated subject (a token's `sub`) may hold open, from any
    address; more get HTTP 429 before the upgrade. Anonymous streams are counted per
    address only. 0: no limit."""
    connect_rate_per_ip_per_s: float = 20.0
    """New connections (any path) one client address may open per second after its
    burst; more get HTTP 429 with Retry-After. 0: no limit."""
    connect_burst_per_ip: int = 200
    """New connections one address may open at once (a page load opens ~8)."""
    connect_rate_max_ips: int = 10_000
    """Addresses whose connect rate and refusal episodes are tracked at once; past it the
    least recently seen is forgotten."""
    limit_exempt_networks: tuple[str, ...] = ("127.0.0.0/8", "::1/128")
    """Client addresses (CIDRs) the per-address connection limits leave alone: by default
    this host (benchmarks, a local proxy without trusted_proxies). Empty: none."""
    command_rate_per_s: float = 50.0
    """Commands (`sub`, `unsub`) one WebSocket connection may send per second after its
    burst; more get `error` 4429. 0: no limit."""
    command_burst: int = 200
    """Commands one connection may send at once."""
    max_refused_commands: int = 100
    """Refused commands a connection may have outstanding (one is forgiven per second);
    more close it with 4429."""
    sse_anonymous_max_rate_per_s: float = 0.0
    """`max_rate` every anonymous SSE stream gets at most (none asked, or more: this).
    0: anonymous streams get what they ask for, as others do."""
    stream_origins: tuple[str, ...] = ()
    """Browser origins (`https://host[:port]`, `null`, or `*`: any) allowed to open
    /v1/ws and /v1/sse, besides requests with no Origin and pages on the same host as
    the request's Host header; any other gets 403 before the upgrade."""
    cors_origins: tuple[str, ...] = ("*",)
    """Origins whose pages may read /v1/sse, /v1/snapshot and the zstd dictionary
    (`*`: every page, answered `Access-Control-Allow-Origin: *`)."""
    trusted_proxies: tuple[str, ...] = ()
    """Proxies (CIDRs) whose X-Forwarded-For names the client: the rightmost address in
    it that is not a trusted proxy. Empty: the TCP peer is the client."""

    # Publishing (feed replayers push normalized events into a running server).
    publish_token: str = field(default="", repr=False)
    """Token a publisher may present on /v1/publish (publisher `publish_token`, allowed
    every topic); empty, and no `publish_tokens_file`, disables publishing. Never logged."""
    publish_tokens_file: str = ""
    """TOML file of named publish tokens (their SHA-256), each limited to topic patterns
    and venues (docs/OPERATIONS.md), reloaded when it changes or on SIGHUP; with
    `publish_token`, both are accepted."""
    max_publishers: int = 4
    """Publisher connections accepted at once."""

    def __post_init__(self) -> None:
        positive = (
            "keyframe_interval",
            "replay_max_messages",
            "replay_max_bytes",
            "ingest_queue_batches",
            "publish_batch_events",
            "fanout_leaf_size",
            "outbox_max_bytes",
            "max_connections",
            "max_http_connections",
            "max_subscriptions",
            "connect_burst_per_ip",
            "connect_rate_max_ips",
            "command_burst",
            "max_refused_commands",
            "resume_burst_per_ip",
            "resume_rate_max_ips",
            "max_frame_bytes",
            "max_message_fragments",
            "write_timeout_s",
            "heartbeat_s",
            "ping_interval_s",
            "ping_timeout_s",
            "handshake_timeout_s",
            "reconnect_min_s",
            "sse_max_rate_per_s",
            "max_publishers",
            "drain_timeout_s",
            "drain_batch_size",
            "workers",
            "lease_ttl_s",
            "checkpoint_interval_s",
            "cluster_log_max_entries",
            "cluster_hold_batches",
            "redis_timeout_s",
        )
        for name in positive:
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be > 0, got {getattr(self, name)}")
        if not 0 < self.venue_rate_per_s <= 1_000_000:
            raise ConfigError(f"venue_rate_per_s must be in (0, 1e6], got {self.venue_rate_per_s}")
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"port must be in 0..65535, got {self.port}")
        if self.reconnect_max_s < self.reconnect_min_s:
            raise ConfigError("reconnect_max_s must be >= reconnect_min_s")
        if self.resume_rate_per_ip_per_s < 0:
            raise ConfigError("resume_rate_per_ip_per_s must be >= 0 (0: no limit)")
        nonnegative = (
            "max_connections_per_ip",
            "max_connections_per_subject",
            "connect_rate_per_ip_per_s",
            "command_rate_per_s",
            "sse_anonymous_max_rate_per_s",
        )
        for name in nonnegative:
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0 (0: no limit), got {getattr(self, name)}")
        if self.sse_anonymous_max_rate_per_s > self.sse_max_rate_per_s:
            raise ConfigError("sse_anonymous_max_rate_per_s must be <= sse_max_rate_per_s")
        parse_networks(self.limit_exempt_networks, "limit_exempt_networks")
        parse_networks(self.trusted_proxies, "trusted_proxies")
        check_origins(self.stream_origins, "stream_origins")
        check_origins(self.cors_origins, "cors_origins")
        if not 0 <= self.max_venues <= 1024:
            raise ConfigError(f"max_venues must be in 0..1024, got {self.max_venues}")
        if self.send_buffer_bytes < 0:
            raise ConfigError("send_buffer_bytes must be >= 0")
        if self.gc_gen0_threshold < 0:
            raise ConfigError("gc_gen0_threshold must be >= 0 (0: Python's GC settings)")
        if self.sse_retry_ms < 0:
            raise ConfigError("sse_retry_ms must be >= 0")
        if self.keyfile and not self.certfile:
            raise ConfigError("keyfile needs certfile")
        # At most 512 KiB: a follower reads 256 entries at once, and a lane's reply is
        # bounded at 256 MiB (ticker/cluster/resp.py).
        if not 1024 <= self.cluster_log_max_entry_bytes <= 512 * 1024:
            raise ConfigError("cluster_log_max_entry_bytes must be in [1024, 524288]")
        if self.role not in ROLES:
            raise ConfigError(f"role must be one of {', '.join(ROLES)}, got {self.role!r}")
        if self.role != "all" and not self.redis_url:
            raise ConfigError(f"role {self.role} needs redis_url (the cluster log)")
        if self.workers > 1 and self.role != "edge":
            raise ConfigError("workers > 1 is for role edge (processes sharing one port)")
        if self.workers > 1 and self.port == 0:
            raise ConfigError("workers > 1 needs a fixed port to share (port 0 picks one each)")
        if not self.cluster or not all(c.isalnum() or c in "-_." for c in self.cluster):
            raise ConfigError(f"cluster must be letters, digits, - _ . ; got {self.cluster!r}")
        self._check_auth()
        unknown = set(self.venues) - set(VENUES)
        if unknown or not self.venues:
            raise ConfigError(f"venues must be a non-empty subset of {VENUES}, got {self.venues}")

    def _check_auth(self) -> None:
        if self.auth not in AUTH_MODES:
            raise ConfigError(f"auth must be one of {', '.join(AUTH_MODES)}, got {self.auth!r}")
        sources = [bool(self.auth_secret), bool(self.auth_public_key_file),
                   bool(self.auth_jwks_file)]  # fmt: skip
        if self.auth != "off" and sum(sources) != 1:
            raise ConfigError(
                f"auth {self.auth} needs exactly one of auth_secret, auth_public_key_file, "
                "auth_jwks_file"
            )
        bad = [a for a in self.auth_algorithms if a not in AUTH_ALGORITHMS]
        if bad or not self.auth_algorithms:
            raise ConfigError(
                f"auth_algorithms must be some of {', '.join(AUTH_ALGORITHMS)}; got "
                f"{', '.join(self.auth_algorithms) or 'none'}"
            )
        if not 0 <= self.auth_leeway_s <= MAX_AUTH_LEEWAY_S:
            raise ConfigError(f"auth_leeway_s must be in [0, {MAX_AUTH_LEEWAY_S:g}]")
        if not 256 <= self.auth_max_token_bytes <= 65536:
            raise ConfigError("auth_max_token_bytes must be in [256, 65536]")
        if not 0 < self.auth_deny_poll_s <= 1:
            raise ConfigError("auth_deny_poll_s must be in (0, 1]")
        if not self.auth_topics_claim:
            raise ConfigError("auth_topics_claim must not be empty")
        # Imported here: ticker.auth depends on ticker.core, which imports this module.
        from ticker.auth.grants import parse_grants

        try:
            parse_grants(self.auth_anonymous_topics)
        except ProtocolError as exc:
            raise ConfigError(f"auth_anonymous_topics: {exc}") from None

    @classmethod
    def names(cls) -> list[str]:
        """Every setting's name, in declaration order."""
        return [f.name for f in fields(cls)]

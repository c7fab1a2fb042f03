"""Cluster benchmark (issue 12): one hub + edges on Redis against `all` (embedded, no Redis).

Measures, on 127.0.0.1 only, with ticker's settings as shipped (publish_batch_events 64,
lease_ttl_s 1, heartbeat_s 15) on every side:

- **per-core**: deliveries per second per core of fanout CPU, at a fixed publish rate that
  gives the same deliveries/s to N clients (subscribed to `quote.*`): `all` (hub and
  fanout in one process) against one hub + two edges (N split evenly), where only the
  edges' CPU counts. Fanout processes pinned to CPU 0; hub, Redis, the load generator and
  this script to CPU 1.
- **latency**: p50/p99 of receive time - message `ts` (stamped by the hub's sequencer) at
  50 messages/s per client, N=1,000: `all`, one edge holding all 1,000 (same fanout per
  process, so the difference is the Redis hop), and two edges of 500.
- **redis**: Redis CPU (/proc/<pid>/stat) while the hub publishes 10,000 messages/s and two
  edges follow with no clients; entries (hub batches) per second from the hub's counters.
- **takeover**: two `ticker serve --role hub` (simulated venues) + one edge; kill -9 the
  leader; time until the edge's position passes the log's last entry at the kill.

A delivery counts only when the load generator verified it: a WebSocket frame of
well-formed msgpack data messages whose per-topic seq continues (benchmarks/loadgen/
loadgen.c counts gaps, repeats and offsets going back; every window reports them).
Every loop is bounded in count and time; only processes started here are stopped, by PID,
in `finally`. Raw figures: benchmarks/out/cluster-results.json; the markdown section:
benchmarks/out/cluster-section.md.

    .venv/bin/python benchmarks/bench_cluster.py --quick   # N=10 and 1,000, 1 run (~2 min)
    .venv/bin/python benchmarks/bench_cluster.py           # N=10, 1,000, 5,000; 3 runs (~14 min)
    # the hop alone, 5 runs, 30 s latency windows (1,500 msgs: p99 = the 15th slowest)
    .venv/bin/python benchmarks/bench_cluster.py --clients 10 --runs 5 --skip redis takeover \
        --latency-seconds 30
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import bench_fanout as bf

ROOT = bf.ROOT
OUT = bf.OUT
FANOUT_CPU = 0
OTHER_CPU = 1
SERVER = [sys.executable, str(bf.BENCH / "fanout_server.py")]
"""Settings as shipped (fanout_server.py runs `Config()`'s, heartbeats every 15 s)."""
LOAD_DELIVERIES_PER_S = (100_000, 400_000)
"""The per-core windows: the publish rate is this / N messages a second."""
LATENCY_RATE = 50.0
REDIS_RATE = 10_000.0
CHILD_LIFETIME_S = 900.0
START_TIMEOUT_S = 30.0
TAKEOVER_TIMEOUT_S = 15.0
POLL_S = 0.01
SEQ_ERRORS = ("seq_gaps", "seq_repeats", "seq_no_snapshot", "offset_backwards")


@dataclass(frozen=True, slots=True)
class Plan:
    clients: tuple[int, ...]
    runs: int
    warmup_s: float
    window_s: float
    takeover_trials: int
    max_minutes: float
    latency_window_s: float = 0.0
    """The latency windows' length (lat50); 0: `window_s`. At 50 msgs/s a window of S
    seconds holds 50*S messages and its p99 is the ceil(S/2)-th slowest of them."""

    def window_for(self, name: str) -> float:
        """The length of window `name` in seconds."""
        if name.startswith("lat") and self.latency_window_s:
            return self.latency_window_s
        return self.window_s


QUICK = Plan((10, 1000), 1, 1.0, 3.0, 3, 5.0)
FULL = Plan((10, 1000, 5000), 3, 2.0, 6.0, 7, 17.0)
HOP_CLIENTS = 10
"""At this N only latency is measured, `all` against one edge: the fanout takes microseconds,
so the difference is the hop through Redis itself."""
DISTURBED = 0.10
"""Others' CPU (or steal) in a window above this, in cores: the session is run once more."""


@dataclass(slots=True)
class Window:
    """One measurement window of one setup."""

    name: str
    rate: float
    deliveries_per_s: float
    p50_us: int
    p99_us: int
    fanout_cpu: float
    """`all`: the server; cluster: the edges together (cores)."""
    hub_cpu: float
    redis_cpu: float
    loadgen_cpu: float
    foreign_cpu: float
    steal: float
    messages_per_write: float
    entries_per_s: float
    messages_per_s: float
    messages: int
    """Messages each client received in the window: what its p50/p99 rest on (the
    deliveries are N times as many, but one late message is late for every client)."""
    seq_errors: int
    seq_checked: int
    open_clients: int

    @property
    def per_core(self) -> float:
        return self.deliveries_per_s / self.fanout_cpu if self.fanout_cpu else float("nan")


@dataclass(slots=True)
class Session:
    setup: str
    """`all`, `edges2` (hub + 2 edges) or `edge1` (hub + 1 edge)."""
    clients: int
    run: int
    subscribed: int
    windows: dict[str, Window] = field(default_factory=dict)


# -- processes -------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Redis:
    """A redis-server without persistence on a free port, pinned, stopped by its PID."""

    def __init__(self, directory: Path, cpu: int) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise bf.BenchError("redis-server is missing (apt-get install redis-server)")
        self.port = free_port()
        argv = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(directory)]
        argv += ["--save", "", "--appendonly", "no", "--daemonize", "no", "--loglevel", "warning"]
        self.proc = subprocess.Popen(
            ["taskset", "-c", str(cpu), *argv],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise bf.BenchError(f"redis-server exited ({self.proc.returncode})")
            try:
                if self.command("PING").startswith(b"+PONG"):
                    return
            except OSError:
                pass
            time.sleep(0.05)
        self.stop()
        raise bf.BenchError("redis-server did not answer within 10 s")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def command(self, line: str) -> bytes:
        """One inline command; the raw reply (small replies only)."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=2) as sock:
            sock.sendall(line.encode() + b"\r\n")
            return sock.recv(65536)

    def last_entry(self, cluster: str) -> tuple[int, int] | None:
        """The (epoch, offset) ID of the cluster log's last entry, or None."""
        reply = self.command(f"XREVRANGE ticker:{{{cluster}}}:log + - COUNT 1")
        for line in reply.split(b"\r\n"):
            head, sep, tail = line.partition(b"-")
            if sep and head.isdigit() and tail.isdigit():
                return int(head), int(tail)
        return None

    def stop(self) -> None:
        stop_process(self.proc)


def stop_process(proc: subprocess.Popen[Any]) -> None:
    """SIGCONT, SIGTERM, then SIGKILL after 10 s: only this process, by its PID."""
    if proc.poll() is None:
        try:
            os.kill(proc.pid, signal.SIGCONT)
            proc.terminate()
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        except ProcessLookupError:
            pass


@contextmanager
def redis_server(directory: Path) -> Iterator[Redis]:
    redis = Redis(directory, OTHER_CPU)
    try:
        yield redis
    finally:
        redis.stop()


class Node:
    """`python -m ticker serve` (the shipped entry point) on a free port, its log in OUT."""

    def __init__(self, name: str, args: list[str]) -> None:
        self.name = name
        self.port = free_port()
        self.log_path = OUT / f"{name}.log"
        argv = [sys.executable, "-m", "ticker", "serve", *args]
        argv += ["--host", "127.0.0.1", "--port", str(self.port)]
        with self.log_path.open("w") as log:
            self.proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
                env=os.environ | {"PYTHONPATH": str(bf.SNAPSHOT), "PYTHONUNBUFFERED": "1"},
            )

    def readiness(self) -> dict[str, Any]:
        url = f"http://127.0.0.1:{self.port}/readyz"
        try:
            with urllib.request.urlopen(url, timeout=1.0) as response:
                body: dict[str, Any] = json.loads(response.read())
                return body
        except urllib.error.HTTPError as error:
            body = json.loads(error.read() or b"{}")
            return body
        except (OSError, ValueError):
            return {}

    def wait_for(self, what: str, key: str, timeout_s: float = START_TIMEOUT_S) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise bf.BenchError(f"{self.name} exited; {self.log_path}")
            ready = self.readiness()
            if ready.get(key):
                return ready
            time.sleep(0.05)
        raise bf.BenchError(f"{self.name}: not {what} within {timeout_s:.0f} s; {self.log_path}")

    def stop(self) -> None:
        stop_process(self.proc)


@contextmanager
def node(name: str, args: list[str]) -> Iterator[Node]:
    started = Node(name, args)
    try:
        yield started
    finally:
        started.stop()


# -- one window ------------------------------------------------------------------------


def stats(child: bf.Child) -> dict[str, Any]:
    return child.request("stats", "stats")


def measure(
    name: str,
    rate: float,
    hub: bf.Child,
    fanouts: list[bf.Child],
    loadgen: bf.Child | None,
    redis: Redis | None,
    plan: Plan,
) -> Window:
    """Publish `rate` messages/s at the hub; after the warm-up, one window."""
    window_s = plan.window_for(name)
    hub.send(f"rate {rate:g} {plan.warmup_s + window_s + 60:g}")
    hub.expect("publishing")
    time.sleep(plan.warmup_s)
    hub0 = stats(hub)
    fan0 = [stats(f) for f in fanouts]
    redis_pid = [redis.pid] if redis is not None else []
    loadgen_pid = [loadgen.pid] if loadgen is not None else []
    fan_pids = [f.pid for f in fanouts]
    hub_pid = [] if hub in fanouts else [hub.pid]
    ours = [*fan_pids, *hub_pid, *redis_pid, *loadgen_pid, os.getpid()]
    (busy0, steal0), own0 = bf.machine_cpu_seconds(), sum(bf.cpu_seconds(p) for p in ours)
    fan_cpu0 = sum(bf.cpu_seconds(p) for p in fan_pids)
    hub_cpu0 = sum(bf.cpu_seconds(p) for p in hub_pid)
    redis_cpu0 = sum(bf.cpu_seconds(p) for p in redis_pid)
    t0 = time.monotonic()
    if loadgen is not None:
        loadgen.send("start")
    time.sleep(window_s)
    if loadgen is not None:
        loadgen.send("stop")
    t1 = time.monotonic()
    fan_cpu1 = sum(bf.cpu_seconds(p) for p in fan_pids)
    hub_cpu1 = sum(bf.cpu_seconds(p) for p in hub_pid)
    redis_cpu1 = sum(bf.cpu_seconds(p) for p in redis_pid)
    (busy1, steal1), own1 = bf.machine_cpu_seconds(), sum(bf.cpu_seconds(p) for p in ours)
    seconds = t1 - t0
    result: dict[str, Any] = loadgen.expect("window") if loadgen is not None else {}
    hub1 = stats(hub)
    fan1 = [stats(f) for f in fanouts]
    hub.request("halt", "halted")
    time.sleep(0.5)
    sent = sum(b["messages_sent"] - a["messages_sent"] for a, b in zip(fan0, fan1, strict=True))
    writes = sum(b["writes"] - a["writes"] for a, b in zip(fan0, fan1, strict=True))
    entries = hub1.get("appended_batches", 0) - hub0.get("appended_batches", 0)
    return Window(
        name=name,
        rate=rate,
        deliveries_per_s=result.get("deliveries_per_s", 0.0),
        p50_us=result.get("p50_us", -1),
        p99_us=result.get("p99_us", -1),
        fanout_cpu=(fan_cpu1 - fan_cpu0) / seconds,
        hub_cpu=(hub_cpu1 - hub_cpu0) / seconds,
        redis_cpu=(redis_cpu1 - redis_cpu0) / seconds,
        loadgen_cpu=result.get("cpu_frac", 0.0),
        foreign_cpu=max(0.0, (busy1 - busy0) - (own1 - own0)) / seconds,
        steal=(steal1 - steal0) / seconds,
        messages_per_write=sent / writes if writes else float("nan"),
        entries_per_s=entries / seconds,
        messages_per_s=(hub1["published"] - hub0["published"]) / seconds,
        # Per client (the load generator's window, not the hub's counters, which run on).
        messages=result.get("deliveries", 0) // max(1, result.get("open", 0)),
        seq_errors=sum(result.get(k, 0) for k in SEQ_ERRORS),
        seq_checked=result.get("seq_checked", 0),
        open_clients=result.get("open", 0),
    )


# -- sessions --------------------------------------------------------------------------


PROFILE: list[str] = []
"""Set by --profile: `all`, the hub and the first edge run under pyinstrument."""


def server_argv(*extra: str, profiled: str = "") -> list[str]:
    server = SERVER
    if PROFILE and profiled:
        out = OUT / f"profile-{profiled}.txt"
        server = [sys.executable, "-m", "pyinstrument", "-r", "text", "--no-color", "-o"]
        server += [str(out), "--show-all", *SERVER[1:]]
    return [*server, "--max-seconds", str(CHILD_LIFETIME_S), *extra]


def loadgen_argv(ports: list[int], clients: int) -> list[str]:
    argv = [str(bf.LOADGEN), "--mode", "ws", "--port", ",".join(str(p) for p in ports)]
    argv += ["--clients", str(clients), "--connect-rate", "2500"]
    return [*argv, "--max-seconds", str(CHILD_LIFETIME_S)]


def windows_for(setup: str, clients: int) -> list[tuple[str, float]]:
    """(name, messages/s) of each window a session measures."""
    out: list[tuple[str, float]] = []
    if clients in (HOP_CLIENTS, 1000):
        out.append(("lat50", LATENCY_RATE))
    if clients == HOP_CLIENTS:
        return out
    if setup != "edge1":
        out += [(f"load{d // 1000}k", d / clients) for d in LOAD_DELIVERIES_PER_S]
    return out


def disturbance(session: Session) -> float:
    """The most CPU that others (processes or the hypervisor) took in any window."""
    return max((max(w.foreign_cpu, w.steal) for w in session.windows.values()), default=0.0)


def run_session(setup: str, clients: int, run: int, plan: Plan, tmp: Path) -> Session:
    bf.wait_for_quiet()
    with ExitStack() as stack:
        redis: Redis | None = None
        if setup == "all":
            argv = server_argv(profiled=f"all-{clients}")
            hub = stack.enter_context(bf.started("all-server", argv, FANOUT_CPU))
            fanouts, ports = [hub], [hub.expect("ready")["port"]]
        else:
            redis = stack.enter_context(redis_server(tmp))
            url = ["--redis-url", redis.url]
            argv = server_argv("--role", "hub", *url, profiled=f"hub-{setup}-{clients}")
            hub = stack.enter_context(bf.started("hub", argv, OTHER_CPU))
            hub.expect("ready")
            count = 2 if setup == "edges2" else 1
            fanouts = []
            ports = []
            for i in range(count):
                profiled = f"{setup}-{clients}" if i == 0 else ""
                argv = server_argv("--role", "edge", *url, profiled=profiled)
                edge = stack.enter_context(bf.started(f"edge{i}", argv, FANOUT_CPU))
                ports.append(edge.expect("ready")["port"])
                fanouts.append(edge)
        lg = stack.enter_context(bf.started("loadgen", loadgen_argv(ports, clients), OTHER_CPU))
        ready = lg.expect("ready", timeout_s=120)
        if ready["subscribed"] < clients:
            print(f"  ! only {ready['subscribed']}/{clients} subscribed: {ready}")
        time.sleep(1.0)
        session = Session(setup, clients, run, ready["subscribed"])
        for name, rate in windows_for(setup, clients):
            session.windows[name] = measure(name, rate, hub, fanouts, lg, redis, plan)
    return session


def redis_session(run: int, plan: Plan, tmp: Path, count: int = 2) -> Window:
    """Redis CPU while the hub publishes REDIS_RATE messages/s and `count` edges follow."""
    bf.wait_for_quiet()
    with ExitStack() as stack:
        redis = stack.enter_context(redis_server(tmp))
        url = ["--redis-url", redis.url]
        argv = server_argv("--role", "hub", *url, profiled=f"hub-redis-{count}")
        hub = stack.enter_context(bf.started("hub", argv, OTHER_CPU))
        hub.expect("ready")
        edges = []
        for i in range(count):
            edge = stack.enter_context(
                bf.started(f"edge{i}", server_argv("--role", "edge", *url), FANOUT_CPU)
            )
            edge.expect("ready")
            edges.append(edge)
        return measure(f"redis10k-{count}edges", REDIS_RATE, hub, edges, None, redis, plan)


def takeover_trial(trial: int, tmp: Path) -> dict[str, Any]:
    """Two hubs with simulated venues, one edge; kill -9 the leader; time until the edge's
    position passes the log's last entry at the kill."""
    with ExitStack() as stack:
        redis = stack.enter_context(redis_server(tmp))
        common = ["--redis-url", redis.url, "--cluster", f"takeover{trial}"]
        hub_a = stack.enter_context(node("hub-a", ["--role", "hub", *common]))
        hub_a.wait_for("leading", "leading")
        hub_b = stack.enter_context(node("hub-b", ["--role", "hub", *common]))
        hub_b.wait_for("ready", "ready")
        edge = stack.enter_context(node("edge", ["--role", "edge", *common]))
        edge.wait_for("ready", "ready")
        time.sleep(2.0)  # venues publishing, a checkpoint or so written
        before = edge.readiness().get("position", "")
        leader, standby = (hub_a, hub_b) if hub_a.readiness().get("leading") else (hub_b, hub_a)
        killed_at = time.monotonic()
        leader.proc.kill()  # kill -9, by its PID
        leader.proc.wait(timeout=10)
        last = redis.last_entry(f"takeover{trial}")
        if last is None:
            raise bf.BenchError("the log is empty after the kill")
        deadline = killed_at + TAKEOVER_TIMEOUT_S
        moved_at = leading_at = None
        polls = 0
        while time.monotonic() < deadline and moved_at is None:
            polls += 1
            position = edge.readiness().get("position", "")
            epoch, _, offset = position.partition("-")
            if offset.isdigit() and (int(epoch), int(offset)) > last:
                moved_at = time.monotonic()
            if leading_at is None and standby.readiness().get("leading"):
                leading_at = time.monotonic()
            time.sleep(POLL_S)
        after = edge.readiness().get("position", "")
        return {
            "trial": trial,
            "takeover_s": None if moved_at is None else moved_at - killed_at,
            "standby_leading_s": None if leading_at is None else leading_at - killed_at,
            "position_before": before,
            "log_last_at_kill": f"{last[0]}-{last[1]}",
            "edge_position_after": after,
            "same_epoch": after.partition("-")[0] == str(last[0]),
            "polls": polls,
        }


# -- report ----------------------------------------------------------------------------


def median(values: list[float]) -> float:
    values = [v for v in values if v == v]
    return statistics.median(values) if values else float("nan")


def summarize(sessions: list[Session]) -> dict[tuple[str, int, str], dict[str, float]]:
    groups: dict[tuple[str, int, str], list[Window]] = {}
    for s in sessions:
        for name, w in s.windows.items():
            groups.setdefault((s.setup, s.clients, name), []).append(w)
    out = {}
    for key, ws in groups.items():
        out[key] = {
            "runs": len(ws),
            "rate": ws[0].rate,
            "deliveries": median([w.deliveries_per_s for w in ws]),
            "per_core": median([w.per_core for w in ws]),
            "fanout_cpu": median([w.fanout_cpu for w in ws]),
            "hub_cpu": median([w.hub_cpu for w in ws]),
            "redis_cpu": median([w.redis_cpu for w in ws]),
            "loadgen_cpu": median([w.loadgen_cpu for w in ws]),
            "p50": median([w.p50_us for w in ws]),
            "p99": median([w.p99_us for w in ws]),
            "mpw": median([w.messages_per_write for w in ws]),
            "messages": median([w.messages for w in ws]),
            "entries": median([w.entries_per_s for w in ws]),
            "foreign": max(max(w.foreign_cpu, w.steal) for w in ws),
            "seq_errors": sum(w.seq_errors for w in ws),
            "seq_checked": sum(w.seq_checked for w in ws),
        }
    return out


def tail_rank(messages: float) -> int:
    """Which slowest message a p99 over `messages` messages is (1: the slowest)."""
    return max(1, math.ceil(messages / 100))


def rests_on(messages: float) -> str:
    """What a p99 rests on: the messages per client in a window and its rank among them."""
    if messages != messages or messages <= 0:
        return "-"
    return f"{messages:,.0f} msgs (#{tail_rank(messages)} slowest)"


def k(value: float) -> str:
    return "-" if value != value else f"{value / 1e3:,.0f}k"


def report(
    summary: dict[tuple[str, int, str], dict[str, float]],
    redis_windows: list[Window],
    takeovers: list[dict[str, Any]],
) -> list[str]:
    lines = [
        "| setup | N | window | msgs/s | runs | deliveries/s | fanout CPU | deliveries/s "
        "per core | msgs/write | p50 ms | p99 ms | p99 rests on | hub CPU | Redis CPU | "
        "loadgen CPU | others+steal (max) | seq errors / checked |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for (setup, n, name), m in sorted(summary.items()):
        lines.append(
            f"| {setup} | {n:,} | {name} | {m['rate']:g} | {m['runs']:.0f} | "
            f"{k(m['deliveries'])} | {m['fanout_cpu']:.2f} | {k(m['per_core'])} | "
            f"{m['mpw']:.2f} | {m['p50'] / 1e3:.1f} | {m['p99'] / 1e3:.1f} | "
            f"{rests_on(m['messages'])} | {m['hub_cpu']:.2f} | {m['redis_cpu']:.3f} | "
            f"{m['loadgen_cpu']:.2f} | "
            f"{m['foreign']:.2f} | {m['seq_errors']:.0f} / {m['seq_checked']:,.0f} |"
        )
    lines += ["", "Ratios (per-core: edges2 / all, aim >= 0.9; latency: edge - all):", ""]
    for (setup, n, name), m in sorted(summary.items()):
        base = summary.get(("all", n, name))
        if setup == "all" or base is None:
            continue
        if name.startswith("load"):
            lines.append(
                f"- N={n:,} {name} ({setup}): per-core {m['per_core'] / base['per_core']:.2f}x"
                f" ({k(m['per_core'])} vs {k(base['per_core'])} deliveries/s per core)"
            )
        else:
            lines.append(
                f"- N={n:,} {name} ({setup}): p50 {(m['p50'] - base['p50']) / 1e3:+.2f} ms, "
                f"p99 {(m['p99'] - base['p99']) / 1e3:+.2f} ms "
                f"({m['p99'] / 1e3:.1f} vs {base['p99'] / 1e3:.1f}; each p99 over "
                f"{rests_on(m['messages'])} per run, {m['runs']:.0f} runs)"
            )
    by_name: dict[str, list[Window]] = {}
    for w in redis_windows:
        by_name.setdefault(w.name, []).append(w)
    for name, ws in sorted(by_name.items()):
        cpu = median([w.redis_cpu for w in ws])
        msgs = median([w.messages_per_s for w in ws])
        entries = median([w.entries_per_s for w in ws])
        hub = median([w.hub_cpu for w in ws])
        edges = median([w.fanout_cpu for w in ws])
        lines += [
            "",
            f"Redis, {name} ({REDIS_RATE:,.0f} msgs/s offered, edges following with no "
            f"clients; {len(ws)} runs, medians): {msgs:,.0f} msgs/s published in "
            f"{entries:,.0f} entries/s ({msgs / entries if entries else float('nan'):.1f} "
            f"msgs/entry); Redis CPU {cpu:.3f} cores = {cpu / (msgs / 1e4):.3f} cores per "
            f"10,000 msgs/s; hub {hub:.2f} cores; edges {edges:.2f} cores together; others "
            f"and steal up to {max(max(w.foreign_cpu, w.steal) for w in ws):.2f}.",
        ]
    times = [t["takeover_s"] for t in takeovers if t["takeover_s"] is not None]
    if takeovers:
        missing = len(takeovers) - len(times)
        leading = [t["standby_leading_s"] for t in takeovers if t["standby_leading_s"]]
        same = sum(1 for t in takeovers if t["same_epoch"])
        lines += [
            "",
            f"Takeover, lease_ttl_s 1 ({len(takeovers)} trials): edge position moves again "
            f"after median {median(times):.2f} s, max {max(times, default=float('nan')):.2f} s"
            f" (each: {', '.join(f'{t:.2f}' for t in times)}); the standby reported leading "
            f"after median {median(leading):.2f} s; same epoch after takeover in {same}/"
            f"{len(takeovers)}" + (f"; {missing} trials never moved" if missing else "") + ".",
        ]
    return lines


# -- main ------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="N=1,000, 1 run, short windows")
    parser.add_argument("--clients", type=int, nargs="*", help="override the values of N")
    parser.add_argument("--runs", type=int, help="override the number of runs")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="pyinstrument on `all`, the hub, the first edge (out/profile-*.txt); skews figures",
    )
    parser.add_argument(
        "--redis-edges",
        type=int,
        nargs="*",
        default=[2],
        help="edges following the log in the Redis window (several: one window each)",
    )
    parser.add_argument("--skip", nargs="*", default=[], choices=("fanout", "redis", "takeover"))
    parser.add_argument(
        "--latency-seconds",
        type=float,
        help="length of the latency windows (lat50; default: the plan's window, 6 s, or 3 "
        "with --quick): a p99 over S s at 50 msgs/s is the ceil(S/2)-th slowest message",
    )
    args = parser.parse_args()
    plan = QUICK if args.quick else FULL
    if args.clients:
        plan = replace(plan, clients=tuple(args.clients))
    if args.runs:
        plan = replace(plan, runs=args.runs)
    if args.latency_seconds:
        if args.latency_seconds <= 0:
            parser.error("--latency-seconds must be > 0")
        plan = replace(plan, latency_window_s=args.latency_seconds)
    if args.profile:
        PROFILE.append("on")
    os.sched_setaffinity(0, {OTHER_CPU})
    bf.build_loadgen()
    info = bf.machine()
    info["code"] = bf.snapshot_code()
    info["date"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    info["redis"] = subprocess.run(
        ["redis-server", "--version"], capture_output=True, text=True, check=False
    ).stdout.strip()
    command = " ".join([".venv/bin/python benchmarks/bench_cluster.py", *sys.argv[1:]])
    print(f"machine: {info}\nplan: {plan}", flush=True)
    deadline = time.monotonic() + plan.max_minutes * 60
    started_at = time.monotonic()
    sessions: list[Session] = []
    redis_windows: list[Window] = []
    takeovers: list[dict[str, Any]] = []
    tmp = Path(tempfile.mkdtemp(prefix="ticker-bench-cluster-"))
    try:
        for run in range(1, plan.runs + 1):
            if "fanout" not in args.skip:
                for n in plan.clients:
                    setups = ["all", "edges2"] + (["edge1"] if n == 1000 else [])
                    if n == HOP_CLIENTS:
                        setups = ["all", "edge1"]
                    for setup in setups:
                        if time.monotonic() > deadline:
                            break
                        s = run_session(setup, n, run, plan, tmp)
                        if disturbance(s) > DISTURBED and time.monotonic() < deadline:
                            print(f"  ~ {setup} N={n} disturbed ({disturbance(s):.2f}); again")
                            again = run_session(setup, n, run, plan, tmp)
                            s = again if disturbance(again) < disturbance(s) else s
                        sessions.append(s)
                        for w in s.windows.values():
                            print(
                                f"run {run} {setup:6} N={n:<5} {w.name:8} "
                                f"{w.deliveries_per_s / 1e3:7.0f}k/s cpu {w.fanout_cpu:.2f} "
                                f"-> {w.per_core / 1e3:6.0f}k/core  p50 {w.p50_us / 1e3:5.1f} "
                                f"p99 {w.p99_us / 1e3:5.1f} ms (of {w.messages} msgs)  "
                                f"hub {w.hub_cpu:.2f} redis "
                                f"{w.redis_cpu:.3f} lg {w.loadgen_cpu:.2f} others "
                                f"{max(w.foreign_cpu, w.steal):.2f} seq-err {w.seq_errors}",
                                flush=True,
                            )
            for count in args.redis_edges if "redis" not in args.skip else []:
                if time.monotonic() > deadline:
                    break
                w = redis_session(run, plan, tmp, count)
                redis_windows.append(w)
                print(
                    f"run {run} redis, {count} edges: {w.messages_per_s:,.0f} msgs/s "
                    f"{w.entries_per_s:,.0f} entries/s redis cpu {w.redis_cpu:.3f} "
                    f"hub {w.hub_cpu:.2f} edges {w.fanout_cpu:.2f} "
                    f"others {max(w.foreign_cpu, w.steal):.2f}",
                    flush=True,
                )
        if "takeover" not in args.skip:
            for trial in range(1, plan.takeover_trials + 1):
                if time.monotonic() > deadline:
                    break
                t = takeover_trial(trial, tmp)
                takeovers.append(t)
                print(f"takeover {trial}: {t}", flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    elapsed = (time.monotonic() - started_at) / 60
    summary = summarize(sessions)
    section = [
        f"Machine: {info['nproc']} CPUs, {info['cpu']}, {info['memory']}, Linux "
        f"{info['kernel']}, Python {info['python']}, {info['redis']}; {info['date']}; "
        f"run took {elapsed:.1f} min. Code under test: {info['code']}.",
        "",
        f"Reproduce: `{command}`",
        "",
        *report(summary, redis_windows, takeovers),
    ]
    text = "\n".join(section)
    print("\n" + text)
    (OUT / "cluster-section.md").write_text(text + "\n")
    results = {
        "machine": info,
        "plan": asdict(plan),
        "command": command,
        "sessions": [asdict(s) for s in sessions],
        "redis": [asdict(w) for w in redis_windows],
        "takeovers": takeovers,
    }
    (OUT / "cluster-results.json").write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    finally:
        shutil.rmtree(bf.SNAPSHOT, ignore_errors=True)

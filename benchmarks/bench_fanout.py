"""Fanout benchmark (issues 3, 14): ticker beside peers and the machine's floor, verified.

Every server runs in its own process pinned to CPU 0; the C load generator
(benchmarks/loadgen/loadgen.c, built here with gcc -O2 into benchmarks/out/) runs pinned
to CPU 1 and VERIFIES every client's stream (per-topic seq continuity, offsets,
conflations and evictions; loadgen.c says how): a delivery counts only when verified, and
a window with unexplained loss is marked, never reported as a rate. Only 127.0.0.1.

Servers, all in the same run, N clients each:

- `ticker`: benchmarks/fanout_server.py, ticker's `serve()` with its SHIPPED settings
  (stated in the output), plus a publisher of quote events (56-byte deltas);
- `websockets`: benchmarks/ref_websockets.py, `broadcast()` on uvloop, same messages; it
  coalesces as ticker does (several messages per frame, at most ticker's shipped
  `publish_batch_events`) when messages wait, and sends one per frame in lockstep;
- `c-floor` and `raw-trio`: the C epoll server and the raw trio server of
  ../shared/bench-peers (built by benchmarks/build_peers.py outside the repository, same
  56-byte payload; raw-trio with `--direct`: it writes into idle sockets at once, as
  ticker does). They speak their own frames (timestamp + seq); the load generator
  verifies those (`--payload peer`). One process per window (they take their mode as
  flags); `--batch 64` is their coalescing.

Traffic shape `quotes` (every client on `quote.*`, every message to every client):

- one-per-send: ticker publishes the next event only once the hub fanned out the
  previous one (one message per write); websockets one `broadcast()` per loop
  iteration; the floors `--rate 0 --batch 1`;
- coalesce: publishers flood; ticker's hub batches what waits (up to its shipped
  `publish_batch_events`, 64), websockets joins up to 64 messages per frame, the floors
  `--batch 64`;
- @50/s: 50 messages a second to each client (50 x N deliveries/s): latency p50/p99
  (receive time minus the message's stamp) and server CPU.

Traffic shape `venues`: ticker only (no peer has the pipeline), the simulated venues at
`--venue-rate` messages a second each (books, trades, quotes, ticker), clients mixed by
`--mix` (default 70% `quote.*`, 20% one book, 10% everything), WebSocket and SSE.

Server CPU is from /proc/<pid>/stat over each window, in cores; other processes' CPU and
hypervisor steal over each window are recorded. Every loop is bounded in count and time;
only processes started here are stopped, by PID, in `finally`. Raw figures go to
benchmarks/out/fanout-results.json and a markdown section to benchmarks/out/fanout-section.md.

    .venv/bin/python benchmarks/bench_fanout.py --quick     # N=1,000, 1 run, both shapes
    .venv/bin/python benchmarks/bench_fanout.py             # N=100, 1,000, 5,000; 3 runs
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import queue
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import IO, Any

import build_peers

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "benchmarks"
OUT = BENCH / "out"
LOADGEN_SRC = BENCH / "loadgen" / "loadgen.c"
LOADGEN = OUT / "loadgen"
SERVER_CPU = 0
LOADGEN_CPU = 1
COALESCE = 64
"""Most messages per write for every coalescing server: ticker's shipped
`publish_batch_events` (checked against `Config()` at the start of a run)."""
RATE_PER_S = 50.0
DEFAULT_MIX = "70:quote.*;20:book.BTC-USD;10:quote.*,ticker.*,book.*,trade.*"
DEFAULT_VENUE_RATE = 100.0
"""Messages a second from each simulated venue in the `venues` shape (shipped: 20)."""
QUOTES = ("ticker", "websockets", "c-floor", "raw-trio")
"""The servers of the `quotes` shape (WebSocket); ticker also serves it over SSE."""
FLOORS = ("c-floor", "raw-trio")
CONTROL_TIMEOUT_S = 60.0
CHILD_LIFETIME_S = 600.0
"""Every child exits by itself after this long, whatever happens to this script."""
CLK_TCK = os.sysconf("SC_CLK_TCK")
QUIET_LOAD = 0.10
"""Cores in use by other processes below which the machine counts as quiet."""
QUIET_WAIT_S = 120.0
FOREIGN_WARN = 0.05
"""Other processes' CPU (or steal) during a window above this, in cores, marks it disturbed."""
WINDOWS = ("rate50", "one", "coalesce")
"""In this order: the latency window first, so that no flood's backlog (SSE renders more
slowly than it floods) is still draining during it."""


class BenchError(RuntimeError):
    """A child failed or did not answer in time."""


@dataclass(frozen=True, slots=True)
class Plan:
    clients: tuple[int, ...]
    runs: int
    warmup_s: float
    window_s: float
    settle_s: float
    connect_rate: float
    max_minutes: float
    quiet_wait_s: float
    attempts: int


QUICK = Plan((1000,), 1, 1.0, 3.0, 0.5, 2500.0, 12.0, 20.0, 2)
FULL = Plan((100, 1000, 5000), 3, 2.0, 5.0, 1.0, 2500.0, 40.0, 120.0, 3)


@dataclass(slots=True)
class Window:
    """One measurement window: the load generator's verified view plus the server's counters."""

    deliveries_per_s: float
    """Verified deliveries a second (unverified messages are not counted)."""
    p50_us: int
    p99_us: int
    p999_us: int
    max_us: int
    server_cpu: float
    loadgen_cpu: float
    messages_per_write: float | None
    """ticker: messages sent / writes in the window (from its counters)."""
    foreign_cpu: float
    """CPU of other processes on the machine during the window, in cores."""
    steal: float
    """CPU time the hypervisor gave to someone else during the window, in cores."""
    unexplained: int
    """Holes, repeats, offsets backwards, resets, malformed frames, unexpected closes: in
    the window, and (attribute_faults) any since the previous window of the same load
    generator, so a fault between windows marks the next figure too."""
    conflations: int
    evictions: int
    checked: int
    open_clients: int
    errors: int
    published_per_s: float | None = None
    groups: list[dict[str, Any]] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass(slots=True)
class Session:
    """One server with N clients (one process, or one per window for a floor)."""

    shape: str
    transport: str
    server: str
    clients: int
    run: int
    subscribed: int
    connect_s: float
    mem_per_conn_bytes: float | None
    settings: dict[str, Any] = field(default_factory=dict)
    windows: dict[str, Window] = field(default_factory=dict)


# -- processes -------------------------------------------------------------------------


SNAPSHOT = Path(tempfile.gettempdir()) / f"ticker-bench-fanout-{os.getpid()}"
"""ticker/ and feeds/ as they were when the run started: every server imports these.
Outside the repository (mypy and ruff would find a second `ticker`); removed at the end."""


def snapshot_code() -> str:
    """Copy the code under test, so that edits to the shared tree during a run (another
    engineer's commit, say) cannot change the server between sessions. Returns the
    commit it was taken from, noting uncommitted changes."""
    shutil.rmtree(SNAPSHOT, ignore_errors=True)
    for package in ("ticker", "feeds"):
        ignore = shutil.ignore_patterns("__pycache__")
        shutil.copytree(ROOT / package, SNAPSHOT / package, ignore=ignore)
    git = ["git", "-C", str(ROOT)]
    head = subprocess.run([*git, "rev-parse", "--short=12", "HEAD"], capture_output=True)
    dirty = subprocess.run(
        [*git, "status", "--porcelain", "--", "ticker", "feeds"], capture_output=True
    )
    version = head.stdout.decode().strip() or "unknown"
    return version + (" + uncommitted changes" if dirty.stdout.strip() else "")


class Child:
    """A process started here: commands to its stdin, JSON lines from its stdout."""

    def __init__(self, name: str, argv: list[str], cpu: int, *, commands: bool = True) -> None:
        self.name = name
        self.commands = commands
        # False: it reads no commands (a floor reference), so stop terminates it.
        self.log_path = OUT / f"{name}.log"
        self.log: IO[str] = self.log_path.open("w")
        self.proc = subprocess.Popen(
            ["taskset", "-c", str(cpu), *argv],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
            bufsize=1,
            cwd=ROOT,
            env=os.environ | {"PYTHONPATH": str(SNAPSHOT)},
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def send(self, command: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()

    def expect(self, event: str, timeout_s: float = CONTROL_TIMEOUT_S) -> dict[str, Any]:
        """The next JSON line whose `event` is `event` (others are skipped)."""
        deadline = time.monotonic() + timeout_s
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                line = self.lines.get(timeout=remaining)
            except queue.Empty:
                break
            if line is None:
                code = self.proc.poll()
                raise BenchError(f"{self.name} exited ({code}) before {event}; {self.log_path}")
            try:
                message: dict[str, Any] = json.loads(line)
            except ValueError:
                continue
            if message.get("event") == event:
                return message
            if message.get("event") == "error":
                raise BenchError(f"{self.name}: {message}")
        raise BenchError(f"{self.name}: no {event!r} within {timeout_s:.0f} s")

    def request(self, command: str, event: str) -> dict[str, Any]:
        self.send(command)
        return self.expect(event)

    def stop(self) -> None:
        """Ask it to quit; past a deadline terminate it, then kill it (by its PID)."""
        try:
            if self.proc.poll() is None:
                if self.commands:
                    with suppress(OSError):
                        self.send("quit")
                else:
                    self.proc.terminate()
                try:
                    self.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self.proc.terminate()
                    try:
                        self.proc.wait(timeout=5)
                    except subprocess.TimeoutExpired:
                        self.proc.kill()
                        self.proc.wait(timeout=5)
        finally:
            for pipe in (self.proc.stdin, self.proc.stdout):
                if pipe is not None:
                    with suppress(OSError):
                        pipe.close()
            self.log.close()


@contextmanager
def started(name: str, argv: list[str], cpu: int, *, commands: bool = True) -> Iterator[Child]:
    child = Child(name, argv, cpu, commands=commands)
    try:
        yield child
    finally:
        child.stop()


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads), from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def machine_cpu_seconds() -> tuple[float, float]:
    """(user+nice+system, steal) CPU seconds of the whole machine, from /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return sum(fields[:3]) / CLK_TCK, fields[7] / CLK_TCK


def wait_for_quiet(limit_s: float = QUIET_WAIT_S) -> float:
    """Wait (bounded) until nothing else keeps the machine busy; returns the load seen.

    This machine is shared; another process on the server's core halves what the
    server gets. Load is user+system CPU over 1 s while no child of ours runs.
    """
    deadline = time.monotonic() + limit_s
    load = 0.0
    while time.monotonic() < deadline:
        busy0, _ = machine_cpu_seconds()
        t0 = time.monotonic()
        time.sleep(1.0)
        busy1, _ = machine_cpu_seconds()
        load = (busy1 - busy0) / (time.monotonic() - t0)
        if load < QUIET_LOAD:
            return load
    print(f"  ! machine still busy ({load:.2f} cores in use by others); measuring anyway")
    return load


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise BenchError(f"no VmRSS for {pid}")


def build_loadgen() -> None:
    OUT.mkdir(exist_ok=True)
    if LOADGEN.exists() and LOADGEN.stat().st_mtime >= LOADGEN_SRC.stat().st_mtime:
        return
    command = ["gcc", "-O2", "-Wall", "-Wextra", "-o", str(LOADGEN), str(LOADGEN_SRC)]
    subprocess.run(command, check=True, timeout=120)


# -- sessions --------------------------------------------------------------------------


def free_port() -> int:
    """A port the kernel just handed out on 127.0.0.1 (for a server that takes --port)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_listening(port: int, child: Child, timeout_s: float = 20.0) -> None:
    """Until `port` accepts a connection (bounded); the probe closes at once."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if child.proc.poll() is not None:
            raise BenchError(f"{child.name} exited ({child.proc.returncode}); {child.log_path}")
        with socket.socket() as probe, suppress(OSError):
            probe.settimeout(0.5)
            probe.connect(("127.0.0.1", port))
            return
        time.sleep(0.05)
    raise BenchError(f"{child.name}: nothing listening on {port} within {timeout_s:.0f} s")


def loadgen_argv(transport: str, port: int, clients: int, plan: Plan, *extra: str) -> list[str]:
    return [
        str(LOADGEN),
        *("--mode", transport, "--port", str(port), "--clients", str(clients)),
        *("--connect-rate", str(plan.connect_rate), "--max-seconds", str(CHILD_LIFETIME_S)),
        *extra,
    ]


def window_of(
    result: dict[str, Any],
    server_cpu: float,
    foreign: float,
    steal: float,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> Window:
    """A Window from the load generator's `window` line and the server's counters."""
    per_write = published = None
    if before and after and after.get("writes", 0) > before.get("writes", 0):
        sent = after["messages_sent"] - before["messages_sent"]
        per_write = sent / (after["writes"] - before["writes"])
    if before and after and "published" in after and result["seconds"] > 0:
        # (a window the load generator closed at once, e.g. every client gone, has no rate)
        published = (after["published"] - before["published"]) / result["seconds"]
    return Window(
        deliveries_per_s=result["deliveries_per_s"],
        p50_us=result["p50_us"],
        p99_us=result["p99_us"],
        p999_us=result["p999_us"],
        max_us=result["max_us"],
        server_cpu=server_cpu,
        loadgen_cpu=result["cpu_frac"],
        messages_per_write=per_write,
        foreign_cpu=foreign,
        steal=steal,
        unexplained=result["w_unexplained"],
        conflations=result["w_conflations"],
        evictions=result["w_evictions"],
        checked=result["w_checked"],
        open_clients=result["open"],
        errors=result["errors"] + result["failed"],
        published_per_s=published,
        groups=result.get("groups", []),
        raw={"loadgen": result, "server_before": before, "server_after": after},
    )


def timed_window(
    server: Child, loadgen: Child, window_s: float
) -> tuple[dict[str, Any], float, float, float]:
    """One loadgen window: (its result, server CPU, others' CPU, steal), in cores."""
    ours = (server.pid, loadgen.pid, os.getpid())
    (busy0, steal0), own0 = machine_cpu_seconds(), sum(cpu_seconds(p) for p in ours)
    cpu0, t0 = cpu_seconds(server.pid), time.monotonic()
    loadgen.send("start")
    time.sleep(window_s)
    loadgen.send("stop")
    cpu1, t1 = cpu_seconds(server.pid), time.monotonic()
    (busy1, steal1), own1 = machine_cpu_seconds(), sum(cpu_seconds(p) for p in ours)
    result = loadgen.expect("window")
    foreign = max(0.0, (busy1 - busy0) - (own1 - own0)) / (t1 - t0)
    return result, (cpu1 - cpu0) / (t1 - t0), foreign, (steal1 - steal0) / (t1 - t0)


def measure(server: Child, loadgen: Child, command: str, plan: Plan, window_s: float) -> Window:
    """Publish with `command`; after the warm-up, one window of `window_s`."""
    bound_s = plan.warmup_s + window_s + 60
    server.send(f"{command} {bound_s:g}")
    server.expect("publishing")
    time.sleep(plan.warmup_s)
    before = server.request("stats", "stats")
    result, cpu, foreign, steal = timed_window(server, loadgen, window_s)
    after = server.request("halt", "halted")
    time.sleep(plan.settle_s)
    return window_of(result, cpu, foreign, steal, before, after)


PUBLISH = {"one": "lockstep", "coalesce": "flood", "rate50": f"rate {RATE_PER_S:g}"}


def controlled_argv(server: str, shape: str, venue_rate: float) -> list[str]:
    if server == "websockets":
        return [sys.executable, str(BENCH / "ref_websockets.py"), "--coalesce", str(COALESCE)]
    argv = [sys.executable, str(BENCH / "fanout_server.py")]
    if shape == "venues":
        argv += ["--venues", "--venue-rate", f"{venue_rate:g}"]
    return [*argv, "--max-seconds", str(CHILD_LIFETIME_S)]


def run_controlled(
    shape: str, transport: str, server_name: str, clients: int, run: int, plan: Plan, opts: Options
) -> Session:
    """ticker or websockets: one process, driven over stdin, all windows."""
    wait_for_quiet(plan.quiet_wait_s)
    argv = controlled_argv(server_name, shape, opts.venue_rate)
    with started(f"{server_name}-server", argv, SERVER_CPU) as server:
        ready = server.expect("ready")
        code = ready.get("code")
        if code is not None and not Path(code).is_relative_to(SNAPSHOT):
            raise BenchError(f"the server imported {code}, not the snapshot in {SNAPSHOT}")
        time.sleep(0.5)
        rss0 = rss_kb(server.pid)
        extra = ["--mix", opts.mix] if shape == "venues" else []
        lg_argv = loadgen_argv(transport, ready["port"], clients, plan, *extra)
        with started(f"loadgen-{transport}", lg_argv, LOADGEN_CPU) as loadgen:
            connected = loadgen.expect("ready", timeout_s=120)
            time.sleep(1.0)
            mem = (rss_kb(server.pid) - rss0) * 1024 / clients if shape == "quotes" else None
            settings = ready.get("settings", {"coalesce": ready.get("coalesce")})
            session = Session(
                shape,
                transport,
                server_name,
                clients,
                run,
                connected["subscribed"],
                connected["connect_s"],
                mem,
                settings,
            )
            if connected["subscribed"] < clients:
                print(f"  ! only {connected['subscribed']}/{clients} subscribed: {connected}")
            if shape == "venues":
                time.sleep(plan.warmup_s)
                before = server.request("stats", "stats")
                result, cpu, foreign, steal = timed_window(server, loadgen, 2 * plan.window_s)
                after = server.request("stats", "stats")
                session.windows["venues"] = window_of(result, cpu, foreign, steal, before, after)
            else:
                for name in WINDOWS:
                    session.windows[name] = measure(
                        server, loadgen, PUBLISH[name], plan, plan.window_s
                    )
    return session


def floor_argv(
    server: str, window: str, port: int, clients: int, peers: build_peers.Peers
) -> list[str]:
    rate, batch = {"one": (0, 1), "coalesce": (0, COALESCE), "rate50": (RATE_PER_S, 1)}[window]
    common = [
        *("--port", str(port), "--rate", f"{rate:g}", "--batch", str(batch)),
        *("--max-seconds", "120", "--wait-clients", str(clients), "--wait-timeout", "30"),
    ]
    if server == "c-floor":
        return [str(peers.cfanout), "--proto", "ws", *common]
    payload = ["--payload", str(build_peers.PEER_PAYLOAD)]
    return [sys.executable, str(peers.raw_trio), "--proto", "ws", "--direct", *payload, *common]


def run_floor(server_name: str, clients: int, run: int, plan: Plan, opts: Options) -> Session:
    """A floor reference: a fresh process per window (its mode is a flag), WebSocket."""
    assert opts.peers is not None
    wait_for_quiet(plan.quiet_wait_s)
    session = Session("quotes", "ws", server_name, clients, run, 0, 0.0, None)
    session.settings = {"batch (coalesce)": COALESCE, "payload_bytes": build_peers.PEER_PAYLOAD}
    for name in WINDOWS:
        port = free_port()
        argv = floor_argv(server_name, name, port, clients, opts.peers)
        with started(f"{server_name}-server", argv, SERVER_CPU, commands=False) as server:
            wait_listening(port, server)
            lg_argv = loadgen_argv("ws", port, clients, plan, "--payload", "peer")
            with started("loadgen-ws", lg_argv, LOADGEN_CPU) as loadgen:
                connected = loadgen.expect("ready", timeout_s=120)
                session.subscribed = connected["subscribed"]
                session.connect_s = connected["connect_s"]
                time.sleep(plan.warmup_s)
                result, cpu, foreign, steal = timed_window(server, loadgen, plan.window_s)
                session.windows[name] = window_of(result, cpu, foreign, steal)
        time.sleep(plan.settle_s)
    return session


@dataclass(frozen=True, slots=True)
class Options:
    mix: str
    venue_rate: float
    peers: build_peers.Peers | None


def attribute_faults(session: Session) -> None:
    """Charge every unexplained fault the load generator saw to a window: those between
    windows (a connection closed while the publisher settled, say) to the next one."""
    previous = 0
    for window in session.windows.values():
        total = int(window.raw.get("loadgen", {}).get("total_unexplained", window.unexplained))
        since = total - previous if session.server not in FLOORS else total
        window.unexplained = max(window.unexplained, since)
        previous = total


def disturbance(session: Session) -> float:
    """The most CPU that others (processes or the hypervisor) took in any window."""
    return max(max(w.foreign_cpu, w.steal) for w in session.windows.values())


def run_undisturbed(
    shape: str,
    transport: str,
    server: str,
    clients: int,
    run: int,
    plan: Plan,
    opts: Options,
    deadline: float,
) -> Session:
    """A session, retried (bounded) while other load disturbed it; the least disturbed."""
    best: Session | None = None
    for attempt in range(1, plan.attempts + 1):
        if server in FLOORS:
            session = run_floor(server, clients, run, plan, opts)
        else:
            session = run_controlled(shape, transport, server, clients, run, plan, opts)
        attribute_faults(session)
        if best is None or disturbance(session) < disturbance(best):
            best = session
        if disturbance(session) <= FOREIGN_WARN or time.monotonic() > deadline:
            break
        print(f"  ~ attempt {attempt} disturbed ({disturbance(session):.2f} cores); again")
    assert best is not None
    return best


def rate_text(window: Window) -> str:
    """A verified rate, or the mark that says why there is none."""
    if window.unexplained:
        return f"UNVERIFIED ({window.unexplained} unexplained)"
    return k(window.deliveries_per_s)


def describe(session: Session) -> str:
    w = session.windows
    extra = ""
    if disturbance(session) > FOREIGN_WARN:
        extra += f" | DISTURBED: others/steal up to {disturbance(session):.2f} cores"
    faults = sum(x.unexplained for x in w.values())
    conf = sum(x.conflations for x in w.values())
    ev = sum(x.evictions for x in w.values())
    verified = f" | unexplained {faults}, conflations {conf}, evictions {ev}"
    head = f"{session.shape:6} {session.transport:3} {session.server:10} N={session.clients:<5}"
    if "venues" in w:
        v = w["venues"]
        return (
            f"{head} verified {rate_text(v)}/s (published {num(v.published_per_s or 0, ',.0f')}"
            f" msgs/s) p50 {ms(v.p50_us)} ms p99 {ms(v.p99_us)} ms cpu {v.server_cpu:.2f}"
            f"{verified}{extra}"
        )
    return (
        f"{head} one {rate_text(w['one'])}/s (cpu {w['one'].server_cpu:.2f}) "
        f"coalesce {rate_text(w['coalesce'])}/s (cpu {w['coalesce'].server_cpu:.2f}) "
        f"@50/s p50 {ms(w['rate50'].p50_us)} ms p99 {ms(w['rate50'].p99_us)} ms "
        f"cpu {w['rate50'].server_cpu:.2f}{verified}{extra}"
    )


# -- profile ---------------------------------------------------------------------------


def profile(plan: Plan, clients: int = 1000, seconds: float = 8.0) -> list[tuple[str, float]]:
    """py-spy on ticker at saturation (WS, flood): an SVG flame graph and self times."""
    py_spy = Path(sys.executable).parent / "py-spy"
    if not py_spy.exists():
        print("  ! py-spy missing: .venv/bin/pip install py-spy")
        return []
    argv = controlled_argv("ticker", "quotes", 0.0)
    raw_path, svg_path = OUT / "profile.txt", OUT / "profile.svg"
    with started("ticker-server", argv, SERVER_CPU) as server:
        port = server.expect("ready")["port"]
        with started("loadgen-ws", loadgen_argv("ws", port, clients, plan), LOADGEN_CPU) as lg:
            lg.expect("ready", timeout_s=120)
            server.send(f"flood {2 * seconds + plan.warmup_s + 60:g}")
            server.expect("publishing")
            time.sleep(plan.warmup_s)
            for fmt, path in (("raw", raw_path), ("flamegraph", svg_path)):
                command = [str(py_spy), "record", "--pid", str(server.pid), "--format", fmt]
                command += ["--function", "--rate", "200", "--duration", str(int(seconds))]
                command += ["-o", str(path)]
                subprocess.run(
                    ["taskset", "-c", str(LOADGEN_CPU), *command],
                    check=True,
                    timeout=seconds + 60,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            server.request("halt", "halted")
    return self_times(raw_path)


def self_times(raw_path: Path) -> list[tuple[str, float]]:
    """Share of samples per leaf frame (self time) from py-spy's collapsed stacks."""
    counts: Counter[str] = Counter()
    for line in raw_path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            counts[stack.rsplit(";", 1)[-1].strip()] += int(count)
    total = sum(counts.values()) or 1
    return [(frame, n / total) for frame, n in counts.most_common(20)]


# -- report ----------------------------------------------------------------------------


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def machine() -> dict[str, str]:
    cpu = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem_kb = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem_kb = int(line.split()[1])
    return {
        "nproc": str(os.cpu_count()),
        "cpu": cpu,
        "memory": f"{mem_kb / 1024 / 1024:.1f} GiB",
        "kernel": platform.release(),
        "python": platform.python_version(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }


def versions(peers: build_peers.Peers | None) -> dict[str, str]:
    """The versions the figures depend on (asked of the venv this script runs in)."""
    probe = (
        "import importlib.metadata as m, platform; "
        "print(platform.python_version(), *(m.version(p) for p in "
        "('websockets', 'uvloop', 'trio', 'msgpack')))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True).stdout
    python, ws, uvloop, trio, msgpack = (out.split() + ["?"] * 5)[:5]
    return {
        "python": python,
        "websockets": ws,
        "uvloop": uvloop,
        "trio": trio,
        "msgpack": msgpack,
        "gcc": peers.gcc if peers else "?",
    }


Metric = Callable[[Session], float]
NAN = float("nan")


def verified(window: str, value: Callable[[Window], float]) -> Metric:
    """A window's figure, or NaN when the window had unexplained loss (it is no rate)."""

    def metric(s: Session) -> float:
        w = s.windows.get(window)
        if w is None or w.unexplained:
            return NAN
        return value(w)

    return metric


def plain(window: str, value: Callable[[Window], float | None]) -> Metric:
    def metric(s: Session) -> float:
        w = s.windows.get(window)
        got = None if w is None else value(w)
        return NAN if got is None else got

    return metric


METRICS: dict[str, Metric] = {
    "one": verified("one", lambda w: w.deliveries_per_s),
    "one_mpw": plain("one", lambda w: w.messages_per_write),
    "one_cpu": plain("one", lambda w: w.server_cpu),
    "one_core": verified("one", lambda w: w.deliveries_per_s / max(w.server_cpu, 1e-3)),
    "coalesce": verified("coalesce", lambda w: w.deliveries_per_s),
    "coalesce_core": verified("coalesce", lambda w: w.deliveries_per_s / max(w.server_cpu, 1e-3)),
    "coalesce_mpw": plain("coalesce", lambda w: w.messages_per_write),
    "coalesce_cpu": plain("coalesce", lambda w: w.server_cpu),
    "p50": verified("rate50", lambda w: w.p50_us),
    "p99": verified("rate50", lambda w: w.p99_us),
    "rate_share": verified("rate50", lambda w: w.deliveries_per_s),
    "rate_cpu": plain("rate50", lambda w: w.server_cpu),
    "venues": verified("venues", lambda w: w.deliveries_per_s),
    "venues_published": plain("venues", lambda w: w.published_per_s),
    "venues_p50": verified("venues", lambda w: w.p50_us),
    "venues_p99": verified("venues", lambda w: w.p99_us),
    "venues_cpu": plain("venues", lambda w: w.server_cpu),
    "loadgen_cpu": lambda s: max(w.loadgen_cpu for w in s.windows.values()),
    "mem": lambda s: NAN if s.mem_per_conn_bytes is None else s.mem_per_conn_bytes,
    "foreign": disturbance,
    "unexplained": lambda s: sum(w.unexplained for w in s.windows.values()),
    "conflations": lambda s: sum(w.conflations for w in s.windows.values()),
    "evictions": lambda s: sum(w.evictions for w in s.windows.values()),
    "checked": lambda s: sum(w.checked for w in s.windows.values()),
    "errors": lambda s: sum(w.errors for w in s.windows.values()),
}
Key = tuple[str, str, str, int]


def summarize(sessions: list[Session]) -> dict[Key, dict[str, float]]:
    """Medians over runs; loss and fault counts are summed (one is enough to mark)."""
    groups: dict[Key, list[Session]] = {}
    for s in sessions:
        groups.setdefault((s.shape, s.transport, s.server, s.clients), []).append(s)
    summed = ("unexplained", "conflations", "evictions", "checked", "errors")
    out: dict[Key, dict[str, float]] = {}
    for key, group in groups.items():
        m = {name: median([f(s) for s in group]) for name, f in METRICS.items()}
        m |= {name: float(sum(METRICS[name](s) for s in group)) for name in summed}
        m["rate_share"] /= RATE_PER_S * key[3]
        m["runs"] = len(group)
        out[key] = m
    return out


def k(value: float) -> str:
    if value != value:  # nan
        return "-"
    if value >= 1e6:
        return f"{value / 1e6:.2f}M"
    return f"{value / 1e3:.0f}k"


def num(value: float, spec: str) -> str:
    return "-" if value != value else format(value, spec)


def ms(value_us: float) -> str:
    return "-" if value_us != value_us else f"{value_us / 1e3:.1f}"


def ratio(a: float, b: float) -> str:
    return "-" if a != a or b != b or not b else f"{a / b:.2f}x"


def marked(m: dict[str, float], name: str) -> str:
    """A rate, or UNVERIFIED when a window of the group had unexplained loss."""
    if m[name] != m[name] and m["unexplained"]:
        return "UNVERIFIED"
    return k(m[name])


def share(m: dict[str, float]) -> str:
    """The @50/s delivered share, or UNVERIFIED (as `marked`)."""
    if m["rate_share"] != m["rate_share"] and m["unexplained"]:
        return "UNVERIFIED"
    return num(m["rate_share"], ".0%")


def quotes_tables(summary: dict[Key, dict[str, float]]) -> str:
    lines = [
        "| transport | server | N | runs | one-per-send verified/s | of C floor | msgs/write "
        "| CPU | coalesced verified/s | of C floor | msgs/write | CPU | @50/s delivered | "
        "p50 ms | p99 ms | CPU | unexplained / conflations / evictions | loadgen CPU (max) "
        "| mem/idle conn KB | others+steal (max) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    order = {name: i for i, name in enumerate(QUOTES)}
    keys = sorted(
        (key for key in summary if key[0] == "quotes"),
        key=lambda key: (key[3], key[1] != "ws", order.get(key[2], 9)),
    )
    for key in keys:
        _, transport, server, n = key
        m = summary[key]
        floor = summary.get(("quotes", "ws", "c-floor", n), {})
        lines.append(
            f"| {transport} | {server} | {n:,} | {m['runs']:.0f} | {marked(m, 'one')} | "
            f"{ratio(m['one'], floor.get('one', NAN))} | {num(m['one_mpw'], '.2f')} | "
            f"{m['one_cpu']:.2f} | {marked(m, 'coalesce')} | "
            f"{ratio(m['coalesce'], floor.get('coalesce', NAN))} | "
            f"{num(m['coalesce_mpw'], '.1f')} | {m['coalesce_cpu']:.2f} | "
            f"{share(m)} | {ms(m['p50'])} | {ms(m['p99'])} | "
            f"{m['rate_cpu']:.2f} | {m['unexplained']:.0f} / {m['conflations']:.0f} / "
            f"{m['evictions']:.0f} | {m['loadgen_cpu']:.2f} | "
            f"{num(m['mem'] / 1024, '.1f')} | {m['foreign']:.2f} |"
        )
    lines += [
        "",
        "Ratios inside this run (WebSocket; deliveries: above 1 favours the first; p99: "
        "below 1 favours the first). Per core = verified deliveries per second of the "
        "server's own CPU: on a shared machine the server may not get its whole core.",
        "",
        "| N | comparison | one-per-send | per core | coalesced (both coalescing) | "
        "per core | p99 @50/s | others+steal (max of the two) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    pairs = (
        ("ticker", "websockets"),
        ("ticker", "c-floor"),
        ("ticker", "raw-trio"),
        ("raw-trio", "c-floor"),
        ("websockets", "c-floor"),
    )
    for n in sorted({key[3] for key in keys}):
        for a, b in pairs:
            ma, mb = summary.get(("quotes", "ws", a, n)), summary.get(("quotes", "ws", b, n))
            if ma is None or mb is None:
                continue
            lines.append(
                f"| {n:,} | {a} / {b} | {ratio(ma['one'], mb['one'])} | "
                f"{ratio(ma['one_core'], mb['one_core'])} | "
                f"{ratio(ma['coalesce'], mb['coalesce'])} | "
                f"{ratio(ma['coalesce_core'], mb['coalesce_core'])} | "
                f"{ratio(ma['p99'], mb['p99'])} | {max(ma['foreign'], mb['foreign']):.2f} |"
            )
        ours = summary.get(("quotes", "ws", "ticker", n))
        if ours:
            lines.append(
                f"| {n:,} | ticker coalesced / ticker one-per-send (batching alone) | - | - | "
                f"{ratio(ours['coalesce'], ours['one'])} | "
                f"{ratio(ours['coalesce_core'], ours['one_core'])} | - | {ours['foreign']:.2f} |"
            )
    return "\n".join(lines)


def venues_table(summary: dict[Key, dict[str, float]], sessions: list[Session]) -> str:
    keys = sorted(key for key in summary if key[0] == "venues")
    if not keys:
        return ""
    lines = [
        "| transport | N | published msgs/s | verified deliveries/s | per group (clients: "
        "deliveries/s) | p50 ms | p99 ms | server CPU | unexplained / conflations / "
        "evictions | others+steal |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for key in keys:
        m = summary[key]
        last = [s for s in sessions if (s.shape, s.transport, s.server, s.clients) == key][-1]
        w = last.windows["venues"]
        seconds = w.raw["loadgen"]["seconds"]
        groups = "; ".join(
            f"`{g['patterns']}` ({g['clients']}): {k(g['deliveries'] / seconds)}" for g in w.groups
        )
        lines.append(
            f"| {key[1]} | {key[3]:,} | {num(m['venues_published'], ',.0f')} | "
            f"{marked(m, 'venues')} | {groups} | {ms(m['venues_p50'])} | "
            f"{ms(m['venues_p99'])} | {m['venues_cpu']:.2f} | {m['unexplained']:.0f} / "
            f"{m['conflations']:.0f} / {m['evictions']:.0f} | {m['foreign']:.2f} |"
        )
    return "\n".join(lines)


def aims(summary: dict[Key, dict[str, float]], command: str) -> str:
    """The issue's fanout aims against this run (N=1,000, WebSocket)."""
    ours = summary.get(("quotes", "ws", "ticker", 1000))
    peer = summary.get(("quotes", "ws", "websockets", 1000))
    floor = summary.get(("quotes", "ws", "c-floor", 1000))
    if not ours:
        return ""

    def met(value: float, aim: float, *sides: dict[str, float] | None, below: bool = False) -> str:
        if value != value:
            return "unverified" if any(s and s["unexplained"] for s in sides) else "-"
        verdict = "yes" if (value < aim if below else value >= aim) else "no"
        disturbed = max((s["foreign"] for s in sides if s), default=0.0)
        if disturbed > FOREIGN_WARN:
            return f"{verdict}, but disturbed ({disturbed:.2f} cores): no verdict"
        return verdict

    def per(a: dict[str, float] | None, b: dict[str, float] | None, name: str) -> float:
        return a[name] / b[name] if a and b and b[name] else NAN

    one_floor, one_floor_core = per(ours, floor, "one"), per(ours, floor, "one_core")
    one_peer, one_peer_core = per(ours, peer, "one"), per(ours, peer, "one_core")
    co_peer, co_peer_core = per(ours, peer, "coalesce"), per(ours, peer, "coalesce_core")
    rows = [
        (
            "one per send >= 0.6x the C floor",
            f"{one_floor:.2f}x (per core {one_floor_core:.2f}x)",
            met(one_floor, 0.6, ours, floor),
        ),
        (
            "one per send >= 1.5x websockets",
            f"{one_peer:.2f}x (per core {one_peer_core:.2f}x)",
            met(one_peer, 1.5, ours, peer),
        ),
        (
            "coalesced, both coalescing, >= 1.5x websockets",
            f"{co_peer:.2f}x (per core {co_peer_core:.2f}x)",
            met(co_peer, 1.5, ours, peer),
        ),
        (
            "p99 < 8 ms at 50,000 deliveries/s",
            f"{ms(ours['p99'])} ms at {ours['rate_cpu']:.2f} cores",
            met(ours["p99"], 8000, ours, below=True),
        ),
    ]
    lines = ["| aim (N=1,000, WebSocket) | measured | met? | command |", "|---|---|---|---|"]
    lines += [f"| {aim} | {value} | {ok} | `{command}` |" for aim, value, ok in rows]
    return "\n".join(lines)


# -- main ------------------------------------------------------------------------------


def check_shipped_batch() -> int:
    """ticker's shipped publish_batch_events (COALESCE must equal it)."""
    probe = "from ticker.config import Config; print(Config().publish_batch_events)"
    env = os.environ | {"PYTHONPATH": str(SNAPSHOT)}
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env)
    return int(out.stdout.strip() or 0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="N=1,000; 1 run; short windows")
    parser.add_argument("--profile", action="store_true", help="py-spy ticker at N=1,000")
    parser.add_argument("--clients", type=int, nargs="*", help="override the values of N")
    parser.add_argument("--runs", type=int, help="override the number of runs")
    parser.add_argument("--shapes", default="quotes,venues", help="quotes, venues or both")
    parser.add_argument("--servers", default=",".join(QUOTES), help="servers of `quotes`")
    parser.add_argument("--mix", default=DEFAULT_MIX, help="`venues` clients: W:P,P;W:P...")
    parser.add_argument("--venue-rate", type=float, default=DEFAULT_VENUE_RATE)
    parser.add_argument("--attempts", type=int, help="tries of a disturbed session")
    parser.add_argument("--quiet-wait", type=float, help="longest wait for a quiet machine, s")
    parser.add_argument("--report", type=Path, help="only print the section of a results file")
    args = parser.parse_args()
    if args.report:
        print(render(json.loads(args.report.read_text())))
        return 0
    plan = QUICK if args.quick else FULL
    if args.clients:
        plan = replace(plan, clients=tuple(args.clients))
    if args.runs:
        plan = replace(plan, runs=args.runs)
    if args.attempts:
        plan = replace(plan, attempts=args.attempts)
    if args.quiet_wait is not None:
        plan = replace(plan, quiet_wait_s=args.quiet_wait)
    shapes = args.shapes.split(",")
    servers = [s for s in args.servers.split(",") if s]
    os.sched_setaffinity(0, {LOADGEN_CPU})  # keep this script off the server's core
    build_loadgen()
    info = machine()
    info["code"] = snapshot_code()
    shipped = check_shipped_batch()
    if shipped != COALESCE:
        raise BenchError(f"ticker ships publish_batch_events={shipped}; set COALESCE to match")
    peers = build_peers.build() if any(s in FLOORS for s in servers) else None
    opts = Options(args.mix, args.venue_rate, peers)
    info |= versions(peers)
    command = " ".join(["benchmarks/bench_fanout.py", *sys.argv[1:]])
    print(f"machine: {info}")
    print(f"plan: {plan}")
    targets: list[tuple[str, str, str]] = []
    if "quotes" in shapes:
        targets += [("quotes", "ws", s) for s in servers]
        if "ticker" in servers:
            targets.append(("quotes", "sse", "ticker"))
    if "venues" in shapes:
        targets += [("venues", "ws", "ticker"), ("venues", "sse", "ticker")]
    deadline = time.monotonic() + plan.max_minutes * 60
    sessions: list[Session] = []
    started_at = time.monotonic()
    for run in range(1, plan.runs + 1):
        for n in plan.clients:
            for shape, transport, server in targets:
                if time.monotonic() > deadline:
                    print("! time budget spent; stopping early")
                    break
                session = run_undisturbed(shape, transport, server, n, run, plan, opts, deadline)
                sessions.append(session)
                print(f"run {run} {describe(session)}", flush=True)
    hot: list[tuple[str, float]] = []
    if args.profile and time.monotonic() < deadline:
        hot = profile(plan)
    elapsed = (time.monotonic() - started_at) / 60
    results = {
        "machine": info,
        "plan": asdict(plan),
        "command": command,
        "venue_rate": args.venue_rate,
        "mix": args.mix,
        "elapsed_min": elapsed,
        "sessions": [asdict(s) for s in sessions],
        "profile": hot,
    }
    (OUT / "fanout-results.json").write_text(json.dumps(results, indent=1))
    text = render(results)
    print()
    print(text)
    (OUT / "fanout-section.md").write_text(text + "\n")
    return 0


def load_sessions(raw: list[dict[str, Any]]) -> list[Session]:
    """Sessions back from fanout-results.json (for --report)."""
    sessions = []
    for d in raw:
        windows = {name: Window(**w) for name, w in d["windows"].items()}
        session = Session(**(d | {"windows": windows}))
        attribute_faults(session)
        sessions.append(session)
    return sessions


def render(results: dict[str, Any]) -> str:
    """The markdown section of one run's results (as fanout-results.json holds them)."""
    info, command = results["machine"], results["command"]
    sessions = load_sessions(results["sessions"])
    hot: list[tuple[str, float]] = results.get("profile", [])
    summary = summarize(sessions)
    elapsed = results.get("elapsed_min", NAN)
    venue_rate = results.get("venue_rate", DEFAULT_VENUE_RATE)
    mix = results.get("mix", DEFAULT_MIX)
    ticker_settings = next((s.settings for s in sessions if s.server == "ticker"), {})
    section = [
        f"Machine: {info['nproc']} CPUs, {info['cpu']}, {info['memory']}, Linux "
        f"{info['kernel']}; {info['date']}. Run took {num(elapsed, '.1f')} min.",
        f"Versions: Python {info['python']}, websockets {info['websockets']}, uvloop "
        f"{info['uvloop']}, trio {info['trio']}, msgpack {info['msgpack']}, {info['gcc']}.",
        f"Code under test: {info['code']} (copied at the start of the run).",
        f"ticker settings (shipped defaults; fanout_server.py's `ready`): {ticker_settings}.",
        f"Coalescing limit for every server: {COALESCE} messages per write. `venues`: "
        f"venue_rate_per_s {venue_rate:g} per venue, mix `{mix}`.",
        "",
        f"Reproduce: `.venv/bin/python {command}`",
        "",
        quotes_tables(summary),
        "",
        venues_table(summary, sessions),
        "",
        "Aims (issue #14, fanout rows):",
        "",
        aims(summary, f".venv/bin/python {command}"),
    ]
    if hot:
        section += ["", "py-spy, ticker at N=1,000 saturation (flood), self time:", ""]
        section += [f"- {share:5.1%} {frame}" for frame, share in hot[:15]]
    return "\n".join(section)


if __name__ == "__main__":
    try:
        sys.exit(main())
    finally:
        shutil.rmtree(SNAPSHOT, ignore_errors=True)

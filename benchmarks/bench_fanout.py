"""Fanout benchmark (issue 3): ticker's server against `websockets` broadcast() on uvloop.

Each server runs in its own process pinned to CPU 0 (benchmarks/fanout_server.py,
benchmarks/ref_websockets.py); the C load generator (benchmarks/loadgen/loadgen.c,
built here with gcc -O2 into benchmarks/out/) runs pinned to CPU 1. Only 127.0.0.1.
For N WebSocket clients (and N SSE clients, ticker only) subscribed to `quote.*`:

- deliveries/s at saturation when messages coalesce (the publisher floods; the hub
  batches what waits, so one write carries many messages) and when every write carries
  one message (lockstep: the next message is published only once the previous one was
  fanned out; the peer broadcasts one message per loop iteration);
- p50/p99 end-to-end latency at 50 messages a second to each client (receive wall time
  minus the message's `ts`);
- server CPU from /proc/<pid>/stat over each window, as a fraction of one core, and the
  load generator's own CPU;
- server memory per idle connection: (RSS with N subscribed idle clients - RSS with 0) / N.

Every loop is bounded in count and time; only processes started here are stopped, by PID,
in `finally`. Raw figures go to benchmarks/out/fanout-results.json and a markdown
section to benchmarks/out/fanout-section.md.

    .venv/bin/python benchmarks/bench_fanout.py --quick      # N=100, 1000; 1 run
    .venv/bin/python benchmarks/bench_fanout.py --profile    # N=100, 1000, 5000; 3 runs
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import queue
import shutil
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

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "benchmarks"
OUT = BENCH / "out"
LOADGEN_SRC = BENCH / "loadgen" / "loadgen.c"
LOADGEN = OUT / "loadgen"
SERVER_CPU = 0
LOADGEN_CPU = 1
TICKER_BATCH = 128
"""ticker's publish_batch_events here (default 512). At saturation every hub batch is
full and fans out in one synchronous step: with 512 that step takes ~0.5 s at N=1,000
and ~3 s at N=5,000, so a window of a few seconds holds too few batches to count. 128
and 512 gave the same throughput within noise at N=1,000 (15 s windows)."""
SERVERS = {
    "ticker": [sys.executable, str(BENCH / "fanout_server.py"), "--batch", str(TICKER_BATCH)],
    "websockets": [sys.executable, str(BENCH / "ref_websockets.py")],
}
TARGETS = (("ws", "ticker"), ("ws", "websockets"), ("sse", "ticker"))
"""(transport, server) pairs; the peer speaks WebSocket only."""
RATE_PER_S = 50.0
CONTROL_TIMEOUT_S = 60.0
CHILD_LIFETIME_S = 600.0
"""Every child exits by itself after this long, whatever happens to this script."""
CLK_TCK = os.sysconf("SC_CLK_TCK")
QUIET_LOAD = 0.10
"""Cores in use by other processes below which the machine counts as quiet."""
QUIET_WAIT_S = 120.0
FOREIGN_WARN = 0.05
"""Other processes' CPU (or steal) during a window above this, in cores, marks it disturbed."""
ATTEMPTS = 3
"""Tries of a disturbed session before its least disturbed result is kept."""


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


QUICK = Plan((100, 1000), 1, 1.0, 3.0, 0.5, 2500.0, 4.0)
FULL = Plan((100, 1000, 5000), 3, 2.0, 5.0, 1.0, 2500.0, 22.0)


@dataclass(slots=True)
class Window:
    """One measurement window: the load generator's view plus the server's counters."""

    deliveries_per_s: float
    p50_us: int
    p99_us: int
    p999_us: int
    max_us: int
    server_cpu: float
    loadgen_cpu: float
    messages_per_write: float | None
    """ticker: messages sent / writes in the window (from its counters)."""
    peer_buffered_share: float | None
    """websockets: share of sampled broadcast targets whose transport still held unsent
    bytes, so that this message joined earlier ones in one write (uvloop writes into an
    idle socket at once)."""
    foreign_cpu: float
    """CPU of other processes on the machine during the window, in cores."""
    steal: float
    """CPU time the hypervisor gave to someone else during the window, in cores."""
    conflations: int
    open_clients: int
    errors: int
    raw: dict[str, Any] = field(repr=False)


@dataclass(slots=True)
class Session:
    """One server process with N clients: memory, then the three windows."""

    transport: str
    server: str
    clients: int
    run: int
    subscribed: int
    connect_s: float
    mem_per_conn_bytes: float
    rss_idle0_kb: int
    rss_idle_n_kb: int
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

    def __init__(self, name: str, argv: list[str], cpu: int) -> None:
        self.name = name
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
                with suppress(OSError):
                    self.send("quit")
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
def started(name: str, argv: list[str], cpu: int) -> Iterator[Child]:
    child = Child(name, argv, cpu)
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


# -- one session -----------------------------------------------------------------------


def measure(server: Child, loadgen: Child, command: str, plan: Plan, window_s: float) -> Window:
    """Publish with `command`; after the warm-up, one window of `window_s`."""
    bound_s = plan.warmup_s + window_s + 60
    server.send(f"{command} {bound_s:g}")
    server.expect("publishing")
    time.sleep(plan.warmup_s)
    before = server.request("stats", "stats")
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
    steal = (steal1 - steal0) / (t1 - t0)
    after = server.request("halt", "halted")
    time.sleep(plan.settle_s)
    per_write = buffered = None
    if "writes" in after and after["writes"] > before["writes"]:
        sent = after["messages_sent"] - before["messages_sent"]
        per_write = sent / (after["writes"] - before["writes"])
    if "sampled" in after and after["sampled"] > before["sampled"]:
        hits = after["buffered_sampled"] - before["buffered_sampled"]
        buffered = hits / (after["sampled"] - before["sampled"])
    return Window(
        deliveries_per_s=result["deliveries_per_s"],
        p50_us=result["p50_us"],
        p99_us=result["p99_us"],
        p999_us=result["p999_us"],
        max_us=result["max_us"],
        server_cpu=(cpu1 - cpu0) / (t1 - t0),
        loadgen_cpu=result["cpu_frac"],
        messages_per_write=per_write,
        peer_buffered_share=buffered,
        foreign_cpu=foreign,
        steal=steal,
        conflations=after.get("conflations", 0) - before.get("conflations", 0),
        open_clients=result["open"],
        errors=result["errors"] + result["failed"],
        raw={"loadgen": result, "server_before": before, "server_after": after},
    )


def run_session(
    transport: str, server_name: str, clients: int, run: int, plan: Plan, rate_mode: str
) -> Session:
    wait_for_quiet()
    argv = [*SERVERS[server_name], "--max-seconds", str(CHILD_LIFETIME_S)]
    with started(f"{server_name}-server", argv, SERVER_CPU) as server:
        ready = server.expect("ready")
        code = ready.get("code")
        if code is not None and not Path(code).is_relative_to(SNAPSHOT):
            raise BenchError(f"the server imported {code}, not the snapshot in {SNAPSHOT}")
        time.sleep(0.5)
        rss0 = rss_kb(server.pid)
        loadgen_argv = [
            str(LOADGEN),
            *("--mode", transport, "--port", str(ready["port"]), "--clients", str(clients)),
            *("--connect-rate", str(plan.connect_rate), "--max-seconds", str(CHILD_LIFETIME_S)),
        ]
        with started(f"loadgen-{transport}", loadgen_argv, LOADGEN_CPU) as loadgen:
            connected = loadgen.expect("ready", timeout_s=120)
            time.sleep(1.0)
            rss_n = rss_kb(server.pid)
            session = Session(
                transport,
                server_name,
                clients,
                run,
                connected["subscribed"],
                connected["connect_s"],
                (rss_n - rss0) * 1024 / clients,
                rss0,
                rss_n,
            )
            if connected["subscribed"] < clients:
                print(f"  ! only {connected['subscribed']}/{clients} subscribed: {connected}")
            window = plan.window_s
            rate = f"{rate_mode} {RATE_PER_S:g}"
            session.windows["rate50"] = measure(server, loadgen, rate, plan, window)
            session.windows["one"] = measure(server, loadgen, "lockstep", plan, window)
            # Longer at large N: a flooding hub fans out in steps of whole batches.
            flood_window = window * 2 if clients >= 5000 else window
            session.windows["coalesce"] = measure(server, loadgen, "flood", plan, flood_window)
    return session


def disturbance(session: Session) -> float:
    """The most CPU that others (processes or the hypervisor) took in any window."""
    return max(max(w.foreign_cpu, w.steal) for w in session.windows.values())


def run_undisturbed(
    transport: str, server: str, clients: int, run: int, plan: Plan, deadline: float, rate_mode: str
) -> Session:
    """A session, retried (bounded) while other load disturbed it; the least disturbed."""
    best: Session | None = None
    for attempt in range(1, ATTEMPTS + 1):
        session = run_session(transport, server, clients, run, plan, rate_mode)
        if best is None or disturbance(session) < disturbance(best):
            best = session
        if disturbance(session) <= FOREIGN_WARN or time.monotonic() > deadline:
            break
        print(f"  ~ attempt {attempt} disturbed ({disturbance(session):.2f} cores); again")
    assert best is not None
    return best


def describe(session: Session) -> str:
    w = session.windows
    shares = [
        f"{name} {window.peer_buffered_share:.1%}"
        for name, window in w.items()
        if window.peer_buffered_share is not None
    ]
    extra = f" | buffered: {', '.join(shares)}" if shares else ""
    if disturbance(session) > FOREIGN_WARN:
        extra += f" | DISTURBED: others/steal up to {disturbance(session):.2f} cores"
    return (
        f"{session.transport:3} {session.server:10} N={session.clients:<5} "
        f"coalesce {w['coalesce'].deliveries_per_s / 1e3:7.0f}k/s "
        f"(cpu {w['coalesce'].server_cpu:.2f}) "
        f"one {w['one'].deliveries_per_s / 1e3:6.0f}k/s (cpu {w['one'].server_cpu:.2f}) "
        f"@50/s p50 {w['rate50'].p50_us / 1e3:.1f} ms p99 {w['rate50'].p99_us / 1e3:.1f} ms "
        f"cpu {w['rate50'].server_cpu:.2f} | mem {session.mem_per_conn_bytes / 1024:.1f} KB/conn"
        f"{extra}"
    )


# -- profile ---------------------------------------------------------------------------


def profile(plan: Plan, clients: int = 1000, seconds: float = 8.0) -> list[tuple[str, float]]:
    """py-spy on ticker at saturation (WS, flood): an SVG flame graph and self times."""
    py_spy = Path(sys.executable).parent / "py-spy"
    if not py_spy.exists():
        print("  ! py-spy missing: .venv/bin/pip install py-spy")
        return []
    argv = [*SERVERS["ticker"], "--max-seconds", str(CHILD_LIFETIME_S)]
    raw_path, svg_path = OUT / "profile.txt", OUT / "profile.svg"
    with started("ticker-server", argv, SERVER_CPU) as server:
        port = server.expect("ready")["port"]
        loadgen_argv = [str(LOADGEN), "--mode", "ws", "--port", str(port)]
        loadgen_argv += ["--clients", str(clients), "--max-seconds", str(CHILD_LIFETIME_S)]
        with started("loadgen-ws", loadgen_argv, LOADGEN_CPU) as loadgen:
            loadgen.expect("ready", timeout_s=120)
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


Metric = Callable[[Session], float]


def _or_nan(value: float | None) -> float:
    return float("nan") if value is None else value


def num(value: float, spec: str) -> str:
    return "-" if value != value else format(value, spec)


METRICS: dict[str, Metric] = {
    "coalesce": lambda s: s.windows["coalesce"].deliveries_per_s,
    "coalesce_mpw": lambda s: _or_nan(s.windows["coalesce"].messages_per_write),
    "coalesce_cpu": lambda s: s.windows["coalesce"].server_cpu,
    "one": lambda s: s.windows["one"].deliveries_per_s,
    "one_mpw": lambda s: _or_nan(s.windows["one"].messages_per_write),
    "one_buffered": lambda s: _or_nan(s.windows["one"].peer_buffered_share),
    "one_cpu": lambda s: s.windows["one"].server_cpu,
    "p50": lambda s: s.windows["rate50"].p50_us,
    "p99": lambda s: s.windows["rate50"].p99_us,
    "rate_delivered": lambda s: s.windows["rate50"].deliveries_per_s,
    "rate_share": lambda s: s.windows["rate50"].deliveries_per_s / (RATE_PER_S * s.clients),
    "rate_cpu": lambda s: s.windows["rate50"].server_cpu,
    "loadgen_cpu": lambda s: max(w.loadgen_cpu for w in s.windows.values()),
    "mem": lambda s: s.mem_per_conn_bytes,
    "foreign": disturbance,
}


def summarize(sessions: list[Session]) -> dict[tuple[str, str, int], dict[str, float]]:
    groups: dict[tuple[str, str, int], list[Session]] = {}
    for s in sessions:
        groups.setdefault((s.transport, s.server, s.clients), []).append(s)
    return {
        key: {name: median([f(s) for s in group]) for name, f in METRICS.items()}
        | {"runs": len(group)}
        for key, group in groups.items()
    }


def k(value: float) -> str:
    if value != value:  # nan
        return "-"
    if value >= 1e6:
        return f"{value / 1e6:.2f}M"
    return f"{value / 1e3:.0f}k"


def ms(value_us: float) -> str:
    return f"{value_us / 1e3:.1f}"


def tables(summary: dict[tuple[str, str, int], dict[str, float]]) -> str:
    lines = [
        "| transport | server | N | runs | coalesce deliv/s | msgs/write | CPU | "
        "one-per-send deliv/s | msgs/write | CPU | @50/s p50 ms | p99 ms | delivered | "
        "CPU | loadgen CPU (max) | mem/idle conn | others+steal (max) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for (transport, server, n), m in sorted(summary.items()):
        lines.append(
            f"| {transport} | {server} | {n:,} | {m['runs']:.0f} | {k(m['coalesce'])} | "
            f"{num(m['coalesce_mpw'], '.1f')} | {m['coalesce_cpu']:.2f} | {k(m['one'])} | "
            f"{num(m['one_mpw'], '.2f')} | {m['one_cpu']:.2f} | {ms(m['p50'])} | {ms(m['p99'])} | "
            f"{m['rate_share']:.0%} | {m['rate_cpu']:.2f} | {m['loadgen_cpu']:.2f} | "
            f"{m['mem'] / 1024:.1f} KB | {m['foreign']:.2f} |"
        )
    lines += [
        "",
        "WebSocket, ticker / websockets (deliveries: higher is better for ticker; "
        "latency, CPU and memory: lower is better for ticker):",
        "",
        "| N | coalesce | one-per-send | p50 @50/s | p99 @50/s | CPU @50/s | mem/conn |",
        "|---|---|---|---|---|---|---|",
    ]
    for n in sorted({key[2] for key in summary}):
        ours, peer = summary.get(("ws", "ticker", n)), summary.get(("ws", "websockets", n))
        if ours is None or peer is None:
            continue
        ratio = {name: ours[name] / peer[name] if peer[name] else float("nan") for name in ours}
        lines.append(
            f"| {n:,} | {ratio['coalesce']:.2f}x | {ratio['one']:.2f}x | {ratio['p50']:.2f}x | "
            f"{ratio['p99']:.2f}x | {ratio['rate_cpu']:.2f}x | {ratio['mem']:.2f}x |"
        )
    return "\n".join(lines)


def aims(summary: dict[tuple[str, str, int], dict[str, float]]) -> str:
    out = []
    ours, peer = summary.get(("ws", "ticker", 1000)), summary.get(("ws", "websockets", 1000))
    if ours and peer:
        out.append(f"- N=1,000 coalescing >= 1,000,000/s: {k(ours['coalesce'])}")
        out.append(f"- N=1,000 one-per-send >= 1.2x peer: {ours['one'] / peer['one']:.2f}x")
        out.append(
            f"- N=1,000 @50/s ({k(ours['rate_delivered'])} deliveries/s): p99 "
            f"{ms(ours['p99'])} ms (aim < 10), CPU {ours['rate_cpu']:.2f} (aim < 0.33)"
        )
    big = summary.get(("ws", "ticker", 5000))
    if big:
        out.append(
            f"- N=5,000 @50/s: delivered {big['rate_share']:.0%} of the target, p99 "
            f"{ms(big['p99'])} ms, CPU {big['rate_cpu']:.2f}"
        )
    mems = [m["mem"] for key, m in summary.items() if key[1] == "ticker"]
    if mems:
        out.append(f"- memory per idle connection < 10 KB: max {max(mems) / 1024:.1f} KB")
    return "\n".join(out)


# -- main ------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="N=100, 1000; 1 run; short")
    parser.add_argument("--profile", action="store_true", help="py-spy ticker at N=1,000")
    parser.add_argument("--clients", type=int, nargs="*", help="override the values of N")
    parser.add_argument("--runs", type=int, help="override the number of runs")
    parser.add_argument(
        "--paced",
        action="store_true",
        help="50/s phase: one `await send` per event, as ticker's venue tasks send",
    )
    args = parser.parse_args()
    plan = QUICK if args.quick else FULL
    if args.clients:
        plan = replace(plan, clients=tuple(args.clients))
    if args.runs:
        plan = replace(plan, runs=args.runs)
    rate_mode = "paced" if args.paced else "rate"
    os.sched_setaffinity(0, {LOADGEN_CPU})  # keep this script off the server's core
    build_loadgen()
    info = machine()
    info["code"] = snapshot_code()
    command = " ".join(["benchmarks/bench_fanout.py", *sys.argv[1:]])
    print(f"machine: {info}")
    print(f"plan: {plan}")
    deadline = time.monotonic() + plan.max_minutes * 60
    sessions: list[Session] = []
    started_at = time.monotonic()
    for run in range(1, plan.runs + 1):
        for n in plan.clients:
            for transport, server in TARGETS:
                if time.monotonic() > deadline:
                    print("! time budget spent; stopping early")
                    break
                session = run_undisturbed(transport, server, n, run, plan, deadline, rate_mode)
                sessions.append(session)
                print(f"run {run} {describe(session)}", flush=True)
    hot: list[tuple[str, float]] = []
    if args.profile and time.monotonic() < deadline:
        hot = profile(plan)
    summary = summarize(sessions)
    elapsed = (time.monotonic() - started_at) / 60
    section = [
        f"Machine: {info['nproc']} CPUs, {info['cpu']}, {info['memory']}, Linux "
        f"{info['kernel']}, Python {info['python']}; {info['date']}. Run took {elapsed:.1f} min.",
        f"Code under test: {info['code']} (copied at the start of the run).",
        "",
        f"Reproduce: `.venv/bin/python {command}`",
        "",
        tables(summary),
        "",
        "Aims (ticker, WebSocket):",
        "",
        aims(summary),
    ]
    if hot:
        section += ["", "py-spy, ticker at N=1,000 saturation (flood), self time:", ""]
        section += [f"- {share:5.1%} {frame}" for frame, share in hot[:15]]
    text = "\n".join(section)
    print()
    print(text)
    (OUT / "fanout-section.md").write_text(text + "\n")
    results = {
        "machine": info,
        "plan": asdict(plan),
        "command": command,
        "sessions": [asdict(s) for s in sessions],
        "profile": hot,
    }
    (OUT / "fanout-results.json").write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    finally:
        shutil.rmtree(SNAPSHOT, ignore_errors=True)

"""Debug-only trace of the Redis hop (issue 12): where one message's time goes, stage by stage.

Runs redis-server, a hub and one edge (benchmarks/fanout_server.py, pinned as in
bench_cluster.py: edge on CPU 0; hub, Redis and the load generator on CPU 1) and N
verifying clients on the edge, publishes at 50 messages/s, and stamps every message
(CLOCK_REALTIME, comparable across processes; `ts` is the hub's sequencer stamp) at:

    hub   ts           sequenced (`now_ns` given to publish_batch: the message's ts)
          published    publish_batch returned (the writer then hands the batch on)
          taken        the append task took it (`encode_entries` called)
          appending    ClusterLog.append called
          sending      the lane's call entered (the command is encoded and sent next)
          arrived_hub  the append's reply's first bytes received
          replied      the append's reply parsed
    edge  xread        the XREAD that returned it was sent (before `replied`: it blocked)
          arrived      the XREAD reply's first bytes received
          parsed       the whole reply parsed
          returned     ClusterLog.read_after returned it
          decoded      its entry decoded
          fanout       Fanout.publish called (applied to the hub)
          written      Fanout.publish returned (idle sockets are written synchronously)

The stamps come from wrappers installed in each child before it starts (ticker's code is
not changed). Prints, per stage, the median and p99 of the time since `ts`, and the
load generator's end-to-end p50/p99 (receive - ts) for the same window; optionally the
same window on `all` (no Redis) for the difference. Every process is stopped by its PID.

    .venv/bin/python benchmarks/trace_hop.py --clients 10 --seconds 6 --runs 3 --all --fifo

`--fifo` runs our processes SCHED_FIFO so that other load on a shared machine does not
delay them: what is left is the hop's own cost (use it at small N only).
"""

from __future__ import annotations

import argparse
import atexit
import gc
import json
import os
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
STAGES = (
    "published",
    "taken",
    "appending",
    "sending",
    "arrived_hub",
    "replied",
    "xread",
    "arrived",
    "parsed",
    "returned",
    "decoded",
    "fanout",
    "written",
)


# -- the children: wrappers that stamp ----------------------------------------------------


def install(role: str, out: Path) -> None:
    """Wrap the hop's functions in this process so that each stamps the message's offset."""
    from ticker.cluster import follower as follower_module
    from ticker.cluster import leader as leader_module
    from ticker.cluster import redis_log as redis_log_module
    from ticker.cluster import resp
    from ticker.server import fanout as fanout_module

    # Patched by assignment below (a debug trace): typed loosely on purpose.
    follower: Any = follower_module
    leader: Any = leader_module
    redis_log: Any = redis_log_module
    fanout: Any = fanout_module

    stamps: list[tuple[str, int, int]] = []  # (stage, offset, time_ns)
    reads: list[dict[str, Any]] = []
    others: list[tuple[str, int, int]] = []  # (what, start, end ns): other calls, collections

    def dump() -> None:
        out.write_text(json.dumps({"stamps": stamps, "reads": reads, "others": others}))

    atexit.register(dump)
    now = time.time_ns
    collecting: list[int] = []

    def on_gc(phase: str, info: dict[str, int]) -> None:
        """Record each garbage collection of this process (does it meet a message?)."""
        if phase == "start":
            collecting[:] = [now()]
        elif collecting:
            others.append((f"gc{info['generation']}", collecting[0], now()))

    gc.callbacks.append(on_gc)

    original_call = resp.RespConnection.call
    append_sha = redis_log._APPEND.sha
    original_feed = resp.ReplyParser.feed
    first_bytes: dict[int, int] = {}  # id(parser) -> when the reply's first bytes came

    def feed(self: resp.ReplyParser, data: bytes | bytearray) -> None:
        first_bytes.setdefault(id(self), now())
        original_feed(self, data)

    async def call(self: resp.RespConnection, *args: resp.Arg) -> resp.Reply:
        """resp.RespConnection.call, stamped (the same code runs inside)."""
        kind = args[0]
        parser = self._parser
        first_bytes.pop(id(parser), None)
        t_call = now()
        reply = await original_call(self, *args)
        t_parsed = now()
        t_first = first_bytes.get(id(parser), t_parsed)
        if kind == b"EVALSHA" and args[1] == append_sha:  # not the renewal, the checkpoint
            offset = int(str(args[6]).rpartition("-")[2])
            stamps.append(("sending", offset, t_call))
            stamps.append(("arrived_hub", offset, t_first))
            stamps.append(("replied", offset, t_parsed))
        elif kind == b"XREAD" and isinstance(reply, list):
            entries: Any = reply[0]
            offsets = [int(e[0].rpartition(b"-")[2]) for e in entries[1]]
            reads.append({"call": t_call, "first": t_first, "parsed": t_parsed, "n": len(offsets)})
            for offset in offsets:
                stamps.append(("xread", offset, t_call))
                stamps.append(("arrived", offset, t_first))
                stamps.append(("parsed", offset, t_parsed))
        return reply

    resp.ReplyParser.feed = feed  # type: ignore[method-assign]
    resp.RespConnection.call = call  # type: ignore[method-assign]

    if role == "hub":
        append = redis_log.ClusterLog.append

        async def traced_append(
            self: Any, token: str, position: Any, data: bytes, **kw: Any
        ) -> None:
            stamps.append(("appending", position.offset, now()))
            await append(self, token, position, data, **kw)

        redis_log.ClusterLog.append = traced_append

        def timed(name: str) -> None:
            """Record when the hub's other Redis commands run (do they meet a message?)."""
            original = getattr(redis_log.ClusterLog, name)

            async def wrapper(self: Any, *args: Any, **kw: Any) -> Any:
                start = now()
                try:
                    return await original(self, *args, **kw)
                finally:
                    others.append((name, start, now()))

            setattr(redis_log.ClusterLog, name, wrapper)

        timed("renew_lease")
        timed("write_checkpoint")
        publish_batch = leader.publish_batch
        encode_entries = leader.encode_entries

        def traced_publish(hub: Any, batch: Any, now_ns: int, rejections: Any) -> Any:
            published = publish_batch(hub, batch, now_ns, rejections)
            if published:
                offset = published[-1].message.offset
                stamps.append(("ts", offset, now_ns))
                stamps.append(("published", offset, now()))
            return published

        def traced_encode(batch: Any, max_bytes: int) -> Any:
            stamps.append(("taken", batch[-1].message.offset, now()))
            return encode_entries(batch, max_bytes)

        leader.publish_batch = traced_publish
        leader.encode_entries = traced_encode
    else:
        read_after = redis_log.ClusterLog.read_after

        async def traced_read(self: Any, position: Any, **kw: Any) -> Any:
            entries = await read_after(self, position, **kw)
            t = now()
            stamps.extend(("returned", entry.position.offset, t) for entry in entries)
            return entries

        redis_log.ClusterLog.read_after = traced_read
        decode_or_skip = follower.decode_or_skip
        publish = fanout.Fanout.publish

        def traced_decode(entry: Any, status: Any) -> Any:
            messages = decode_or_skip(entry, status)
            stamps.append(("decoded", entry.position.offset, now()))
            return messages

        def traced_fanout(self: Any, items: Any) -> None:
            offset = items[-1].message.offset
            stamps.append(("fanout", offset, now()))
            publish(self, items)
            stamps.append(("written", offset, now()))

        follower.decode_or_skip = traced_decode
        fanout.Fanout.publish = traced_fanout


def child(role: str, out: Path, argv: list[str]) -> None:
    sys.path.insert(0, str(HERE))
    install(role, out)
    import fanout_server
    import trio

    sys.argv = ["fanout_server.py", *argv]
    trio.run(fanout_server.main, fanout_server.parse_args())


# -- the parent: processes, windows, the table --------------------------------------------


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def analyse(hub_trace: dict[str, Any], edge_trace: dict[str, Any]) -> dict[str, Any]:
    """Per stage: median and p99 of (stage - ts) and of (stage - previous stage), in us."""
    by_offset: dict[int, dict[str, int]] = {}
    for trace in (hub_trace, edge_trace):
        for stage, offset, t in trace["stamps"]:
            by_offset.setdefault(offset, {}).setdefault(stage, t)
    complete = [s for s in by_offset.values() if "ts" in s and all(k in s for k in STAGES)]
    rows = {}
    previous = "ts"
    for stage in STAGES:
        since_ts = [(s[stage] - s["ts"]) / 1e3 for s in complete]
        step = [(s[stage] - s[previous]) / 1e3 for s in complete]
        rows[stage] = {
            "since_ts_p50": statistics.median(since_ts) if since_ts else float("nan"),
            "since_ts_p99": percentile(since_ts, 0.99),
            "step_p50": statistics.median(step) if step else float("nan"),
            "step_p99": percentile(step, 0.99),
            "step_max": max(step, default=float("nan")),
        }
        previous = stage
    blocked = sum(1 for s in complete if s["xread"] < s["replied"])
    slowest = sorted(complete, key=lambda s: s["written"] - s["ts"])[-5:]
    worst = [
        {
            stage: round((s[stage] - s[prev]) / 1e3)
            for prev, stage in zip(("ts", *STAGES[:-1]), STAGES, strict=True)
        }
        for s in slowest
    ]
    return {
        "messages": len(complete),
        "xread_blocked": blocked,
        "stages": rows,
        "worst": worst,
        "tail": tail(
            complete,
            [(f"hub {w}", b, e) for w, b, e in hub_trace.get("others", [])]
            + [(f"edge {w}", b, e) for w, b, e in edge_trace.get("others", [])],
        ),
    }


SEGMENTS = (
    ("hub", "ts", "sending"),
    ("to_edge", "sending", "arrived"),
    ("edge_read", "arrived", "decoded"),
    ("fanout", "decoded", "written"),
    ("evalsha", "sending", "replied"),
    ("edge_later", "arrived_hub", "arrived"),
)
"""The path of a message in four parts: the hub until the append is sent (publish,
hand-off, encode); Redis running it and the edge's XREAD reply arriving; the edge parsing,
returning and decoding it; applying and writing it to the clients (the rest, edge to
client, is the load generator's: only its aggregate p50/p99 is known). `evalsha` (the
hub's round trip) is not on the edge's path; it shows whether Redis or the hub was slow;
`edge_later`, how much later than the hub the edge received its reply (Redis answers both
in one pass of its event loop): a tail here is the edge woken late."""
TAIL = 0.02


def tail(complete: list[dict[str, int]], others: list[tuple[str, int, int]]) -> dict[str, Any]:
    """For the slowest TAIL of messages (ts -> written): per segment the median time (us)
    over all messages and over the tail, and how many tail messages met one of the hub's
    other Redis commands (a lease renewal, a checkpoint) or a garbage collection of the hub
    or the edge between ts and written."""
    if not complete:
        return {}
    ordered = sorted(complete, key=lambda s: s["written"] - s["ts"])
    count = max(1, round(len(ordered) * TAIL))
    slow = ordered[-count:]
    out: dict[str, Any] = {"count": count, "of": len(ordered), "segments": {}}
    for name, start, end in SEGMENTS:
        every = [(s[end] - s[start]) / 1e3 for s in ordered]
        worst = [(s[end] - s[start]) / 1e3 for s in slow]
        out["segments"][name] = {
            "all_p50": statistics.median(every),
            "tail_p50": statistics.median(worst),
            "tail_max": max(worst),
        }
    met: dict[str, int] = {}
    for s in slow:
        for what, begin, finish in others:
            if begin < s["written"] and finish > s["ts"]:
                met[what] = met.get(what, 0) + 1
    out["met"] = met
    out["others"] = len(others)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--child", choices=("hub", "edge"))
    parser.add_argument("--trace-out", type=Path)
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument("--all", action="store_true", help="also the same window on `all`")
    parser.add_argument(
        "--fifo",
        action="store_true",
        help="run every process of ours SCHED_FIFO (priority 1): others' load on a shared "
        "machine then delays none of them, so what is left is the hop itself (small N only)",
    )
    args, rest = parser.parse_known_args()
    if args.child:
        child(args.child, args.trace_out, rest)
        return 0

    sys.path.insert(0, str(HERE))
    import bench_cluster as bc
    import bench_fanout as bf

    bf.build_loadgen()
    bf.snapshot_code()
    plan = bc.Plan((args.clients,), 1, 1.0, args.seconds, 0, 5.0)
    tmp = Path(tempfile.mkdtemp(prefix="ticker-trace-hop-"))
    me = [sys.executable, str(Path(__file__).resolve())]
    results: list[dict[str, Any]] = []
    try:
        for run in range(1, args.runs + 1):
            if args.all:
                if not args.fifo:
                    bf.wait_for_quiet()
                with ExitStack() as stack:
                    server = stack.enter_context(
                        bf.started("trace-all", bc.server_argv(), bc.FANOUT_CPU)
                    )
                    port = server.expect("ready")["port"]
                    lg = stack.enter_context(
                        bf.started("loadgen", bc.loadgen_argv([port], args.clients), bc.OTHER_CPU)
                    )
                    if args.fifo:
                        realtime([server.pid, lg.pid])
                    lg.expect("ready", timeout_s=120)
                    time.sleep(1.0)
                    w = bc.measure("all", args.rate, server, [server], lg, None, plan)
                    results.append({"run": run, "setup": "all", "p50": w.p50_us, "p99": w.p99_us,
                                    "others": max(w.foreign_cpu, w.steal)})  # fmt: skip
                    print(f"run {run} all : e2e p50 {w.p50_us} us p99 {w.p99_us} us", flush=True)
            if not args.fifo:
                bf.wait_for_quiet()
            with ExitStack() as stack:
                redis = stack.enter_context(bc.redis_server(tmp))
                redis.command("CONFIG SET slowlog-log-slower-than 0")
                redis.command("CONFIG SET slowlog-max-len 100000")
                url = ["--redis-url", redis.url]
                traces = {r: tmp / f"trace-{r}-{run}.json" for r in ("hub", "edge")}
                hub_argv = [*me, "--child", "hub", "--trace-out", str(traces["hub"])]
                hub_argv += ["--max-seconds", "900", "--role", "hub", *url]
                hub = stack.enter_context(bf.started("trace-hub", hub_argv, bc.OTHER_CPU))
                hub.expect("ready")
                edge_argv = [*me, "--child", "edge", "--trace-out", str(traces["edge"])]
                edge_argv += ["--max-seconds", "900", "--role", "edge", *url]
                edge = stack.enter_context(bf.started("trace-edge", edge_argv, bc.FANOUT_CPU))
                port = edge.expect("ready")["port"]
                lg = stack.enter_context(
                    bf.started("loadgen", bc.loadgen_argv([port], args.clients), bc.OTHER_CPU)
                )
                if args.fifo:
                    realtime([redis.pid, hub.pid, edge.pid, lg.pid])
                lg.expect("ready", timeout_s=120)
                time.sleep(1.0)
                redis.command("SLOWLOG RESET")
                w = bc.measure("edge1", args.rate, hub, [edge], lg, redis, plan)
                slow = slowlog(redis)
                lg.stop()
                edge.stop()
                hub.stop()
                result = analyse(
                    json.loads(traces["hub"].read_text()), json.loads(traces["edge"].read_text())
                )
                result |= {"run": run, "setup": "edge1", "p50": w.p50_us, "p99": w.p99_us,
                           "others": max(w.foreign_cpu, w.steal), "redis_us": slow}  # fmt: skip
                results.append(result)
                show(result)
    finally:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(bf.SNAPSHOT, ignore_errors=True)
    (bf.OUT / "trace-hop.json").write_text(json.dumps(results, indent=1))
    summary(results)
    return 0


def realtime(pids: list[int]) -> None:
    """SCHED_FIFO priority 1 for each process (its main thread), by PID."""
    for pid in pids:
        os.sched_setscheduler(pid, os.SCHED_FIFO, os.sched_param(1))


def slowlog(redis: Any) -> dict[str, float]:
    """Median execution time (us) per command in Redis's slow log (threshold 0: all)."""
    import socket

    times: dict[str, list[int]] = {}
    with socket.create_connection(("127.0.0.1", redis.port), timeout=2) as sock:
        sock.sendall(b"SLOWLOG GET 100000\r\n")
        data = b""
        sock.settimeout(0.5)
        try:
            while chunk := sock.recv(1 << 20):
                data += chunk
        except TimeoutError:
            pass
    # Entries: id, timestamp, duration, [args...]: pick duration then the command name.
    lines = data.split(b"\r\n")
    for i, line in enumerate(lines):
        if line == b"*6" and i + 8 < len(lines):
            duration = int(lines[i + 3][1:])
            name = lines[i + 6].decode(errors="replace").upper()
            times.setdefault(name, []).append(duration)
    return {name: statistics.median(v) for name, v in times.items()}


def show(result: dict[str, Any]) -> None:
    print(
        f"run {result['run']} edge1: {result['messages']} messages traced "
        f"({result['xread_blocked']} read by an XREAD that was waiting); e2e p50 "
        f"{result['p50']} us p99 {result['p99']} us; others {result['others']:.2f}; "
        f"redis {result['redis_us']}",
        flush=True,
    )
    print(f"  {'stage':10} {'since ts p50':>12} {'p99':>7}   {'step p50':>8} {'p99':>7} {'max':>7}")
    for stage, row in result["stages"].items():
        print(
            f"  {stage:10} {row['since_ts_p50']:12.0f} {row['since_ts_p99']:7.0f}   "
            f"{row['step_p50']:8.0f} {row['step_p99']:7.0f} {row['step_max']:7.0f}"
        )
    for steps in result["worst"]:
        print("  slow:", " ".join(f"{k}={v}" for k, v in steps.items() if k != "xread"))
    show_tail(result.get("tail", {}))


def show_tail(t: dict[str, Any]) -> None:
    if not t:
        return
    print(
        f"  slowest {t['count']} of {t['of']} (ts -> written); per part median us all -> "
        f"tail (tail max); met (hub's other commands, GCs) {t['met']} (of {t['others']})"
    )
    for name, row in t["segments"].items():
        print(
            f"    {name:10} {row['all_p50']:7.0f} -> {row['tail_p50']:7.0f} "
            f"({row['tail_p50'] - row['all_p50']:+.0f}; max {row['tail_max']:.0f})"
        )


def summary(results: list[dict[str, Any]]) -> None:
    edges = [r for r in results if r["setup"] == "edge1"]
    alls = [r for r in results if r["setup"] == "all"]
    if not edges:
        return
    print("\nmedians over runs (us):")
    if alls:
        p50 = statistics.median(r["p50"] for r in alls)
        p99 = statistics.median(r["p99"] for r in alls)
        print(f"  all   e2e p50 {p50:.0f} p99 {p99:.0f}")
    p50 = statistics.median(r["p50"] for r in edges)
    p99 = statistics.median(r["p99"] for r in edges)
    print(f"  edge1 e2e p50 {p50:.0f} p99 {p99:.0f}")
    for stage in STAGES:
        a = statistics.median(r["stages"][stage]["step_p50"] for r in edges)
        b = statistics.median(r["stages"][stage]["step_p99"] for r in edges)
        c = statistics.median(r["stages"][stage]["since_ts_p50"] for r in edges)
        print(f"  {stage:10} step p50 {a:7.0f} p99 {b:7.0f}   since ts p50 {c:7.0f}")
    tails = [r["tail"] for r in edges if r.get("tail")]
    if tails:
        met: dict[str, int] = {}
        for t in tails:
            for what, n in t["met"].items():
                met[what] = met.get(what, 0) + n
        print(
            f"  the slowest {TAIL:.0%} ({sum(t['count'] for t in tails)} of "
            f"{sum(t['of'] for t in tails)} messages), medians over runs, us: all -> tail; "
            f"met (hub's other commands, GCs): {met}"
        )
        for name, _, _ in SEGMENTS:
            a = statistics.median(t["segments"][name]["all_p50"] for t in tails)
            b = statistics.median(t["segments"][name]["tail_p50"] for t in tails)
            print(f"    {name:10} {a:7.0f} -> {b:7.0f} ({b - a:+.0f})")


if __name__ == "__main__":
    sys.exit(main())

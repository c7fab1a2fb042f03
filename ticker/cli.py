"""The `ticker` command: `serve` runs the server, `feeds` prints normalized venue events.

Every setting of `ticker.config.Config` is a flag (`--outbox-max-bytes`), generated
from the config object itself so flags and defaults cannot drift; `--help` shows each
with its default and its documentation. This module parses arguments, wires trio tasks
and prints; it decides nothing about market data.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import itertools
import json
import logging
import signal
import sys
import textwrap
import time
from collections.abc import Sequence
from functools import partial
from typing import Any

import trio

from feeds.faults import FaultPlan
from ticker import __version__
from ticker.config import Config
from ticker.errors import ConfigError
from ticker.ingest.contract import IngestCounters
from ticker.model.events import BookUpdate, NormalizedEvent, Quote, TickerStats, Trade
from ticker.model.fixed import format_nanos
from ticker.settings import (
    CONFIG_FILE_ENV,
    env_name,
    load_config,
    log_level_argument,
    parse_faults,
    split_csv,
)

log = logging.getLogger("ticker")


def _setting_docs() -> dict[str, str]:
    """Each Config field's docstring (the string literal right after it in the class)."""
    tree = ast.parse(inspect.getsource(Config))
    body = tree.body[0].body  # type: ignore[attr-defined]
    docs: dict[str, str] = {}
    for node, following in itertools.pairwise(body):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and isinstance(following, ast.Expr)
            and isinstance(following.value, ast.Constant)
            and isinstance(following.value.value, str)
        ):
            docs[node.target.id] = " ".join(following.value.value.split())
    return docs


def _add_config_flags(parser: argparse.ArgumentParser) -> None:
    docs = _setting_docs()
    group = parser.add_argument_group(
        "settings (precedence: flag, then environment variable, then the --config file, "
        "then the embedded default)"
    )
    group.add_argument(
        "--config",
        metavar="FILE",
        default=None,
        help=f"TOML file of settings, keys as below without dashes (env {CONFIG_FILE_ENV})",
    )
    for field in dataclasses.fields(Config):
        default = field.default
        flag = "--" + field.name.replace("_", "-")
        help_text = (
            f"{docs.get(field.name, '')} (env {env_name(field.name)}; default: {_show(default)})"
        )
        if isinstance(default, tuple):
            group.add_argument(flag, type=split_csv, dest=field.name, default=None, help=help_text)
        elif isinstance(default, bool):
            group.add_argument(
                flag, action=argparse.BooleanOptionalAction, dest=field.name, help=help_text
            )
        else:
            kind = type(default)
            group.add_argument(flag, type=kind, dest=field.name, default=None, help=help_text)


EXAMPLE_CONFIG_HEADER = """\
# ticker.example.toml: every setting of `ticker serve`, each set to its default.
# Copy it (e.g. to ticker.toml), keep the lines you change, and run
#   .venv/bin/ticker serve --config ticker.toml     (or TICKER_CONFIG=ticker.toml)
# Precedence: a flag, then a TICKER_* environment variable, then this file, then the
# embedded default. Keys are the setting names (dashes or underscores); the comments
# are the ones `ticker serve --help` shows.
"""


def example_config() -> str:
    """The text of ticker.example.toml: every setting, documented, at its default."""
    docs = _setting_docs()
    parts = [EXAMPLE_CONFIG_HEADER]
    for field in dataclasses.fields(Config):
        doc = textwrap.wrap(docs.get(field.name, ""), 86)
        parts.append("\n" + "".join(f"# {line}\n" for line in doc))
        parts.append(f"{field.name} = {_toml_value(field.default)}\n")
    return "".join(parts)


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, str):
        return json.dumps(value)  # a TOML basic string for anything a setting holds
    return repr(value)


def _show(value: object) -> str:
    return ",".join(map(str, value)) if isinstance(value, tuple) else str(value)


def _config_from(args: argparse.Namespace) -> Config:
    flags = {f.name: getattr(args, f.name, None) for f in dataclasses.fields(Config)}
    return load_config(flags, config_file=getattr(args, "config", None))


def event_json(event: NormalizedEvent) -> dict[str, Any]:
    """A normalized event as a JSON-ready dict with exact decimal strings."""

    def dec(value: int | None) -> str | None:
        return None if value is None else format_nanos(value)

    base: dict[str, Any] = {"venue": event.venue, "symbol": event.symbol, "ts": event.ts_ns}
    if isinstance(event, Trade):
        side = event.side.value
        return {"type": "trade", **base, "price": dec(event.price), "size": dec(event.size),
                "side": side, "id": event.trade_id}  # fmt: skip
    if isinstance(event, Quote):
        return {"type": "quote", **base, "bid": dec(event.bid_price),
                "bid_size": dec(event.bid_size), "ask": dec(event.ask_price),
                "ask_size": dec(event.ask_size)}  # fmt: skip
    if isinstance(event, BookUpdate):
        return {"type": "book", **base, "snapshot": event.snapshot,
                "bids": [[dec(p), dec(s)] for p, s in event.bids],
                "asks": [[dec(p), dec(s)] for p, s in event.asks]}  # fmt: skip
    assert isinstance(event, TickerStats)
    return {"type": "ticker", **base, "last": dec(event.last), "open": dec(event.open),
            "high": dec(event.high), "low": dec(event.low), "volume": dec(event.volume),
            "change": dec(event.change)}  # fmt: skip


async def run_feeds(
    config: Config, faults: FaultPlan, duration_s: float | None, stats: bool
) -> dict[str, IngestCounters]:
    """Run the simulated venues and print every normalized event as a JSON line."""
    from ticker.server.venue_feed import run_venue

    counters: dict[str, IngestCounters] = {}
    send, receive = trio.open_memory_channel[Sequence[NormalizedEvent]](config.ingest_queue_batches)
    with trio.move_on_after(duration_s if duration_s is not None else float("inf")):
        async with trio.open_nursery() as nursery:
            start_ns = time.time_ns()
            for venue in config.venues:
                await nursery.start(
                    run_venue, venue, config, send.clone(), counters, faults, start_ns
                )
            send.close()
            async with receive:
                async for batch in receive:
                    for event in batch:
                        print(json.dumps(event_json(event), separators=(",", ":")), flush=True)
    if stats:
        for venue, c in counters.items():
            print(f"# {venue}: {dataclasses.asdict(c)}", file=sys.stderr)
    return counters


async def run_serve(config: Config, faults: FaultPlan, argv: Sequence[str]) -> None:
    """Run the server until interrupted (with `workers` > 1: that many edge processes
    sharing the port, each this command with `--workers 1 --reuse-port`)."""
    from ticker.server.gc_policy import apply_gc_policy
    from ticker.server.process import serve

    if config.workers > 1:
        from ticker.workers import run_workers

        await run_workers(config, argv)
        return

    async with trio.open_nursery() as nursery:
        handle = await nursery.start(partial(serve, config, faults=faults))
        scheme = "s" if config.certfile else ""
        stream = (
            f"role {config.role} of cluster {config.cluster} (epoch: the cluster log's)"
            if config.redis_url
            else f"epoch {handle.hub.epoch}"
        )
        log.info(
            "ticker serving http%s://%s:%d/ (ws%s://.../v1/ws, .../v1/sse) %s",
            scheme, config.host, handle.port, scheme, stream,
        )  # fmt: skip
        # After start-up, so what it built is frozen; process-wide, so here and not in
        # `serve` (which tests and embedders run inside their own processes).
        apply_gc_policy(config.gc_gen0_threshold)
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async for signum in signals:
                log.info(
                    "%s: draining (deadline %.1f s; a second signal stops at once)",
                    signal.Signals(signum).name,
                    config.drain_timeout_s,
                )
                break
        # Out of the receiver: a second SIGINT interrupts, a second SIGTERM terminates.
        await handle.drain()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ticker", description="Live market-data fanout.")
    parser.add_argument("--version", action="version", version=f"ticker {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the server (venues in-process)")
    feeds = commands.add_parser("feeds", help="print the venues' normalized events")
    for sub in (serve, feeds):
        sub.add_argument(
            "--faults",
            default="",
            help="fault rates, e.g. drop=0.01,duplicate=0.01,malformed=0.005",
        )
        sub.add_argument(
            "--log-level",
            type=log_level_argument,
            default="INFO",
            help="logging level: DEBUG, INFO, WARNING, ERROR or CRITICAL (default: INFO)",
        )
        _add_config_flags(sub)
    feeds.add_argument("--duration", type=float, default=None, help="stop after N seconds")
    feeds.add_argument("--stats", action="store_true", help="print ingest counters at the end")
    from ticker.capture.cli import add_parsers

    add_parsers(commands)
    from ticker.tail import add_parser as add_tail_parser

    add_tail_parser(commands)
    from ticker.auth.issue import add_parser as add_token_parser

    add_token_parser(commands)
    for sub in commands.choices.values():
        # So that an unknown flag is reported with the subcommand's usage (see `main`).
        sub.set_defaults(command_parser=sub)
    return parser


def parse_command_line(
    parser: argparse.ArgumentParser, argv: Sequence[str] | None
) -> argparse.Namespace:
    """Parse like `parser.parse_args`, but report unknown arguments with the usage of
    the subcommand they were given to (argparse reports them with the top level's).

    Raises:
        SystemExit: a usage error (exit 2, usage and message on stderr) or --help.
    """
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        sub: argparse.ArgumentParser = getattr(args, "command_parser", parser)
        sub.error(f"unrecognized arguments: {' '.join(unknown)}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `ticker` console script; returns the exit code."""
    parser = build_parser()
    args = parse_command_line(parser, argv)
    if "capture_main" in args:  # record, replay, token: their own flags and exit codes
        return int(args.capture_main(args))
    logging.basicConfig(
        level=args.log_level,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )
    logging.Formatter.converter = time.gmtime
    # coredis logs every failed connection attempt with a traceback while Redis is away;
    # the cluster tasks count those (ticker_cluster_log_errors_total) and readiness says
    # why, once.
    logging.getLogger("coredis").setLevel(logging.CRITICAL)
    if args.command == "tail":  # a client: its own flags, no server settings
        from ticker.tail import run_tail_command

        return run_tail_command(args)
    try:
        config = _config_from(args)
        faults = parse_faults(args.faults)
    except (ConfigError, TypeError) as exc:
        print(f"ticker: {exc}", file=sys.stderr)
        return 2
    try:
        if args.command == "feeds":
            trio.run(run_feeds, config, faults, args.duration, args.stats)
        else:
            trio.run(run_serve, config, faults, list(sys.argv[1:] if argv is None else argv))
    except BaseException as raised:  # sorted below; anything else is re-raised
        error = _sole(raised)
        if isinstance(error, KeyboardInterrupt):
            return 130
        if isinstance(error, ConfigError | OSError):
            print(f"ticker: {error}", file=sys.stderr)
            return 2 if isinstance(error, ConfigError) else 1
        raise
    return 0


def _sole(error: BaseException) -> BaseException:
    """The one error inside nested single-error groups (trio's nurseries wrap them)."""
    while isinstance(error, BaseExceptionGroup) and len(error.exceptions) == 1:
        error = error.exceptions[0]
    return error


if __name__ == "__main__":
    sys.exit(main())

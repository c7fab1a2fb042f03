"""`ticker record` and `ticker replay`: the commands, wired and reported, with exit codes.

Flags and their environment variables are declared in `options`. Exit codes are
`errors.ExitCode`: 0 success, 1 `--validate` found problems, 2 bad flags, 3 a bad
capture file, 4 the target failed, 130 interrupted. This module wires and prints;
recording and replaying live in `record`, `stream_source`, `replay` and `player`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from functools import partial
from typing import IO, Any

import trio

from ticker.capture.display import (
    ProgressDisplay,
    ReplayProgress,
    print_replay_report,
    replay_report,
)
from ticker.capture.errors import CaptureError, ExitCode, TargetError
from ticker.capture.format import CaptureReader, CaptureWriter, Record
from ticker.capture.options import (
    EPILOG,
    RECORD_OPTIONS,
    REPLAY_OPTIONS,
    SPEED_OPTION,
    UsageError,
    add_options,
    resolve,
)
from ticker.capture.player import EmbeddedTarget, NullTarget, PlayResult, RemoteTarget, play
from ticker.capture.publisher import PublishCounts, check_token, open_publisher, parse_target
from ticker.capture.record import (
    Recorder,
    SimulatedVenues,
    iso_utc,
    record_live,
    simulated_header,
)
from ticker.capture.replay import ReplayFaults, ReplayOptions
from ticker.capture.stream_source import record_stream, stream_header
from ticker.interrupt import run_until_signalled
from ticker.venues import VENUES

log = logging.getLogger("ticker.capture")


def add_parsers(commands: Any) -> None:
    """Add `record` and `replay` to the `ticker` command's subparsers."""
    record = commands.add_parser(
        "record", help="record simulated venues to a capture file",
        description="Record the simulated venues' native messages (or normalized events) "
        "to a capture file; docs/CAPTURE.md.", epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    add_options(record, "record", RECORD_OPTIONS)
    record.set_defaults(capture_main=main_record)
    replay = commands.add_parser(
        "replay", help="replay capture files into a server, or validate them",
        description="Replay captures through the real normalizers into an embedded server "
        "(--serve), a running one (--target) or nothing (--validate); docs/CAPTURE.md.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    replay.add_argument("files", nargs="+", metavar="FILE", help="capture files (merged by time)")
    add_options(replay, "replay", REPLAY_OPTIONS)
    replay.set_defaults(capture_main=main_replay)


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )
    logging.Formatter.converter = time.gmtime


# ------------------------------------------------------------ record


def main_record(args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> int:
    """`ticker record`; returns the exit code."""
    from ticker.errors import ConfigError
    from ticker.settings import parse_faults

    start_ns = time.time_ns()
    venues: SimulatedVenues | None = None
    try:
        values = resolve(args, "record", RECORD_OPTIONS, os.environ if environ is None else environ)
        if not values["out"]:
            raise UsageError("give the capture file to write: --out FILE")
        if os.path.exists(values["out"]) and not values["force"]:
            raise UsageError(f"{values['out']} exists; give --force to overwrite it")
        if values["source"]:
            parse_target(values["source"])
            header = stream_header(values["source"], values["symbols"], start_ns)
        else:
            faults = parse_faults(values["faults"])
            venues = SimulatedVenues(
                values["venues"], values["symbols"], seed=values["seed"],
                rate_per_s=values["rate"], start_ns=start_ns, faults=faults,
            )  # fmt: skip
            header = simulated_header(
                venues, created_ns=start_ns, seed=values["seed"], rate_per_s=values["rate"],
                faults=faults, normalized=values["normalized"],
            )  # fmt: skip
    except (UsageError, ConfigError, ValueError) as exc:
        print(f"ticker record: {exc}", file=sys.stderr)
        return ExitCode.BAD_USAGE
    _setup_logging(values["log_level"])
    tty = sys.stderr.isatty() and not values["no_progress"]
    display = ProgressDisplay(
        "seconds", values["duration"], tty=tty, stream=sys.stderr, rate_unit=None
    )
    began = time.monotonic()

    def progress(writer: CaptureWriter) -> None:
        detail = f"{writer.records:,} records, {writer.bytes_written:,} bytes"
        display.update(time.monotonic() - began, detail)

    code: int = ExitCode.OK
    failure = ""
    try:
        with open(values["out"], "wb") as file:
            writer = CaptureWriter(file, header, level=values["level"])
            work: Callable[[], Awaitable[object]]
            if venues is None:
                work = partial(record_stream, writer, values["source"], values["duration"],
                               symbols=values["symbols"], progress=progress)  # fmt: skip
            else:
                recorder = Recorder(writer, venues, normalized=values["normalized"])
                work = partial(record_live, recorder, values["duration"], start_ns=start_ns,
                               progress=lambda r: progress(r.writer))  # fmt: skip
            try:
                if trio.run(run_until_signalled, work) is not None:
                    code = ExitCode.INTERRUPTED
                    print(f"ticker record: interrupted; {values['out']} is complete up to here",
                          file=sys.stderr)  # fmt: skip
            except TargetError as exc:
                failure = str(exc)
                code = ExitCode.TARGET_FAILED
            finally:
                writer.close()
                display.close()
        if code == ExitCode.TARGET_FAILED:
            if writer.records:
                print(f"ticker record: {failure}; {values['out']} holds what came before",
                      file=sys.stderr)  # fmt: skip
            else:
                # Nothing came: an empty capture would only be mistaken for a recording.
                os.unlink(values["out"])
                print(f"ticker record: {failure}; nothing recorded, {values['out']} not kept",
                      file=sys.stderr)  # fmt: skip
                return code
    except OSError as exc:
        print(f"ticker record: cannot write {values['out']}: {exc}", file=sys.stderr)
        return ExitCode.BAD_USAGE
    per_million = writer.bytes_written / max(writer.records, 1) * 1e6
    print(
        f"recorded {writer.records:,} records in {writer.blocks} blocks, "
        f"{writer.bytes_written:,} bytes ({per_million / 1e6:.1f} MB per million records) "
        f"from {header.source} to {values['out']}",
        file=sys.stderr,
    )
    return code


# ------------------------------------------------------------ replay


def _open_readers(paths: Sequence[str], files: contextlib.ExitStack) -> list[CaptureReader]:
    """Open every capture; `files` closes them.

    Raises:
        CaptureError: one is not a capture, or its header is damaged.
        OSError: one cannot be opened.
    """
    return [CaptureReader(files.enter_context(open(path, "rb")), path) for path in paths]


def _estimate_records(
    readers: Sequence[CaptureReader], start_ns: int | None, end_ns: int | None
) -> int | None:
    """Records in the window by the block index (partial blocks count whole)."""
    total = 0
    try:
        for reader in readers:
            for block in reader.blocks():
                if (start_ns is None or block.last_ns >= start_ns) and (
                    end_ns is None or block.first_ns <= end_ns
                ):
                    total += block.records
    except CaptureError:
        return None  # the replay reports the damage when it reaches it
    return total


def replay_options(values: Mapping[str, Any]) -> ReplayOptions:
    """The `ReplayOptions` the resolved flags describe.

    Raises:
        UsageError: inconsistent flags.
    """
    start, end = values["from"], values["to"]
    if start is not None and end is not None and end < start:
        raise UsageError("--to is before --from")
    if values["topspeed"] and values["speed"] != SPEED_OPTION.default:
        raise UsageError("--speed and --topspeed say different things: give one of them")
    try:
        faults = ReplayFaults(
            values["drop"], values["duplicate"], values["reorder"], values["corrupt"]
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    topspeed = values["topspeed"] or values["validate"]
    return ReplayOptions(
        speed=None if topspeed else values["speed"],
        start_ns=start,
        end_ns=end,
        venues=frozenset(values["venues"]) if values["venues"] else None,
        symbols=frozenset(values["symbols"]) if values["symbols"] else None,
        rebase=values["rebase_time"],
        max_sleep_s=values["max_sleep"],
        faults=faults,
        seed=values["seed"],
        warmup=not values["no_warmup"],
    )


def _check_venues_known(readers: Sequence[CaptureReader]) -> None:
    """A raw capture is replayed through venue adapters: this build must have them.

    Raises:
        CaptureError: a raw capture names a venue with no adapter here.
    """
    for reader in readers:
        unknown = sorted(set(reader.header.venues) - set(VENUES))
        if reader.header.kind == "raw" and unknown:
            raise CaptureError(
                reader.path, 0, f"raw records of venue {', '.join(unknown)} need an adapter "
                f"this build does not have (it has {', '.join(VENUES)})",
            )  # fmt: skip


def _check_against_headers(values: Mapping[str, Any], readers: Sequence[CaptureReader]) -> None:
    venues = {v for r in readers for v in r.header.venues}
    symbols = {s for r in readers for s in r.header.symbols}
    if values["venues"] and not set(values["venues"]) <= venues:
        unknown = ", ".join(sorted(set(values["venues"]) - venues))
        raise UsageError(f"no capture holds venue {unknown}; they hold {', '.join(sorted(venues))}")
    if values["symbols"] and symbols and not set(values["symbols"]) <= symbols:
        unknown = ", ".join(sorted(set(values["symbols"]) - symbols))
        raise UsageError(f"no capture holds symbol {unknown}")


def _check_window(options: ReplayOptions, readers: Sequence[CaptureReader]) -> None:
    """--from/--to must overlap the captures, or the replay would do nothing, silently.

    Raises:
        UsageError: the window lies wholly after or before every record.
    """
    if options.start_ns is None and options.end_ns is None:
        return
    try:
        blocks = [block for reader in readers for block in reader.blocks()]
    except CaptureError:
        return  # the replay reports the damage when it reaches it
    if not blocks:
        return
    first = min(block.first_ns for block in blocks)
    last = max(block.last_ns for block in blocks)
    if options.start_ns is not None and options.start_ns > last:
        raise UsageError(
            f"--from {iso_utc(options.start_ns)} is after the last record "
            f"({iso_utc(last)}): nothing to replay"
        )
    if options.end_ns is not None and options.end_ns < first:
        raise UsageError(
            f"--to {iso_utc(options.end_ns)} is before the first record "
            f"({iso_utc(first)}): nothing to replay"
        )


def main_replay(args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> int:
    """`ticker replay`; returns the exit code."""
    environ = os.environ if environ is None else environ
    try:
        values = resolve(args, "replay", REPLAY_OPTIONS, environ)
        modes = [m for m in ("serve", "target", "validate") if values[m]]
        if len(modes) != 1:
            raise UsageError("choose exactly one of --serve, --target URL, --validate")
        if values["target"]:
            parse_target(values["target"])
            if not values["token"]:
                raise UsageError("--target needs a publish token: TICKER_REPLAY_TOKEN or --token")
            check_token(values["token"])
        options = replay_options(values)
    except (UsageError, ValueError) as exc:
        print(f"ticker replay: {exc}", file=sys.stderr)
        return ExitCode.BAD_USAGE
    _setup_logging(values["log_level"])
    with contextlib.ExitStack() as files:
        try:
            readers = _open_readers(args.files, files)
            _check_venues_known(readers)
        except CaptureError as exc:
            print(f"ticker replay: {exc}", file=sys.stderr)
            return ExitCode.BAD_CAPTURE
        except OSError as exc:
            print(f"ticker replay: cannot open {exc.filename}: {exc.strerror}", file=sys.stderr)
            return ExitCode.BAD_CAPTURE
        try:
            _check_against_headers(values, readers)
            _check_window(options, readers)
        except UsageError as exc:
            print(f"ticker replay: {exc}", file=sys.stderr)
            return ExitCode.BAD_USAGE
        return _run_replay(readers, options, values, environ)


def _run_replay(
    readers: Sequence[CaptureReader],
    options: ReplayOptions,
    values: Mapping[str, Any],
    environ: Mapping[str, str],
) -> int:
    total = _estimate_records(readers, options.start_ns, options.end_ns)
    tty = sys.stderr.isatty() and not values["no_progress"]
    display = ProgressDisplay(
        "records", None if total is None else total * values["loop"], tty=tty, stream=sys.stderr
    )
    try:
        outcome = _unwrap_single(
            trio.run, _replay, readers, options, values, ReplayProgress(display), environ
        )
    except KeyboardInterrupt:
        print("ticker replay: interrupted", file=sys.stderr)
        return ExitCode.INTERRUPTED
    except Terminated as exc:
        print(f"ticker replay: {exc}", file=sys.stderr)
        return ExitCode.INTERRUPTED
    except TargetError as exc:
        print(f"ticker replay: {exc}", file=sys.stderr)
        return ExitCode.TARGET_FAILED
    finally:
        display.close()
    result, target, publish = outcome
    report = replay_report(result, target=target, files=len(readers), publish=publish)
    print_replay_report(report, sys.stderr)
    if values["json"]:
        print(json.dumps(report), file=sys.stdout)
    return _exit_code(result, publish, validate=values["validate"], stream=sys.stderr)


def _unwrap_single(function: Callable[..., Any], *args: Any) -> Any:
    """`function(*args)`, re-raising an exception group of one exception as that exception.

    The embedded server's nursery wraps what ends it (Ctrl-C arrives as KeyboardInterrupt
    in whichever task was running): the caller handles the exception itself.
    """
    try:
        return function(*args)
    except BaseExceptionGroup as group:
        leaf: BaseException = group
        while isinstance(leaf, BaseExceptionGroup) and len(leaf.exceptions) == 1:
            leaf = leaf.exceptions[0]
        if isinstance(leaf, BaseExceptionGroup):
            raise
        raise leaf from None


def _exit_code(
    result: PlayResult, publish: PublishCounts | None, *, validate: bool, stream: IO[str]
) -> int:
    if isinstance(result.error, CaptureError):
        print(f"ticker replay: {result.error} (everything before it was replayed)", file=stream)
        return ExitCode.BAD_CAPTURE
    if isinstance(result.error, TargetError):
        print(f"ticker replay: {result.error}", file=stream)
        return ExitCode.TARGET_FAILED
    if publish is not None and publish.batches_refused:
        print(f"ticker replay: the target refused {publish.batches_refused} batches", file=stream)
        return ExitCode.TARGET_FAILED
    if validate and result.counts.problems:
        print(f"ticker replay: validation found {result.counts.problems} problems", file=stream)
        return ExitCode.PROBLEMS_FOUND
    return ExitCode.OK


def _records_opener(
    readers: Sequence[CaptureReader],
) -> Callable[[int | None, int | None], list[Iterator[Record]]]:
    def open_records(start: int | None, end: int | None) -> list[Iterator[Record]]:
        return [reader.records(start, end) for reader in readers]

    return open_records


async def _replay(
    readers: Sequence[CaptureReader],
    options: ReplayOptions,
    values: Mapping[str, Any],
    progress: ReplayProgress,
    environ: Mapping[str, str],
) -> tuple[PlayResult, str, PublishCounts | None]:
    opener = _records_opener(readers)
    run = partial(
        play, opener, options, loops=values["loop"], batch_events=values["batch_events"],
        progress=progress,
    )  # fmt: skip
    if values["validate"]:
        return await run(NullTarget()), NullTarget.description, None
    if values["target"]:
        async with open_publisher(values["target"], values["token"]) as publisher:
            target = RemoteTarget(publisher)
            result = await run(target)
            return result, target.description, publisher.counts
    return await _replay_embedded(run, values, environ)


async def _replay_embedded(
    run: Callable[..., Any], values: Mapping[str, Any], environ: Mapping[str, str]
) -> tuple[PlayResult, str, None]:
    from ticker.errors import ConfigError
    from ticker.server.process import serve
    from ticker.settings import load_config

    try:
        config = load_config({"host": values["host"], "port": values["port"]}, environ)
    except ConfigError as exc:
        raise TargetError(f"embedded server settings: {exc}") from None
    result: PlayResult | None = None
    try:
        async with trio.open_nursery() as nursery:
            handle = await nursery.start(partial(serve, config, run_venues=False))
            where = f"{config.host}:{handle.port}"
            # SIGTERM drains the server as `ticker serve` does (clients are sent away to
            # resume elsewhere), whether the replay is running or lingering. SIGINT is
            # taken here too rather than as trio's KeyboardInterrupt, which is raised in
            # whatever code runs when the signal comes: inside a finalizer (the garbage
            # of a fast replay being freed) Python drops it, which is the likely cause
            # of a lingering server that did not stop on Ctrl-C in two CI runs.
            terminated = interrupted = False
            with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                log.info("embedded server: ws://%s/v1/ws and http://%s/v1/sse", where, where)
                async with trio.open_nursery() as work:

                    async def replay_and_linger() -> None:
                        nonlocal result
                        result = await run(EmbeddedTarget(handle.events))
                        linger = values["linger"]
                        if result.error is None and linger > 0:
                            forever = math.isinf(linger)
                            how = "until interrupted" if forever else f"for {linger:g} s more"
                            log.info("replay done; serving %s", how)
                            await trio.sleep(linger)
                        work.cancel_scope.cancel()

                    work.start_soon(replay_and_linger)
                    async for signum in signals:
                        if signum == signal.SIGINT:
                            interrupted = True
                        else:
                            log.info("SIGTERM: draining (deadline %.1f s)", config.drain_timeout_s)
                            terminated = True
                        work.cancel_scope.cancel()
                        break
            if terminated:
                await handle.drain()
            else:
                handle.stop()
            if interrupted:
                raise KeyboardInterrupt  # what Ctrl-C always meant here (exit 130)
    except* OSError as group:
        # The server's own nursery wraps its listener's failure (port in use, ...).
        first = group.exceptions[0]
        while isinstance(first, BaseExceptionGroup):
            first = first.exceptions[0]
        raise TargetError(f"the embedded server cannot listen: {first}") from None
    if result is None:
        raise Terminated("SIGTERM before the replay was done; the server drained")
    return result, f"the embedded server at {where}", None


class Terminated(Exception):
    """SIGTERM stopped `replay --serve` before the replay was done (after a drain)."""

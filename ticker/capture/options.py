"""The flags of `ticker record` and `ticker replay`, their environment variables, defaults.

Each option is declared once (`Option`): its flag, the variable that stands in for it
(`--max-sleep` / `TICKER_REPLAY_MAX_SLEEP`), its parser and its default. A flag wins
over its variable, a variable over the default, and a bad value names where it came
from. Parsing only; what the values mean is the commands' business.
"""

from __future__ import annotations

import argparse
import datetime
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ticker.capture.player import BATCH_EVENTS
from ticker.config import VENUES
from ticker.settings import parse_log_level
from ticker.wire.publish import MAX_BATCH_EVENTS


class UsageError(Exception):
    """A bad flag or environment variable value (exit code 2)."""


# ------------------------------------------------------------ value parsers


def parse_duration(text: str) -> float:
    """`60s`, `1.5m`, `2h`, `500ms` or plain seconds, as seconds (> 0)."""
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*(ms|s|m|h)?\s*", text)
    if match is None:
        raise ValueError(f"not a duration (like 60s, 5m, 500ms): {text!r}")
    scale = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}[match.group(2) or "s"]
    seconds = float(match.group(1)) * scale
    if not seconds > 0:
        raise ValueError(f"a duration must be positive: {text!r}")
    return seconds


def parse_time_ns(text: str) -> int:
    """ISO-8601 (`2024-01-01T00:00:05.250Z`); no offset means UTC. Returns ns since epoch."""
    try:
        moment = datetime.datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"not an ISO-8601 time (like 2024-01-01T00:00:05Z): {text!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    delta = moment - datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
    return (delta.days * 86_400 + delta.seconds) * 10**9 + delta.microseconds * 1000


def parse_csv(text: str) -> tuple[str, ...]:
    items = tuple(part.strip() for part in text.split(",") if part.strip())
    if not items:
        raise ValueError("give a comma-separated list")
    return items


def _number(kind: Callable[[str], float], low: float, high: float, what: str) -> Any:
    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise ValueError(f"not a number: {text!r}") from None
        if not low <= value <= high:
            raise ValueError(f"{what}, got {text}")
        return value

    return parse


def parse_bool(text: str) -> bool:
    word = text.strip().lower()
    if word in ("1", "true", "yes", "on"):
        return True
    if word in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"not a boolean (1/0, true/false, yes/no): {text!r}")


positive = _number(float, 1e-9, math.inf, "must be > 0")
rate = _number(float, 0.0, 1.0, "a rate must be in [0, 1]")
non_negative = _number(float, 0.0, math.inf, "must be >= 0")
count = _number(int, 1, 1_000_000, "must be in 1..1000000")
seed = _number(int, 0, 2**63 - 1, "must be a non-negative integer")
level = _number(int, 1, 19, "zstd level must be in 1..19")
batch = _number(int, 1, MAX_BATCH_EVENTS, f"must be in 1..{MAX_BATCH_EVENTS}")


# ------------------------------------------------------------ options


@dataclass(frozen=True, slots=True)
class Option:
    """One flag, its environment variable, its parser and its default."""

    flag: str
    parse: Callable[[str], Any] | None
    """None: a switch (given = on; the variable takes 1/0, true/false...)."""
    default: Any
    help: str
    metavar: str | None = None

    @property
    def dest(self) -> str:
        return self.flag.lstrip("-").replace("-", "_")


def env_name(command: str, option: Option) -> str:
    """`--max-sleep` of `replay` -> TICKER_REPLAY_MAX_SLEEP."""
    return f"TICKER_{command.upper()}_{option.dest.upper()}"


RECORD_OPTIONS = (
    Option("--venues", parse_csv, VENUES, "simulated venues to record", "V,..."),
    Option("--symbols", parse_csv, None, "symbols (default: all each venue lists)", "S,..."),
    Option("--duration", parse_duration, 60.0, "how long: 60s, 5m, 1h (default: 60s)", "TIME"),
    Option("--out", str, None, "the capture file to write (required)", "FILE"),
    Option("--rate", positive, 20.0, "messages per second per venue", "N"),
    Option("--seed", seed, 1, "seed of the simulated market (and of its faults)", "N"),
    Option("--faults", str, "", "venue faults as in `ticker serve --faults`, e.g. drop=0.01", "F"),
    Option("--normalized", None, False, "record normalized events instead of raw messages"),
    Option("--source", str, None, "record a running server's stream instead (normalized; "
           "--venues, --rate, --seed, --faults do not apply): ws://HOST:PORT", "URL"),
    Option("--level", level, 3, "zstd compression level", "N"),
    Option("--force", None, False, "overwrite FILE if it exists"),
    Option("--no-progress", None, False, "log lines instead of a progress bar"),
    Option("--log-level", parse_log_level, "INFO", "logging level (DEBUG ... CRITICAL)", "LEVEL"),
)  # fmt: skip

SPEED_OPTION = Option(
    "--speed",
    positive,
    1.0,
    "replay speed: 1 = as recorded, 10 = ten times faster (not with --topspeed)",
    "X",
)

REPLAY_OPTIONS = (
    Option("--serve", None, False, "start an embedded server fed only by the capture(s); "
           "its settings come from TICKER_* as for `ticker serve`"),
    Option("--target", str, None, "publish into a running server: ws://HOST:PORT", "URL"),
    Option("--validate", None, False, "run the normalizers only, publish nothing, report "
           "gaps, duplicates, malformed records and resyncs (exit 1 if any)"),
    Option("--token", str, "", "the target's publish token (prefer the variable: flags "
           "show in `ps`)", "TOKEN"),
    Option("--host", str, None, "embedded server address (default: TICKER_HOST or 127.0.0.1)", "H"),
    Option("--port", _number(int, 0, 65535, "must be a port"), None,
           "embedded server port (default: TICKER_PORT or 8080)", "N"),
    SPEED_OPTION,
    Option("--topspeed", None, False, "as fast as the target takes it (honours backpressure)"),
    Option("--from", parse_time_ns, None, "start at this receive time, ISO-8601, UTC "
           "(default: the start)", "TIME"),
    Option("--to", parse_time_ns, None, "stop after this receive time, ISO-8601, UTC "
           "(default: the end)", "TIME"),
    Option("--symbols", parse_csv, None, "publish only these symbols (default: all)", "S,..."),
    Option("--venues", parse_csv, None, "replay only these venues' records (default: all)",
           "V,..."),
    Option("--loop", count, 1, "replay the window N times (fresh normalizers each time)", "N"),
    Option("--rebase-time", None, False, "shift event timestamps so the window starts now"),
    Option("--max-sleep", non_negative, None, "cut any quiet period to at most S seconds "
           "(default: no limit)", "S"),
    Option("--no-warmup", None, False, "with --from: seek straight to it (books start empty) "
           "instead of rebuilding state from the start of the capture"),
    Option("--drop", rate, 0.0, "fault: rate of records dropped", "R"),
    Option("--duplicate", rate, 0.0, "fault: rate of records repeated", "R"),
    Option("--reorder", rate, 0.0, "fault: rate of records swapped with the next", "R"),
    Option("--corrupt", rate, 0.0, "fault: rate of records with flipped bytes", "R"),
    Option("--seed", seed, 1, "seed of the fault injection", "N"),
    Option("--batch-events", batch, BATCH_EVENTS, "events per publish batch, at most", "N"),
    Option("--linger", non_negative, math.inf, "with --serve: keep serving S seconds after "
           "the replay (default: until interrupted)", "S"),
    Option("--json", None, False, "print the final statistics as JSON on stdout"),
    Option("--no-progress", None, False, "log lines instead of a progress bar"),
    Option("--log-level", parse_log_level, "INFO", "logging level (DEBUG ... CRITICAL)", "LEVEL"),
)  # fmt: skip


def _argparse_type(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    def convert(text: str) -> Any:
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return convert


def add_options(parser: argparse.ArgumentParser, command: str, options: Sequence[Option]) -> None:
    for option in options:
        env = env_name(command, option)
        if option.parse is None:
            parser.add_argument(
                option.flag, action="store_const", const=True, default=None,
                help=f"{option.help} [{env}]",
            )  # fmt: skip
        else:
            text = option.help
            default = option.default
            if default not in (None, "") and "default:" not in text:
                shown = ",".join(default) if isinstance(default, tuple) else default
                text += f" (default: {shown})"
            parser.add_argument(
                option.flag, type=_argparse_type(option.parse), default=None,
                metavar=option.metavar, help=f"{text} [{env}]",
            )  # fmt: skip


def resolve(
    args: argparse.Namespace, command: str, options: Sequence[Option], environ: Mapping[str, str]
) -> dict[str, Any]:
    """Each option's value: the flag, else its environment variable, else its default.

    Raises:
        UsageError: a variable's value does not parse (the message names it).
    """
    values: dict[str, Any] = {}
    for option in options:
        given = getattr(args, option.dest)
        env = env_name(command, option)
        if given is not None:
            values[option.dest] = given
        elif env in environ:
            parse = option.parse or parse_bool
            try:
                values[option.dest] = parse(environ[env])
            except ValueError as exc:
                raise UsageError(f"{env}: {exc}") from None
        else:
            values[option.dest] = option.default
    return values


EPILOG = """exit codes: 0 success, 1 --validate found problems, 2 bad flags or variables,
3 a capture file is missing, not a capture, corrupt or truncated, 4 the target failed
(unreachable, refused the token, refused events, went away), 130 interrupted.
Every flag also reads the environment variable in [brackets]; the flag wins."""

"""Where settings come from: flags, then `TICKER_*` environment variables, then a TOML file.

Each `ticker.config.Config` field can be given in three places; the first that gives
it wins: a command-line flag (`--outbox-max-bytes`), an environment variable
(`TICKER_OUTBOX_MAX_BYTES`), a key in the TOML file named by `--config` or
`TICKER_CONFIG` (`outbox_max_bytes = 524288`, dashes allowed too). What none gives
keeps its embedded default. Values are checked against the field's type here, and
against its limits by `Config` itself, so a bad setting fails at start-up with the
place it came from in the message. This module reads sources; it holds no defaults.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from feeds.faults import FaultPlan
from ticker.config import Config
from ticker.errors import ConfigError

ENV_PREFIX = "TICKER_"
CONFIG_FILE_ENV = "TICKER_CONFIG"
TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
FALSE_WORDS = frozenset({"0", "false", "no", "off"})


def env_name(field_name: str) -> str:
    """The environment variable of a setting: `outbox_max_bytes` -> TICKER_OUTBOX_MAX_BYTES."""
    return ENV_PREFIX + field_name.upper()


def split_csv(text: str) -> tuple[str, ...]:
    """`a, b,,c` -> ("a", "b", "c"): a list setting written as text (flag or variable)."""
    return tuple(part.strip() for part in text.split(",") if part.strip())


def load_config(
    flags: Mapping[str, Any],
    environ: Mapping[str, str] | None = None,
    config_file: str | None = None,
) -> Config:
    """The Config from `flags` (None = not given), the environment, and a TOML file.

    `config_file` defaults to the file named by TICKER_CONFIG, if set.

    Raises:
        ConfigError: an unreadable file, an unknown key, or a value of the wrong type or
            out of range, naming where it came from.
    """
    environ = os.environ if environ is None else environ
    path = config_file or environ.get(CONFIG_FILE_ENV) or None
    from_file = _read_toml(Path(path)) if path else {}
    values: dict[str, Any] = {}
    for field in dataclasses.fields(Config):
        name = field.name
        if flags.get(name) is not None:
            values[name] = flags[name]
        elif env_name(name) in environ:
            values[name] = _parse_text(field.default, environ[env_name(name)], env_name(name))
        elif name in from_file:
            values[name] = _check_toml(field.default, from_file[name], f"{path}: {name}")
    return Config(**values)


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            document = tomllib.load(handle)
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    known = {f.name for f in dataclasses.fields(Config)}
    settings: dict[str, Any] = {}
    for key, value in document.items():
        name = key.replace("-", "_")
        if name not in known:
            raise ConfigError(f"config file {path}: unknown setting {key!r}")
        settings[name] = value
    return settings


def _parse_text(default: object, text: str, source: str) -> object:
    """A setting's value from text (an environment variable), typed like its default."""
    try:
        if isinstance(default, bool):
            word = text.strip().lower()
            if word in TRUE_WORDS:
                return True
            if word in FALSE_WORDS:
                return False
            raise ValueError(f"expected one of {sorted(TRUE_WORDS | FALSE_WORDS)}")
        if isinstance(default, tuple):
            return split_csv(text)
        if isinstance(default, int):
            return int(text)
        if isinstance(default, float):
            return float(text)
        return text
    except ValueError as exc:
        raise ConfigError(f"{source}={text!r}: {exc}") from None


def _check_toml(default: object, value: object, source: str) -> object:
    """A TOML value checked against the type of the setting's default."""
    if isinstance(default, tuple):
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return tuple(value)
        if isinstance(value, str):
            return _parse_text(default, value, source)
    elif isinstance(default, bool):
        if isinstance(value, bool):
            return value
    elif isinstance(default, int):
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif isinstance(default, float):
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    elif isinstance(value, str):
        return value
    raise ConfigError(f"{source}: expected {type(default).__name__}, got {value!r}")


def parse_faults(text: str) -> FaultPlan:
    """`drop=0.01,duplicate=0.005,...` into a FaultPlan.

    Raises:
        ConfigError: an unknown fault name or a bad rate.
    """
    names = {f.name for f in dataclasses.fields(FaultPlan)}
    rates: dict[str, Any] = {}
    for part in split_csv(text):
        name, _, value = part.partition("=")
        if name not in names:
            raise ConfigError(f"unknown fault {name!r}; known: {', '.join(sorted(names))}")
        try:
            rates[name] = int(value) if name == "stall_max_ns" else float(value)
        except ValueError:
            raise ConfigError(f"fault {name} needs a number, got {value!r}") from None
    try:
        return FaultPlan(**rates)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def parse_log_level(text: str) -> str:
    """A logging level name, any case ("info" -> "INFO").

    Raises:
        ValueError: not one of LOG_LEVELS (argparse shows it as a usage error).
    """
    level = text.strip().upper()
    if level not in LOG_LEVELS:
        raise ValueError(f"unknown log level {text!r}; use one of {', '.join(LOG_LEVELS)}")
    return level


def log_level_argument(text: str) -> str:
    """`parse_log_level` as an argparse type: a bad level is a usage error (exit 2 with
    the command's usage), not a traceback from `logging` later."""
    try:
        return parse_log_level(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None

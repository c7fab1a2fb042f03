"""The exceptions of capture and replay, and the exit code each one maps to.

    TickerError (ticker.errors)
    ├── CaptureError            a capture file cannot be read past `offset`
    │   ├── NotACapture         the file does not start like a ticker capture
    │   ├── CorruptCapture      bytes at `offset` fail a check (checksum, framing, record)
    │   └── TruncatedCapture    the file ends at `offset` in the middle of something
    └── TargetError             the replay target failed (unreachable, refused, closed)

Every record before the offset a CaptureError names has already been handed out by the
reader. The CLI maps these to distinct exit codes (`ExitCode`).
"""

from __future__ import annotations

import enum

from ticker.errors import TickerError


class ExitCode(enum.IntEnum):
    """What `ticker record` and `ticker replay` exit with."""

    OK = 0
    PROBLEMS_FOUND = 1
    """`--validate` found gaps, duplicates, malformed records or resyncs."""
    BAD_USAGE = 2
    """A bad flag or environment variable (argparse also exits 2)."""
    BAD_CAPTURE = 3
    """A capture file is missing, not a capture, corrupt or truncated."""
    TARGET_FAILED = 4
    """The target was unreachable, refused the token, rejected events or went away."""
    INTERRUPTED = 130


class CaptureError(TickerError):
    """A capture file cannot be read past byte `offset`."""

    def __init__(self, path: str, offset: int, reason: str) -> None:
        super().__init__(f"{path}: byte {offset}: {reason}")
        self.path = path
        self.offset = offset
        self.reason = reason


class NotACapture(CaptureError):
    """The file does not start with a ticker capture header."""


class CorruptCapture(CaptureError):
    """Bytes at `offset` fail a check: a checksum, a frame header, a record's framing."""


class TruncatedCapture(CaptureError):
    """The file ends at `offset` inside a block, or without the end-of-capture marker."""


class TargetError(TickerError):
    """The replay target failed: unreachable, refused the token, rejected or closed."""

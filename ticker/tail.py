"""`ticker tail URL [URL ...] --topics ...`: follow topics live from a terminal or a pipe.

On a TTY it draws a table of symbols that updates in place (rich); piped, it writes one
JSON line per update (prices as exact decimal strings) for jq and friends. It reads
through the client SDK (`ticker.client.open_feed`) over WebSocket or, with `--sse`,
SSE, so it resumes, moves between several URLs and reports resets like any client. It
renders; it decides nothing.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal, Protocol, TextIO

import trio
from rich import box
from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from ticker.client import Endpoint, Feed, FeedConfigError, FeedError, Update, UpdateKind, open_feed
from ticker.client.credentials import TokenRefresh
from ticker.client.endpoint import parse_endpoints
from ticker.core.codec import BOOK_SIDES, NANOS_FIELDS
from ticker.model.fixed import format_nanos

DEFAULT_TOPICS: Final = "quote.*,ticker.*,trade.*"
REFRESH_S: Final = 0.25
"""The table is redrawn at most this often (and at least this often while idle, so the
connection status stays true)."""
RESET_MARK_S: Final = 5.0
"""A row rebuilt after a loss is marked for this long."""


def add_parser(commands: Any) -> argparse.ArgumentParser:
    """Add the `tail` command to the `ticker` command's subparsers."""
    tail: argparse.ArgumentParser = commands.add_parser(
        "tail",
        help="follow topics live: a table on a terminal, JSON lines when piped",
        description="Follow topics of a ticker server. On a terminal: a table of symbols "
        "updating in place. Piped: one JSON line per update. Reconnects and resumes by "
        'itself; a loss is shown (table) or written as kind "reset" (JSON). With several '
        "URLs (the edges of a cluster), each reconnect moves to the next one.",
    )
    tail.add_argument(
        "url",
        nargs="+",
        help="server URL: ws://HOST:PORT, wss://..., or http(s):// for SSE; several: the "
        "feed starts with the first and moves to the next on each reconnect",
    )
    tail.add_argument(
        "--topics", default=DEFAULT_TOPICS, help=f"topic patterns (default: {DEFAULT_TOPICS})"
    )
    tail.add_argument(
        "--sse", action="store_true", help="read the SSE endpoint instead of WS (every URL)"
    )
    tail.add_argument("--zstd", action="store_true", help="ask for zstd frames (WebSocket)")
    tail.add_argument("--ca-file", default=None, help="PEM file of CAs to trust for wss/https")
    tail.add_argument(
        "--format",
        choices=("auto", "table", "json"),
        default="auto",
        help="table on a terminal, json when piped (default: auto)",
    )
    tail.add_argument("--count", type=int, default=None, help="exit after N updates")
    tail.add_argument("--duration", type=float, default=None, help="exit after N seconds")
    tail.add_argument("--state", action="store_true", help="JSON lines carry the whole state too")
    tail.add_argument(
        "--token-file",
        default=None,
        help="file holding the token (JWT) to present; read again before the token "
        "expires, so whatever renews the file refreshes the stream. Without it, "
        f"${TOKEN_ENV} is used if set (a token is never taken as a flag: ps shows flags)",
    )
    tail.add_argument("--log-level", default="WARNING", help="logging level (default: WARNING)")
    return tail


# -- JSON lines ---------------------------------------------------------------------------


TOKEN_ENV = "TICKER_TOKEN"


def read_token_file(path: str) -> str:
    """The token in `path` (surrounding whitespace dropped).

    Raises:
        FeedConfigError: unreadable or empty (the message names the file only).
    """
    try:
        with open(path, encoding="utf-8") as handle:
            token = handle.read(64 * 1024).strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise FeedConfigError(f"cannot read token file {path}: {exc}") from None
    if not token:
        raise FeedConfigError(f"token file {path} is empty")
    return token


def tail_credentials(
    token_file: str | None, environ: Mapping[str, str]
) -> tuple[str | None, TokenRefresh | None]:
    """The token `ticker tail` presents and how it refreshes it: from `--token-file`
    (re-read on each refresh), else from $TICKER_TOKEN (no refresh), else none.

    Raises:
        FeedConfigError: the token file cannot be read.
    """
    if token_file:
        path = token_file

        async def reread() -> str:
            return await trio.to_thread.run_sync(read_token_file, path)

        return read_token_file(path), reread
    return environ.get(TOKEN_ENV) or None, None


def decimal_data(data: dict[str, Any]) -> dict[str, Any]:
    """Message data with prices and sizes as exact decimal strings (the SSE JSON form)."""
    out: dict[str, Any] = {}
    for name, value in data.items():
        if name in BOOK_SIDES:
            out[name] = [[format_nanos(price), format_nanos(size)] for price, size in value]
        elif name in NANOS_FIELDS and value is not None:
            out[name] = format_nanos(value)
        else:
            out[name] = value
    return out


def update_json(update: Update, *, with_state: bool = False) -> str:
    """One update as a compact JSON line (without the newline)."""
    line: dict[str, Any] = {
        "kind": update.kind.value,
        "topic": update.topic,
        "seq": update.seq,
        "position": str(update.position),
        "ts": update.ts_us,
        "latency_ms": round(update.latency_s * 1000, 3),
        "data": decimal_data(update.data),
    }
    if update.loss is not None:
        after = update.loss.after
        line["loss"] = {
            "after": None if after is None else str(after),
            "until": str(update.loss.until),
            "reason": update.loss.reason,
        }
    if update.skipped:
        line["skipped"] = update.skipped
    if with_state:
        line["state"] = decimal_data(update.state)
    return json.dumps(line, separators=(",", ":"))


class Sink(Protocol):
    """Where `tail` puts what it reads."""

    def add(self, update: Update) -> None: ...
    def tick(self, feed: Feed) -> None: ...
    def finish(self, feed: Feed) -> None: ...


class JsonLines:
    """One JSON line per update, flushed at once (a pipe reader sees it live)."""

    def __init__(self, out: TextIO, *, with_state: bool = False) -> None:
        self.out = out
        self.with_state = with_state

    def add(self, update: Update) -> None:
        self.out.write(update_json(update, with_state=self.with_state) + "\n")
        self.out.flush()

    def tick(self, feed: Feed) -> None:
        pass

    def finish(self, feed: Feed) -> None:
        pass


# -- the table ------------------------------------------------------------------------------


def _price(value: Any) -> str:
    return format_nanos(value) if isinstance(value, int) else ""


@dataclass(slots=True)
class Row:
    """What the table shows for one symbol."""

    quote: dict[str, Any] = field(default_factory=dict)
    ticker: dict[str, Any] = field(default_factory=dict)
    trade: dict[str, Any] = field(default_factory=dict)
    book: dict[str, Any] = field(default_factory=dict)
    updates: int = 0
    latency_ms: float = 0.0
    reset_at: float | None = None


class Board:
    """The table's model: the latest state of each symbol's topics (pure)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.rows: dict[str, Row] = {}
        self.clock = clock

    def add(self, update: Update) -> None:
        channel, _, symbol = update.topic.partition(".")
        row = self.rows.setdefault(symbol, Row())
        if channel in ("quote", "ticker", "trade", "book"):
            setattr(row, channel, update.state)
        row.updates += 1
        row.latency_ms = update.latency_s * 1000
        if update.kind is UpdateKind.RESET:
            row.reset_at = self.clock()

    def table(self, title: str, caption: str) -> Table:
        """The rows as a rich Table, symbols in order."""
        table = Table(title=title, caption=caption, box=box.SIMPLE_HEAD, pad_edge=False)
        for name in ("symbol", "bid", "bid size", "ask", "ask size", "last", "change",
                     "volume", "book", "last trade", "upd", "ms"):  # fmt: skip
            justify: Literal["left", "right"] = "left" if name == "symbol" else "right"
            table.add_column(name, justify=justify, no_wrap=True)
        now = self.clock()
        for symbol in sorted(self.rows):
            row = self.rows[symbol]
            recent_reset = row.reset_at is not None and now - row.reset_at < RESET_MARK_S
            label = Text(symbol + (" RESET" if recent_reset else ""))
            if recent_reset:
                label.stylize("bold red")
            change = row.ticker.get("change")
            change_text = Text(_price(change))
            if isinstance(change, int) and change:
                change_text.stylize("green" if change > 0 else "red")
            bids, asks = row.book.get("bids", []), row.book.get("asks", [])
            book = f"{len(bids)}x{len(asks)}" if row.book else ""
            trade = row.trade
            side = "B" if trade.get("side") == "buy" else "S"
            last_trade = (
                f"{side} {_price(trade.get('size'))}@{_price(trade.get('price'))}" if trade else ""
            )
            table.add_row(
                label,
                _price(row.quote.get("bid")),
                _price(row.quote.get("bid_size")),
                _price(row.quote.get("ask")),
                _price(row.quote.get("ask_size")),
                _price(row.ticker.get("last")),
                change_text,
                _price(row.ticker.get("volume")),
                book,
                last_trade,
                str(row.updates),
                f"{row.latency_ms:.2f}",
            )
        return table


def feed_caption(feed: Feed) -> str:
    """One line about the connection: state (and the URL, when there are several),
    position, reconnects, losses, latency."""
    stats = feed.stats
    state = "connected" if feed.connected else "reconnecting"
    if len(feed.endpoints) > 1:
        state += f" {'to' if feed.connected else 'via'} {feed.endpoint}"
    latency = stats.latency
    return (
        f"{state} | position {feed.position} | connections {stats.connections} | "
        f"resets {stats.resets} | gaps {stats.gaps} | latency p50 <= "
        f"{latency.quantile(0.5) * 1000:g} ms, p99 <= {latency.quantile(0.99) * 1000:g} ms"
    )


class LiveTable:
    """The board drawn in place on a terminal, redrawn at most every REFRESH_S."""

    def __init__(self, console: Console, title: str) -> None:
        self.board = Board()
        self.title = title
        self.live = Live(console=console, auto_refresh=False, transient=False)
        self._drawn_at = 0.0

    def add(self, update: Update) -> None:
        self.board.add(update)

    def tick(self, feed: Feed) -> None:
        now = time.monotonic()
        if now - self._drawn_at >= REFRESH_S:
            self.draw(feed)

    def draw(self, feed: Feed) -> None:
        if not self.live.is_started:
            self.live.start()
        self._drawn_at = time.monotonic()
        self.live.update(self.board.table(self.title, feed_caption(feed)), refresh=True)

    def finish(self, feed: Feed) -> None:
        """Draw the last state and leave it on the screen."""
        self.draw(feed)
        self.live.stop()


# -- running ----------------------------------------------------------------------------


async def tail(
    url: str | Sequence[str],
    topics: str,
    sink: Sink,
    *,
    count: int | None = None,
    duration_s: float | None = None,
    compression: str | None = None,
    ca_file: str | None = None,
    token: str | None = None,
    refresh: TokenRefresh | None = None,
) -> int:
    """Follow `topics` into `sink` until `count` updates, `duration_s`, or forever.

    Args:
        url: one server URL, or several (`open_feed` moves between them).
        token, refresh: the feed's token and its refresh callback (`open_feed`).

    Returns:
        The number of updates read.

    Raises:
        FeedError: the feed cannot go on (refused topics, untrusted certificate...).
    """
    seen = 0
    deadline = math.inf if duration_s is None else trio.current_time() + duration_s
    async with open_feed(
        url, topics, compression=compression, ca_file=ca_file, token=token, refresh=refresh
    ) as feed:
        try:
            with trio.move_on_at(deadline):
                while count is None or seen < count:
                    update: Update | None = None
                    # Wake up at least every REFRESH_S so the status line stays true.
                    with trio.move_on_after(REFRESH_S):
                        update = await anext(feed)
                    if update is not None:
                        sink.add(update)
                        seen += 1
                    sink.tick(feed)
        finally:
            sink.finish(feed)
    return seen


def run_tail_command(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Run `ticker tail` with parsed arguments; returns the exit code."""
    out = out if out is not None else sys.stdout
    try:
        urls = tail_urls(args.url, sse=args.sse)
    except FeedConfigError as exc:
        print(f"ticker tail: {exc}", file=sys.stderr)
        return 2
    as_table = args.format == "table" or (args.format == "auto" and out.isatty())
    sink: Sink
    if as_table:
        sink = LiveTable(Console(file=out), f"ticker tail {' '.join(urls)}")
    else:
        sink = JsonLines(out, with_state=args.state)
    compression = "zstd" if args.zstd else None
    try:
        trio.run(_run, urls, args, sink, compression)
    except FeedConfigError as exc:
        print(f"ticker tail: {exc}", file=sys.stderr)
        return 2
    except FeedError as exc:
        print(f"ticker tail: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`| head`): stop quietly, and keep Python's own final
        # flush from failing on the closed pipe.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, out.fileno())
        return 0
    return 0


def tail_urls(urls: Sequence[str], *, sse: bool = False) -> list[str]:
    """The URLs to follow, checked (one transport, one TLS mode); with `sse`, each
    one's SSE endpoint.

    Raises:
        FeedConfigError: a bad URL, or URLs that `open_feed` would refuse together.
    """
    if sse:
        urls = [str(Endpoint.parse(url).as_sse()) for url in urls]
    parse_endpoints(urls)
    return list(urls)


async def _run(
    urls: list[str], args: argparse.Namespace, sink: Sink, compression: str | None
) -> None:
    token, refresh = tail_credentials(getattr(args, "token_file", None), os.environ)
    await tail(
        urls,
        args.topics,
        sink,
        count=args.count,
        duration_s=args.duration,
        compression=compression,
        ca_file=args.ca_file,
        token=token,
        refresh=refresh,
    )

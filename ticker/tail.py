"""`ticker tail URL [URL ...] --topics ...`: follow topics live from a terminal or a pipe.

On a TTY it draws a table of symbols that updates in place (rich); piped, it writes one
JSON line per update (prices as exact decimal strings) for jq and friends. It reads
through the client SDK (`ticker.client.open_feed`) over WebSocket or, with `--sse`,
SSE, so it resumes, moves between several URLs and reports resets like any client. It
renders; it decides nothing.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import signal
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
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
from ticker.interrupt import run_until_signalled
from ticker.model.fixed import format_nanos
from ticker.settings import log_level_argument

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
    tail.add_argument(
        "--log-level",
        type=log_level_argument,
        default="WARNING",
        help="logging level: DEBUG, INFO, WARNING, ERROR or CRITICAL (default: WARNING)",
    )
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

PRICE_FIELDS: Final = ("bid", "ask", "last", "open", "high", "low", "change", "price")
SIZE_FIELDS: Final = ("bid_size", "ask_size", "volume", "size")
COLUMNS: Final = (
    "symbol", "bid", "bid size", "ask", "ask size", "last", "change", "volume", "book",
    "last trade", "upd", "ms",
)  # fmt: skip
DROP_ORDER: Final = (
    ("ms",), ("upd",), ("book",), ("last trade",), ("volume",), ("bid size", "ask size"),
    ("change",), ("last",),
)  # fmt: skip
"""Columns a narrow terminal loses, first to last: never symbol, bid or ask, and never
a price cut short."""
NUMERIC: Final = frozenset(("bid", "bid size", "ask", "ask size", "last", "change", "volume"))


def _decimals(value: int) -> int:
    """How many decimals `value` (nanos) needs to be exact."""
    text = format_nanos(value)
    return len(text) - text.index(".") - 1 if "." in text else 0


def _fixed(value: Any, decimals: int) -> str:
    """`value` (nanos) with exactly `decimals` decimals (at least as many as it needs)."""
    if not isinstance(value, int):
        return ""
    text = format_nanos(value)
    have = _decimals(value)
    if have >= decimals:
        return text
    return text + ("." if have == 0 else "") + "0" * (decimals - have)


def _align(header: str, cells: list[str]) -> tuple[str, list[str]]:
    """A column of numbers padded to one width so that their decimal points line up.

    rich drops trailing spaces from a right-justified cell, so the column is laid
    out here (spaces on both sides, every cell and the header as wide) and shown
    left-justified.
    """
    decimals = [len(c) - c.index(".") - 1 if "." in c else 0 for c in cells]
    most = max(decimals, default=0)
    padded = []
    for cell, have in zip(cells, decimals, strict=True):
        if cell and have < most:
            cell += " " * (most - have + (1 if have == 0 else 0))
        padded.append(cell)
    width = max([len(header), *map(len, padded)])
    return header.rjust(width), [cell.rjust(width) if cell else "" for cell in padded]


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
    price_decimals: int = 0
    """The most decimals any of this symbol's prices needed so far: every price of the
    row is shown with as many (its tick, as far as the feed has revealed it)."""
    size_decimals: int = 0


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
        for name, value in update.state.items():
            if isinstance(value, int) and name in PRICE_FIELDS:
                row.price_decimals = max(row.price_decimals, _decimals(value))
            elif isinstance(value, int) and name in SIZE_FIELDS:
                row.size_decimals = max(row.size_decimals, _decimals(value))
        row.updates += 1
        row.latency_ms = update.latency_s * 1000
        if update.kind is UpdateKind.RESET:
            row.reset_at = self.clock()

    def _cells(self, row: Row) -> dict[str, str]:
        p, z = row.price_decimals, row.size_decimals
        bids, asks = row.book.get("bids", []), row.book.get("asks", [])
        trade = row.trade
        side = "B" if trade.get("side") == "buy" else "S"
        last_trade = (
            f"{side} {_fixed(trade.get('size'), z)}@{_fixed(trade.get('price'), p)}"
            if trade
            else ""
        )
        return {
            "bid": _fixed(row.quote.get("bid"), p),
            "bid size": _fixed(row.quote.get("bid_size"), z),
            "ask": _fixed(row.quote.get("ask"), p),
            "ask size": _fixed(row.quote.get("ask_size"), z),
            "last": _fixed(row.ticker.get("last"), p),
            "change": _fixed(row.ticker.get("change"), p),
            "volume": _fixed(row.ticker.get("volume"), z),
            "book": f"{len(bids)}x{len(asks)}" if row.book else "",
            "last trade": last_trade,
            "upd": str(row.updates),
            "ms": f"{row.latency_ms:.2f}",
        }

    def table(self, title: str, caption: str, width: int | None = None) -> Table:
        """The rows as a rich Table, symbols in order.

        Numbers are aligned on their decimal point. With `width` (the terminal's), the
        least useful columns are left out until the table fits, so no cell is cut. The
        book column appears only when some symbol has a book.
        """
        now = self.clock()
        symbols = sorted(self.rows)
        rows = [self.rows[symbol] for symbol in symbols]
        cells = [self._cells(row) for row in rows]
        has_book = any(row.book for row in rows)
        columns = [name for name in COLUMNS if name != "book" or has_book]
        headers = {name: name for name in columns}
        for name in NUMERIC:
            headers[name], aligned = _align(name, [c[name] for c in cells])
            for row_cells, value in zip(cells, aligned, strict=True):
                row_cells[name] = value
        labels = []
        for symbol, row in zip(symbols, rows, strict=True):
            recent_reset = row.reset_at is not None and now - row.reset_at < RESET_MARK_S
            label = Text(symbol + (" RESET" if recent_reset else ""))
            if recent_reset:
                label.stylize("bold red")
            labels.append(label)

        def build(shown: list[str]) -> Table:
            table = Table(title=title, caption=caption, box=box.SIMPLE_HEAD, pad_edge=False)
            for name in shown:
                left = name == "symbol" or name in NUMERIC  # numbers come laid out
                justify: Literal["left", "right"] = "left" if left else "right"
                table.add_column(headers[name], justify=justify, no_wrap=True)
            for label, row, row_cells in zip(labels, rows, cells, strict=True):
                values: list[str | Text] = []
                for name in shown:
                    if name == "symbol":
                        values.append(label)
                    elif name == "change":
                        change = row.ticker.get("change")
                        text = Text(row_cells[name])
                        if isinstance(change, int) and change:
                            text.stylize("green" if change > 0 else "red")
                        values.append(text)
                    else:
                        values.append(row_cells[name])
                table.add_row(*values)
            return table

        table = build(columns)
        if width is None:
            return table
        for dropped in DROP_ORDER:
            if _natural_width(table) <= width:
                break
            columns = [name for name in columns if name not in dropped]
            table = build(columns)
        return table


def _natural_width(table: Table) -> int:
    """The width `table` needs to show every cell whole."""
    return Console(width=10_000, file=io.StringIO()).measure(table).maximum


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
        table = self.board.table(self.title, feed_caption(feed), self.live.console.width)
        self.live.update(table, refresh=True)

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
    """Run `ticker tail` with parsed arguments.

    SIGINT and SIGTERM are taken through trio's signal receiver (`run_until_signalled`),
    whatever the feed is doing (reading, connecting, waiting between attempts): the
    feed is cancelled at a checkpoint, the table drawn one last time.

    Returns:
        The exit code: 0 done, 1 the feed stopped, 2 bad arguments, 130 SIGINT, 143
        SIGTERM.
    """
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
        stopped_by = trio.run(run_until_signalled, partial(_run, urls, args, sink, compression))
    except FeedConfigError as exc:
        print(f"ticker tail: {exc}", file=sys.stderr)
        return 2
    except FeedError as exc:
        print(f"ticker tail: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # Ctrl-C before the signal receiver was in place
        stopped_by = signal.SIGINT
    except BrokenPipeError:
        # The reader went away (`| head`): stop quietly, and keep Python's own final
        # flush from failing on the closed pipe.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, out.fileno())
        return 0
    if stopped_by is not None:
        how = "interrupted" if stopped_by == signal.SIGINT else "terminated"
        print(f"ticker tail: {how} ({stopped_by.name})", file=sys.stderr)
        return 128 + stopped_by  # what a shell reports for a command the signal ended
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

"""The dashboard's symbol view, stale and reset states, layouts and sign-in, in Chromium.

A row opens a view of its symbol (composite ladder with each venue's size, each venue's
BBO, venues, tape, crossed/locked state explained) whose stream exists only while it is
open, and drops venue topics a new server does not have; a reset to a server without
a topic clears what the page showed of it; rows dim while the stream is down; a change
that rounds to 0.00% is neither red nor green; phone and wide layouts never scroll
sideways (screenshots in tests/artifacts/); a server that requires a token signs the
page out on a missing or expired one instead of retrying for ever.
"""

from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import replace
from decimal import ROUND_DOWN, Decimal
from typing import Any

import jwt
from playwright.sync_api import Page, ViewportSize

from tests.browser.conftest import ARTIFACTS
from tests.browser.live_server import EPOCH, LiveServer
from tests.browser.test_dashboard import CONFIG, dashboard, open_live, wait_until
from ticker.model.events import BookUpdate, Quote, TakerSide, Trade
from ticker.model.fixed import parse_nanos
from ticker.server.stats import EndReason

SYMBOL = "BTC-USD"
TICK = 10_000_000  # BTC-USD's tick in nanos (feeds.universe)
TS_NS = 1_763_762_000_000_000_000 + 10**12  # the test market's day (session statistics)
SECRET = "s" * 40
AUTH_CONFIG = replace(
    CONFIG,
    auth="required",
    auth_secret=SECRET,
    auth_audience="ticker-test",
    auth_leeway_s=0.0,
)
VENUE_CONFIG = replace(CONFIG, max_venues=16)
"""With venue topics (quote@<venue>, book@<venue>) for the symbol view. The board does
not follow them, so its position need not reach the hub's: waits are on topics' seqs."""
PHONE: ViewportSize = {"width": 390, "height": 844}
WIDE: ViewportSize = {"width": 1920, "height": 1080}
SERVER_WAIT_S = 20


def wait_for(condition: Callable[[], bool]) -> None:
    """Wait (bounded) for a condition on the server's side."""
    deadline = time.monotonic() + SERVER_WAIT_S
    while not condition():
        assert time.monotonic() < deadline, "condition not met"
        time.sleep(0.02)


def next_frame(page: Page) -> None:
    page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")


def assert_no_horizontal_overflow(page: Page) -> None:
    widths = page.evaluate("() => [document.scrollingElement.scrollWidth, window.innerWidth]")
    assert widths[0] <= widths[1], widths


def assert_header_readable(page: Page) -> None:
    """Every figure in the header has a label, and label and figure are whole on screen."""
    items: list[dict[str, Any]] = page.eval_on_selector_all(
        ".bar .stats > div",
        """divs => divs.map(d => {
            const dt = d.querySelector('dt'), dd = d.querySelector('dd');
            const box = d.getBoundingClientRect();
            return {label: dt ? dt.textContent.trim() : '', figure: dd ? dd.textContent.trim() : '',
                    left: box.left, right: box.right, width: window.innerWidth,
                    clipped: dd ? dd.scrollWidth > dd.clientWidth : true};
        })""",
    )
    assert len(items) >= 8, items
    for item in items:
        assert item["label"] and item["figure"], item
        assert item["left"] >= 0 and item["right"] <= item["width"], item
        assert not item["clipped"], item
    # Nothing in the header outside a labelled figure but the brand.
    loose = page.evaluate(
        """() => [...document.querySelectorAll('.bar > *')]
            .filter(e => !e.matches('.brand, .stats')).map(e => e.outerHTML)"""
    )
    assert loose == [], loose


def screenshot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    next_frame(page)
    page.screenshot(path=str(ARTIFACTS / name), full_page=True, animations="disabled")


def shown_decimal(text: str) -> Decimal:
    return Decimal(text.replace(",", ""))


def truncated(value: str) -> Decimal:
    return Decimal(value).quantize(Decimal("0.0001"), rounding=ROUND_DOWN)


def open_symbol_view(page: Page, symbol: str) -> None:
    page.click(f'#rows tr[data-symbol="{symbol}"] td.sym')
    wait_until(
        page,
        "d.view && d.view.symbol === arg && d.view.status === 'live' && d.view.book !== null",
        symbol,
    )
    page.wait_for_selector("#symbol-view:not([hidden])")


CANONICAL = """(() => {
    const sorted = (v) => Array.isArray(v) ? v.map(sorted) : v !== null && typeof v === 'object'
        ? Object.fromEntries(Object.keys(v).sort().map(k => [k, sorted(v[k])])) : v;
    globalThis.canonical = (v) => JSON.stringify(sorted(v));
})(), """
"""Defines `canonical(v)` in the page: JSON with sorted keys, as `json.dumps(sort_keys=True)`."""


def venue_snapshot(server: LiveServer) -> tuple[dict[str, Any], dict[str, Any]]:
    """Each venue's quote and book of SYMBOL, from the server's own /v1/snapshot."""
    query = urllib.parse.urlencode({"topics": f"quote@*.{SYMBOL},book@*.{SYMBOL}"})
    url = f"http://127.0.0.1:{server.stream_port}/v1/snapshot?{query}"
    with urllib.request.urlopen(url, timeout=SERVER_WAIT_S) as response:
        document = json.load(response)
    quotes: dict[str, Any] = {}
    books: dict[str, Any] = {}
    for snapshot in document["snapshots"]:
        channel = snapshot["topic"].removesuffix("." + SYMBOL)
        kind, _, venue = channel.partition("@")
        data = snapshot["data"]
        data.pop("checksum", None)  # checked by the client, not held
        (quotes if kind == "quote" else books)[venue] = data
    return quotes, books


def assert_venue_data_shown(page: Page, server: LiveServer) -> None:
    """The venue quotes table and the ladder's per-venue sizes are the server's."""
    quotes, books = venue_snapshot(server)
    assert len(quotes) >= 2 and len(books) >= 2, (quotes, books)
    wait_until(
        page,
        CANONICAL + "canonical([d.view.venueQuotes, d.view.venueBooks]) === arg",
        json.dumps([quotes, books], separators=(",", ":"), sort_keys=True),
    )
    next_frame(page)

    # Each venue's BBO, and the marks at the best bid and ask over the venues.
    shown = page.eval_on_selector_all(
        "#symbol-view .vquotes tbody tr",
        """trs => trs.map(tr => ({venue: tr.dataset.venue,
            cells: [...tr.children].map(td => td.textContent),
            best: [...tr.children].map(td => td.classList.contains('best'))}))""",
    )
    assert [row["venue"] for row in shown] == sorted(quotes)
    best_bid = max(Decimal(q["bid"]) for q in quotes.values() if q["bid"] is not None)
    best_ask = min(Decimal(q["ask"]) for q in quotes.values() if q["ask"] is not None)
    for row in shown:
        quote = quotes[row["venue"]]
        _, bid, bid_size, ask, ask_size = row["cells"]
        for text, value in ((bid, quote["bid"]), (ask, quote["ask"])):
            assert (None if text == "—" else shown_decimal(text)) == (
                None if value is None else Decimal(value)
            ), row
        for text, value in ((bid_size, quote["bid_size"]), (ask_size, quote["ask_size"])):
            assert (shown_decimal(text) if text else None) == (
                None if value is None else truncated(value)
            ), row
        assert row["best"][1] == (quote["bid"] is not None and Decimal(quote["bid"]) == best_bid)
        assert row["best"][3] == (quote["ask"] is not None and Decimal(quote["ask"]) == best_ask)
    assert any(row["best"][1] for row in shown) and any(row["best"][3] for row in shown)

    # The ladder: beside each side of each shown price, each venue's size there in its
    # own book (empty where it has none).
    cells = page.eval_on_selector_all(
        "#symbol-view .ladder tbody td.vsize",
        """tds => tds.map(td => {
            const side = td.classList.contains('bid') ? 'bid' : 'ask';
            const tr = td.parentElement;
            return {venue: td.dataset.venue, side,
                    price: tr.querySelector('td.price').textContent,
                    composite: tr.querySelector('td.size.' + side).textContent,
                    size: td.textContent};
        })""",
    )
    rows = page.locator("#symbol-view .ladder tbody tr").count()
    assert rows > 0 and len(cells) == rows * 2 * len(books)
    contributors = set()
    for item in cells:
        side = books[item["venue"]]["bids" if item["side"] == "bid" else "asks"]
        levels = {Decimal(p): truncated(size) for p, size in side}
        expected = levels.get(shown_decimal(item["price"])) if item["composite"] else None
        assert (shown_decimal(item["size"]) if item["size"] else None) == expected, item
        if expected is not None:
            contributors.add(item["venue"])
    assert len(contributors) >= 2, contributors


def test_the_symbol_view_follows_the_book_only_while_it_is_open(page: Page) -> None:
    page.set_viewport_size(WIDE)
    with LiveServer(VENUE_CONFIG, seed=5) as server:
        server.start_publishing(books=True)
        watched = open_live(page, server, one_port=True)
        assert_no_horizontal_overflow(page)
        assert_header_readable(page)
        screenshot(page, "dashboard-wide.png")
        assert server.counters()["sse_open"] == 1

        open_symbol_view(page, SYMBOL)
        assert server.counters()["sse_open"] == 2  # the view's book stream
        wait_until(page, "(d.trades[arg] || []).length >= 3", SYMBOL)
        server.stop_publishing()
        # The random market only moves bids: some asks, so both sides of the ladder show.
        best_bid = parse_nanos(server.topic_state(f"book.{SYMBOL}")["bids"][0][0])
        levels = tuple((best_bid + k * TICK, 10**5 * k) for k in range(1, 6))
        server.publish(BookUpdate("cbx", SYMBOL, TS_NS, (), levels, False))
        # Every trade in: the page's trade topic at the hub's seq.
        seq = server.page_topics_state()[f"trade.{SYMBOL}"]["seq"]
        wait_until(page, "d.topics['trade.' + arg[0]].seq === arg[1]", [SYMBOL, seq])
        book = server.topic_state(f"book.{SYMBOL}")
        wait_until(
            page, "JSON.stringify(d.view.book) === arg", json.dumps(book, separators=(",", ":"))
        )
        next_frame(page)

        # The ladder: the top ten levels of each side, highest price first, sizes
        # (truncated to 4 decimals) on their side.
        rows: list[list[str]] = page.eval_on_selector_all(
            "#symbol-view .ladder tbody tr",
            """trs => trs.map(tr => ['td.size.bid', 'td.price', 'td.size.ask']
                .map(s => tr.querySelector(s).textContent))""",
        )
        bids = {Decimal(p): truncated(s) for p, s in book["bids"][:10]}
        asks = {Decimal(p): truncated(s) for p, s in book["asks"][:10]}
        prices = [shown_decimal(row[1]) for row in rows]
        assert prices == sorted(bids.keys() | asks.keys(), reverse=True)
        assert len(asks) == 5
        for bid_size, price, ask_size in rows:
            at = shown_decimal(price)
            assert (shown_decimal(bid_size) if bid_size else None) == bids.get(at), price
            assert (shown_decimal(ask_size) if ask_size else None) == asks.get(at), price

        # The tape: the trades the page saw, newest first, the last one the hub's.
        tape = page.eval_on_selector_all(
            "#symbol-view .tape tbody tr", "trs => trs.map(tr => tr.children[2].textContent)"
        )
        last = server.topic_state(f"trade.{SYMBOL}")
        assert len(tape) >= 3
        assert shown_decimal(tape[0]) == Decimal(last["price"])
        venues = page.eval_on_selector_all(
            "#symbol-view .venues tbody tr", "trs => trs.map(tr => tr.children[0].textContent)"
        )
        assert last["venue"] in venues
        assert_venue_data_shown(page, server)
        assert_no_horizontal_overflow(page)
        screenshot(page, "dashboard-symbol.png")

        # Closed: the view's stream ends; the page's own goes on.
        page.click("#symbol-view .sv-close")
        page.wait_for_selector("#symbol-view", state="hidden")
        wait_for(lambda: server.counters()["sse_open"] == 1)
        state = dashboard(page)
        assert state["status"] == "live"
        assert page.evaluate("() => window.tickerDashboard.viewOpens") == 1
        watched.check()


def test_on_a_phone_crossed_locked_and_flat_changes_read_right(page: Page) -> None:
    page.set_viewport_size(PHONE)
    with LiveServer(VENUE_CONFIG, seed=6) as server:
        server.start_publishing(books=True)
        watched = open_live(page, server, one_port=True)
        server.stop_publishing()
        assert_no_horizontal_overflow(page)
        assert_header_readable(page)
        screenshot(page, "dashboard-phone.png")

        # A change that rounds to 0.00% is flat: neither red nor green.
        opened = parse_nanos(server.topic_state(f"ticker.{SYMBOL}")["open"])
        position = server.publish(
            Trade("cbx", SYMBOL, TS_NS, opened - TICK, 10**5, TakerSide.SELL, "cbx-flat")
        )
        wait_until(page, "d.position === arg", position)
        next_frame(page)
        row = page.locator(f'#rows tr[data-symbol="{SYMBOL}"]')
        assert row.locator("td[data-field=pct]").inner_text() == "0.00%"
        pct_class = row.locator("td[data-field=pct]").get_attribute("class") or ""
        change_class = row.locator("td[data-field=change]").get_attribute("class") or ""
        assert "flat" in pct_class.split() and "down" not in pct_class.split(), pct_class
        assert "flat" in change_class.split() and "down" not in change_class.split()

        # Crossed: cbx bids above fxa's ask.
        mid = opened
        server.publish(
            Quote("cbx", SYMBOL, TS_NS, mid + 2 * TICK, 10**8, mid + 4 * TICK, 10**8),
            Quote("fxa", SYMBOL, TS_NS, mid - 4 * TICK, 10**8, mid, 10**8),
            Quote("itx", SYMBOL, TS_NS, mid - 10 * TICK, 10**8, mid + 10 * TICK, 10**8),
        )
        # On a phone the spread column is hidden: the row itself says "crossed".
        page.wait_for_selector(
            f'#rows tr[data-symbol="{SYMBOL}"] td[data-field=spread].crossed', state="attached"
        )
        assert row.get_attribute("data-touch") == "crossed"
        badge = page.evaluate(
            f"""() => getComputedStyle(
                document.querySelector('#rows tr[data-symbol="{SYMBOL}"] td.sym'), '::after'
            ).content"""
        )
        assert badge == '"crossed"', badge
        screenshot(page, "dashboard-phone-crossed.png")
        title = row.locator("td[data-field=spread]").get_attribute("title") or ""
        assert title.startswith("Crossed:"), title
        open_symbol_view(page, SYMBOL)
        touch = page.locator("#symbol-view .sv-touch")
        assert touch.get_attribute("data-state") == "crossed"
        assert page.inner_text("#symbol-view .sv-explain").startswith("Crossed:")
        # Each venue's BBO stays on a phone: cbx holds the best bid, fxa the best ask.
        wait_until(page, "Object.keys(d.view.venueQuotes).length === 3")
        next_frame(page)
        marked = page.eval_on_selector_all(
            "#symbol-view .vquotes td.best",
            "tds => tds.map(td => [td.parentElement.dataset.venue, td.cellIndex])",
        )
        assert marked == [["cbx", 1], ["fxa", 3]], marked
        assert page.locator("#symbol-view .vquotes").is_visible()
        # The ladder's per-venue columns are hidden there; the composite size's
        # tooltip names each venue's part.
        assert page.locator("#symbol-view .ladder td.vsize").count() > 0
        assert page.locator("#symbol-view .ladder td.vsize:visible").count() == 0
        titles = page.eval_on_selector_all(
            "#symbol-view .ladder td.size[title]", "tds => tds.map(td => td.title)"
        )
        assert titles and all(any(v in t for v in ("cbx", "fxa", "itx")) for t in titles)
        assert_no_horizontal_overflow(page)
        screenshot(page, "dashboard-symbol-phone.png")

        # Locked: fxa's ask comes up to cbx's bid.
        server.publish(Quote("fxa", SYMBOL, TS_NS, mid - 4 * TICK, 10**8, mid + 2 * TICK, 10**8))
        page.wait_for_selector("#symbol-view .sv-touch[data-state=locked]")
        assert page.inner_text("#symbol-view .sv-explain").startswith("Locked:")
        # And back to normal: the explanation goes.
        server.publish(Quote("cbx", SYMBOL, TS_NS, mid, 10**8, mid + 4 * TICK, 10**8))
        page.wait_for_selector("#symbol-view .sv-touch[data-state=normal]")
        assert page.locator("#symbol-view .sv-explain").is_hidden()
        watched.check()


def test_a_reset_clears_what_the_new_server_does_not_have_and_rows_dim_meanwhile(
    page: Page,
) -> None:
    with LiveServer(CONFIG, seed=7) as first:
        first.start_publishing()
        watched = open_live(page, first, one_port=True)
        position = first.stop_publishing()
        wait_until(page, "d.position === arg", position)
        port = first.stream_port
        row = page.locator(f'#rows tr[data-symbol="{SYMBOL}"]')
        assert row.locator("td.trade").inner_text() != ""
        assert page.locator("#rows tr[data-stale]").count() == 0
        page.context.set_offline(True)  # no reconnect lands until the next server is up

    # The stream is gone: every row is marked stale and dimmed.
    wait_until(page, "d.status === 'reconnecting'")
    page.wait_for_function(
        """() => {
            const rows = [...document.querySelectorAll('#rows tr')];
            return rows.length === 4 && rows.every(r => r.hasAttribute('data-stale')
                && Number(getComputedStyle(r.querySelector('td[data-field=bid]')).opacity) < 1);
        }"""
    )
    screenshot(page, "dashboard-stale.png")

    # Another server (another epoch) on the same port with quotes only: no trades, so
    # no trade or ticker topic; the page's resume gets a reset to what it has.
    with LiveServer(replace(CONFIG, port=port), seed=8, epoch=EPOCH + 1) as second:
        mid = 64_000 * 10**9
        second.publish(
            *(
                Quote("cbx", symbol, TS_NS, mid - TICK, 10**8, mid + TICK, 10**8)
                for symbol in ("BTC-USD", "ETH-USD")
            )
        )
        page.context.set_offline(False)  # `online`: the page reconnects at once
        wait_until(
            page, "d.resets >= 1 && d.status === 'live' && d.position === arg", second.position()
        )
        next_frame(page)
        state = dashboard(page)
        assert sorted(state["topics"]) == ["quote.BTC-USD", "quote.ETH-USD"]
        # Symbols the server no longer has are gone; the others keep only their quote.
        assert page.eval_on_selector_all("#rows tr", "trs => trs.map(t => t.dataset.symbol)") == [
            "BTC-USD",
            "ETH-USD",
        ]
        for field in ("last", "change", "pct", "volume"):
            assert row.locator(f"td[data-field={field}]").inner_text() == "—", field
        assert row.locator("td.trade").inner_text() == ""
        assert row.locator("polyline").get_attribute("points") == ""
        assert shown_decimal(row.locator("td[data-field=bid]").inner_text()) == Decimal("63999.99")
        assert page.locator("#rows tr[data-stale]").count() == 0  # live again: bright
        watched.check()


def test_venue_topics_the_new_server_does_not_have_leave_the_symbol_view(page: Page) -> None:
    with LiveServer(VENUE_CONFIG, seed=10) as first:
        first.start_publishing(books=True)
        watched = open_live(page, first, one_port=True)
        first.stop_publishing()
        mid = 64_000 * 10**9
        first.publish(
            *(
                event
                for venue in ("cbx", "fxa")
                for event in (
                    Quote(venue, SYMBOL, TS_NS, mid - TICK, 10**8, mid + TICK, 10**8),
                    BookUpdate(venue, SYMBOL, TS_NS, ((mid - TICK, 10**8),), (), False),
                )
            )
        )
        open_symbol_view(page, SYMBOL)
        wait_until(
            page,
            "Object.keys(d.view.venueQuotes).length >= 2"
            " && Object.keys(d.view.venueBooks).length >= 2",
        )
        next_frame(page)
        assert page.locator("#symbol-view .ladder td.vsize").count() > 0
        port = first.stream_port
        page.context.set_offline(True)
    wait_until(page, "d.status === 'reconnecting'")

    # Another server (another epoch) with no venue topics: the view's feed gets a reset
    # to it, and each venue's quote and book go, with their rows and ladder columns.
    with LiveServer(replace(CONFIG, port=port), seed=11, epoch=EPOCH + 1) as second:
        second.publish(
            Quote("cbx", SYMBOL, TS_NS, mid - TICK, 10**8, mid + TICK, 10**8),
            BookUpdate("cbx", SYMBOL, TS_NS, ((mid - TICK, 10**8),), ((mid + TICK, 10**8),), True),
        )
        page.context.set_offline(False)
        wait_until(
            page,
            """d.status === 'live' && d.view.status === 'live' && d.view.book !== null
                && d.view.book.bids.length === 1
                && Object.keys(d.view.venueQuotes).length === 0
                && Object.keys(d.view.venueBooks).length === 0""",
        )
        next_frame(page)
        assert page.locator("#symbol-view .ladder td.vsize").count() == 0
        assert page.locator("#symbol-view .ladder th.vsize").count() == 0
        assert page.inner_text("#symbol-view .vquotes tbody") == "no venue quotes yet"
        watched.check()


def token(exp_s: float) -> str:
    claims = {"sub": "alice", "aud": "ticker-test", "exp": int(exp_s), "topics": ["*.*"]}
    return jwt.encode(claims, SECRET, algorithm="HS256")


def test_a_missing_or_expired_token_signs_the_page_out(page: Page) -> None:
    with LiveServer(AUTH_CONFIG, seed=9) as server:
        server.start_publishing(books=True)
        watched = Watched401(page)
        page.goto(server.page_url(one_port=True))
        # No cookie: the snapshot is refused, and the page says so instead of retrying.
        wait_until(page, "d.status === 'signed-out'")
        assert dashboard(page)["topics"] == {}
        assert page.text_content("#conn-text") == "signed out"
        assert "requires a token" in page.inner_text("#signed-out-text")
        assert server.counters()["sse_open"] == 0

        # Signed in (a cookie, as a login page would set it), then retried: live.
        page.context.add_cookies(
            [
                {
                    "name": "ticker_token",
                    "value": token(time.time() + 3600),
                    "domain": "127.0.0.1",
                    "path": "/",
                }
            ]
        )
        page.click("#signed-out-retry")
        wait_until(page, "d.status === 'live' && Object.keys(d.topics).length > 0")
        assert page.locator("#signed-out").is_hidden()
        open_symbol_view(page, SYMBOL)  # its stream sends the cookie too
        wait_for(lambda: server.counters()["sse_open"] == 2)

        # The token expires: the server ends both streams with `token_expired`; the
        # page tries the cookie once more, is refused (401) and signs out.
        server.clock_offset_s = 7200.0
        assert server.drop_sse_clients(EndReason.TOKEN_EXPIRED) == 2
        wait_until(page, "d.status === 'signed-out'")
        state = page.evaluate("() => window.tickerDashboard.auth")
        assert state["reason"] == "expired", state
        assert "expired" in page.inner_text("#signed-out-text")
        wait_for(lambda: server.counters()["sse_open"] == 0)
        assert page.text_content("#symbol-view [data-part=status]") == "signed out"
        server.stop_publishing()
        screenshot(page, "dashboard-signed-out.png")
        assert not watched.page_errors, watched.page_errors


class Watched401:
    """Uncaught errors only: the refused requests are expected here."""

    def __init__(self, page: Page) -> None:
        self.page_errors: list[str] = []
        page.on("pageerror", lambda error: self.page_errors.append(str(error)))

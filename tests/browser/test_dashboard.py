"""The dashboard in real headless Chromium against a real server.

Prices change on screen; after the server drops the stream the page resumes with no
gap; a lost event is caught by its sequence check and repaired with a fresh snapshot; a
position too old to replay gets a reset and fresh state. Each ends with the page holding
exactly the hub's state.
"""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from typing import Any

import pytest
from playwright.sync_api import Page, Route

from tests.browser.conftest import ARTIFACTS
from tests.browser.live_server import LiveServer
from tests.browser.lossy_proxy import DropPlan
from ticker.config import Config
from ticker.server.stats import EndReason

# No venue topics: the page follows quote/ticker/trade and is checked to reach the
# hub's last position, which a venue topic's message (not followed) could hold.
CONFIG = Config(port=0, heartbeat_s=2.0, max_venues=0)
PRICE_CELLS = "#rows td[data-field=bid], #rows td[data-field=ask], #rows td[data-field=last]"
SYMBOL_COUNT = 4  # tests.app.market.SYMBOLS


class Watched:
    """What the page did that it should not: uncaught errors, requests to other hosts."""

    def __init__(self, page: Page) -> None:
        self.page_errors: list[str] = []
        self.requests: list[str] = []
        page.on("pageerror", lambda error: self.page_errors.append(str(error)))
        page.on("request", lambda request: self.requests.append(request.url))

    def check(self) -> None:
        assert not self.page_errors, self.page_errors
        foreign = [url for url in self.requests if not url.startswith("http://127.0.0.1:")]
        assert not foreign, foreign


def dashboard(page: Page) -> dict[str, Any]:
    state: dict[str, Any] = page.evaluate(
        """() => {
            const d = window.tickerDashboard;
            return {status: d.status, position: d.position, reconnects: d.reconnects,
                    gaps: d.gaps, resyncs: d.resyncs, resets: d.resets, ends: d.ends,
                    errors: d.errors, stale: d.stale, events: d.events,
                    latencyMs: d.latencyMs, topics: d.topics};
        }"""
    )
    return state


def wait_until(page: Page, condition: str, arg: object = None) -> None:
    """Wait (bounded by the page's default timeout) for `condition(d, arg)` on the state."""
    page.wait_for_function(
        f"(arg) => {{ const d = window.tickerDashboard; return {condition}; }}", arg=arg
    )


def price_cells(page: Page) -> list[str]:
    texts: list[str] = page.eval_on_selector_all(PRICE_CELLS, "els => els.map(e => e.textContent)")
    return texts


def offset(position: str) -> int:
    return int(position.split("-")[1])


def open_live(
    page: Page, server: LiveServer, *, one_port: bool = False, stream_port: int | None = None
) -> Watched:
    watched = Watched(page)
    page.goto(server.page_url(one_port=one_port, stream_port=stream_port))
    # Live, a row per symbol, and every price shown (each symbol has quoted and traded).
    wait_until(
        page,
        f"""d.status === 'live' && document.querySelectorAll('#rows tr').length === arg
            && [...document.querySelectorAll('{PRICE_CELLS}')].every(e => e.textContent !== '—')""",
        SYMBOL_COUNT,
    )
    return watched


def assert_page_holds_hub_state(page: Page, server: LiveServer) -> None:
    """Once publishing has stopped: the page is at the hub's position with its state,
    and the board shows those values."""
    position = server.position()
    wait_until(page, "d.position === arg", position)
    expected = server.page_topics_state()
    state = dashboard(page)
    assert state["topics"] == expected
    page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
    for symbol in {topic.split(".", 1)[1] for topic in expected}:
        row = page.locator(f'#rows tr[data-symbol="{symbol}"]')
        quote = expected.get(f"quote.{symbol}", {"data": {}})["data"]
        stats = expected.get(f"ticker.{symbol}", {"data": {}})["data"]
        for field, value in (("bid", quote.get("bid")), ("ask", quote.get("ask"))):
            if value is not None:
                shown = row.locator(f"td[data-field={field}]").inner_text()
                assert Decimal(shown.replace(",", "")) == Decimal(value), (symbol, field)
        if stats.get("last") is not None:
            shown = row.locator("td[data-field=last]").inner_text()
            assert Decimal(shown.replace(",", "")) == Decimal(stats["last"]), symbol


@pytest.mark.parametrize(
    "one_port",
    [
        pytest.param(True, id="one-port"),  # page, snapshot and stream on the server's port
        pytest.param(False, id="app-port"),  # the app on its own port, ?stream= to the server
    ],
)
def test_prices_move_and_the_page_resumes_without_a_gap_after_drops(
    page: Page, one_port: bool
) -> None:
    with LiveServer(CONFIG) as server:
        server.start_publishing()
        watched = open_live(page, server, one_port=one_port)

        # Prices change on screen: read the board, wait for it to move, read it again.
        before = price_cells(page)
        assert len(before) == 3 * SYMBOL_COUNT
        assert all(text[0].isdigit() for text in before), before
        # The second read is the first one that differs (prices may move back later).
        changed = page.wait_for_function(
            f"""(before) => {{
                const now = [...document.querySelectorAll('{PRICE_CELLS}')].map(e => e.textContent);
                return now.some((text, i) => text !== before[i]) && now;
            }}""",
            arg=before,
        )
        after = changed.json_value()
        assert len(after) == len(before)
        assert after != before
        page.wait_for_selector("#rows td.flash-up, #rows td.flash-down")
        assert page.text_content("#conn-text") == "live"
        # The latency it sees (now - ts of live deltas) is measured and shown.
        wait_until(page, "typeof d.latencyMs === 'number' && Number.isFinite(d.latencyMs)")
        page.wait_for_function(
            "() => document.getElementById('stat-latency').textContent.endsWith('ms')"
        )

        # The server ends the stream (an `end` event), then cuts one without a word.
        for round_, reason in enumerate((EndReason.SLOW_OUTBOX, EndReason.PEER_RESET), 1):
            assert server.drop_sse_clients(reason) == 1
            dropped_at = offset(server.position())
            wait_until(page, "d.reconnects >= arg && d.status === 'live'", round_)
            # Still following live after the resume, well past the drop.
            wait_until(page, "Number(d.position.split('-')[1]) > arg", dropped_at + 40)
        state = dashboard(page)
        assert state["ends"] == 1
        assert state["errors"] >= 1

        server.stop_publishing()
        assert_page_holds_hub_state(page, server)
        state = dashboard(page)
        assert (state["gaps"], state["resyncs"], state["resets"]) == (0, 0, 0)
        assert state["reconnects"] == 2
        assert state["stale"] == 0  # no repeats either
        counters = server.counters()
        assert counters["resets"] == 0  # every reconnect resumed from the replay buffer
        assert counters["resumes"] == 3  # the first stream (from the snapshot) and two more
        assert counters["end_slow_outbox"] == 1 and counters["end_peer_reset"] == 1
        assert page.inner_text("#stat-position") == server.position()
        assert page.inner_text("#stat-reconnects") == "2"
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        name = "dashboard.png" if one_port else "dashboard-app-port.png"
        page.screenshot(path=str(ARTIFACTS / name), full_page=True, animations="disabled")
        watched.check()


def test_a_lost_event_is_caught_and_repaired_with_a_fresh_snapshot(page: Page) -> None:
    plan = DropPlan(drop_nth=25)
    with LiveServer(CONFIG, seed=2, drop=plan) as server:
        server.start_publishing()
        watched = open_live(page, server, stream_port=server.proxy_port)  # through the proxy
        wait_until(page, "d.gaps >= 1 && d.status === 'live'")
        server.stop_publishing()
        assert_page_holds_hub_state(page, server)
        state = dashboard(page)
        assert len(plan.dropped) == 1
        assert (state["gaps"], state["resyncs"], state["resets"]) == (1, 1, 0)
        assert state["reconnects"] == 0  # a resync is not a reconnect
        assert plan.connections == 2  # the lossy stream, then the one after the resync
        watched.check()


def test_a_position_too_old_to_replay_gets_a_reset_and_fresh_state(page: Page) -> None:
    config = replace(CONFIG, replay_max_messages=100)
    with LiveServer(config, seed=3) as server:
        server.start_publishing()
        watched = open_live(page, server)
        server.stop_publishing()
        wait_until(page, "d.position === arg", server.position())

        page.context.set_offline(True)
        assert server.drop_sse_clients(EndReason.SHUTDOWN) == 1
        wait_until(page, "d.status === 'reconnecting'")
        server.publish_burst(400)  # the replay buffer no longer holds the page's position
        page.context.set_offline(False)

        wait_until(page, "d.resets >= 1 && d.status === 'live'")
        assert_page_holds_hub_state(page, server)
        state = dashboard(page)
        assert (state["gaps"], state["resyncs"], state["resets"]) == (0, 0, 1)
        assert state["reconnects"] >= 1
        assert server.counters()["resets"] == 1
        watched.check()


def test_a_failed_snapshot_is_retried_until_the_page_is_live(page: Page) -> None:
    refused: list[str] = []

    def refuse_twice(route: Route) -> None:
        if len(refused) < 2:
            refused.append(route.request.url)
            route.fulfill(status=503, body="not now")
        else:
            route.continue_()

    page.route("**/v1/snapshot?*", refuse_twice)
    with LiveServer(CONFIG, seed=4) as server:
        server.start_publishing()
        watched = open_live(page, server)
        server.stop_publishing()
        assert_page_holds_hub_state(page, server)
        state = dashboard(page)
        assert len(refused) == 2
        assert (state["gaps"], state["resyncs"], state["reconnects"]) == (0, 0, 0)
        watched.check()

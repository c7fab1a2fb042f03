"""docs/CLIENT.md's example runs as written: against a real server with its venues (given
after a URL where nothing listens), and against a quiet one where no trade was ever
published (empty states)."""

from __future__ import annotations

import os
import re
import sys
from dataclasses import replace
from functools import partial
from pathlib import Path

import pytest
import trio

from tests.client.conftest import TEST_CONFIG, free_port, until
from ticker.model.events import BookUpdate, Quote
from ticker.server.process import ServerHandle, serve

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "CLIENT.md"


def example_code() -> str:
    """The first python block of the guide."""
    blocks = re.findall(r"```python\n(.*?)```", GUIDE.read_text(), flags=re.DOTALL)
    assert blocks, "docs/CLIENT.md has no python example"
    return str(blocks[0])


async def run_example(
    tmp_path: Path, port: int, updates: int, dead_port: int | None = None
) -> list[str]:
    """Run the guide's example against the server on `port` (after a URL where nothing
    listens, with `dead_port`); its output lines."""
    script = tmp_path / "example.py"
    script.write_text(example_code())
    env = {
        **os.environ,
        "TICKER_URLS": " ".join(
            f"ws://127.0.0.1:{p}/v1/ws" for p in (dead_port, port) if p is not None
        ),
        "TICKER_UPDATES": str(updates),
    }
    with trio.fail_after(40):
        done = await trio.run_process(
            [sys.executable, str(script)],
            env=env,
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout.decode().splitlines()


@pytest.mark.usefixtures("deadline")
async def test_the_guide_example_runs_as_written(nursery: trio.Nursery, tmp_path: Path) -> None:
    # The simulated venues publish, as under `make run`.
    config = replace(TEST_CONFIG, port=0, venue_rate_per_s=100.0)
    server: ServerHandle = await nursery.start(partial(serve, config, epoch=7))
    # Two URLs, the first dead: the example passes it over for the second.
    lines = await run_example(tmp_path, server.port, 30, dead_port=free_port())
    assert len(lines) == 31, lines
    assert all(line.startswith("7-") for line in lines[:30])
    assert any("quote.BTC-USD" in line and "bid " in line for line in lines)
    assert any("book.BTC-USD" in line and "levels" in line for line in lines)
    assert lines[-1].startswith("done: 1 connection(s), 0 reset(s), latency p99 <= ")
    assert lines[-1].endswith(f" ms, on ws://127.0.0.1:{server.port}/v1/ws")
    server.stop()


@pytest.mark.usefixtures("deadline")
async def test_the_guide_example_runs_where_no_trade_was_published(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    # No venue runs: a quote and a book level are published, never a trade, so the
    # trade topic's snapshot is seq 0 with empty data.
    config = replace(TEST_CONFIG, port=0)
    server: ServerHandle = await nursery.start(partial(serve, config, run_venues=False, epoch=7))
    await server.publish(Quote("cbx", "BTC-USD", 1, 100, 2, 101, 3))
    await server.publish(BookUpdate("itx", "BTC-USD", 2, ((99, 4),), (), False))
    await until(lambda: server.context.stats.ingest_events >= 2)
    lines = await run_example(tmp_path, server.port, 3)  # the three snapshots
    assert len(lines) == 4, lines
    assert any("trade.BTC-USD" in line and "no trade yet" in line for line in lines)
    assert any("quote.BTC-USD" in line and "bid " in line for line in lines)
    assert any("book.BTC-USD" in line and "book 1x0 levels" in line for line in lines)
    assert lines[-1].startswith("done: 1 connection(s), 0 reset(s)")
    server.stop()

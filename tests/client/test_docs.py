"""docs/CLIENT.md's example runs as written, against a real server with its venues."""

from __future__ import annotations

import os
import re
import sys
from dataclasses import replace
from functools import partial
from pathlib import Path

import pytest
import trio

from tests.client.conftest import TEST_CONFIG
from ticker.server.app import ServerHandle, serve

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "CLIENT.md"


def example_code() -> str:
    """The first python block of the guide."""
    blocks = re.findall(r"```python\n(.*?)```", GUIDE.read_text(), flags=re.DOTALL)
    assert blocks, "docs/CLIENT.md has no python example"
    return str(blocks[0])


@pytest.mark.usefixtures("deadline")
async def test_the_guide_example_runs_as_written(nursery: trio.Nursery, tmp_path: Path) -> None:
    # The simulated venues publish, as under `make run`.
    config = replace(TEST_CONFIG, port=0, venue_rate_per_s=100.0)
    server: ServerHandle = await nursery.start(partial(serve, config, epoch=7))
    script = tmp_path / "example.py"
    script.write_text(example_code())
    env = {
        **os.environ,
        "TICKER_URL": f"ws://127.0.0.1:{server.port}/v1/ws",
        "TICKER_UPDATES": "30",
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
    lines = done.stdout.decode().splitlines()
    assert len(lines) == 31, lines
    assert all(line.startswith("7-") for line in lines[:30])
    assert any("quote.BTC-USD" in line and "bid " in line for line in lines)
    assert any("book.BTC-USD" in line and "levels" in line for line in lines)
    assert lines[-1].startswith("done: 1 connection(s), 0 reset(s), latency p99 <= ")
    server.stop()

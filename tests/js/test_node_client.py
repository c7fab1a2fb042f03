"""The JavaScript client (clients/js) under node's own test runner, against a real
`ticker serve`: its unit tests, the live tests (mirror = /v1/snapshot, random cuts,
resets, zstd) and the conformance cases; and docs/CLIENT.md's JavaScript example runs
as written."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.js.node import (
    PACKAGE,
    REPLAY_MAX_MESSAGES,
    ROOT,
    require_dev_dependencies,
    require_node,
    run_node,
    ticker_serve,
)

NODE_TESTS_TIMEOUT_S = 180
"""Bound on the whole node run (it takes about 15 s; a hung feed must not hang CI)."""
GUIDE = ROOT / "docs" / "CLIENT.md"


@pytest.fixture(scope="module")
def node() -> str:
    return require_node()


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    with ticker_serve() as base:
        yield base


def test_the_node_tests_pass_against_a_real_server(node: str, server: str) -> None:
    require_dev_dependencies()
    output = run_node(
        node,
        ["--experimental-websocket", "--test", "test/"],
        cwd=PACKAGE,
        env={"TICKER_JS_SERVER": server, "TICKER_JS_REPLAY_MAX": str(REPLAY_MAX_MESSAGES)},
        timeout_s=NODE_TESTS_TIMEOUT_S,
    )
    assert re.search(r"^# fail 0$", output, flags=re.MULTILINE), output[-3000:]
    # Every test ran (none skipped for want of the server), except the conformance
    # placeholder while conformance/cases/ has no case.
    skipped = re.findall(r"^ok \d+ - (.*) # SKIP", output, flags=re.MULTILINE)
    has_cases = any((ROOT / "conformance" / "cases").glob("*.json"))
    assert skipped == ([] if has_cases else ["conformance cases"]), skipped
    if has_cases:
        assert re.search(r"^ok \d+ - conformance: ", output, flags=re.MULTILINE), output[-3000:]


def example_code() -> str:
    """The first js block of the guide."""
    blocks = re.findall(r"```js\n(.*?)```", GUIDE.read_text(), flags=re.DOTALL)
    assert blocks, "docs/CLIENT.md has no js example"
    return str(blocks[0])


def test_the_guide_javascript_example_runs_as_written(
    node: str, server: str, tmp_path: Path
) -> None:
    # Installed as an application would have it: node_modules/@ticker/client.
    scope = tmp_path / "node_modules" / "@ticker"
    scope.mkdir(parents=True)
    (scope / "client").symlink_to(PACKAGE, target_is_directory=True)
    (tmp_path / "example.mjs").write_text(example_code())
    ws = server.replace("http://", "ws://")
    output = run_node(
        node,
        ["--experimental-websocket", "example.mjs"],
        cwd=tmp_path,
        env={"TICKER_URL": f"{ws}/v1/ws", "TICKER_UPDATES": "40"},
        timeout_s=60,
    )
    lines = output.splitlines()
    assert len(lines) == 41, lines
    assert all(re.match(r"^\d+-\d+ (snapshot|delta|reset) ", line) for line in lines[:40]), lines
    assert any(" quote.BTC-USD bid " in line for line in lines), lines
    assert any(" book.BTC-USD " in line and " levels" in line for line in lines), lines
    assert lines[-1].startswith("done: 40 updates, 0 resets, at "), lines[-1]


@pytest.mark.parametrize("version", [None, "v18.19.0"])
def test_a_missing_or_old_node_skips_unless_required(
    version: str | None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if version is not None:
        fake = tmp_path / "node"
        fake.write_text(f"#!/bin/sh\necho {version}\n")
        fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("TICKER_REQUIRE_NODE", raising=False)
    with pytest.raises(pytest.skip.Exception):
        require_node()
    monkeypatch.setenv("TICKER_REQUIRE_NODE", "1")
    with pytest.raises(pytest.fail.Exception, match="TICKER_REQUIRE_NODE=1 but node"):
        require_node()

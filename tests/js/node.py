"""Node.js for the JavaScript client's tests: finding it, installing the package's dev
dependencies, and a real `ticker serve` for it to talk to.

The tests skip when `node` is missing or older than 20, unless TICKER_REQUIRE_NODE=1
(set by .ci/run), which turns the skip into a failure. The server is the `ticker serve`
command itself, in a child process on 127.0.0.1, stopped by its PID.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.client.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "clients" / "js"
MIN_NODE_MAJOR = 20
NPM_TIMEOUT_S = 300
START_TIMEOUT_S = 30
REPLAY_MAX_MESSAGES = 1000
"""Small, so a position becomes too old to replay within seconds of venue traffic."""


def _missing(reason: str) -> None:
    if os.environ.get("TICKER_REQUIRE_NODE") == "1":
        pytest.fail(f"TICKER_REQUIRE_NODE=1 but {reason}")
    pytest.skip(reason)


def require_node() -> str:
    """The path of node (>= 20), or skip (fail under TICKER_REQUIRE_NODE=1)."""
    node = shutil.which("node")
    if node is None:
        _missing("node is missing (apt-get install nodejs npm)")
        raise AssertionError("unreachable")
    version = subprocess.run(
        [node, "--version"], capture_output=True, text=True, timeout=30, check=False
    ).stdout.strip()
    match = re.match(r"v(\d+)\.", version)
    if match is None or int(match[1]) < MIN_NODE_MAJOR:
        _missing(f"node {version or '?'} is older than {MIN_NODE_MAJOR}")
    return node


def require_dev_dependencies() -> None:
    """`npm ci` in clients/js when its node_modules is missing (zstd-codec for the tests)."""
    if (PACKAGE / "node_modules" / "zstd-codec").is_dir():
        return
    npm = shutil.which("npm")
    if npm is None:
        _missing("npm is missing (apt-get install npm)")
        raise AssertionError("unreachable")
    done = subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund"],
        cwd=PACKAGE,
        capture_output=True,
        text=True,
        timeout=NPM_TIMEOUT_S,
        check=False,
    )
    if done.returncode != 0:
        pytest.fail(f"npm ci in {PACKAGE} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")


@contextmanager
def ticker_serve() -> Iterator[str]:
    """A real `ticker serve` with its simulated venues; yields its http:// base URL."""
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [
        sys.executable, "-m", "ticker", "serve", "--host", "127.0.0.1", "--port", str(port),
        "--venue-rate-per-s", "100", "--replay-max-messages", str(REPLAY_MAX_MESSAGES),
        "--heartbeat-s", "1",
    ]  # fmt: skip
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if process.poll() is not None:
                pytest.fail(f"ticker serve exited with {process.returncode}: {process.stderr}")
            try:
                with urllib.request.urlopen(f"{base}/healthz", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"ticker serve not ready within {START_TIMEOUT_S} s")
            time.sleep(0.1)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=20)
        if process.stderr is not None:
            process.stderr.close()


def run_node(
    node: str, args: list[str], *, cwd: Path, env: dict[str, str], timeout_s: float
) -> str:
    """Run node; its output, or fail the test with it (also on a timeout)."""
    try:
        done = subprocess.run(
            [node, *args],
            cwd=cwd,
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        out = (exc.stdout or b"").decode() if isinstance(exc.stdout, bytes) else exc.stdout or ""
        pytest.fail(f"node {' '.join(args)} still running after {timeout_s} s:\n{out[-8000:]}")
    if done.returncode != 0:
        pytest.fail(
            f"node {' '.join(args)} failed ({done.returncode}):\n"
            f"{done.stdout[-12000:]}\n{done.stderr[-4000:]}"
        )
    return done.stdout

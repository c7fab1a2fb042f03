"""Real `ticker serve` processes for the cluster failure tests, stopped by their PIDs.

Each node runs `python -m ticker serve` with the given role and flags on a free
127.0.0.1 port, its log in a file the test can read. `kill` is kill -9, `pause`/`resume`
are SIGSTOP/SIGCONT; every node is killed when the test ends, whatever happened.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from tests.redis_server import free_port

START_TIMEOUT_S = 30.0


class Node:
    """One `ticker serve` process."""

    def __init__(self, directory: Path, name: str, args: list[str]) -> None:
        self.name = name
        self.port = free_port()
        self.log_path = directory / f"{name}.log"
        self.args = [*args, "--port", str(self.port), "--host", "127.0.0.1"]
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Node:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "ticker", "serve", *self.args],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/v1/ws"

    def get(self, path: str, timeout_s: float = 2.0) -> tuple[int, bytes]:
        """An HTTP GET on the node: (status, body); (0, b"") when it does not answer."""
        url = f"http://127.0.0.1:{self.port}{path}"
        try:
            with urllib.request.urlopen(url, timeout=timeout_s) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()
        except (OSError, TimeoutError):
            return 0, b""

    def ready(self) -> bool:
        return self.get("/readyz")[0] == 200

    def readiness(self) -> dict[str, Any]:
        status, body = self.get("/readyz")
        return json.loads(body) if status else {}

    def metric(self, name: str) -> float | None:
        """The value of one unlabelled metric from /metrics, or None."""
        _, body = self.get("/metrics")
        for line in body.decode().splitlines():
            if line.startswith(name + " ") or line.startswith(name + "_total "):
                return float(line.split()[-1])
        return None

    def wait_until(self, what: str, predicate: Any, timeout_s: float = START_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise AssertionError(f"{self.name} exited: {self.tail()}")
            if predicate():
                return
            time.sleep(0.05)
        raise AssertionError(f"{self.name}: not {what} after {timeout_s} s; log:\n{self.tail()}")

    def wait_ready(self, timeout_s: float = START_TIMEOUT_S) -> Node:
        self.wait_until("ready", self.ready, timeout_s)
        return self

    def log(self) -> str:
        """Everything the node has logged so far."""
        return self.log_path.read_text(errors="replace")

    def tail(self) -> str:
        """The end of the node's log, for failure messages."""
        return self.log()[-4000:]

    def kill(self) -> None:
        """kill -9."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def pause(self) -> None:
        os.kill(self.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.pid, signal.SIGCONT)

    def stop(self) -> None:
        """SIGCONT (in case it is paused), SIGTERM, then kill -9 after 10 s."""
        if self.process is None or self.process.poll() is not None:
            return
        os.kill(self.pid, signal.SIGCONT)
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)

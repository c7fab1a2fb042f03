"""A real redis-server for tests: started on a free 127.0.0.1 port, stopped by its PID.

Tests that need Redis skip when `redis-server` is missing, unless TICKER_REQUIRE_REDIS=1
(set by .ci/run), in which case they fail. `RedisServer` can stop and start the same
server again, with its data (persistence on) or without it, for the failure tests.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

START_TIMEOUT_S = 10.0


def redis_server_path() -> str:
    """The redis-server binary, or skip (fail under TICKER_REQUIRE_REDIS=1)."""
    path = shutil.which("redis-server")
    if path is None:
        if os.environ.get("TICKER_REQUIRE_REDIS") == "1":
            pytest.fail("TICKER_REQUIRE_REDIS=1 but redis-server is missing")
        pytest.skip("redis-server is missing (apt-get install redis-server)")
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class RedisServer:
    """One redis-server process on 127.0.0.1.

    Args:
        directory: where it keeps its data files.
        persistent: keep data across a restart (append-only file); otherwise no
            persistence at all, so a restart loses everything.
    """

    def __init__(self, directory: Path, *, persistent: bool = False) -> None:
        self.binary = redis_server_path()
        self.directory = directory
        self.persistent = persistent
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start (or restart) the server on the same port; returns once it answers."""
        assert self.process is None, "already running"
        persistence = (
            ["--appendonly", "yes", "--appendfsync", "always", "--save", ""]
            if self.persistent
            else ["--appendonly", "no", "--save", ""]
        )
        self.process = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.directory),
                "--daemonize",
                "no",
                "--loglevel",
                "warning",
                *persistence,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.process.returncode}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(64).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("redis-server did not answer within 10 s")

    def stop(self, *, wipe: bool = False) -> None:
        """Stop the server by its PID (SIGTERM, then SIGKILL); `wipe` deletes its data."""
        if self.process is not None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
            self.process = None
        if wipe:
            for child in self.directory.iterdir():
                if child.is_dir():
                    shutil.rmtree(child)
                else:
                    child.unlink()

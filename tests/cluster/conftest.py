"""Fixtures of the cluster tests: a real redis-server per test (see tests/redis_server.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.redis_server import RedisServer


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A fresh redis-server without persistence, stopped after the test."""
    server = RedisServer(tmp_path / "redis", persistent=False)
    server.directory.mkdir()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def persistent_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server that keeps its data across `stop()`/`start()` (append-only file)."""
    server = RedisServer(tmp_path / "redis", persistent=True)
    server.directory.mkdir()
    server.start()
    try:
        yield server
    finally:
        server.stop()

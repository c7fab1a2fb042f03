"""The worker supervisor's pure parts: each worker's command line and the restart delay."""

from __future__ import annotations

import sys

from ticker.workers import (
    HEALTHY_RUN_S,
    RESTART_MAX_S,
    RESTART_MIN_S,
    next_restart_delay,
    worker_argv,
)


def test_worker_argv_runs_one_worker_on_a_shared_port() -> None:
    argv = ["serve", "--role", "edge", "--workers", "4", "--port", "8000", "--workers=2"]
    assert worker_argv(argv) == [
        sys.executable, "-m", "ticker", "serve", "--role", "edge", "--port", "8000",
        "--workers", "1", "--reuse-port",
    ]  # fmt: skip


def test_a_worker_that_keeps_dying_waits_longer_each_time_up_to_the_cap() -> None:
    delay = RESTART_MIN_S
    waits = []
    for _ in range(8):
        wait, delay = next_restart_delay(delay, ran_s=0.1)
        waits.append(wait)
    assert waits[:3] == [RESTART_MIN_S, RESTART_MIN_S * 2, RESTART_MIN_S * 4]
    assert waits == sorted(waits)
    assert waits[-1] == RESTART_MAX_S


def test_a_worker_that_ran_healthy_before_dying_restarts_at_once_again() -> None:
    """The delay starts over: one crash after a long healthy run never waits the cap."""
    wait, delay = next_restart_delay(RESTART_MAX_S, ran_s=HEALTHY_RUN_S)
    assert wait == RESTART_MIN_S
    assert delay == RESTART_MIN_S * 2
    wait, _ = next_restart_delay(RESTART_MAX_S, ran_s=HEALTHY_RUN_S - 1)
    assert wait == RESTART_MAX_S

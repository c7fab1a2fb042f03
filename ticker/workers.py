"""`ticker serve --role edge --workers N`: N edge processes sharing one port.

The parent listens on nothing: it starts N copies of the same command with
`--workers 1 --reuse-port` (the kernel spreads new connections over them with
SO_REUSEPORT), restarts one that dies (after a short delay that grows while it keeps
dying and starts over once it has run a while), and passes
SIGTERM/SIGINT on so each drains its own clients. Owns only process supervision.
"""

from __future__ import annotations

import logging
import signal
import sys
from collections.abc import Sequence

import trio

from ticker.config import Config

log = logging.getLogger("ticker.workers")

RESTART_MIN_S = 0.5
RESTART_MAX_S = 10.0
HEALTHY_RUN_S = 30.0
"""A worker that ran this long before it died was healthy: its next restart waits only
RESTART_MIN_S again, so one crash a day never waits the longest delay."""


def next_restart_delay(delay: float, ran_s: float) -> tuple[float, float]:
    """How long to wait before restarting a worker that died, and the delay after that.

    Args:
        delay: the delay this restart would wait if the worker kept crashing.
        ran_s: how long the worker that died had run.

    Returns:
        (wait now, the delay for the next restart): doubling up to RESTART_MAX_S while
        the worker dies quickly; back to RESTART_MIN_S after a healthy run.
    """
    wait = RESTART_MIN_S if ran_s >= HEALTHY_RUN_S else delay
    return wait, min(wait * 2, RESTART_MAX_S)


def worker_argv(argv: Sequence[str]) -> list[str]:
    """The command line of one worker: this command, one worker, sharing the port."""
    args: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg == "--workers":
            skip = True
            continue
        if arg.startswith("--workers="):
            continue
        args.append(arg)
    return [sys.executable, "-m", "ticker", *args, "--workers", "1", "--reuse-port"]


async def run_workers(config: Config, argv: Sequence[str]) -> None:
    """Run `config.workers` worker processes until SIGTERM/SIGINT, then stop them."""
    command = worker_argv(argv)
    processes: dict[int, trio.Process] = {}
    stopping = trio.Event()

    async def supervise(index: int) -> None:
        delay = RESTART_MIN_S
        while not stopping.is_set():
            process = await trio.lowlevel.open_process(command)
            processes[index] = process
            started = trio.current_time()
            log.info("worker %d started (pid %d)", index, process.pid)
            code = await process.wait()
            if stopping.is_set():
                return
            wait, delay = next_restart_delay(delay, trio.current_time() - started)
            log.warning("worker %d (pid %d) exited with %d; restarting in %.1f s",
                        index, process.pid, code, wait)  # fmt: skip
            await trio.sleep(wait)

    async with trio.open_nursery() as nursery:
        for index in range(config.workers):
            nursery.start_soon(supervise, index)
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async for signum in signals:
                stopping.set()
                log.info("%s: stopping %d workers", signal.Signals(signum).name, len(processes))
                for process in processes.values():
                    if process.returncode is None:
                        process.send_signal(signal.SIGTERM)
                break
        with trio.move_on_after(config.drain_timeout_s + 5):
            for process in processes.values():
                await process.wait()
        for process in processes.values():
            if process.returncode is None:
                process.kill()
        nursery.cancel_scope.cancel()

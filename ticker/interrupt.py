"""Running a command's work until SIGINT or SIGTERM, both taken through trio's signal receiver.

Ctrl-C as trio's KeyboardInterrupt is raised in whatever code runs when it comes, and
one raised inside a finalizer is dropped by Python: the command runs on. Here either
signal cancels the work at a checkpoint instead, and the caller is told which came. It
decides no exit code and prints nothing: that is the command's.
"""

from __future__ import annotations

import signal
from collections.abc import Awaitable, Callable
from typing import Final

import trio

STOP_SIGNALS: Final = (signal.SIGINT, signal.SIGTERM)


async def run_until_signalled(work: Callable[[], Awaitable[object]]) -> signal.Signals | None:
    """Run `work` until it returns, or until SIGINT or SIGTERM comes and cancels it.

    The receiver is in place before `work` starts and until it has ended (its cleanup
    included), so no signal in between is raised as KeyboardInterrupt; the first one
    stops it, later ones are ignored.

    Returns:
        The signal that stopped the work; None if it ended by itself.

    Raises:
        Exception: whatever `work` raised, as itself (not wrapped in an exception group).
    """
    stopped_by: signal.Signals | None = None
    failure: Exception | None = None
    with trio.open_signal_receiver(*STOP_SIGNALS) as signals:
        async with trio.open_nursery() as nursery:

            async def watch() -> None:
                nonlocal stopped_by
                async for signum in signals:
                    stopped_by = signal.Signals(signum)
                    nursery.cancel_scope.cancel()
                    return

            nursery.start_soon(watch)
            try:
                await work()
            except Exception as exc:  # raised after the nursery, not wrapped in a group
                failure = exc
            finally:
                nursery.cancel_scope.cancel()
    if failure is not None:
        raise failure
    return stopped_by

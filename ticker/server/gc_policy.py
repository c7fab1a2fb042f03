"""The garbage-collection policy of a `ticker serve` process (process-wide, so only the
command applies it, never `serve` embedded in another program or a test).

Owns when start-up objects are frozen and the youngest generation's threshold; must not
disable the collector (garbage cycles must still be freed) or run collections itself.
"""

from __future__ import annotations

import gc


def apply_gc_policy(gen0_threshold: int) -> bool:
    """Collect and freeze what start-up built, then raise the youngest GC threshold.

    The replay buffer holds up to `replay_max_messages` messages whose objects the
    collector would otherwise walk at every older-generation pass, and Python's default
    of 700 allocations runs those passes often (benchmarks/RESULTS.md, Core: the GC
    policy). Refcounting frees non-cyclic garbage at once whatever the threshold, so a
    higher one only lets garbage cycles wait for up to `gen0_threshold` allocations.

    Args:
        gen0_threshold: `Config.gc_gen0_threshold`; 0 changes nothing.

    Returns:
        Whether the policy was applied.
    """
    if gen0_threshold <= 0:
        return False
    gc.collect()  # start-up's garbage goes now rather than being frozen for good
    gc.freeze()  # modules, config, app: alive for the whole process, never walked again
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(gen0_threshold, gen1, gen2)
    return True

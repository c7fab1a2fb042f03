"""What a cluster node knows about its part in the cluster, for readiness and metrics.

A plain record the leader and follower tasks write and `/readyz` and `/metrics` read;
no behaviour of its own.
"""

from __future__ import annotations

from dataclasses import dataclass

from ticker.core.position import Position


@dataclass(slots=True)
class ClusterStatus:
    """Leadership and log-following state of one process (all counters monotonic)."""

    role: str
    leading: bool = False
    """This process holds the lease and appends to the log."""
    rebuilding: bool = False
    """This process took the lease and is rebuilding its hub from checkpoint + log, or
    starting its venues: it leads but does not sequence yet (not ready)."""
    lease_changes: int = 0
    """Times this process took the lease or lost it."""
    appended_batches: int = 0
    """Hub batches this process appended to the log."""
    appended_entries: int = 0
    """Log entries this process appended (a batch over `cluster_log_max_entry_bytes`
    is several)."""
    held_batches: int = 0
    """Batches published but not yet in the log (Redis slow or away); bounded."""
    checkpoints: int = 0
    """Checkpoints this process wrote."""
    log_errors: int = 0
    """Redis commands that failed (unreachable, timed out)."""
    applied_entries: int = 0
    """Log entries this process followed into its hub."""
    follow_lag_s: float = 0.0
    """Now minus the publish time of the newest message followed (0 until one is)."""
    foreign_entries: int = 0
    """Log entries skipped: not a ticker hub batch (added by hand, or a newer format)."""
    last_foreign: Position | None = None
    """The newest foreign entry counted (each is logged and counted once)."""
    rebuilds: int = 0
    """Times the follower started over from a checkpoint (start, epoch change, trim)."""
    problem: str | None = None
    """Why the node is not fully working now (Redis unreachable, catching up), or None."""

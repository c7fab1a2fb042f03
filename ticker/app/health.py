"""Liveness and readiness: what `/healthz` and `/readyz` answer, and why.

Alive means the process serves HTTP at all. Ready means a load balancer may send it
new clients: it is not draining and market data has reached the hub (the first venue
is live). Owns the reason texts; must not decide when the server drains.
"""

from __future__ import annotations

from dataclasses import dataclass

from ticker.server.context import ServerContext

DRAINING = "draining: the server is shutting down and refuses new clients"
REBUILDING = (
    "rebuilding: this hub took the lease and is rebuilding from the checkpoint and the "
    "cluster log, or starting its venues"
)
NO_DATA = "no market data yet: no venue has delivered anything to the hub"


@dataclass(frozen=True, slots=True)
class Readiness:
    """Whether the server takes new clients; `reason` says why not."""

    ready: bool
    reason: str | None = None


def readiness(context: ServerContext) -> Readiness:
    """The server's readiness now (agrees with `ServerContext.ready`)."""
    if context.shutting_down:
        return Readiness(False, DRAINING)
    if context.cluster is not None and context.cluster.problem is not None:
        return Readiness(False, context.cluster.problem)
    if context.cluster is not None and context.cluster.rebuilding:
        return Readiness(False, REBUILDING)
    if not context.ready:
        return Readiness(False, NO_DATA)
    return Readiness(True)

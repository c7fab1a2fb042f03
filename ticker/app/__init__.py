"""The HTTP application served next to the streams: dashboard, snapshot, health, metrics.

`create_app(context)` builds a quart-trio application over one server's shared
`ServerContext`. It answers requests; it never streams market data (the server's own
sockets do) and never changes the hub's or the fanout's state.
"""

from __future__ import annotations

from ticker.app.application import create_app

__all__ = ["create_app"]

"""One group's part of a fanout batch, and its framed bytes, built once per framing.

The fanout makes one per group and batch; every member whose socket is idle writes the
same bytes object. Owns only that sharing; it knows nothing of sockets or groups.
"""

from __future__ import annotations

from ticker.core.hub import Published
from ticker.server.framing import Framing


class SharedWrite:
    """The items of one group's part of a batch, and their bytes per framing."""

    __slots__ = ("_data", "items", "last_offset")

    def __init__(self, items: list[Published]) -> None:
        self.items = items
        self.last_offset = items[-1].offset
        self._data: dict[Framing, bytes] = {}

    def data(self, framing: Framing) -> bytes:
        """The bytes of one write carrying every item, in `framing`."""
        data = self._data.get(framing)
        if data is None:
            data = framing.wrap([framing.frame(item) for item in self.items])
            self._data[framing] = data
        return data

"""Venues: the native wire formats (cbx JSON, fxa FIX, itx binary) and their adapters,
the only place the word "adapter" names a thing.

Each venue has a `*_wire` codec (pure encode/decode, shared with the simulators in
`feeds`) and an adapter implementing `ticker.ingest.contract.VenueAdapter`. Reference
data (instruments, listings, locate codes) lives in `reference`.
"""

from __future__ import annotations

from collections.abc import Sequence

from ticker.ingest.config import IngestConfig
from ticker.venues.adapter_base import AdapterBase
from ticker.venues.cbx import CbxAdapter
from ticker.venues.fxa import FxaAdapter
from ticker.venues.itx import ItxAdapter
from ticker.venues.reference import VENUES, Listing

__all__ = ["VENUES", "AdapterBase", "CbxAdapter", "FxaAdapter", "ItxAdapter", "make_adapter"]


def make_adapter(
    venue: str, listings: Sequence[Listing] | None = None, config: IngestConfig | None = None
) -> AdapterBase:
    """A fresh adapter for `venue` ("cbx", "fxa" or "itx").

    Args:
        venue: the venue name.
        listings: reference data to use; defaults to `reference.LISTINGS[venue]`.
        config: limits and timeouts; defaults to `IngestConfig()`.

    Raises:
        ValueError: an unknown venue.
    """
    if venue == "cbx":
        return CbxAdapter(listings, config)
    if venue == "fxa":
        return FxaAdapter(listings, config)
    if venue == "itx":
        return ItxAdapter(listings, config)
    raise ValueError(f"unknown venue {venue!r}; known: {', '.join(VENUES)}")

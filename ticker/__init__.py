"""ticker: a live market-data fanout server on trio.

The package is layered so a byte can be followed from where it comes in to where it
goes out: `ticker.venues` (native wire formats) -> `ticker.ingest` (normalization,
gaps, resync) -> `ticker.core` (consolidation, sequencing, delta codec, replay).
"""

__version__ = "0.1.0"

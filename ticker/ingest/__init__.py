"""Ingest: the venue-independent half of turning native venue messages into normalized
events: the contract every adapter implements (`contract`), the normalizer, per-symbol
books, gap detection and resync. The adapters themselves (one per wire format) live in
`ticker.venues`; the trio tasks that own feed connections in `ticker.server.venue_feed`.
Sans-I/O."""

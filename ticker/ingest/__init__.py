"""Ingest: venue adapters that turn native venue messages into normalized events,
detect venue sequence gaps and resync one symbol at a time. Sans-I/O; the trio shells
that own feed connections live elsewhere."""

"""The normalized market-data model shared by every layer: fixed-point numbers,
instruments, normalized events and their compact msgpack arrays (`event_codec`, used by
captures and by the publish protocol). Plain data only; no behaviour beyond validation."""

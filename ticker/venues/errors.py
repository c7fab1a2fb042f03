"""Errors raised by the venue wire codecs.

The hierarchy is one exception deep on purpose; adapters catch it, count the message as
malformed and go on, so nothing here ever escapes `VenueAdapter.on_message`.

    ValueError
     └── DecodeError    a native message that cannot be decoded (syntax, truncation,
                        checksum, length, unknown type, out-of-range field)
"""

from __future__ import annotations


class DecodeError(ValueError):
    """A native venue message that cannot be decoded; the text says why."""

"""Named publish tokens: who may push events into `/v1/publish`, and what each may publish.

Several are valid at once (rotation), each named (the name is logged, never the token)
and limited to topic patterns and, optionally, venues. The file holds each token's
SHA-256, so reading it gives no way in. Pure but for `load_publishers`' file read.
"""

from __future__ import annotations

import hashlib
import hmac
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from ticker.auth.grants import EVERYTHING, Grant, allows_topic, parse_grants
from ticker.errors import ConfigError, ProtocolError
from ticker.model.events import BookUpdate, NormalizedEvent, Quote, Trade

LEGACY_NAME: Final = "publish_token"
"""The name the single `publish_token` setting publishes under."""
MAX_PUBLISHERS: Final = 64


@dataclass(frozen=True, slots=True)
class Publisher:
    """One publish token: its name, the SHA-256 of the token, what it may publish."""

    name: str
    digest: bytes
    topics: tuple[Grant, ...] = EVERYTHING
    venues: frozenset[str] | None = None
    """Venues it may publish as (None: any)."""


def digest_of(token: str) -> bytes:
    """The SHA-256 of a token's UTF-8 bytes (what the file stores, in hex)."""
    return hashlib.sha256(token.encode("utf-8")).digest()


def match(publishers: tuple[Publisher, ...], presented: bytes | None) -> Publisher | None:
    """The publisher whose token is `presented` (the header's bytes), or None.

    Every digest is compared in constant time, and all of them are: how long it takes
    says nothing about which token, or how much of one, matched.
    """
    if presented is None:
        return None
    wanted = hashlib.sha256(presented).digest()
    found = None
    for publisher in publishers:
        if hmac.compare_digest(wanted, publisher.digest) and found is None:
            found = publisher
    return found


def input_topic(event: NormalizedEvent) -> str:
    """The topic an event feeds (`ticker.<symbol>` for venue statistics)."""
    if isinstance(event, BookUpdate):
        channel = "book"
    elif isinstance(event, Quote):
        channel = "quote"
    elif isinstance(event, Trade):
        channel = "trade"
    else:
        channel = "ticker"
    return f"{channel}.{event.symbol}"


def refusal(publisher: Publisher, event: NormalizedEvent) -> str | None:
    """Why `publisher` may not publish `event`, or None if it may."""
    if publisher.venues is not None and event.venue not in publisher.venues:
        return f"publisher {publisher.name} may not publish as venue {event.venue!r}"
    topic = input_topic(event)
    if not allows_topic(publisher.topics, topic):
        return f"publisher {publisher.name} may not publish {topic}"
    return None


def parse_publishers(document: dict[str, object], source: str) -> tuple[Publisher, ...]:
    """Publishers from a parsed TOML document:

        [publishers.replay-a]
        token_sha256 = "<64 hex digits>"
        topics = ["quote.*", "trade.BTC-USD"]   # optional, default everything
        venues = ["cbx"]                        # optional, default any

    Raises:
        ConfigError: anything else, naming the publisher (never a digest).
    """
    table = document.get("publishers")
    if not isinstance(table, dict) or not table:
        raise ConfigError(f"{source}: expected [publishers.<name>] tables")
    if len(table) > MAX_PUBLISHERS:
        raise ConfigError(f"{source}: more than {MAX_PUBLISHERS} publishers")
    publishers: list[Publisher] = []
    for name, entry in table.items():
        where = f"{source}: publisher {name!r}"
        if not isinstance(entry, dict) or set(entry) - {"token_sha256", "topics", "venues"}:
            raise ConfigError(f"{where}: keys are token_sha256, topics, venues")
        try:
            digest = bytes.fromhex(str(entry.get("token_sha256", "")))
        except ValueError:
            digest = b""
        if len(digest) != 32:
            raise ConfigError(f"{where}: token_sha256 must be 64 hex digits")
        try:
            topics = parse_grants(entry.get("topics", ["*.*"]))
        except ProtocolError as exc:
            raise ConfigError(f"{where}: {exc}") from None
        venues = entry.get("venues")
        if venues is not None and not (
            isinstance(venues, list) and venues and all(isinstance(v, str) for v in venues)
        ):
            raise ConfigError(f"{where}: venues must be a list of venue names")
        if any(p.digest == digest for p in publishers):
            raise ConfigError(f"{where}: the same token as another publisher")
        publishers.append(
            Publisher(name, digest, topics, None if venues is None else frozenset(venues))
        )
    return tuple(publishers)


def load_publishers(publish_token: str, tokens_file: str) -> tuple[Publisher, ...]:
    """Every publisher the settings name: the file's, and `publish_token` as one more
    (named `publish_token`, allowed everything) when it is set.

    Raises:
        ConfigError: the file cannot be read or parsed.
    """
    publishers: tuple[Publisher, ...] = ()
    if tokens_file:
        try:
            with Path(tokens_file).open("rb") as handle:
                document = tomllib.load(handle)
        except OSError as exc:
            message = f"cannot read publish_tokens_file {tokens_file}: {exc.strerror}"
            raise ConfigError(message) from None
        except tomllib.TOMLDecodeError as exc:
            message = f"publish_tokens_file {tokens_file} is not valid TOML: {exc}"
            raise ConfigError(message) from None
        publishers = parse_publishers(document, tokens_file)
    if publish_token:
        legacy = Publisher(LEGACY_NAME, digest_of(publish_token))
        if any(p.digest == legacy.digest for p in publishers):
            raise ConfigError("publish_token is also in publish_tokens_file")
        publishers = (*publishers, legacy)
    return publishers

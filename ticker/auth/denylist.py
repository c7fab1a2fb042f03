"""The deny list: token ids (`jti`) and subjects (`sub`) that are revoked.

A text file, one entry per line, `jti:<id>` or `sub:<subject>`; blank lines and `#`
comments are ignored. Parsing is pure and bounded; reading the file and noticing it
changed is the watcher's (`ticker.server.stream_auth`), which reloads it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from ticker.auth.principal import Principal
from ticker.errors import ConfigError

MAX_DENY_FILE_BYTES: Final = 4 * 1024 * 1024
"""A deny list larger than this is refused (the old one stays in force)."""


@dataclass(frozen=True, slots=True)
class DenyList:
    """Revoked token ids and subjects."""

    jtis: frozenset[str] = field(default_factory=frozenset)
    subjects: frozenset[str] = field(default_factory=frozenset)

    def denies(self, principal: Principal) -> bool:
        """Whether `principal` is revoked (an anonymous one never is)."""
        if principal.anonymous:
            return False
        if principal.subject in self.subjects:
            return True
        return principal.jti is not None and principal.jti in self.jtis

    def __len__(self) -> int:
        return len(self.jtis) + len(self.subjects)


def parse_deny_list(text: str, source: str = "deny list") -> DenyList:
    """Parse the deny list's text.

    Raises:
        ConfigError: a line that is neither `jti:<id>` nor `sub:<subject>`, naming it
            by number only (an entry may be sensitive).
    """
    jtis: set[str] = set()
    subjects: set[str] = set()
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        kind, colon, value = line.partition(":")
        value = value.strip()
        if not colon or not value or kind.strip() not in ("jti", "sub"):
            raise ConfigError(f"{source} line {number}: expected jti:<id> or sub:<subject>")
        (jtis if kind.strip() == "jti" else subjects).add(value)
    return DenyList(frozenset(jtis), frozenset(subjects))

"""The one configuration object: every buffer size, interval and limit with its default.

Frozen; the CLI flags map onto it (and, with the server, environment variables and a
TOML file). Validation happens here so a bad value fails at start-up with a clear
message, never deep inside a task.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from ticker.errors import ConfigError


@dataclass(frozen=True, slots=True)
class Config:
    """Settings of the pure core (the server adds its own in later layers)."""

    keyframe_interval: int = 100
    """A topic publishes a whole-state keyframe after this many deltas."""
    replay_max_messages: int = 100_000
    """The replay buffer keeps at most this many messages..."""
    replay_max_bytes: int = 64 * 1024 * 1024
    """...and at most this many bytes of encoded messages."""
    venue_rate_per_s: float = 20.0
    """Messages per second each simulated venue sends (embedded defaults)."""
    seed: int = 1
    """Seed of the venue simulators; the same seed gives the same market."""

    def __post_init__(self) -> None:
        for name in ("keyframe_interval", "replay_max_messages", "replay_max_bytes"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0 < self.venue_rate_per_s <= 1_000_000:
            raise ConfigError(f"venue_rate_per_s must be in (0, 1e6], got {self.venue_rate_per_s}")

    @classmethod
    def names(cls) -> list[str]:
        """Every setting's name, in declaration order."""
        return [f.name for f in fields(cls)]

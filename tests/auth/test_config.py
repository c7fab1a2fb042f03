"""The auth settings are validated at start-up with clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from ticker.config import Config
from ticker.errors import ConfigError
from ticker.server.stream_auth import build_gate

from .keyring import SECRET


@pytest.mark.parametrize(
    ("settings", "match"),
    [
        ({"auth": "sometimes"}, "auth must be one of"),
        ({"auth": "required"}, "exactly one of"),
        ({"auth": "optional", "auth_secret": SECRET, "auth_jwks_file": "j"}, "exactly one of"),
        ({"auth_algorithms": ("none",)}, "auth_algorithms"),
        ({"auth_algorithms": ()}, "auth_algorithms"),
        ({"auth_leeway_s": 301.0}, "auth_leeway_s"),
        ({"auth_leeway_s": -1.0}, "auth_leeway_s"),
        ({"auth_max_token_bytes": 100}, "auth_max_token_bytes"),
        ({"auth_deny_poll_s": 2.0}, "auth_deny_poll_s"),
        ({"auth_topics_claim": ""}, "auth_topics_claim"),
        ({"auth_anonymous_topics": ("quote",)}, "auth_anonymous_topics"),
    ],
)
def test_bad_auth_settings(settings: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        Config(**settings)  # type: ignore[arg-type]


def test_the_default_is_open() -> None:
    assert build_gate(Config()) is None


def test_the_gate_loads_its_keys_and_deny_list(tmp_path: Path) -> None:
    deny = tmp_path / "deny"
    deny.write_text("sub:mallory\n")
    gate = build_gate(Config(auth="required", auth_secret=SECRET, auth_deny_file=str(deny)))
    assert gate is not None and gate.deny.subjects == {"mallory"}
    with pytest.raises(ConfigError, match="cannot read"):
        build_gate(Config(auth="required", auth_secret=SECRET, auth_deny_file=str(deny) + "x"))
    with pytest.raises(ConfigError, match="at least 32"):
        build_gate(Config(auth="required", auth_secret="short"))
    secret_free = repr(Config(auth="required", auth_secret=SECRET))
    assert SECRET not in secret_free

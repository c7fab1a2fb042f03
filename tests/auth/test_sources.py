"""Where a token comes from, and the deny list's text."""

from __future__ import annotations

import pytest

from ticker.auth.denylist import parse_deny_list
from ticker.auth.principal import Principal, anonymous
from ticker.auth.sources import Presented, bearer, presented_token
from ticker.errors import ConfigError


def test_header_then_query_then_cookie() -> None:
    assert presented_token("Bearer a.b.c", "q", "ticker_token=c") == Presented("a.b.c", "header")
    assert presented_token("", "q", "ticker_token=c") == Presented("q", "query")
    assert presented_token("", "q", "ticker_token=c", allow_query=False) == Presented("c", "cookie")
    assert presented_token("", None, "other=1; ticker_token=c") == Presented("c", "cookie")
    assert presented_token("", None, "ticker_token=c", cookie_name="") is None
    assert presented_token("Basic dXNlcjpwYXNz", None, "") is None
    assert presented_token("", "", 'bad"cookie') is None


def test_bearer_parsing() -> None:
    assert bearer("bearer   tok ") == "tok"
    assert bearer("Bearer") is None
    assert bearer("Token tok") is None


def test_deny_list() -> None:
    deny = parse_deny_list("# revoked\njti: t-1\n\nsub:mallory\n")
    assert deny.denies(Principal("bob", "t-1", None, ()))
    assert deny.denies(Principal("mallory", None, None, ()))
    assert not deny.denies(Principal("bob", "t-2", None, ()))
    assert not deny.denies(anonymous())
    assert len(deny) == 2
    with pytest.raises(ConfigError, match="line 2") as caught:
        parse_deny_list("jti:a\nsecret-value\n")
    assert "secret-value" not in str(caught.value)

"""Where a request's token comes from: `Authorization: Bearer`, `?token=`, or a cookie.

Pure: the caller passes the header values and the query parameter; the header wins over
the query, the query over the cookie. The query form (for EventSource, which cannot set
headers) is weaker, since URLs reach proxy logs; it can be turned off. Never logs.
"""

from __future__ import annotations

from dataclasses import dataclass
from http.cookies import CookieError, SimpleCookie
from typing import Final

QUERY_PARAMETER: Final = "token"
DEFAULT_COOKIE: Final = "ticker_token"


@dataclass(frozen=True, slots=True)
class Presented:
    """The token a request carries and where it came from (`header`, `query`, `cookie`)."""

    token: str
    source: str


def bearer(authorization: str) -> str | None:
    """The token of an `Authorization: Bearer <token>` header value, or None."""
    # Only ASCII spaces and tabs are trimmed (the value is latin-1 text).
    scheme, _, token = authorization.strip(" \t").partition(" ")
    token = token.strip(" \t")
    if scheme.lower() != "bearer" or not token:
        return None
    return token


def cookie_value(cookie_header: str, name: str) -> str | None:
    """The value of cookie `name` in a `Cookie` header, or None."""
    if not cookie_header or not name:
        return None
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(cookie_header)
    except CookieError:
        return None
    morsel = jar.get(name)
    return morsel.value if morsel is not None and morsel.value else None


def presented_token(
    authorization: str,
    query_token: str | None,
    cookie_header: str,
    *,
    allow_query: bool = True,
    cookie_name: str = DEFAULT_COOKIE,
) -> Presented | None:
    """The token a request presents, or None if it carries none.

    Args:
        authorization: the `Authorization` header ("" if absent).
        query_token: the `token` query parameter (None if absent).
        cookie_header: the `Cookie` header ("" if absent).
        allow_query: whether `?token=` is honoured.
        cookie_name: the cookie holding a token ("" turns cookies off).
    """
    token = bearer(authorization)
    if token is not None:
        return Presented(token, "header")
    if allow_query and query_token:
        return Presented(query_token, "query")
    token = cookie_value(cookie_header, cookie_name)
    if token is not None:
        return Presented(token, "cookie")
    return None

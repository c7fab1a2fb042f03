"""The dashboard page at `/`: its files, and the headers that keep it self-contained.

The page (HTML, script, styles, icon) ships as package data in `static/` and loads
nothing from anywhere else: a Content-Security-Policy allows this origin only, plus the
stream origin a page may be pointed at with `?stream=http://host:port`, and only on the
page's own host (so a link cannot aim the page at someone else's server). Owns how the
page is served; must not render market data (the page's script does, in the browser).
"""

from __future__ import annotations

import re
from importlib import resources
from typing import Final
from urllib.parse import urlsplit

STATIC_PACKAGE: Final = "ticker.app"
STATIC_FOLDER: Final = "static"
PAGE: Final = "index.html"
STATIC_FILES: Final = (
    "index.html",
    "dashboard.js",
    "board.js",
    "symbol.js",
    "dashboard.css",
    "favicon.svg",
)
"""Every file the page is made of, each served from `/static/`."""
CLIENT_FILES: Final = (
    "client/index.js",
    "client/feed.js",
    "client/tracker.js",
    "client/wire.js",
    "client/msgpack.js",
    "client/nanos.js",
    "client/checksum.js",
    "client/backoff.js",
    "client/zstd.js",
)
"""The JavaScript client the page runs, served from `/static/client/`: `static/client` is
a symlink to clients/js/src (one source; a wheel carries copies of the files)."""

_ORIGIN: Final = re.compile(r"^(https?)://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(?::(\d{1,5}))?/?$")


def page_html() -> bytes:
    """The dashboard's HTML, read from package data.

    Raises:
        FileNotFoundError: the package was installed without its static files.
    """
    return resources.files(STATIC_PACKAGE).joinpath(STATIC_FOLDER, PAGE).read_bytes()


def _hostname(host_header: str) -> str:
    """The host name of a `Host` header (`127.0.0.1:8080` -> `127.0.0.1`), lower-case."""
    return (urlsplit(f"//{host_header}").hostname or "").lower()


def stream_origin(value: str | None, host_header: str) -> str | None:
    """The origin `?stream=` names, if it is a plain http(s) origin on the page's own host.

    Returns None (the page streams from its own origin) for anything else.
    """
    if not value:
        return None
    match = _ORIGIN.match(value.strip())
    if match is None:
        return None
    scheme, host, port = match.groups()
    if port is not None and not 0 < int(port) < 65536:
        return None
    if host.lower().strip("[]") != _hostname(host_header):
        return None
    return f"{scheme}://{host.lower()}" + (f":{int(port)}" if port else "")


def content_security_policy(extra_connect_origin: str | None) -> str:
    """A policy under which the page can load and connect to nothing but its own origin
    (and `extra_connect_origin` for the stream, when given)."""
    connect = "'self'" + (f" {extra_connect_origin}" if extra_connect_origin else "")
    return (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        f"connect-src {connect}; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )

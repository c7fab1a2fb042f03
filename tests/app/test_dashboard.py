"""GET / and /static/*: the dashboard page, self-contained, under a strict policy."""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

import pytest
from quart.typing import TestClientProtocol as AppClient

from ticker.app.dashboard import (
    CLIENT_FILES,
    STATIC_FILES,
    STATIC_FOLDER,
    STATIC_PACKAGE,
    content_security_policy,
    stream_origin,
)

CONTENT_TYPES = {
    "index.html": "text/html",
    "dashboard.js": "text/javascript",
    "board.js": "text/javascript",
    "symbol.js": "text/javascript",
    "dashboard.css": "text/css",
    "favicon.svg": "image/svg+xml",
}
CLIENT_SOURCE = Path(__file__).resolve().parents[2] / "clients" / "js" / "src"
SVG_NAMESPACE = "http://www.w3.org/2000/svg"
"""Namespace names look like URLs but are never fetched."""


def static_text(name: str) -> str:
    return resources.files(STATIC_PACKAGE).joinpath(STATIC_FOLDER, name).read_text("utf-8")


async def test_page_is_served_with_a_self_only_policy(client: AppClient) -> None:
    response = await client.get("/")
    assert response.status_code == 200
    assert response.content_type == "text/html; charset=utf-8"
    html = await response.get_data(as_text=True)
    assert html == static_text("index.html")
    assert '<script type="module" src="/static/dashboard.js"></script>' in html
    policy = response.headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy
    assert "script-src 'self'" in policy
    assert "connect-src 'self';" in policy
    assert response.headers["X-Content-Type-Options"] == "nosniff"


async def test_a_same_host_stream_origin_is_allowed_to_connect(client: AppClient) -> None:
    # The test client's requests carry `Host: localhost`.
    response = await client.get("/?stream=http://localhost:8123")
    assert (
        "connect-src 'self' http://localhost:8123;" in response.headers["Content-Security-Policy"]
    )
    response = await client.get("/?stream=http://evil.example:8123")
    assert "connect-src 'self';" in response.headers["Content-Security-Policy"]


@pytest.mark.parametrize(
    ("value", "host", "expected"),
    [
        ("http://127.0.0.1:9000", "127.0.0.1:8080", "http://127.0.0.1:9000"),
        ("https://Ticker.Example:443/", "ticker.example", "https://ticker.example:443"),
        ("http://[::1]:9000", "[::1]:8080", "http://[::1]:9000"),
        ("http://127.0.0.1", "127.0.0.1:8080", "http://127.0.0.1"),
        ("http://evil.example:9000", "127.0.0.1:8080", None),
        ("http://127.0.0.1:9000/path", "127.0.0.1:8080", None),
        ("http://127.0.0.1:99999", "127.0.0.1:8080", None),
        ("javascript:alert(1)", "127.0.0.1:8080", None),
        ("http://127.0.0.1:9000\r\nX-Evil: 1", "127.0.0.1:8080", None),
        ("//127.0.0.1:9000", "127.0.0.1:8080", None),
        ("", "127.0.0.1:8080", None),
        (None, "127.0.0.1:8080", None),
    ],
)
def test_stream_origin_accepts_only_a_plain_origin_on_the_page_host(
    value: str | None, host: str, expected: str | None
) -> None:
    assert stream_origin(value, host) == expected


def test_policy_names_the_extra_origin_only_in_connect_src() -> None:
    policy = content_security_policy("http://127.0.0.1:9000")
    directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))
    assert directives["connect-src"] == "'self' http://127.0.0.1:9000"
    assert all("9000" not in v for k, v in directives.items() if k != "connect-src")


@pytest.mark.parametrize("name", STATIC_FILES)
async def test_static_files_are_served_from_package_data(client: AppClient, name: str) -> None:
    response = await client.get(f"/static/{name}")
    assert response.status_code == 200
    assert response.content_type.split(";")[0] == CONTENT_TYPES[name]
    assert await response.get_data(as_text=True) == static_text(name)
    assert "max-age" not in response.headers.get("Cache-Control", "")  # revalidated


@pytest.mark.parametrize("name", STATIC_FILES)
def test_the_page_loads_nothing_from_elsewhere(name: str) -> None:
    text = static_text(name)
    urls = set(re.findall(r"[a-z]+://[^\s\"')]+", text)) - {SVG_NAMESPACE}
    assert not urls, urls
    for reference in re.findall(r"""(?:src|href)=["']([^"']+)""", text):
        assert reference.startswith("/static/"), reference
    for reference in re.findall(r"""url\(["']?([^"')]+)""", text):
        assert reference.startswith("/static/"), reference
    assert "@import" not in text


async def test_unknown_static_file_is_404(client: AppClient) -> None:
    response = await client.get("/static/../application.py")
    assert response.status_code == 404


@pytest.mark.parametrize("name", CLIENT_FILES)
async def test_the_javascript_client_is_served_from_its_one_source(
    client: AppClient, name: str
) -> None:
    # static/client is a symlink to clients/js/src: the page runs the package's files.
    response = await client.get(f"/static/{name}")
    assert response.status_code == 200
    assert response.content_type.split(";")[0] == "text/javascript"
    source = (CLIENT_SOURCE / name.removeprefix("client/")).read_text("utf-8")
    assert await response.get_data(as_text=True) == static_text(name) == source


def test_every_client_module_is_served() -> None:
    # A module added to clients/js/src and imported by the page must be listed (and so
    # tested as served and packaged).
    assert sorted(CLIENT_FILES) == sorted(f"client/{p.name}" for p in CLIENT_SOURCE.glob("*.js"))

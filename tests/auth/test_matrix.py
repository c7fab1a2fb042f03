"""The token matrix: every kind of bad token on every door (WebSocket, SSE, snapshot,
publish; header, query, cookie) gets its documented status and not one data byte, and
is never logged. A valid token on the same doors is the control that shows the harness
sees success."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzz.budget import RANDOM
from ticker.config import Config

from .keyring import (
    AUDIENCE,
    ISSUER,
    NOW,
    claims,
    ec_pair,
    hs_confused,
    hs_token,
    other_rsa_pair,
    rsa_pair,
    signed,
    tamper_payload,
    tamper_signature,
    unsigned,
)
from .servers import AUTH_CONFIG, publish, quote, request, start_auth_server, upgrade_headers

RSA = rsa_pair()
EC = ec_pair()

TOKENS: dict[str, Callable[[], str]] = {
    "valid": lambda: signed(RSA, claims()),
    "valid_ec": lambda: signed(EC, claims()),
    "valid_publisher": lambda: signed(EC, claims(publish=["quote.*"])),
    "tampered_into_publisher": lambda: tamper_payload(signed(RSA, claims()), publish=["*.*"]),
    "expired_publisher": lambda: signed(RSA, claims(exp=NOW - 1, publish=["*.*"])),
    "expired": lambda: signed(RSA, claims(exp=NOW - 1)),
    "not_yet_valid": lambda: signed(EC, claims(nbf=NOW + 60)),
    "wrong_key": lambda: signed(other_rsa_pair(), claims()),
    "wrong_audience": lambda: signed(RSA, claims(aud="someone-else")),
    "wrong_issuer": lambda: signed(EC, claims(iss="https://evil.test")),
    "alg_none": lambda: unsigned(claims()),
    "hs_rs_confusion": lambda: hs_confused(RSA, claims()),
    "hs_with_a_guess": lambda: hs_token(claims(), secret="s" * 40),
    "tampered_payload": lambda: tamper_payload(signed(RSA, claims()), topics=["*.*"]),
    "tampered_signature": lambda: tamper_signature(signed(EC, claims())),
    "oversized": lambda: signed(RSA, claims(pad="x" * 1600)),
    "no_sub": lambda: signed(RSA, claims(sub=None)),
}
VALID = {"valid", "valid_ec", "valid_publisher"}

DOORS = [
    "ws_header",
    "ws_query",
    "ws_cookie",
    "sse_header",
    "sse_query",
    "sse_cookie",
    "snapshot_header",
    "snapshot_query",
    "snapshot_cookie",
    "publish_header",
]

garbage = st.text(
    st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters='&#%+;,\\"'),
    max_size=200,
)


def matrix_config(tmp_path: Path) -> Config:
    keys = tmp_path / "keys.pem"
    keys.write_bytes(RSA.public_pem() + EC.public_pem())
    return replace(
        AUTH_CONFIG,
        auth_secret="",
        auth_public_key_file=str(keys),
        # HS256 allowed but no shared secret: a token signed with the public key's bytes
        # must still find no key.
        auth_algorithms=("HS256", "RS256", "ES256"),
        auth_audience=AUDIENCE,
        auth_issuer=ISSUER,
        auth_max_token_bytes=2048,
    )


def expected_status(kind: str, door: str) -> int:
    if door.startswith("publish"):
        # Only a valid client token with a publish claim is a publisher.
        return 101 if kind == "valid_publisher" else 401
    if door == "ws_cookie":
        return 401  # never by cookie: cross-site WebSocket hijacking
    if kind in VALID:
        return {"ws": 101, "sse": 200, "snapshot": 200}[door.split("_")[0]]
    return 401


def plan(door: str, token: str) -> tuple[str, dict[str, str]]:
    kind, _, where = door.partition("_")
    target = {
        "ws": "/v1/ws",
        "sse": "/v1/sse?topics=quote.*",
        "snapshot": "/v1/snapshot?topics=quote.*",
        "publish": "/v1/publish",
    }[kind]
    headers: dict[str, str] = {}
    if kind == "ws":
        headers = upgrade_headers()
    if kind == "publish":
        headers = upgrade_headers("ticker.publish.v1")
    if where == "header":
        headers["Authorization"] = f"Bearer {token}"
    elif where == "query":
        target += ("&" if "?" in target else "?") + f"token={token}"
    else:
        headers["Cookie"] = f"ticker_token={token}"
    return target, headers


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@settings(
    max_examples=60,
    deadline=None,
    derandomize=not RANDOM,  # reproducible in CI, like tests/fuzz
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    kind=st.sampled_from([*TOKENS, "garbage"]),
    doors=st.lists(st.sampled_from(DOORS), min_size=1, max_size=3, unique=True),
    noise=garbage,
)
async def test_no_unauthorized_request_gets_a_data_byte(
    tmp_path: Path, kind: str, doors: list[str], noise: str
) -> None:
    token = noise if kind == "garbage" else TOKENS[kind]()
    records = Records()
    root = logging.getLogger()
    root.addHandler(records)
    old_level = root.level
    root.setLevel(logging.DEBUG)
    try:
        with trio.fail_after(30):
            async with trio.open_nursery() as nursery:
                server = await start_auth_server(nursery, matrix_config(tmp_path))
                await publish(server, quote(1))
                for door in doors:
                    await check_door(server.port, kind, door, token)
                nursery.cancel_scope.cancel()
    finally:
        root.removeHandler(records)
        root.setLevel(old_level)
    if len(token) >= 8:
        assert not any(token in line for line in records.lines), kind


async def check_door(port: int, kind: str, door: str, token: str) -> None:
    target, headers = plan(door, token)
    want = expected_status(kind, door)
    response, stream = await request(port, target, headers, read_body=want >= 400)
    try:
        status = response.status
        # A garbage token that decodes to nothing is no token: still 401 (required).
        assert status == want, (kind, door, response.head)
        if status >= 400:
            head = response.head.lower()
            length = int(head.split(b"content-length: ")[1].split(b"\r\n")[0])
            # Exactly the error document: nothing streamed after it.
            assert len(response.body) == length, (kind, door)
            assert b"event:" not in response.body and b'"snapshots"' not in response.body
            assert b"www-authenticate: bearer" in head
            if kind != "garbage" and len(token) >= 8:
                assert token.encode() not in response.body
        elif door.startswith("sse"):
            body = response.body
            while b"event: snapshot" not in body:
                body += await stream.receive_some(65536)
        elif door.startswith("snapshot"):
            assert b'"snapshots":[' in response.body or response.body == b""
    finally:
        await stream.aclose()


@pytest.mark.parametrize("kind", sorted(TOKENS))
async def test_every_kind_on_every_door(tmp_path: Path, kind: str) -> None:
    """The whole matrix once, deterministically (the property above samples it)."""
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            server = await start_auth_server(nursery, matrix_config(tmp_path))
            await publish(server, quote(1))
            for door in DOORS:
                await check_door(server.port, kind, door, TOKENS[kind]())
            nursery.cancel_scope.cancel()

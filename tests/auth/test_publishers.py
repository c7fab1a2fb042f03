"""Named publish tokens: several at once (rotation), each limited to topics and venues;
the single `publish_token` is one of them."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from functools import partial
from pathlib import Path

import pytest
import trio

from ticker.auth.grants import EVERYTHING
from ticker.auth.publishers import (
    LEGACY_NAME,
    Publisher,
    digest_of,
    load_publishers,
    match,
    parse_publishers,
    refusal,
)
from ticker.capture.errors import TargetError
from ticker.capture.publisher import open_publisher
from ticker.config import Config
from ticker.errors import ConfigError
from ticker.model.events import BookUpdate, Quote, TakerSide, TickerStats, Trade
from ticker.server.process import ServerHandle, serve

FEED_A = "feed-a-token-0123456789abcdef"
FEED_B = "feed-b-token-0123456789abcdef"
LEGACY = "legacy-publish-token-0123456789"
TS = 1_704_067_200_000_000_000


def sha(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


TOKENS_FILE = f"""
[publishers.quotes-a]
token_sha256 = "{sha(FEED_A)}"
topics = ["quote.*", "book.BTC-USD"]
venues = ["cbx", "itx"]

[publishers.trades-b]
token_sha256 = "{sha(FEED_B)}"
topics = ["trade.*"]
"""


def test_match_and_refusal() -> None:
    publishers = parse_publishers(
        {
            "publishers": {
                "a": {"token_sha256": sha(FEED_A), "topics": ["quote.*"], "venues": ["cbx"]}
            }
        },
        "t",
    )
    (a,) = publishers
    assert match(publishers, FEED_A.encode()) is a
    assert match(publishers, FEED_B.encode()) is None
    assert match(publishers, None) is None
    assert refusal(a, Quote("cbx", "BTC-USD", 1, 1, 1, 2, 1)) is None
    assert refusal(a, Quote("fxa", "BTC-USD", 1, 1, 1, 2, 1)) == (
        "publisher a may not publish as venue 'fxa'"
    )
    assert refusal(a, Trade("cbx", "BTC-USD", 1, 1, 1, TakerSide.BUY, "x")) == (
        "publisher a may not publish trade.BTC-USD"
    )
    assert refusal(a, BookUpdate("cbx", "BTC-USD", 1, (), (), True)) is not None
    stats = TickerStats("cbx", "BTC-USD", 1, 1, 1, 1, 1, 1, None)
    assert refusal(Publisher("all", b"x" * 32, EVERYTHING), stats) is None


@pytest.mark.parametrize(
    ("document", "match_text"),
    [
        ({}, "expected"),
        ({"publishers": {"a": {"token_sha256": "00"}}}, "64 hex"),
        ({"publishers": {"a": {"token_sha256": "zz" * 32}}}, "64 hex"),
        ({"publishers": {"a": {"token_sha256": sha("x"), "extra": 1}}}, "keys are"),
        ({"publishers": {"a": {"token_sha256": sha("x"), "topics": ["nope"]}}}, "entitlement"),
        ({"publishers": {"a": {"token_sha256": sha("x"), "venues": "cbx"}}}, "venues"),
        (
            {"publishers": {"a": {"token_sha256": sha("x")}, "b": {"token_sha256": sha("x")}}},
            "same token",
        ),
    ],
)
def test_bad_publisher_files(document: dict[str, object], match_text: str) -> None:
    with pytest.raises(ConfigError, match=match_text) as caught:
        parse_publishers(document, "p.toml")
    assert sha("x") not in str(caught.value)


def test_the_single_token_is_a_named_publisher(tmp_path: Path) -> None:
    (legacy,) = load_publishers(LEGACY, "")
    assert legacy.name == LEGACY_NAME and legacy.digest == digest_of(LEGACY)
    path = tmp_path / "p.toml"
    path.write_text(TOKENS_FILE)
    assert [p.name for p in load_publishers(LEGACY, str(path))] == [
        "quotes-a",
        "trades-b",
        LEGACY_NAME,
    ]
    with pytest.raises(ConfigError, match="also in"):
        load_publishers(FEED_A, str(path))
    with pytest.raises(ConfigError, match="cannot read"):
        load_publishers("", str(tmp_path / "missing"))
    path.write_text("[")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_publishers("", str(path))


async def start(nursery: trio.Nursery, config: Config) -> ServerHandle:
    handle: ServerHandle = await nursery.start(partial(serve, config, run_venues=False, epoch=7))
    return handle


async def test_each_publisher_publishes_only_its_scope(tmp_path: Path) -> None:
    path = tmp_path / "publishers.toml"
    path.write_text(TOKENS_FILE)
    config = Config(port=0, heartbeat_s=3600, publish_token=LEGACY, publish_tokens_file=str(path))
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            server = await start(nursery, config)
            url = f"ws://127.0.0.1:{server.port}"
            async with open_publisher(url, FEED_A) as feed_a:
                await feed_a.publish([Quote("cbx", "BTC-USD", TS, 100, 1, 200, 1)])
                await feed_a.publish([Trade("cbx", "BTC-USD", TS + 1, 100, 1, TakerSide.BUY, "1")])
                await feed_a.publish([Quote("fxa", "BTC-USD", TS + 2, 100, 1, 200, 1)])
                await feed_a.drain()
                counts = feed_a.counts
            assert counts.batches_acked == 1
            assert counts.reasons == [
                "batch 2: event 0: publisher quotes-a may not publish trade.BTC-USD",
                "batch 3: event 0: publisher quotes-a may not publish as venue 'fxa'",
            ]
            async with open_publisher(url, FEED_B) as feed_b:
                await feed_b.publish([Trade("fxa", "ETH-USD", TS + 3, 100, 1, TakerSide.BUY, "2")])
                await feed_b.drain()
                assert feed_b.counts.batches_acked == 1
            async with open_publisher(url, LEGACY) as legacy:  # the old single token
                await legacy.publish([Trade("itx", "ETH-USD", TS + 4, 100, 1, TakerSide.SELL, "3")])
                await legacy.drain()
                assert legacy.counts.batches_acked == 1
            with pytest.raises(TargetError, match="401"):
                async with open_publisher(url, "retired-token-0123456789"):
                    pass
            nursery.cancel_scope.cancel()


async def test_no_publisher_configured_is_403() -> None:
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            server = await start(nursery, replace(Config(port=0), publish_token=""))
            with pytest.raises(TargetError, match="403"):
                async with open_publisher(f"ws://127.0.0.1:{server.port}", FEED_A):
                    pass
            nursery.cancel_scope.cancel()


async def test_a_client_token_with_a_publish_claim_publishes_within_it(tmp_path: Path) -> None:
    from .keyring import claims, hs_token
    from .servers import AUTH_CONFIG, gate_of, start_auth_server

    deny = tmp_path / "deny"
    deny.write_text("")
    config = replace(AUTH_CONFIG, auth_deny_file=str(deny), auth_deny_poll_s=0.05)
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            server = await start_auth_server(nursery, config)
            gate = gate_of(server)
            url = f"ws://127.0.0.1:{server.port}"
            token = hs_token(claims(exp=gate.clock() + 3600, publish=["quote.*"]))
            async with open_publisher(url, token) as feed:
                await feed.publish([Quote("cbx", "BTC-USD", TS, 100, 1, 200, 1)])
                await feed.publish([Trade("cbx", "BTC-USD", TS + 1, 100, 1, TakerSide.BUY, "1")])
                await feed.drain()
                assert feed.counts.batches_acked == 1
                assert feed.counts.reasons == [
                    "batch 2: event 0: publisher sub:alice may not publish trade.BTC-USD"
                ]
            # A client token without a publish claim is no publisher.
            with pytest.raises(TargetError, match="401"):
                async with open_publisher(url, hs_token(claims(exp=gate.clock() + 60))):
                    pass
            # Expired or revoked: the next batch closes the connection, unpublished.
            short = hs_token(claims(exp=gate.clock() + 0.5, publish=["quote.*"], jti="p-1"))
            with pytest.raises(TargetError, match="token expired"):
                async with open_publisher(url, short) as feed:
                    await trio.sleep(0.7)
                    await feed.publish([Quote("cbx", "BTC-USD", TS + 2, 100, 1, 200, 1)])
                    await feed.drain()
            revoked = hs_token(claims(exp=gate.clock() + 60, publish=["quote.*"], jti="p-2"))
            with pytest.raises(TargetError, match="token revoked"):
                async with open_publisher(url, revoked) as feed:
                    deny.write_text("jti:p-2\n")
                    with trio.fail_after(10):
                        while "p-2" not in gate.deny.jtis:  # noqa: ASYNC110
                            await trio.sleep(0.02)
                    await feed.publish([Quote("cbx", "BTC-USD", TS + 3, 100, 1, 200, 1)])
                    await feed.drain()
            assert server.context.stats.ingest_events == 1
            nursery.cancel_scope.cancel()


async def test_publish_tokens_rotate_without_a_restart(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "publishers.toml"
    path.write_text(TOKENS_FILE)
    config = Config(port=0, heartbeat_s=3600, publish_tokens_file=str(path), auth_deny_poll_s=0.05)
    feed_c = "feed-c-token-0123456789abcdef"
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            server = await start(nursery, config)
            url = f"ws://127.0.0.1:{server.port}"
            async with open_publisher(url, FEED_A) as old:
                await old.publish([Quote("cbx", "BTC-USD", TS, 100, 1, 200, 1)])
                await old.drain()
                # Rotate: the file now names the new token and no longer the old one.
                path.write_text(
                    TOKENS_FILE.replace(sha(FEED_A), sha(feed_c)).replace("quotes-a", "quotes-c")
                )
                with trio.fail_after(10):
                    while server.context.publishers[0].name != "quotes-c":  # noqa: ASYNC110
                        await trio.sleep(0.02)
                async with open_publisher(url, feed_c) as new:
                    await new.publish([Quote("cbx", "BTC-USD", TS + 1, 101, 1, 200, 1)])
                    await new.drain()
                    assert new.counts.batches_acked == 1
                with pytest.raises(TargetError, match="publish token removed"):
                    await old.publish([Quote("cbx", "BTC-USD", TS + 2, 102, 1, 200, 1)])
                    await old.drain()
            with pytest.raises(TargetError, match="401"):
                async with open_publisher(url, FEED_A):
                    pass
            # A broken file keeps the tokens in force.
            path.write_text("[publishers.x]\ntoken_sha256 = 'short'\n")
            with trio.fail_after(10):
                while "publish tokens not reloaded" not in caplog.text:  # noqa: ASYNC110
                    await trio.sleep(0.02)
            assert "short" not in caplog.text
            assert [p.name for p in server.context.publishers] == ["quotes-c", "trades-b"]
            assert server.context.stats.ingest_events == 2
            nursery.cancel_scope.cancel()

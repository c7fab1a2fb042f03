"""The Python client and `ticker tail` with a token and a refresh callback."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import trio

from ticker.client import FeedConfigError, FeedRejected, open_feed
from ticker.client.credentials import refresh_delay_s, token_expiry
from ticker.client.endings import EndingKind, ending_from_close, ending_from_stream_end
from ticker.server.process import ServerHandle
from ticker.tail import tail_credentials

from .keyring import claims, hs_token
from .servers import gate_of, publish, quote, start_auth_server


def real_time_token(lifetime_s: float, **overrides: object) -> str:
    return hs_token(claims(exp=time.time() + lifetime_s, nbf=None, **overrides))


async def real_clock_server(nursery: trio.Nursery) -> ServerHandle:
    # The client reads exp against its own wall clock: the server must share it here.
    server = await start_auth_server(nursery)
    gate_of(server).clock = time.time
    await publish(server, quote(1))
    return server


def test_expiry_and_delay() -> None:
    token = hs_token(claims(exp=1000.0))
    assert token_expiry(token) == 1000.0
    assert refresh_delay_s(token, 900.0, 30.0) == 70.0
    assert refresh_delay_s(token, 999.0, 30.0) == 1.0  # never a busy loop
    assert token_expiry("a.b") is None and token_expiry("a.!!!.c") is None
    assert refresh_delay_s(hs_token({"sub": "x"}), 0, 30) is None


def test_auth_endings() -> None:
    assert ending_from_close(4401, "token expired; last=7-3").kind is EndingKind.TOKEN_EXPIRED
    revoked = ending_from_close(4403, "token revoked; last=7-3")
    assert revoked.kind is EndingKind.REJECTED and isinstance(revoked.error, FeedRejected)
    assert ending_from_stream_end("token_expired").kind is EndingKind.TOKEN_EXPIRED
    assert ending_from_stream_end("revoked").kind is EndingKind.REJECTED


async def test_a_refresh_callback_keeps_a_websocket_feed_going(nursery: trio.Nursery) -> None:
    server = await real_clock_server(nursery)
    tokens: list[str] = []

    async def refresh() -> str:
        tokens.append(real_time_token(3600))
        return tokens[-1]

    url = f"ws://127.0.0.1:{server.port}"
    with trio.fail_after(30):
        async with open_feed(
            url, ["quote.*"], token=real_time_token(2.0), refresh=refresh, refresh_before_s=1.5
        ) as feed:
            await feed.__anext__()  # the snapshot
            await trio.sleep(2.5)  # past the first token's exp
            await publish(server, quote(2))
            update = await feed.__anext__()
            assert update.topic == "quote.BTC-USD"
            assert tokens and feed.credentials.token == tokens[-1]
            assert server.context.stats.ends["token_expired"] == 0
            assert feed.stats.endings["token_expired"] == 0


async def test_sse_resumes_with_the_new_token_after_expiry(nursery: trio.Nursery) -> None:
    server = await real_clock_server(nursery)

    async def refresh() -> str:
        return real_time_token(3600)

    # refresh_before_s 0: the refresh comes only after the stream ended at exp.
    url = f"http://127.0.0.1:{server.port}"
    with trio.fail_after(30):
        async with open_feed(
            url, ["quote.*"], token=real_time_token(1.0), refresh=refresh, refresh_before_s=0
        ) as feed:
            await feed.__anext__()
            while feed.stats.endings["token_expired"] == 0:  # noqa: ASYNC110
                await trio.sleep(0.05)
            await publish(server, quote(2))
            update = await feed.__anext__()
            assert update.topic == "quote.BTC-USD" and update.seq == 2  # resumed, no loss


async def test_without_a_refresh_an_expired_token_ends_the_feed(nursery: trio.Nursery) -> None:
    server = await real_clock_server(nursery)
    with trio.fail_after(30):
        async with open_feed(
            f"ws://127.0.0.1:{server.port}", ["quote.*"], token=real_time_token(1.0)
        ) as feed:
            with pytest.raises(FeedRejected, match="no refresh callback") as caught:
                async for _ in feed:
                    pass
            assert caught.value.code == 4401


async def test_a_missing_token_is_rejected(nursery: trio.Nursery) -> None:
    server = await real_clock_server(nursery)
    with trio.fail_after(30):
        async with open_feed(f"ws://127.0.0.1:{server.port}", ["quote.*"]) as feed:
            with pytest.raises(FeedRejected) as caught:
                await feed.__anext__()
            assert caught.value.code == 401


async def test_open_feed_checks_its_token_settings() -> None:
    async def refresh() -> str:
        return "t"

    with pytest.raises(FeedConfigError, match="first token"):
        async with open_feed("ws://127.0.0.1:1", ["quote.*"], refresh=refresh):
            pass


async def test_tail_reads_its_token_file_again_to_refresh(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text(" first\n")
    token, refresh = tail_credentials(str(path), {"TICKER_TOKEN": "ignored"})
    assert token == "first" and refresh is not None
    path.write_text("second")
    assert await refresh() == "second"
    assert tail_credentials(None, {"TICKER_TOKEN": "env"}) == ("env", None)
    assert tail_credentials(None, {}) == (None, None)
    path.write_text("")
    with pytest.raises(FeedConfigError, match="empty"):
        tail_credentials(str(path), {})


@pytest.mark.parametrize("scheme", ["ws", "http"])
async def test_a_pattern_outside_the_entitlements_is_reported_and_the_rest_stream(
    nursery: trio.Nursery, scheme: str
) -> None:
    """`error` 4403 naming `trade.*` does not end the feed: the quotes come, in the same
    unit as the refusal or after it, and the feed says which patterns were refused."""
    server = await real_clock_server(nursery)
    url = f"{scheme}://127.0.0.1:{server.port}"
    with trio.fail_after(30):
        async with open_feed(url, ["quote.*", "trade.*"], token=real_time_token(3600)) as feed:
            update = await feed.__anext__()
            assert update.topic == "quote.BTC-USD"
            await publish(server, quote(2))
            assert (await feed.__anext__()).seq == update.seq + 1
            assert feed.forbidden == {"trade.*"}
            assert feed.stats.forbidden == 1
            assert feed.error is None


async def test_a_feed_with_every_pattern_refused_stops_rejected(nursery: trio.Nursery) -> None:
    # (SSE answers such a request with HTTP 403: FeedRejected as for any refusal.)
    server = await real_clock_server(nursery)
    url = f"ws://127.0.0.1:{server.port}"
    with trio.fail_after(30):
        async with open_feed(url, ["trade.*"], token=real_time_token(3600)) as feed:
            with pytest.raises(FeedRejected, match=r"not entitled to: trade\.\*"):
                await feed.__anext__()
    assert feed.forbidden == {"trade.*"}

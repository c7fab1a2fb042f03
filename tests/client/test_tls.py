"""wss:// and https:// with a private CA (a TLS front relays to a plain server)."""

from __future__ import annotations

import contextlib
import random
import ssl
from functools import partial
from pathlib import Path

import pytest
import trio
import trio.testing
import trustme

from tests.client.conftest import (
    ALL_TOPICS,
    Collector,
    assert_state_equals_server,
    publish,
    settle,
    start_server,
)
from tests.client.proxy import Proxy
from ticker.client import FeedConfigError, FeedTlsError, open_feed
from ticker.client.endings import ConnectionEnded, EndingKind
from ticker.client.endpoint import Endpoint
from ticker.client.websocket import connect_websocket

pytestmark = pytest.mark.usefixtures("deadline")


def tls_front(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    return context


@pytest.mark.parametrize(("scheme", "compression"), [("wss", "zstd"), ("https", None)])
async def test_a_feed_trusts_a_private_ca_from_a_file(
    nursery: trio.Nursery, tmp_path: Path, scheme: str, compression: str | None
) -> None:
    ca = trustme.CA()
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    server = await start_server(nursery)
    proxy = Proxy(server.port, tls=tls_front(ca))
    await nursery.start(proxy.run)
    rng = random.Random(21)
    url = f"{scheme}://127.0.0.1:{proxy.port}"
    async with open_feed(url, ALL_TOPICS, ca_file=ca_file, compression=compression) as feed:
        collector = Collector(feed)
        nursery.start_soon(collector.run)
        await publish(server, rng, 100)
        await settle(feed, server, collector)
        assert feed.compression == compression
        assert_state_equals_server(feed, server)
    server.stop()


async def test_an_untrusted_certificate_stops_the_feed_with_a_clear_error(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    server = await start_server(nursery)
    proxy = Proxy(server.port, tls=tls_front(trustme.CA()))
    await nursery.start(proxy.run)
    other_ca = tmp_path / "other.pem"
    trustme.CA().cert_pem.write_to_path(str(other_ca))
    with pytest.raises(FeedTlsError, match="not trusted"):
        async with open_feed(f"wss://127.0.0.1:{proxy.port}", ["quote.*"], ca_file=other_ca) as f:
            async for _ in f:
                pass
    with pytest.raises(FeedConfigError, match="cannot load CA file"):
        async with open_feed(f"wss://127.0.0.1:{proxy.port}", ["quote.*"], ca_file=tmp_path):
            pass  # pragma: no cover
    with pytest.raises(FeedConfigError, match="need a wss"):
        async with open_feed(f"ws://127.0.0.1:{server.port}", ["quote.*"], ca_file=other_ca):
            pass  # pragma: no cover
    server.stop()


async def test_the_connect_timeout_is_one_deadline_for_tls_and_the_upgrade(
    nursery: trio.Nursery, mock_clock: trio.testing.MockClock
) -> None:
    # A server whose TLS handshake takes 12 s of the 20 s allowed, and which then never
    # answers the upgrade: the connect gives up 20 s after it began, not 12 + 20.
    mock_clock.autojump_threshold = 0.3  # virtual time: jumps only while all is idle
    ca = trustme.CA()
    server_context = tls_front(ca)

    async def slow_tls_then_silent(stream: trio.SocketStream) -> None:
        await trio.sleep(12)
        tls = trio.SSLStream(stream, server_context, server_side=True)
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            await tls.do_handshake()
            while await tls.receive_some():  # reads the upgrade request, never answers
                pass

    listeners = await nursery.start(
        partial(trio.serve_tcp, slow_tls_then_silent, 0, host="127.0.0.1")
    )
    port = listeners[0].socket.getsockname()[1]
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    started = trio.current_time()
    ending = None
    async with trio.open_nursery() as connection_nursery:
        try:
            await connect_websocket(
                connection_nursery,
                Endpoint.parse(f"wss://127.0.0.1:{port}"),
                ["quote.*"],
                None,
                ssl_context=client_context,
                zstd=False,
                connect_timeout_s=20,
                max_message_bytes=1 << 20,
            )
        except ConnectionEnded as exc:
            ending = exc.ending
        connection_nursery.cancel_scope.cancel()
    assert ending is not None and ending.kind is EndingKind.CONNECT_FAILED
    assert ending.detail == "no WebSocket upgrade within 20 s"
    assert trio.current_time() - started < 21  # virtual seconds

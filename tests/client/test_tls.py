"""wss:// and https:// with a private CA (a TLS front relays to a plain server)."""

from __future__ import annotations

import random
import ssl
from pathlib import Path

import pytest
import trio
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

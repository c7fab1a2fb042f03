"""GET /v1/zstd-dictionary/<id>: the dictionary zstd frames need, cacheable for good."""

from __future__ import annotations

import json

import zstandard
from quart.typing import TestClientProtocol as AppClient

from ticker.core.compression import DICTIONARY_ID, FrameCompressor, load_dictionary
from ticker.core.hub import Published
from ticker.core.messages import DataMessage

URL = f"/v1/zstd-dictionary/{DICTIONARY_ID}"


async def test_the_dictionary_is_served_and_decodes_the_servers_frames(client: AppClient) -> None:
    response = await client.get(URL)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/octet-stream"
    assert response.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert response.headers["ETag"].startswith('"')
    body = await response.get_data()
    assert isinstance(body, bytes)
    dictionary = zstandard.ZstdCompressionDict(body)
    assert dictionary.dict_id() == DICTIONARY_ID
    # What a client fetched decodes what the server sends (a frame built once, shared).
    message = DataMessage(True, "quote.BTC-USD", 3, 40, 5, {"bid": 43_250_500_000_000})
    item = Published(message, 7)
    frame = item.ws_zstd(FrameCompressor(load_dictionary()))
    payload = frame[2:] if frame[1] < 126 else frame[4:]  # an unmasked server frame
    decompressor = zstandard.ZstdDecompressor(dict_data=dictionary)
    assert decompressor.decompress(payload) == item.payload


async def test_a_revalidation_gets_304_and_other_ids_404(client: AppClient) -> None:
    first = await client.get(URL)
    etag = first.headers["ETag"]
    again = await client.get(URL, headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert await again.get_data() == b""
    assert again.headers["ETag"] == etag
    assert "immutable" in again.headers["Cache-Control"]
    other = await client.get("/v1/zstd-dictionary/1")
    assert other.status_code == 404
    body = json.loads(await other.get_data())
    assert body["status"] == 404 and str(DICTIONARY_ID) in body["error"]
    assert (await client.get("/v1/zstd-dictionary/latest")).status_code == 404

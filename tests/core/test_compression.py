from __future__ import annotations

import pytest
import zstandard

from feeds.zdict import sample_messages
from ticker.core.codec import decode_frame
from ticker.core.compression import (
    DICTIONARY_ID,
    FrameCompressor,
    FrameDecompressor,
    load_dictionary,
)
from ticker.errors import BadMessage


@pytest.fixture(scope="module")
def held_out() -> list[bytes]:
    # Another seed than the one the dictionary was trained on.
    return sample_messages(2_000, seed=2)


def test_shipped_dictionary_has_our_id() -> None:
    assert load_dictionary().dict_id() == DICTIONARY_ID


def test_round_trip_with_the_dictionary(held_out: list[bytes]) -> None:
    compressor = FrameCompressor(load_dictionary())
    decompressor = FrameDecompressor(load_dictionary())
    frame = b"".join(held_out[:10])
    assert decompressor.decompress(compressor.compress(frame)) == frame
    assert len(decode_frame(frame)) == 10


def test_dictionary_shrinks_single_messages_that_plain_zstd_grows(held_out: list[bytes]) -> None:
    with_dict = FrameCompressor(load_dictionary())
    plain = FrameCompressor()
    raw = sum(map(len, held_out))
    assert sum(len(with_dict.compress(m)) for m in held_out) < raw
    assert sum(len(plain.compress(m)) for m in held_out) > raw


def test_wrong_or_missing_dictionary_fails_loudly(held_out: list[bytes]) -> None:
    data = FrameCompressor(load_dictionary()).compress(held_out[0])
    other = zstandard.ZstdCompressionDict(
        b"unrelated " * 50, dict_type=zstandard.DICT_TYPE_RAWCONTENT
    )
    for decompressor in (FrameDecompressor(), FrameDecompressor(other)):
        with pytest.raises(BadMessage):
            decompressor.decompress(data)
    with pytest.raises(BadMessage):
        FrameDecompressor(load_dictionary()).decompress(b"not zstd at all")


def test_a_small_frame_declaring_a_huge_size_is_refused_before_decompressing() -> None:
    bomb = FrameCompressor().compress(bytes(64 * 1024 * 1024))  # 64 MiB of zeros
    assert len(bomb) < 16 * 1024 and zstandard.frame_content_size(bomb) == 64 * 1024 * 1024
    with pytest.raises(BadMessage, match="over 16777216"):
        FrameDecompressor().decompress(bomb)
    small = FrameCompressor().compress(bytes(5000))
    assert FrameDecompressor(max_output_bytes=5000).decompress(small) == bytes(5000)
    with pytest.raises(BadMessage, match="over 4999"):
        FrameDecompressor(max_output_bytes=4999).decompress(small)


def test_a_frame_of_unknown_size_is_read_only_up_to_the_limit() -> None:
    compressor = zstandard.ZstdCompressor(write_content_size=False)
    unknown = compressor.compress(bytes(2 * 1024 * 1024))
    assert zstandard.frame_content_size(unknown) == -1
    with pytest.raises(BadMessage, match="more than 1048576"):
        FrameDecompressor(max_output_bytes=1024 * 1024).decompress(unknown)
    limit = 2 * 1024 * 1024
    assert FrameDecompressor(max_output_bytes=limit).decompress(unknown) == bytes(limit)
    with pytest.raises(BadMessage):
        FrameDecompressor().decompress(b"\x28\xb5\x2f\xfd not really zstd")

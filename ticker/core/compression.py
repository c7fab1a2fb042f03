"""Optional zstd compression of frames with a dictionary trained on our own messages.

Small msgpack messages grow under plain zstd; with the shipped dictionary they shrink.
A streaming context per connection would cost megabytes each, so a frame is compressed
once with the shared dictionary and the same bytes go to every subscriber that asked
for zstd. The dictionary ships in the package and is named by its zstd dictionary id,
which every frame carries so a mismatch fails loudly. No I/O beyond loading the file.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from importlib import resources
from typing import Final

import zstandard

from ticker.errors import BadMessage

DICTIONARY_FILE: Final = "ticker-v1.zdict"
DICTIONARY_ID: Final = 32769
"""zstd dictionary id of the shipped dictionary (private range, 2 bytes in a frame)."""
DICTIONARY_SIZE: Final = 4096
LEVEL: Final = 3
MAX_DECOMPRESSED_BYTES: Final = 16 * 1024 * 1024
STREAM_CHUNK_BYTES: Final = 256 * 1024
"""Read size when decompressing a frame that does not declare its content size."""


@functools.cache
def dictionary_bytes() -> bytes:
    """The shipped dictionary file as it is (what `GET /v1/zstd-dictionary/<id>` serves)."""
    return resources.files("ticker.data").joinpath(DICTIONARY_FILE).read_bytes()


@functools.cache
def load_dictionary() -> zstandard.ZstdCompressionDict:
    """The dictionary shipped with the package, precomputed for `LEVEL`."""
    dictionary = zstandard.ZstdCompressionDict(dictionary_bytes())
    if dictionary.dict_id() != DICTIONARY_ID:
        raise RuntimeError(f"{DICTIONARY_FILE} has id {dictionary.dict_id()}, not {DICTIONARY_ID}")
    dictionary.precompute_compress(level=LEVEL)
    return dictionary


def train_dictionary(samples: Sequence[bytes], size: int = DICTIONARY_SIZE) -> bytes:
    """Train a dictionary on encoded messages; deterministic for the same samples."""
    trained = zstandard.train_dictionary(size, list(samples), dict_id=DICTIONARY_ID, threads=0)
    return trained.as_bytes()


class FrameCompressor:
    """Compresses whole frames with a shared dictionary (or none, for comparison)."""

    def __init__(self, dictionary: zstandard.ZstdCompressionDict | None = None) -> None:
        self._compressor = zstandard.ZstdCompressor(
            level=LEVEL,
            dict_data=dictionary,
            write_checksum=False,
            write_content_size=True,
            write_dict_id=True,
        )

    def compress(self, frame: bytes) -> bytes:
        """One zstd frame holding `frame`."""
        return self._compressor.compress(frame)


class FrameDecompressor:
    """Decompresses frames made by `FrameCompressor` with the same dictionary, refusing
    any that would decompress to more than `max_output_bytes`.

    zstandard ignores `max_output_size` when a frame declares its content size, so the
    declared size is checked first; a frame that declares none is read in a capped
    stream, so a small frame claiming gigabytes never allocates them.
    """

    def __init__(
        self,
        dictionary: zstandard.ZstdCompressionDict | None = None,
        max_output_bytes: int = MAX_DECOMPRESSED_BYTES,
    ) -> None:
        if max_output_bytes < 1:
            raise ValueError(f"max_output_bytes must be >= 1, got {max_output_bytes}")
        self._decompressor = zstandard.ZstdDecompressor(dict_data=dictionary)
        self.max_output_bytes = max_output_bytes

    def decompress(self, data: bytes) -> bytes:
        """The original frame.

        Raises:
            BadMessage: not a zstd frame, wrong dictionary, or larger than allowed.
        """
        limit = self.max_output_bytes
        try:
            declared = zstandard.frame_content_size(data)
            if declared > limit:
                raise BadMessage(f"frame decompresses to {declared} bytes, over {limit}")
            if declared >= 0:
                return self._decompressor.decompress(data, max_output_size=limit)
            return self._read_capped(data, limit)
        except zstandard.ZstdError as exc:
            raise BadMessage(f"cannot decompress frame: {exc}") from None

    def _read_capped(self, data: bytes, limit: int) -> bytes:
        """Decompress a frame of unknown content size, at most `limit` bytes of it."""
        out = bytearray()
        with self._decompressor.stream_reader(data) as reader:
            while chunk := reader.read(min(STREAM_CHUNK_BYTES, limit + 1 - len(out))):
                out += chunk
                if len(out) > limit:
                    raise BadMessage(f"frame decompresses to more than {limit} bytes")
        return bytes(out)

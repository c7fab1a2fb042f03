"""The capture file: a header, then blocks of records, each block one zstd frame.

Owns the bytes of a capture (layout in docs/CAPTURE.md): the header, the block
descriptors that let a reader skip to a time without decompressing what comes before,
the records inside a block, the end marker, and every check a reader makes. Each
descriptor and marker is a zstd *skippable frame*, so `zstd -dc FILE` yields the plain
record stream. Works on any binary file object; must not know venues or events.
"""

from __future__ import annotations

import enum
import itertools
import os
import struct
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Final, NamedTuple

import msgpack
import zstandard

from ticker.capture.errors import CaptureError, CorruptCapture, NotACapture, TruncatedCapture

SCHEMA_VERSION: Final = 1
SKIPPABLE_MAGIC: Final = 0x184D2A5C
"""A zstd skippable-frame magic number (0x184D2A50-5F); decoders step over its frames."""
ZSTD_MAGIC: Final = 0xFD2FB528

_FRAME: Final = struct.Struct("<II")  # magic, payload size
_HEADER_TAG: Final = b"TCAP"
_BLOCK_TAG: Final = b"TBLK"
_END_TAG: Final = b"TEND"
_VERSION: Final = struct.Struct("<H")
_BLOCK: Final = struct.Struct("<qqIIII")  # first ns, last ns, records, zlen, raw len, crc32
_END: Final = struct.Struct("<QqqI")  # records, first ns, last ns, blocks
_RECORD: Final = struct.Struct("<BqBI")  # kind, recv ns, venue index, payload length

MAX_HEADER_BYTES: Final = 1 << 20
MAX_PAYLOAD_BYTES: Final = 1 << 20
"""Largest record payload (the adapters refuse longer venue messages too)."""
MAX_BLOCK_BYTES: Final = 8 << 20
"""A reader refuses a block announcing more than this (raw or compressed)."""
DEFAULT_BLOCK_RECORDS: Final = 4096
DEFAULT_BLOCK_BYTES: Final = 1 << 20
DEFAULT_LEVEL: Final = 3


class RecordKind(enum.IntEnum):
    """What a record holds."""

    RAW = 1
    """One native venue message (JSON line, FIX message, binary packet), as received."""
    DISCONNECT = 2
    """The venue's connection dropped here; the payload is empty."""
    EVENT = 3
    """One normalized event in the `ticker.model.event_codec` encoding."""


class Record(NamedTuple):
    """One record: when it was received (ns since the epoch), its kind, venue and bytes."""

    recv_ns: int
    kind: RecordKind
    venue: str
    payload: bytes


@dataclass(frozen=True, slots=True)
class CaptureHeader:
    """What a capture says about itself, written first in the file.

    `kind` is "raw" (venue messages) or "normalized" (events); `venues` also numbers
    the venues in the records (a record stores its venue's index); `options` are the
    recorder's settings, kept so a capture can be reproduced.
    """

    created_at: str
    source: str
    venues: tuple[str, ...]
    symbols: tuple[str, ...]
    kind: str = "raw"
    options: dict[str, Any] = field(default_factory=dict)
    schema: int = SCHEMA_VERSION

    def to_map(self) -> dict[str, Any]:
        return {
            "schema": self.schema,
            "created_at": self.created_at,
            "source": self.source,
            "venues": list(self.venues),
            "symbols": list(self.symbols),
            "kind": self.kind,
            "options": self.options,
        }


@dataclass(frozen=True, slots=True)
class BlockInfo:
    """A block as its descriptor describes it; `offset` is where the descriptor starts."""

    offset: int
    first_ns: int
    last_ns: int
    records: int
    compressed_bytes: int
    raw_bytes: int
    crc32: int

    @property
    def frame_offset(self) -> int:
        """Where the block's zstd frame starts."""
        return self.offset + _FRAME.size + len(_BLOCK_TAG) + _BLOCK.size


@dataclass(frozen=True, slots=True)
class EndInfo:
    """The end marker: totals over the whole capture."""

    offset: int
    records: int
    first_ns: int
    last_ns: int
    blocks: int


def _skippable(tag: bytes, body: bytes) -> bytes:
    return _FRAME.pack(SKIPPABLE_MAGIC, len(tag) + len(body)) + tag + body


def encode_header(header: CaptureHeader) -> bytes:
    """The header frame of a capture."""
    body = msgpack.packb(header.to_map(), use_bin_type=True)
    if len(body) > MAX_HEADER_BYTES:
        raise ValueError("capture header too large")
    return _skippable(_HEADER_TAG, _VERSION.pack(header.schema) + body)


class CaptureWriter:
    """Writes a capture to a binary file: header now, a block whenever one fills.

    Records must come in receive-time order (equal times are fine). A block is written
    when it holds `block_records` records or `block_bytes` bytes, or on `flush()`;
    the shell flushes on a timer so a crash loses at most that much. `close()` writes
    the end marker, which tells a reader the capture is complete.
    """

    def __init__(
        self,
        file: BinaryIO,
        header: CaptureHeader,
        *,
        level: int = DEFAULT_LEVEL,
        block_records: int = DEFAULT_BLOCK_RECORDS,
        block_bytes: int = DEFAULT_BLOCK_BYTES,
    ) -> None:
        limit = MAX_BLOCK_BYTES - MAX_PAYLOAD_BYTES - _RECORD.size  # a block's last record
        if not 0 < block_bytes <= limit:
            raise ValueError(f"block_bytes must be in (0, {limit}]")
        if block_records < 1:
            raise ValueError("block_records must be positive")
        if len(header.venues) > 255 or len(set(header.venues)) != len(header.venues):
            raise ValueError("at most 255 distinct venues per capture")
        self._file = file
        self.header = header
        self._venue_ids = {venue: i for i, venue in enumerate(header.venues)}
        self._compressor = zstandard.ZstdCompressor(
            level=level, write_checksum=True, write_content_size=True
        )
        self._block_records = block_records
        self._block_bytes = block_bytes
        self._buffer = bytearray()
        self._pending = 0
        self._first_ns = 0
        self._last_ns = -(2**63)
        self.records = 0
        self.blocks = 0
        self.first_ns: int | None = None
        self.closed = False
        self.bytes_written = 0
        self._write(encode_header(header))

    @property
    def last_ns(self) -> int | None:
        return None if self.records == 0 else self._last_ns

    @property
    def pending_records(self) -> int:
        """Records held in the current, unwritten block."""
        return self._pending

    def add(self, kind: RecordKind, recv_ns: int, venue: str, payload: bytes = b"") -> None:
        """Append one record.

        Raises:
            ValueError: closed writer, time going backwards, unknown venue, payload too big.
        """
        if self.closed:
            raise ValueError("capture writer is closed")
        if recv_ns < self._last_ns:
            raise ValueError(f"records must come in time order: {recv_ns} < {self._last_ns}")
        venue_id = self._venue_ids.get(venue)
        if venue_id is None:
            raise ValueError(f"venue {venue!r} is not in the header's venues")
        if len(payload) > MAX_PAYLOAD_BYTES:
            raise ValueError(f"record payload over {MAX_PAYLOAD_BYTES} bytes")
        if self._pending == 0:
            self._first_ns = recv_ns
            if self.first_ns is None:
                self.first_ns = recv_ns
        self._buffer += _RECORD.pack(kind, recv_ns, venue_id, len(payload))
        self._buffer += payload
        self._pending += 1
        self._last_ns = recv_ns
        self.records += 1
        if self._pending >= self._block_records or len(self._buffer) >= self._block_bytes:
            self.flush()

    def flush(self) -> None:
        """Write the current block, if it holds anything, and flush the file."""
        if self._pending:
            raw = bytes(self._buffer)
            frame = self._compressor.compress(raw)
            descriptor = _BLOCK.pack(
                self._first_ns, self._last_ns, self._pending, len(frame), len(raw),
                zlib.crc32(frame),
            )  # fmt: skip
            self._write(_skippable(_BLOCK_TAG, descriptor) + frame)
            self._buffer.clear()
            self._pending = 0
            self.blocks += 1
        self._file.flush()

    def close(self) -> None:
        """Write the last block and the end marker. Idempotent."""
        if self.closed:
            return
        self.flush()
        first = self.first_ns if self.first_ns is not None else 0
        last = self._last_ns if self.records else 0
        self._write(_skippable(_END_TAG, _END.pack(self.records, first, last, self.blocks)))
        self._file.flush()
        self.closed = True

    def _write(self, data: bytes) -> None:
        self._file.write(data)
        self.bytes_written += len(data)


class CaptureReader:
    """Reads a capture from a seekable binary file.

    Iterating `records()` hands out every complete record in order; on damage it
    raises a `CaptureError` naming the byte offset, after every record before it.

    Raises (constructor):
        NotACapture: the file does not start with a capture header.
        CorruptCapture, TruncatedCapture: the header is damaged or cut short.
    """

    def __init__(self, file: BinaryIO, path: str = "<capture>") -> None:
        self._file = file
        self.path = path
        self.size = file.seek(0, os.SEEK_END)
        file.seek(0)
        self.blocks_decompressed = 0
        self.end: EndInfo | None = None
        head = file.read(_FRAME.size + len(_HEADER_TAG) + _VERSION.size)
        if len(head) < _FRAME.size + len(_HEADER_TAG) + _VERSION.size:
            raise NotACapture(path, 0, f"{len(head)} bytes is too short for a capture")
        magic, size = _FRAME.unpack_from(head)
        if magic != SKIPPABLE_MAGIC or head[_FRAME.size : _FRAME.size + 4] != _HEADER_TAG:
            raise NotACapture(path, 0, "not a ticker capture (no capture header at the start)")
        (schema,) = _VERSION.unpack_from(head, _FRAME.size + 4)
        if schema != SCHEMA_VERSION:
            raise NotACapture(path, 8, f"schema {schema} is not supported (this reads 1)")
        body_size = size - len(_HEADER_TAG) - _VERSION.size
        if not 0 < body_size <= MAX_HEADER_BYTES:
            raise CorruptCapture(path, 4, f"bad header size {size}")
        body = file.read(body_size)
        if len(body) < body_size:
            raise TruncatedCapture(path, self.size, "the file ends inside the header")
        self.header = _header_from(body, path, len(head))
        self.data_offset = len(head) + body_size
        self.ends_with_marker = self._tail_is_end_marker()
        """Whether the file's last bytes look like an end marker: if so, a block that runs
        past the end of the file has a damaged descriptor rather than being cut short."""

    def _tail_is_end_marker(self) -> bool:
        marker = _FRAME.size + len(_END_TAG) + _END.size
        if self.size < self.data_offset + marker:
            return False
        self._file.seek(self.size - marker)
        tail = self._file.read(marker)
        magic, size = _FRAME.unpack_from(tail)
        return (
            magic == SKIPPABLE_MAGIC
            and size == len(_END_TAG) + _END.size
            and tail[_FRAME.size : _FRAME.size + len(_END_TAG)] == _END_TAG
        )

    def _past_end(self, block: BlockInfo) -> CaptureError | None:
        """Why `block` cannot be read whole, if its frame runs past the end of the file."""
        if block.frame_offset + block.compressed_bytes <= self.size:
            return None
        if self.ends_with_marker:
            return CorruptCapture(
                self.path, block.offset, "block descriptor is damaged: its block would run "
                f"past the end of the file (byte {self.size})",
            )  # fmt: skip
        return TruncatedCapture(
            self.path, self.size, f"the file ends inside the block at byte {block.offset}"
        )

    # ------------------------------------------------------------ descriptors

    def _next_block(self, offset: int) -> BlockInfo | EndInfo | None:
        """The descriptor at `offset`; None at a clean end of file without a marker."""
        self._file.seek(offset)
        head = self._file.read(_FRAME.size + 4)
        if not head:
            return None
        if len(head) < _FRAME.size + 4:
            raise TruncatedCapture(
                self.path, offset, f"the file ends at byte {self.size} inside the block "
                "descriptor that starts here",
            )  # fmt: skip
        magic, size = _FRAME.unpack_from(head)
        tag = head[_FRAME.size :]
        if magic != SKIPPABLE_MAGIC or tag not in (_BLOCK_TAG, _END_TAG):
            raise CorruptCapture(self.path, offset, "expected a block descriptor or end marker")
        layout = _BLOCK if tag == _BLOCK_TAG else _END
        if size != 4 + layout.size:
            raise CorruptCapture(self.path, offset, f"descriptor of size {size} is damaged")
        body = self._file.read(layout.size)
        if len(body) < layout.size:
            raise TruncatedCapture(
                self.path, offset, f"the file ends at byte {self.size} inside the block "
                "descriptor that starts here",
            )  # fmt: skip
        if tag == _END_TAG:
            return EndInfo(offset, *_END.unpack(body))
        first, last, count, zlen, raw_len, crc = _BLOCK.unpack(body)
        if zlen > MAX_BLOCK_BYTES or raw_len > MAX_BLOCK_BYTES or count == 0 or last < first:
            raise CorruptCapture(self.path, offset, "block descriptor is damaged")
        return BlockInfo(offset, first, last, count, zlen, raw_len, crc)

    def blocks(self) -> Iterator[BlockInfo]:
        """Every block's descriptor, without decompressing anything; sets `end`.

        Raises:
            CorruptCapture, TruncatedCapture: a damaged descriptor, a block cut short,
                bytes after the end marker, or no end marker.
        """
        offset = self.data_offset
        while True:
            item = self._next_block(offset)
            if item is None:
                raise TruncatedCapture(
                    self.path, offset, "no end marker: the recording did not finish"
                )
            if isinstance(item, EndInfo):
                self._check_end(item)
                return
            error = self._past_end(item)
            if error is not None:
                raise error
            yield item
            offset = item.frame_offset + item.compressed_bytes

    def _check_end(self, end: EndInfo) -> None:
        after = end.offset + _FRAME.size + 4 + _END.size
        if after != self.size:
            raise CorruptCapture(self.path, after, "unexpected bytes after the end marker")
        self.end = end

    # ------------------------------------------------------------ records

    def records(self, start_ns: int | None = None, end_ns: int | None = None) -> Iterator[Record]:
        """Records with `start_ns <= recv_ns <= end_ns`, in file order.

        Blocks entirely before `start_ns` are skipped without being decompressed, and
        reading stops at the first block entirely after `end_ns`.

        Raises:
            CorruptCapture, TruncatedCapture: after every complete record before the
                damage (a block cut short first gives up the records it holds whole).
        """
        offset = self.data_offset
        count = 0
        previous_ns = -(2**63)
        while True:
            item = self._next_block(offset)
            if item is None:
                raise TruncatedCapture(
                    self.path, offset, "no end marker: the recording did not finish"
                )
            if isinstance(item, EndInfo):
                self._check_end(item)
                if start_ns is None and end_ns is None and item.records != count:
                    raise CorruptCapture(
                        self.path, item.offset, f"end marker counts {item.records} records, "
                        f"the blocks hold {count}",
                    )  # fmt: skip
                return
            if item.first_ns < previous_ns:
                raise CorruptCapture(self.path, item.offset, "block times go backwards")
            previous_ns = item.last_ns
            next_offset = item.frame_offset + item.compressed_bytes
            if end_ns is not None and item.first_ns > end_ns:
                return
            past_end = self._past_end(item)
            if isinstance(past_end, CorruptCapture):
                raise past_end
            if past_end is not None and (start_ns is not None and item.last_ns < start_ns):
                raise past_end  # skipping it would look for the next block past the end
            if start_ns is not None and item.last_ns < start_ns:
                count += item.records
                offset = next_offset
                continue
            records, error = self._block_records(item)
            for record in records:
                if (start_ns is None or record.recv_ns >= start_ns) and (
                    end_ns is None or record.recv_ns <= end_ns
                ):
                    yield record
            if error is not None:
                raise error
            count += item.records
            offset = next_offset

    def _block_records(self, block: BlockInfo) -> tuple[list[Record], TruncatedCapture | None]:
        """A block's records; a block cut short gives what it holds whole, and an error."""
        self._file.seek(block.frame_offset)
        frame = self._file.read(block.compressed_bytes)
        self.blocks_decompressed += 1
        if len(frame) < block.compressed_bytes:
            return self._truncated_block(block, frame)
        if zlib.crc32(frame) != block.crc32:
            raise CorruptCapture(
                self.path, block.frame_offset, "block checksum mismatch: the block is damaged"
            )
        declared = _content_size(frame)
        if declared >= 0 and declared != block.raw_bytes:
            raise CorruptCapture(
                self.path, block.frame_offset, f"the block declares {declared} bytes of content, "
                f"its descriptor {block.raw_bytes} (at most {MAX_BLOCK_BYTES})",
            )  # fmt: skip
        try:
            raw = zstandard.ZstdDecompressor().decompress(frame, max_output_size=MAX_BLOCK_BYTES)
        except zstandard.ZstdError as exc:
            raise CorruptCapture(
                self.path, block.frame_offset, f"block does not decompress: {exc}"
            ) from None
        records, used = _parse_records(raw, self.header.venues)
        if used != len(raw) or len(records) != block.records or len(raw) != block.raw_bytes:
            raise CorruptCapture(
                self.path, block.frame_offset, f"record framing is damaged at byte {used} of "
                "the block's content",
            )  # fmt: skip
        times_ok = all(a.recv_ns <= b.recv_ns for a, b in itertools.pairwise(records))
        if not times_ok or (records[0].recv_ns, records[-1].recv_ns) != (
            block.first_ns,
            block.last_ns,
        ):
            raise CorruptCapture(self.path, block.offset, "block times disagree with its records")
        return records, None

    def _truncated_block(
        self, block: BlockInfo, partial: bytes
    ) -> tuple[list[Record], TruncatedCapture]:
        raw = b""
        # Only a frame that declares its size within the descriptor's is decompressed: a
        # few damaged bytes must not expand into gigabytes.
        if _content_size(partial) == block.raw_bytes:
            try:
                raw = zstandard.ZstdDecompressor().decompressobj().decompress(partial)
            except zstandard.ZstdError:
                raw = b""
        records, _ = _parse_records(raw, self.header.venues)
        error = TruncatedCapture(
            self.path, self.size, f"the file ends inside the block at byte {block.offset} "
            f"({len(records)} of its {block.records} records recovered)",
        )  # fmt: skip
        return records, error


def _content_size(frame: bytes) -> int:
    """The content size a zstd frame's header declares; -1 if it declares none or its
    header is too damaged or too short to read."""
    try:
        return max(int(zstandard.frame_content_size(frame)), -1)
    except zstandard.ZstdError:
        return -1


def _header_from(body: bytes, path: str, offset: int) -> CaptureHeader:
    try:
        obj = msgpack.unpackb(body, raw=False)
        venues = tuple(obj["venues"])
        symbols = tuple(obj["symbols"])
        header = CaptureHeader(
            created_at=str(obj["created_at"]),
            source=str(obj["source"]),
            venues=venues,
            symbols=symbols,
            kind=str(obj["kind"]),
            options=dict(obj.get("options") or {}),
            schema=int(obj["schema"]),
        )
    except Exception as exc:  # msgpack and the field lookups fail in many ways
        raise CorruptCapture(path, offset, f"the header does not decode: {exc!r}") from None
    if header.kind not in ("raw", "normalized") or not all(isinstance(v, str) for v in venues):
        raise CorruptCapture(path, offset, f"bad header: kind {header.kind!r}")
    return header


def _parse_records(raw: bytes, venues: Sequence[str]) -> tuple[list[Record], int]:
    """Whole records at the start of `raw`, and how many bytes they used."""
    records: list[Record] = []
    view = memoryview(raw)
    unpack = _RECORD.unpack_from
    size = _RECORD.size
    position = 0
    end = len(raw)
    kinds = {k.value: k for k in RecordKind}
    while position + size <= end:
        kind, recv_ns, venue_id, length = unpack(raw, position)
        stop = position + size + length
        if stop > end or kind not in kinds or venue_id >= len(venues):
            break
        records.append(
            Record(recv_ns, kinds[kind], venues[venue_id], bytes(view[position + size : stop]))
        )
        position = stop
    return records, position

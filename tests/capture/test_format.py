"""The capture file: round trips, seeking by time, and damage named by its byte offset."""

from __future__ import annotations

import io
import zlib

import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from ticker.capture import format as format_module
from ticker.capture.errors import CorruptCapture, NotACapture, TruncatedCapture
from ticker.capture.format import (
    BlockInfo,
    CaptureHeader,
    CaptureReader,
    CaptureWriter,
    Record,
    RecordKind,
)

from .conftest import Captured

HEADER = CaptureHeader(
    created_at="2024-01-01T00:00:00.000Z",
    source="test",
    venues=("cbx", "fxa", "itx"),
    symbols=("BTC-USD",),
    options={"seed": 1, "nested": {"a": [1, 2]}},
)

record_lists = st.lists(
    st.tuples(
        st.integers(0, 10**6),
        st.sampled_from(list(RecordKind)),
        st.sampled_from(HEADER.venues),
        st.binary(max_size=300),
    ),
    max_size=200,
)


def write(records: list[Record], **options: int) -> bytes:
    file = io.BytesIO()
    writer = CaptureWriter(file, HEADER, **options)
    for record in records:
        writer.add(record.kind, record.recv_ns, record.venue, record.payload)
    writer.close()
    return file.getvalue()


def timed(raw: list[tuple[int, RecordKind, str, bytes]]) -> list[Record]:
    """Records with non-decreasing receive times (the gaps are what was drawn)."""
    out, now = [], 1_700_000_000_000_000_000
    for gap, kind, venue, payload in raw:
        now += gap
        out.append(Record(now, kind, venue, payload))
    return out


@settings(max_examples=40, deadline=None)
@given(record_lists, st.integers(1, 50))
def test_records_read_back_exactly_whatever_the_block_size(
    raw: list[tuple[int, RecordKind, str, bytes]], block_records: int
) -> None:
    records = timed(raw)
    reader = CaptureReader(io.BytesIO(write(records, block_records=block_records)))
    assert reader.header == HEADER
    assert list(reader.records()) == records
    assert reader.end is not None and reader.end.records == len(records)


@settings(max_examples=40, deadline=None)
@given(record_lists, st.integers(1, 20), st.integers(0, 10**8), st.integers(0, 10**8))
def test_a_time_window_gives_exactly_the_records_inside_it(
    raw: list[tuple[int, RecordKind, str, bytes]], block_records: int, a: int, b: int
) -> None:
    records = timed(raw)
    base = 1_700_000_000_000_000_000
    start, end = base + min(a, b), base + max(a, b)
    reader = CaptureReader(io.BytesIO(write(records, block_records=block_records)))
    assert list(reader.records(start, end)) == [r for r in records if start <= r.recv_ns <= end]


def test_seeking_skips_the_blocks_before_the_window_without_decompressing(
    capture: Captured,
) -> None:
    reader = capture.reader()
    blocks = list(reader.blocks())
    assert len(blocks) > 4
    start, end = blocks[3].first_ns, blocks[3].last_ns
    records = list(reader.records(start, end))
    # Only blocks overlapping the window are read (neighbours can share a boundary time).
    overlapping = [b for b in blocks if b.last_ns >= start and b.first_ns <= end]
    assert reader.blocks_decompressed == len(overlapping) <= 3
    assert records == [r for r in capture.records() if start <= r.recv_ns <= end]


def test_the_file_is_a_zstd_stream_of_the_plain_records(capture: Captured) -> None:
    # Descriptors are skippable frames: any zstd decoder yields the record stream.
    reader = zstandard.ZstdDecompressor().stream_reader(
        io.BytesIO(capture.data), read_across_frames=True
    )
    plain = reader.read()
    assert len(plain) == sum(block.raw_bytes for block in capture.reader().blocks())


def test_writer_refuses_records_out_of_time_order_and_unknown_venues() -> None:
    writer = CaptureWriter(io.BytesIO(), HEADER)
    writer.add(RecordKind.RAW, 10, "cbx", b"x")
    with pytest.raises(ValueError, match="time order"):
        writer.add(RecordKind.RAW, 9, "cbx", b"x")
    with pytest.raises(ValueError, match="not in the header"):
        writer.add(RecordKind.RAW, 11, "nasdaq", b"x")
    writer.close()
    with pytest.raises(ValueError, match="closed"):
        writer.add(RecordKind.RAW, 12, "cbx", b"x")


def test_not_a_capture_is_named() -> None:
    with pytest.raises(NotACapture, match="byte 0: not a ticker capture"):
        CaptureReader(io.BytesIO(b"hello, this is not a capture file at all"), "x.txt")
    with pytest.raises(NotACapture, match="too short"):
        CaptureReader(io.BytesIO(b"\x5c"), "x")


def read_all(data: bytes) -> tuple[list[Record], Exception | None]:
    got: list[Record] = []
    try:
        reader = CaptureReader(io.BytesIO(data), "cut.tcap")
        got.extend(reader.records())
    except (TruncatedCapture, CorruptCapture, NotACapture) as exc:
        return got, exc
    return got, None


def test_a_file_cut_anywhere_gives_every_complete_record_before_the_cut() -> None:
    records = [Record(1000 + i, RecordKind.RAW, "cbx", bytes([i]) * (i % 7 + 1)) for i in range(40)]
    data = write(records, block_records=8)
    header_end = CaptureReader(io.BytesIO(data)).data_offset
    for cut in range(len(data)):
        got, error = read_all(data[:cut])
        assert error is not None, cut
        assert got == records[: len(got)], cut  # a prefix, in order, nothing invented
        if cut >= header_end:
            assert isinstance(error, TruncatedCapture), (cut, error)
            assert f"byte {cut}" in str(error), (cut, error)  # where the file ends
            # Whole blocks before the cut are always recovered.
            whole_blocks = sum(b.records for b in _blocks_within(data, cut))
            assert len(got) >= whole_blocks, cut


def _blocks_within(data: bytes, cut: int) -> list[BlockInfo]:
    reader = CaptureReader(io.BytesIO(data))
    return [b for b in reader.blocks() if b.frame_offset + b.compressed_bytes <= cut]


def test_a_truncated_last_block_gives_up_its_whole_records() -> None:
    records = [Record(1000 + i, RecordKind.RAW, "fxa", b"message %d" % i) for i in range(100)]
    data = write(records, block_records=1000)
    reader = CaptureReader(io.BytesIO(data))
    (block,) = list(reader.blocks())
    # Cut the file inside the block's zstd frame, well after its start.
    cut = block.frame_offset + block.compressed_bytes - 20
    got, error = read_all(data[:cut])
    assert isinstance(error, TruncatedCapture)
    assert f"byte {cut}: the file ends inside the block at byte {block.offset}" in str(error)
    assert got == records[: len(got)]


def test_a_damaged_byte_is_named_and_earlier_blocks_stay_readable(capture: Captured) -> None:
    blocks = list(capture.reader().blocks())
    target = blocks[2]
    damaged = bytearray(capture.data)
    damaged[target.frame_offset + target.compressed_bytes // 2] ^= 0x55
    got, error = read_all(bytes(damaged))
    assert isinstance(error, CorruptCapture)
    assert f"byte {target.frame_offset}: block checksum mismatch" in str(error)
    assert got == capture.records()[: blocks[0].records + blocks[1].records]


def test_a_damaged_descriptor_is_named(capture: Captured) -> None:
    blocks = list(capture.reader().blocks())
    damaged = bytearray(capture.data)
    damaged[blocks[1].offset] ^= 0xFF
    got, error = read_all(bytes(damaged))
    assert isinstance(error, CorruptCapture)
    assert f"byte {blocks[1].offset}: expected a block descriptor" in str(error)
    assert len(got) == blocks[0].records


def test_bytes_after_the_end_marker_are_refused(capture: Captured) -> None:
    got, error = read_all(capture.data + b"junk")
    assert isinstance(error, CorruptCapture)
    assert f"byte {len(capture.data)}: unexpected bytes after the end marker" in str(error)
    assert got == capture.records()


def _with_block(frame: bytes, raw_bytes: int) -> bytes:
    """A capture of one block whose descriptor is built around `frame` as it is."""
    file = io.BytesIO()
    writer = CaptureWriter(file, HEADER)
    writer.flush()  # just the header
    head = file.getvalue()
    descriptor = format_module._BLOCK.pack(1, 1, 1, len(frame), raw_bytes, zlib.crc32(frame))
    end = format_module._END.pack(1, 1, 1, 1)
    return (
        head
        + format_module._skippable(format_module._BLOCK_TAG, descriptor)
        + frame
        + format_module._skippable(format_module._END_TAG, end)
    )


def test_a_block_declaring_more_content_than_its_descriptor_is_refused_unread() -> None:
    # A zstd frame header declaring 512 MiB (single segment, 8-byte content size), then
    # one RLE block: a few bytes that would expand enormously.
    declared = 512 << 20
    frame = bytes([0x28, 0xB5, 0x2F, 0xFD, 0xE0]) + declared.to_bytes(8, "little")
    frame += bytes([0x03, 0x00, 0x02, 0x00])  # last block, RLE, 64 KiB of one byte
    assert zstandard.frame_content_size(frame) == declared
    data = _with_block(frame, 100)
    reader = CaptureReader(io.BytesIO(data), "bomb.tcap")
    (block,) = list(reader.blocks())
    got, error = read_all(data)
    assert got == []
    assert isinstance(error, CorruptCapture)
    assert f"byte {block.frame_offset}: the block declares {declared} bytes" in str(error)
    # Cut short, the same block recovers nothing rather than expanding.
    got, error = read_all(data[: block.frame_offset + len(frame) - 1])
    assert got == [] and isinstance(error, TruncatedCapture)


def test_a_window_after_a_truncated_block_names_where_the_file_ends() -> None:
    records = [Record(1000 + i, RecordKind.RAW, "cbx", b"x" * 50) for i in range(35)]
    data = write(records, block_records=10)
    last = list(CaptureReader(io.BytesIO(data)).blocks())[-1]
    cut = data[: last.frame_offset + 5]
    reader = CaptureReader(io.BytesIO(cut), "cut.tcap")
    with pytest.raises(TruncatedCapture) as caught:
        list(reader.records(records[-1].recv_ns + 10))  # after the last block's records
    assert str(caught.value) == (
        f"cut.tcap: byte {len(cut)}: the file ends inside the block at byte {last.offset}"
    )


def test_a_damaged_block_size_in_a_finished_capture_is_corruption_not_truncation() -> None:
    records = [Record(1000 + i, RecordKind.RAW, "cbx", b"x" * 50) for i in range(35)]
    data = write(records, block_records=10)
    blocks = list(CaptureReader(io.BytesIO(data)).blocks())
    size_field = blocks[1].frame_offset - 12  # compressed_bytes, raw_bytes, crc32 end it
    damaged = bytearray(data)
    damaged[size_field + 2] ^= 0x01  # 64 KiB more: past the end of the file
    got, error = read_all(bytes(damaged))
    assert isinstance(error, CorruptCapture), error
    assert f"byte {blocks[1].offset}: block descriptor is damaged" in str(error)
    assert got == records[:10]

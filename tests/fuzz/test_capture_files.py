"""Fuzz the capture reader (`CaptureReader`) with damaged captures: flipped bytes, cut
files, inserted bytes. A capture may come from anywhere (a colleague, a download)."""

from __future__ import annotations

import contextlib
import io

from hypothesis import given
from hypothesis import strategies as st

from ticker.capture.errors import CaptureError
from ticker.capture.format import (
    MAX_PAYLOAD_BYTES,
    CaptureHeader,
    CaptureReader,
    CaptureWriter,
    Record,
    RecordKind,
)

from .budget import FUZZ

VENUES = ("cbx", "fxa", "itx")

records = st.lists(
    st.tuples(st.sampled_from(RecordKind), st.integers(0, 50), st.sampled_from(VENUES),
              st.binary(max_size=40)),
    max_size=40,
)  # fmt: skip


def write(recorded: list[tuple[RecordKind, int, str, bytes]], block_records: int) -> bytes:
    file = io.BytesIO()
    header = CaptureHeader("2026-01-01T00:00:00Z", "fuzz", VENUES, ("BTC-USD",))
    writer = CaptureWriter(file, header, block_records=block_records)
    now = 1_700_000_000_000_000_000
    for kind, step, venue, payload in recorded:
        now += step
        writer.add(kind, now, venue, payload)
    writer.close()
    return file.getvalue()


def read_all(data: bytes, start_ns: int | None = None, end_ns: int | None = None) -> list[Record]:
    reader = CaptureReader(io.BytesIO(data), "fuzz.tcap")
    out = []
    for record in reader.records(start_ns, end_ns):
        assert len(record.payload) <= MAX_PAYLOAD_BYTES
        assert record.venue in reader.header.venues
        out.append(record)
        assert len(out) <= len(data)  # a record costs at least a byte of the file
    return out


def read_damaged(data: bytes) -> None:
    for window in (
        (None, None),
        (1_700_000_000_000_000_100, None),
        (None, 1_700_000_000_000_000_300),
    ):
        with contextlib.suppress(CaptureError):
            read_all(data, *window)
    with contextlib.suppress(CaptureError):
        list(CaptureReader(io.BytesIO(data)).blocks())


@FUZZ
@given(records, st.integers(1, 8))
def test_a_capture_reads_back_what_was_written(
    recorded: list[tuple[RecordKind, int, str, bytes]], block_records: int
) -> None:
    got = read_all(write(recorded, block_records))
    assert [(r.kind, r.venue, r.payload) for r in got] == [(k, v, p) for k, _, v, p in recorded]


@FUZZ
@given(
    records,
    st.integers(1, 8),
    st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), min_size=1, max_size=4),
)
def test_flipped_bytes_are_records_or_a_capture_error(
    recorded: list[tuple[RecordKind, int, str, bytes]],
    block_records: int,
    flips: list[tuple[int, int]],
) -> None:
    data = bytearray(write(recorded, block_records))
    for position, value in flips:
        data[position % len(data)] = value
    read_damaged(bytes(data))


@FUZZ
@given(records, st.integers(1, 8), st.integers(0, 10**6), st.binary(max_size=30), st.booleans())
def test_cut_or_padded_files_are_records_or_a_capture_error(
    recorded: list[tuple[RecordKind, int, str, bytes]],
    block_records: int,
    at: int,
    inserted: bytes,
    cut: bool,
) -> None:
    data = write(recorded, block_records)
    at %= len(data) + 1
    read_damaged(data[:at] if cut else data[:at] + inserted + data[at:])


@FUZZ
@given(st.binary(max_size=300))
def test_any_bytes_are_not_a_capture_or_a_capture_error(data: bytes) -> None:
    read_damaged(b"\x5c\x2a\x4d\x18" + data)
    read_damaged(data)

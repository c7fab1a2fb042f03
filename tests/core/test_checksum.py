"""The book checksum: its definition (the worked example of docs/PROTOCOL.md), where the
sequencer puts it, and the mirror refusing a book that fails it."""

from __future__ import annotations

import random
import re
import zlib
from pathlib import Path

from ticker.config import Config
from ticker.core.checksum import CHECKSUM_DEPTH, CHECKSUM_EVERY, book_checksum, checksum_text
from ticker.core.codec import encode_data
from ticker.core.delta import book_data
from ticker.core.hub import Hub
from ticker.core.messages import DataMessage
from ticker.core.mirror import Applied, Mirror, RefusalReason, Refused
from ticker.core.sequencer import Sequencer
from ticker.model.events import BookUpdate
from ticker.model.fixed import MAX_NANOS

PROTOCOL = Path(__file__).parents[2] / "docs" / "PROTOCOL.md"
EXAMPLE_BIDS = {43250500000000: 1250000000, 43250000000000: 2000000000}
EXAMPLE_ASKS = {43251000000000: 300000000}
EXAMPLE_TEXT = "43250500000000:1250000000:43251000000000:300000000:43250000000000:2000000000"


def test_the_worked_example_of_the_protocol_page() -> None:
    text = checksum_text(EXAMPLE_BIDS, EXAMPLE_ASKS)
    assert text == EXAMPLE_TEXT
    assert (
        book_checksum(EXAMPLE_BIDS, EXAMPLE_ASKS) == zlib.crc32(EXAMPLE_TEXT.encode()) == 49495085
    )
    data = book_data(EXAMPLE_BIDS, EXAMPLE_ASKS) | {"checksum": 49495085}
    message = DataMessage(True, "book.BTC-USD", 90, 1240, 1763762213125000, data)
    payload = encode_data(message)
    doc = PROTOCOL.read_text()
    # The page shows these very bytes, text and value.
    assert EXAMPLE_TEXT in doc
    assert "49495085" in doc and "0x02f33c2d" in doc
    shown = re.search(
        r"snapshot book\.BTC-USD with its checksum, (\d+) bytes:\n(?:.*\n){2}((?:[0-9a-f]+\n)+)",
        doc,
    )
    assert shown is not None
    assert int(shown.group(1)) == len(payload)
    assert "".join(shown.group(2).split()) == payload.hex()


def test_only_the_top_levels_count_and_sides_interleave_best_first() -> None:
    bids = {100 - i: i + 1 for i in range(CHECKSUM_DEPTH + 5)}
    asks = {200 + i: i + 1 for i in range(3)}
    text = checksum_text(bids, asks)
    assert text.startswith("100:1:200:1:99:2:201:2:98:3:202:3:97:4:96:5")
    assert text.count(":") == 2 * (CHECKSUM_DEPTH + 3) - 1
    before = book_checksum(bids, asks)
    deep = dict(bids)
    deep[100 - CHECKSUM_DEPTH - 1] = 999  # below the top levels: not covered
    assert book_checksum(deep, asks) == before
    top = dict(bids)
    top[100 - CHECKSUM_DEPTH + 1] = 999  # the 10th bid: covered
    assert book_checksum(top, asks) != before
    assert book_checksum({}, {}) == 0  # CRC32 of the empty text


def test_sizes_are_the_published_saturated_ones() -> None:
    assert checksum_text({5: MAX_NANOS * 3}, {}) == f"5:{MAX_NANOS}"


def reference_text(bids: dict[int, int], asks: dict[int, int]) -> str:
    """The module doc's definition, written as plainly as it reads."""
    b = [f"{p}:{min(bids[p], MAX_NANOS)}" for p in sorted(bids, reverse=True)[:CHECKSUM_DEPTH]]
    a = [f"{p}:{min(asks[p], MAX_NANOS)}" for p in sorted(asks)[:CHECKSUM_DEPTH]]
    parts = []
    for i in range(max(len(b), len(a))):
        parts += b[i : i + 1] + a[i : i + 1]
    return ":".join(parts)


def test_the_text_is_the_definition_for_books_of_every_shape() -> None:
    """Sides of 0 to 40 levels (either one longer), sizes at, above and far above the
    wire's maximum: the text built by slices is the plain definition's."""
    rng = random.Random(14)
    sizes = (1, MAX_NANOS - 1, MAX_NANOS, MAX_NANOS + 1, 3 * MAX_NANOS, 2**70)
    for _ in range(3000):
        books = [
            {
                rng.randrange(1, 10 ** rng.randrange(1, 15)): rng.choice(
                    (*sizes, rng.randrange(1, 10**12))
                )
                for _ in range(rng.choice((0, 1, 2, 9, 10, 11, 40)))
            }
            for _ in range(2)
        ]
        assert checksum_text(*books) == reference_text(*books)


def test_book_snapshots_and_every_tenth_delta_carry_the_checksum() -> None:
    seq = Sequencer(epoch=1, keyframe_interval=1000)
    messages = [seq.add_to_levels("book.X-Y", [(100 + i % 7, 1)], [(200, 1)], i) for i in range(25)]
    carrying = [m.seq for m in messages if m is not None and "checksum" in m.data]
    assert carrying == [1, 10, 20]  # seq 1 is the topic's first snapshot
    last = messages[-1]
    assert last is not None and last.seq == 25
    # The checksum is of the book after the message; the state itself has none.
    state = seq.snapshot("book.X-Y").data
    assert "checksum" not in state
    bids = {p: s for p, s in state["bids"]}
    asks = {p: s for p, s in state["asks"]}
    assert seq.snapshot_message("book.X-Y").data["checksum"] == book_checksum(bids, asks)
    assert seq.keyframe("book.X-Y", 0).data["checksum"] == book_checksum(bids, asks)
    # What a subscriber's burst carries (the hub's shared snapshot) has it too.
    hub = Hub(Config(), epoch=1)
    hub.publish(BookUpdate("a", "X-Y", 0, ((100, 1),), ((101, 2),), True), 0)
    for topic in ("book.X-Y", "book@a.X-Y"):
        data = hub.current_snapshot(topic).message.data
        assert data["checksum"] == book_checksum({100: 1}, {101: 2})
    # Latest-value topics carry none.
    quote = seq.set_fields("quote.X-Y", {"bid": 1}, 0)
    assert quote is not None and "checksum" not in quote.data


def test_the_mirror_refuses_a_book_that_fails_the_checksum_and_drops_it() -> None:
    seq, mirror = Sequencer(epoch=1), Mirror()
    for i in range(CHECKSUM_EVERY - 1):
        message = seq.add_to_levels("book.X-Y", [(100 + i, 1)], [(300, 1)], i)
        assert message is not None and isinstance(mirror.apply(message), Applied)
    # The client's book diverges (a bug, a bit flip): a level it never got.
    mirror.held["book.X-Y"].bids.levels[50] = 7
    checked = seq.add_to_levels("book.X-Y", [(100, 1)], [], 99)
    assert checked is not None and "checksum" in checked.data
    assert mirror.apply(checked) == Refused(RefusalReason.CHECKSUM, 0)
    assert "book.X-Y" not in mirror
    # Re-snapshotted, it follows again.
    assert isinstance(mirror.apply(seq.snapshot_message("book.X-Y")), Applied)
    assert mirror.data("book.X-Y") == book_data(
        seq._topics["book.X-Y"].bids, seq._topics["book.X-Y"].asks
    )


def test_a_book_that_holds_passes_and_a_snapshot_mismatch_is_kept_and_counted() -> None:
    mirror = Mirror()
    good = DataMessage(
        True,
        "book.X-Y",
        1,
        1,
        0,
        {"bids": [[10, 1]], "asks": [], "checksum": book_checksum({10: 1}, {})},
    )
    assert isinstance(mirror.apply(good), Applied)
    assert mirror.snapshot_checksum_mismatches == 0
    bad = DataMessage(True, "book.X-Y", 2, 2, 0, {"bids": [[10, 2]], "asks": [], "checksum": 1})
    assert isinstance(mirror.apply(bad), Applied)
    assert mirror.snapshot_checksum_mismatches == 1
    assert mirror.data("book.X-Y") == {"bids": [[10, 2]], "asks": []}

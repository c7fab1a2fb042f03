"""Writes the hand-built conformance cases (conformance/cases/*.json) from the spec.

Each case is written out here by hand: the server's messages in the array forms of
docs/PROTOCOL.md, and after each unit what a correct client must report and hold. The
bytes are built with msgpack (WebSocket) and ticker's SSE renderer (the JSON form);
no expectation is computed by a client. Run `python conformance/build_cases.py` after
editing; `--check` fails if a case file differs from what this script writes.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
import zlib
from pathlib import Path
from typing import Any

import msgpack

from ticker.core.codec import BOOK_SIDES, NANOS_FIELDS, render_json
from ticker.core.messages import DataMessage
from ticker.model.fixed import parse_nanos
from ticker.wire.sse import encode_event

CASES_DIR = Path(__file__).resolve().parent / "cases"

E = 1763762000
"""The stream's epoch in most cases."""
E2 = 1763769000
"""Another epoch: the server restarted and lost its history."""
TS = 1763762213000000
"""A publish time in microseconds; cases add to it."""
DICT_ID = 32769

Json = dict[str, Any]


def P(offset: int, epoch: int = E) -> str:
    """A position in its text form."""
    return f"{epoch}-{offset}"


# -- server messages, in the array forms of docs/PROTOCOL.md ----------------------------


def _wire_data(data: Json) -> Json:
    """Data written with decimal strings (readable) as the msgpack form: int nanos."""
    out: Json = {}
    for name, value in data.items():
        if name in BOOK_SIDES:
            out[name] = [[parse_nanos(p), parse_nanos(s)] for p, s in value]
        elif name in NANOS_FIELDS and isinstance(value, str):
            out[name] = parse_nanos(value)
        else:
            out[name] = value
    return out


def snap(topic: str, seq: int, offset: int, ts: int, data: Json) -> list[Any]:
    return ["s", topic, seq, offset, ts, _wire_data(data)]


def delta(topic: str, seq: int, offset: int, ts: int, data: Json) -> list[Any]:
    return ["d", topic, seq, offset, ts, _wire_data(data)]


def hello(offset: int, epoch: int = E) -> list[Any]:
    return ["h", 1, epoch, offset, 15.0, None, DICT_ID]


def hb(offset: int, ts: int, epoch: int = E) -> list[Any]:
    return ["hb", epoch, offset, ts]


def reset(offset: int, reason: str, epoch: int = E) -> list[Any]:
    return ["r", epoch, offset, reason]


def frame(*messages: list[Any]) -> str:
    """One WebSocket frame: the messages' msgpack concatenated, in base64."""
    packer = msgpack.Packer(use_bin_type=True)
    return base64.b64encode(b"".join(packer.pack(m) for m in messages)).decode("ascii")


def sse_events(*messages: list[Any], ids: bool = True) -> str:
    """The SSE events of messages as the server writes them (docs/PROTOCOL.md, SSE).

    A data message gets `id:` = its position (epoch E) when `ids` (a message of the
    stream) and none in a burst (`ids=False`); a heartbeat always carries one, a hello or
    reset never.
    """
    out = []
    for m in messages:
        kind = m[0]
        if kind in ("s", "d"):
            text = render_json(DataMessage(kind == "s", m[1], m[2], m[3], m[4], m[5]))
            name = "snapshot" if kind == "s" else "delta"
            out.append(encode_event(name, text, P(m[3]) if ids else None))
        elif kind == "hb":
            text = f'{{"epoch":{m[1]},"offset":{m[2]},"ts":{m[3]}}}'
            out.append(encode_event("heartbeat", text, f"{m[1]}-{m[2]}"))
        elif kind == "r":
            out.append(
                encode_event("reset", f'{{"epoch":{m[1]},"offset":{m[2]},"reason":"{m[3]}"}}')
            )
        elif kind == "h":
            text = (
                f'{{"version":1,"epoch":{m[2]},"offset":{m[3]},"heartbeat_s":15,'
                f'"zstd_dictionary":{DICT_ID}}}'
            )
            out.append(encode_event("hello", text))
        else:
            raise ValueError(f"no SSE form for {kind!r}")
    return "".join(out)


def note(*messages: list[Any]) -> str:
    """A readable rendering of a frame's messages (nanos as written on the wire)."""
    return " ".join(json.dumps(m, separators=(",", ":")) for m in messages)


# -- expectations, written by hand --------------------------------------------------------


def up(
    kind: str,
    topic: str,
    seq: int,
    position: str,
    *,
    skipped: int = 0,
    loss: Json | None = None,
) -> Json:
    return {
        "kind": kind,
        "topic": topic,
        "seq": seq,
        "position": position,
        "skipped": skipped,
        "loss": loss,
    }


def loss(after: str | None, until: str, reason: str) -> Json:
    return {"after": after, "until": until, "reason": reason}


def expect(
    updates: list[Json],
    resume: str | None,
    state: Json,
    *,
    resync: bool = False,
    refusal: int | None = None,
) -> Json:
    return {
        "updates": updates,
        "resync": resync,
        "refusal": refusal,
        "resume": resume,
        "state": state,
    }


class Case:
    def __init__(self, name: str, about: str, transport: str = "ws") -> None:
        self.name = name
        self.about = about
        self.transport = transport
        self.steps: list[Json] = []

    def connect(self, resume: str | None) -> None:
        self.steps.append({"connect": {"resume": resume}})

    def ws(self, messages: list[list[Any]], result: Json | None) -> None:
        step: Json = {"ws": frame(*messages), "note": note(*messages)}
        if result is not None:
            step["expect"] = result
        self.steps.append(step)

    def sse(self, text: str, result: Json | None) -> None:
        step: Json = {"sse": text}
        if result is not None:
            step["expect"] = result
        self.steps.append(step)

    def json(self) -> Json:
        return {
            "name": self.name,
            "about": self.about,
            "transport": self.transport,
            "steps": self.steps,
        }


# -- the states the cases use: wire data (decimals) and the expected JSON form ----------

QUOTE_BTC = {"bid": "43250.5", "bid_size": "1.25", "ask": "43251", "ask_size": "0.3"}
QUOTE_ETH = {"bid": "3120.25", "bid_size": "4", "ask": "3120.5", "ask_size": "2.5"}
BOOK_BTC = {
    "bids": [["43250.5", "1"], ["43250", "2.5"]],
    "asks": [["43251", "0.3"], ["43252", "1.5"]],
}
TRADE_BTC = {
    "price": "43251",
    "size": "0.01",
    "side": "buy",
    "id": "cbx-77",
    "venue": "cbx",
    "venue_ts": TS - 900,
}


def st(seq: int, data: Json) -> Json:
    return {"seq": seq, "data": data}


def crc(text: str) -> int:
    """A book checksum from its text written out by hand (PROTOCOL.md, "Book checksum":
    the top levels interleaved best first, nanos in base 10): zlib's CRC32, not ticker's
    code, so the cases check the definition, not the implementation."""
    return zlib.crc32(text.encode("ascii"))


# BOOK_BTC's checksum text: bid 1, ask 1, bid 2, ask 2.
BOOK_BTC_SUM = crc(
    "43250500000000:1000000000:43251000000000:300000000:43250000000000:2500000000:"
    "43252000000000:1500000000"
)


# -- the cases ----------------------------------------------------------------------------


def first_message_is_snapshot() -> Case:
    c = Case(
        "ws-first-message-is-snapshot",
        "A subscription (trade.*,ticker.*) that matches no topic yet gets no burst; each "
        "topic born later starts with a snapshot at seq 1, which is applied and is a resume "
        "point (the offset of its frame). Then its deltas follow. A trade delta is the "
        "whole trade. PROTOCOL.md: 'Snapshots, deltas, keyframes' (a topic's first "
        "message is always a snapshot), 'Resume points'.",
    )
    trade1 = {
        "price": "14.205",
        "size": "12",
        "side": "buy",
        "id": "fxa-1",
        "venue": "fxa",
        "venue_ts": TS + 100,
    }
    trade2 = {
        "price": "14.2",
        "size": "3.5",
        "side": "sell",
        "id": "itx-9",
        "venue": "itx",
        "venue_ts": TS + 250,
    }
    tick1 = {
        "last": "14.205",
        "open": "14.205",
        "high": "14.205",
        "low": "14.205",
        "volume": "12",
        "change": "0",
    }
    c.connect(None)
    c.ws([hello(40)], expect([], None, {}))
    c.ws(
        [snap("trade.LINK-USD", 1, 41, TS + 200, trade1)],
        expect(
            [up("snapshot", "trade.LINK-USD", 1, P(41))],
            P(41),
            {"trade.LINK-USD": st(1, trade1)},
        ),
    )
    c.ws(
        [snap("ticker.LINK-USD", 1, 42, TS + 200, tick1)],
        expect(
            [up("snapshot", "ticker.LINK-USD", 1, P(42))],
            P(42),
            {"trade.LINK-USD": st(1, trade1), "ticker.LINK-USD": st(1, tick1)},
        ),
    )
    c.ws(
        [delta("trade.LINK-USD", 2, 45, TS + 300, trade2)],
        expect(
            [up("delta", "trade.LINK-USD", 2, P(45))],
            P(45),
            {"trade.LINK-USD": st(2, trade2), "ticker.LINK-USD": st(1, tick1)},
        ),
    )
    tick2 = {**tick1, "last": "14.2", "low": "14.2", "volume": "15.5", "change": "-0.005"}
    c.ws(
        [
            delta(
                "ticker.LINK-USD",
                2,
                46,
                TS + 300,
                {"last": "14.2", "low": "14.2", "volume": "15.5", "change": "-0.005"},
            )
        ],
        expect(
            [up("delta", "ticker.LINK-USD", 2, P(46))],
            P(46),
            {"trade.LINK-USD": st(2, trade2), "ticker.LINK-USD": st(2, tick2)},
        ),
    )
    return c


def subscribe_burst() -> Case:
    c = Case(
        "ws-subscribe-burst-resume-at-heartbeat",
        "The answer to a sub is one frame: snapshots carrying their own topics' last "
        "seq/offset/ts (all below the burst's position), an exact topic with no state yet "
        "as a snapshot with seq 0, offset 0 and empty data, and a heartbeat at the burst's "
        "position that ends it. Resume is the heartbeat's position, never a snapshot's "
        "offset. A later stream snapshot at seq 1 replaces the empty topic. PROTOCOL.md: "
        "'Snapshots, deltas, keyframes', 'Resume points' (burst).",
    )
    c.connect(None)
    c.ws([hello(1000)], expect([], None, {}))
    c.ws(
        [
            snap("quote.BTC-USD", 41, 990, TS - 5000, QUOTE_BTC),
            snap("book.BTC-USD", 88, 950, TS - 9000, BOOK_BTC),
            snap("trade.BTC-USD", 0, 0, 0, {}),
            hb(1000, TS),
        ],
        expect(
            [
                up("snapshot", "quote.BTC-USD", 41, P(990)),
                up("snapshot", "book.BTC-USD", 88, P(950)),
                up("snapshot", "trade.BTC-USD", 0, P(0)),
            ],
            P(1000),
            {
                "quote.BTC-USD": st(41, QUOTE_BTC),
                "book.BTC-USD": st(88, BOOK_BTC),
                "trade.BTC-USD": st(0, {}),
            },
        ),
    )
    quote2 = {**QUOTE_BTC, "bid_size": "2"}
    c.ws(
        [delta("quote.BTC-USD", 42, 1001, TS + 10, {"bid_size": "2"})],
        expect(
            [up("delta", "quote.BTC-USD", 42, P(1001))],
            P(1001),
            {
                "quote.BTC-USD": st(42, quote2),
                "book.BTC-USD": st(88, BOOK_BTC),
                "trade.BTC-USD": st(0, {}),
            },
        ),
    )
    c.ws(
        [snap("trade.BTC-USD", 1, 1002, TS + 20, TRADE_BTC)],
        expect(
            [up("snapshot", "trade.BTC-USD", 1, P(1002))],
            P(1002),
            {
                "quote.BTC-USD": st(42, quote2),
                "book.BTC-USD": st(88, BOOK_BTC),
                "trade.BTC-USD": st(1, TRADE_BTC),
            },
        ),
    )
    c.connect(P(1002))
    return c


def hello_not_resume_point() -> Case:
    c = Case(
        "ws-hello-is-not-a-resume-point",
        "The hello's position is not a resume point: before the first unit answering the "
        "first sub, a reconnect subscribes afresh (null). A connection that resumed keeps "
        "the position it resumed from until its first unit. PROTOCOL.md: 'Resume points'.",
    )
    quote_eth2 = {**QUOTE_ETH, "ask": "3121"}
    c.connect(None)
    c.ws([hello(500)], expect([], None, {}))
    c.connect(None)
    c.ws([hello(500)], expect([], None, {}))
    c.ws(
        [snap("quote.ETH-USD", 12, 480, TS - 7000, QUOTE_ETH), hb(500, TS)],
        expect(
            [up("snapshot", "quote.ETH-USD", 12, P(480))],
            P(500),
            {"quote.ETH-USD": st(12, QUOTE_ETH)},
        ),
    )
    c.ws(
        [delta("quote.ETH-USD", 13, 501, TS + 10, {"ask": "3121"})],
        expect(
            [up("delta", "quote.ETH-USD", 13, P(501))],
            P(501),
            {"quote.ETH-USD": st(13, quote_eth2)},
        ),
    )
    c.connect(P(501))
    c.ws([hello(520)], expect([], P(501), {"quote.ETH-USD": st(13, quote_eth2)}))
    c.connect(P(501))
    c.ws([hello(520)], expect([], P(501), {"quote.ETH-USD": st(13, quote_eth2)}))
    quote_eth3 = {**quote_eth2, "ask_size": "1"}
    c.ws(
        [delta("quote.ETH-USD", 14, 510, TS + 20, {"ask_size": "1"})],
        expect(
            [up("delta", "quote.ETH-USD", 14, P(510))],
            P(510),
            {"quote.ETH-USD": st(14, quote_eth3)},
        ),
    )
    return c


def _btc_burst(c: Case) -> Json:
    """Connect afresh and take a burst of quote, book and trade of BTC-USD at E-1000."""
    c.connect(None)
    c.ws([hello(1000)], expect([], None, {}))
    state = {
        "quote.BTC-USD": st(41, QUOTE_BTC),
        "book.BTC-USD": st(88, BOOK_BTC),
        "trade.BTC-USD": st(5, TRADE_BTC),
    }
    c.ws(
        [
            snap("quote.BTC-USD", 41, 990, TS - 5000, QUOTE_BTC),
            snap("book.BTC-USD", 88, 950, TS - 9000, BOOK_BTC),
            snap("trade.BTC-USD", 5, 970, TS - 7000, TRADE_BTC),
            hb(1000, TS),
        ],
        expect(
            [
                up("snapshot", "quote.BTC-USD", 41, P(990)),
                up("snapshot", "book.BTC-USD", 88, P(950)),
                up("snapshot", "trade.BTC-USD", 5, P(970)),
            ],
            P(1000),
            state,
        ),
    )
    return state


def reset_unit() -> Case:
    c = Case(
        "ws-reset-unit-drops-missing-topics",
        "A resume the server cannot serve (here another epoch: it restarted) is answered "
        "by one frame: reset, a snapshot of every subscribed topic it has, a heartbeat at "
        "the reset's position. Every topic is forgotten at the reset; each snapshot "
        "rebuilds one (a reset update, loss after = the position resumed from, until = "
        "the reset's position); a topic with no snapshot in the unit (trade.BTC-USD) no "
        "longer exists: a reset update with seq 0 at the reset's position, and it is no "
        "longer held. Resume is the reset's position. PROTOCOL.md: 'Resume and reset', "
        "'Resume points'.",
    )
    _btc_burst(c)
    c.connect(P(1000))
    quote = {"bid": "43100", "bid_size": "0.5", "ask": "43101.5", "ask_size": "0.75"}
    book = {"bids": [["43100", "0.5"]], "asks": [["43101.5", "0.75"]]}
    held_before = {
        "quote.BTC-USD": st(41, QUOTE_BTC),
        "book.BTC-USD": st(88, BOOK_BTC),
        "trade.BTC-USD": st(5, TRADE_BTC),
    }
    c.ws([hello(40, E2)], expect([], P(1000), held_before))
    lost = loss(P(1000), P(40, E2), "other_epoch")
    after_reset = {"quote.BTC-USD": st(3, quote), "book.BTC-USD": st(2, book)}
    c.ws(
        [
            reset(40, "other_epoch", E2),
            snap("quote.BTC-USD", 3, 38, TS + 60_000_000, quote),
            snap("book.BTC-USD", 2, 35, TS + 59_000_000, book),
            hb(40, TS + 61_000_000, E2),
        ],
        expect(
            [
                up("reset", "quote.BTC-USD", 3, P(38, E2), loss=lost),
                up("reset", "book.BTC-USD", 2, P(35, E2), loss=lost),
                up("reset", "trade.BTC-USD", 0, P(40, E2), loss=lost),
            ],
            P(40, E2),
            after_reset,
        ),
    )
    c.ws(
        [delta("quote.BTC-USD", 4, 41, TS + 61_000_100, {"ask_size": "1"})],
        expect(
            [up("delta", "quote.BTC-USD", 4, P(41, E2))],
            P(41, E2),
            {**after_reset, "quote.BTC-USD": st(4, {**quote, "ask_size": "1"})},
        ),
    )
    return c


def cut_between_units() -> Case:
    c = Case(
        "ws-cut-between-units",
        "A connection cut after a frame resumes from that frame's last message; the "
        "server replays exactly what follows (the frame that was cut off is received "
        "again, whole, and applied once). PROTOCOL.md: 'Resume points', 'Resume and reset'.",
    )
    state = _btc_burst(c)
    q2 = {**QUOTE_BTC, "bid": "43250.75"}
    s2 = {**state, "quote.BTC-USD": st(42, q2)}
    c.ws(
        [delta("quote.BTC-USD", 42, 1001, TS + 10, {"bid": "43250.75"})],
        expect([up("delta", "quote.BTC-USD", 42, P(1001))], P(1001), s2),
    )
    # The next frame (book 89 at 1002) was lost in the cut: not processed.
    c.connect(P(1001))
    c.ws([hello(1003)], expect([], P(1001), s2))
    b2 = {
        "bids": [["43250.5", "1"], ["43250", "2.5"]],
        "asks": [["43251", "0.4"], ["43252", "1.5"]],
    }
    s3 = {**s2, "book.BTC-USD": st(89, b2)}
    c.ws(
        [delta("book.BTC-USD", 89, 1002, TS + 20, {"bids": [], "asks": [["43251", "0.4"]]})],
        expect([up("delta", "book.BTC-USD", 89, P(1002))], P(1002), s3),
    )
    q3 = {**q2, "ask": "43251.25"}
    c.ws(
        [delta("quote.BTC-USD", 43, 1003, TS + 30, {"ask": "43251.25"})],
        expect(
            [up("delta", "quote.BTC-USD", 43, P(1003))],
            P(1003),
            {**s3, "quote.BTC-USD": st(43, q3)},
        ),
    )
    return c


def gap_resync() -> Case:
    c = Case(
        "ws-delta-gap-resync-and-duplicates",
        "A delta whose seq skips one (held 42, got 44) is not applied: the client drops the "
        "connection and resumes from the offset of the last message it applied of THAT "
        "topic (1001), not from its last unit (1003): the missing message lies after the "
        "topic's last offset, possibly before the last unit. The replay repeats messages "
        "of other topics already applied (book seq 89 at 1003): ignored, no update; the "
        "resume point still moves to the end of each unit. PROTOCOL.md: 'Positions and "
        "sequences' (gap), 'Resume points'.",
    )
    state = _btc_burst(c)
    q42 = {**QUOTE_BTC, "bid": "43250.75"}
    s1 = {**state, "quote.BTC-USD": st(42, q42)}
    c.ws(
        [delta("quote.BTC-USD", 42, 1001, TS + 10, {"bid": "43250.75"})],
        expect([up("delta", "quote.BTC-USD", 42, P(1001))], P(1001), s1),
    )
    # quote 43 at 1002 was lost (say, by a proxy); book 89 at 1003 arrives.
    b89 = {
        "bids": [["43250.5", "1"], ["43250", "2.5"]],
        "asks": [["43251", "0.4"], ["43252", "1.5"]],
    }
    s2 = {**s1, "book.BTC-USD": st(89, b89)}
    c.ws(
        [delta("book.BTC-USD", 89, 1003, TS + 30, {"asks": [["43251", "0.4"]]})],
        expect([up("delta", "book.BTC-USD", 89, P(1003))], P(1003), s2),
    )
    c.ws(
        [delta("quote.BTC-USD", 44, 1004, TS + 40, {"ask": "43251.5"})],
        expect([], P(1001), s2, resync=True),
    )
    c.connect(P(1001))
    c.ws([hello(1004)], expect([], P(1001), s2))
    q43 = {**q42, "bid_size": "3"}
    s3 = {**s2, "quote.BTC-USD": st(43, q43)}
    c.ws(
        [delta("quote.BTC-USD", 43, 1002, TS + 20, {"bid_size": "3"})],
        expect([up("delta", "quote.BTC-USD", 43, P(1002))], P(1002), s3),
    )
    c.ws(
        [delta("book.BTC-USD", 89, 1003, TS + 30, {"asks": [["43251", "0.4"]]})],
        expect([], P(1003), s3),
    )
    q44 = {**q43, "ask": "43251.5"}
    c.ws(
        [delta("quote.BTC-USD", 44, 1004, TS + 40, {"ask": "43251.5"})],
        expect(
            [up("delta", "quote.BTC-USD", 44, P(1004))],
            P(1004),
            {**s3, "quote.BTC-USD": st(44, q44)},
        ),
    )
    return c


def replay_overlap_in_one_frame() -> Case:
    c = Case(
        "ws-replay-overlap-duplicates-in-one-frame",
        "After a gap resync, one replayed frame holds a message already applied (offset "
        "not above the topic's last) and then new ones: the repeat is skipped without an "
        "update and without a gap; the rest applies. PROTOCOL.md: 'Positions and "
        "sequences', 'Resume and reset' (no gap, no duplicate).",
    )
    state = _btc_burst(c)
    t6 = {**TRADE_BTC, "id": "cbx-78", "price": "43251.5", "side": "sell"}
    s1 = {**state, "trade.BTC-USD": st(6, t6)}
    c.ws(
        [delta("trade.BTC-USD", 6, 1001, TS + 10, t6)],
        expect([up("delta", "trade.BTC-USD", 6, P(1001))], P(1001), s1),
    )
    # quote 42 at 1002 lost; trade 7 at 1003 applied; quote 43 at 1004 shows the gap.
    t7 = {**t6, "id": "cbx-79", "size": "0.2"}
    s2 = {**s1, "trade.BTC-USD": st(7, t7)}
    c.ws(
        [delta("trade.BTC-USD", 7, 1003, TS + 30, t7)],
        expect([up("delta", "trade.BTC-USD", 7, P(1003))], P(1003), s2),
    )
    c.ws(
        [delta("quote.BTC-USD", 43, 1004, TS + 40, {"ask": "43252"})],
        expect([], P(990), s2, resync=True),
    )
    c.connect(P(990))
    c.ws([hello(1004)], expect([], P(990), s2))
    q42 = {**QUOTE_BTC, "bid": "43250.25"}
    q43 = {**q42, "ask": "43252"}
    c.ws(
        [
            delta("trade.BTC-USD", 6, 1001, TS + 10, t6),
            delta("quote.BTC-USD", 42, 1002, TS + 20, {"bid": "43250.25"}),
            delta("trade.BTC-USD", 7, 1003, TS + 30, t7),
            delta("quote.BTC-USD", 43, 1004, TS + 40, {"ask": "43252"}),
        ],
        expect(
            [
                up("delta", "quote.BTC-USD", 42, P(1002)),
                up("delta", "quote.BTC-USD", 43, P(1004)),
            ],
            P(1004),
            {**s2, "quote.BTC-USD": st(43, q43)},
        ),
    )
    return c


def conflated_snapshot() -> Case:
    c = Case(
        "ws-conflated-snapshot-skipped",
        "A slow consumer's conflated catch-up is a burst: snapshots of latest-value and "
        "book topics at a higher seq than held, ending with a heartbeat. Each replaces "
        "the state exactly (a book level absent from it is gone) and is a snapshot update "
        "with skipped = new seq - held seq - 1; nothing is lost. Resume is the heartbeat. "
        "PROTOCOL.md: 'Slow consumers', 'Snapshots, deltas, keyframes'.",
    )
    state = _btc_burst(c)
    quote = {"bid": "43260", "bid_size": "0.5", "ask": "43260.5", "ask_size": "0.125"}
    book = {"bids": [["43260", "0.5"]], "asks": [["43260.5", "0.125"], ["43262", "3"]]}
    c.ws(
        [
            snap("quote.BTC-USD", 50, 1040, TS + 400, quote),
            snap("book.BTC-USD", 95, 1038, TS + 380, book),
            hb(1042, TS + 420),
        ],
        expect(
            [
                up("snapshot", "quote.BTC-USD", 50, P(1040), skipped=8),
                up("snapshot", "book.BTC-USD", 95, P(1038), skipped=6),
            ],
            P(1042),
            {**state, "quote.BTC-USD": st(50, quote), "book.BTC-USD": st(95, book)},
        ),
    )
    return c


def trade_seq_jump() -> Case:
    c = Case(
        "ws-trade-seq-jump-is-a-reset",
        "Event topics are never conflated: a trade snapshot whose seq jumps past the one "
        "held (6 -> 9) means trades were missed. It replaces the state and is reported as "
        "a reset, reason 'skipped', loss after = the position last held (the trade's last "
        "offset, 1001, also the last unit), until = the burst's position. PROTOCOL.md: "
        "'Snapshots, deltas, keyframes' (event topics), CLIENT.md 'What you get' (skipped).",
    )
    state = _btc_burst(c)
    t6 = {**TRADE_BTC, "id": "cbx-78"}
    s1 = {**state, "trade.BTC-USD": st(6, t6)}
    c.ws(
        [delta("trade.BTC-USD", 6, 1001, TS + 10, t6)],
        expect([up("delta", "trade.BTC-USD", 6, P(1001))], P(1001), s1),
    )
    t9 = {**TRADE_BTC, "id": "cbx-81", "price": "43300", "size": "1.5", "side": "sell"}
    c.ws(
        [snap("trade.BTC-USD", 9, 1030, TS + 300, t9), hb(1035, TS + 350)],
        expect(
            [
                up(
                    "reset",
                    "trade.BTC-USD",
                    9,
                    P(1030),
                    loss=loss(P(1001), P(1035), "skipped"),
                )
            ],
            P(1035),
            {**s1, "trade.BTC-USD": st(9, t9)},
        ),
    )
    return c


def keyframe() -> Case:
    c = Case(
        "ws-keyframe-replaces-state",
        "A keyframe is the update itself sent whole: a snapshot in the stream taking the "
        "next seq and offset. It replaces the held state (a book level or a field absent "
        "from it is gone, a client that merged would keep them), is a snapshot update "
        "with skipped 0, and its frame is a resume point. Deltas continue from it. "
        "PROTOCOL.md: 'Snapshots, deltas, keyframes' (keyframe).",
    )
    c.connect(None)
    c.ws([hello(1100)], expect([], None, {}))
    b98 = {
        "bids": [["100", "1"], ["99.5", "2"]],
        "asks": [["100.5", "1"], ["101", "4"]],
    }
    tick = {
        "last": "100.25",
        "open": "99",
        "high": "101",
        "low": "98.5",
        "volume": "1200",
        "change": "1.25",
    }
    c.ws(
        [
            snap("book.SOL-USD", 98, 1090, TS - 100, b98),
            snap("ticker.SOL-USD", 99, 1095, TS - 50, tick),
            hb(1100, TS),
        ],
        expect(
            [
                up("snapshot", "book.SOL-USD", 98, P(1090)),
                up("snapshot", "ticker.SOL-USD", 99, P(1095)),
            ],
            P(1100),
            {"book.SOL-USD": st(98, b98), "ticker.SOL-USD": st(99, tick)},
        ),
    )
    b99 = {"bids": [["100", "1.5"], ["99.5", "2"]], "asks": [["100.5", "1"], ["101", "4"]]}
    c.ws(
        [delta("book.SOL-USD", 99, 1101, TS + 10, {"bids": [["100", "1.5"]]})],
        expect(
            [up("delta", "book.SOL-USD", 99, P(1101))],
            P(1101),
            {"book.SOL-USD": st(99, b99), "ticker.SOL-USD": st(99, tick)},
        ),
    )
    # The 100th update since the last snapshot: sent whole (the 99.5 and 101 levels went).
    b100 = {"bids": [["100", "1.5"], ["99", "7"]], "asks": [["100.5", "1"]]}
    c.ws(
        [snap("book.SOL-USD", 100, 1102, TS + 20, b100)],
        expect(
            [up("snapshot", "book.SOL-USD", 100, P(1102))],
            P(1102),
            {"book.SOL-USD": st(100, b100), "ticker.SOL-USD": st(99, tick)},
        ),
    )
    tick100 = {"last": "100.5", "open": "99", "high": "101", "low": "98.5", "volume": "1201"}
    c.ws(
        [snap("ticker.SOL-USD", 100, 1103, TS + 30, tick100)],
        expect(
            [up("snapshot", "ticker.SOL-USD", 100, P(1103))],
            P(1103),
            {"book.SOL-USD": st(100, b100), "ticker.SOL-USD": st(100, tick100)},
        ),
    )
    b101 = {"bids": [["100", "1.5"], ["99", "7"]], "asks": [["100.5", "1"], ["100.75", "2"]]}
    c.ws(
        [delta("book.SOL-USD", 101, 1104, TS + 40, {"asks": [["100.75", "2"]]})],
        expect(
            [up("delta", "book.SOL-USD", 101, P(1104))],
            P(1104),
            {"book.SOL-USD": st(101, b101), "ticker.SOL-USD": st(100, tick100)},
        ),
    )
    return c


def null_field() -> Case:
    c = Case(
        "ws-latest-value-null-removes-field",
        "A latest-value delta carries only the changed fields (merge); a field set to null "
        "means the value is gone (here the bid side emptied): the state no longer has it. "
        "A later delta brings it back. Expected states never hold null (README: a runner "
        "drops null fields of its client's state before comparing). PROTOCOL.md: "
        "'Snapshots, deltas, keyframes' (delta), 'Topics' (quote).",
    )
    c.connect(None)
    c.ws([hello(200)], expect([], None, {}))
    c.ws(
        [snap("quote.ETH-USD", 7, 180, TS - 100, QUOTE_ETH), hb(200, TS)],
        expect(
            [up("snapshot", "quote.ETH-USD", 7, P(180))],
            P(200),
            {"quote.ETH-USD": st(7, QUOTE_ETH)},
        ),
    )
    gone = {"ask": "3120.5", "ask_size": "2.5"}
    c.ws(
        [delta("quote.ETH-USD", 8, 201, TS + 10, {"bid": None, "bid_size": None})],
        expect([up("delta", "quote.ETH-USD", 8, P(201))], P(201), {"quote.ETH-USD": st(8, gone)}),
    )
    back = {"bid": "3119", "bid_size": "0.001", "ask": "3120.5", "ask_size": "2.5"}
    c.ws(
        [delta("quote.ETH-USD", 9, 202, TS + 20, {"bid": "3119", "bid_size": "0.001"})],
        expect([up("delta", "quote.ETH-USD", 9, P(202))], P(202), {"quote.ETH-USD": st(9, back)}),
    )
    return c


def book_size_zero() -> Case:
    c = Case(
        "ws-book-size-zero-removes-level",
        "A book delta carries the new absolute size of each changed level: size 0 removes "
        "the level (also one not held: harmless), a new price inserts it in order (bids "
        "best = highest first, asks lowest first), a new size replaces the old. "
        "PROTOCOL.md: 'Snapshots, deltas, keyframes' (delta), 'Topics' (book).",
    )
    c.connect(None)
    c.ws([hello(300)], expect([], None, {}))
    c.ws(
        [snap("book.BTC-USD", 10, 290, TS - 100, BOOK_BTC), hb(300, TS)],
        expect(
            [up("snapshot", "book.BTC-USD", 10, P(290))], P(300), {"book.BTC-USD": st(10, BOOK_BTC)}
        ),
    )
    b11 = {
        "bids": [["43250.75", "0.2"], ["43250", "3"]],
        "asks": [["43251", "0.3"], ["43252", "1.5"], ["43300", "10"]],
    }
    c.ws(
        [
            delta(
                "book.BTC-USD",
                11,
                301,
                TS + 10,
                {
                    "bids": [["43250.5", "0"], ["43250.75", "0.2"], ["43250", "3"], ["43000", "0"]],
                    "asks": [["43300", "10"]],
                },
            )
        ],
        expect([up("delta", "book.BTC-USD", 11, P(301))], P(301), {"book.BTC-USD": st(11, b11)}),
    )
    b12 = {
        "bids": [["43250.75", "0.2"], ["43250", "3"]],
        "asks": [["43252", "1.5"], ["43300", "10"]],
    }
    c.ws(
        [delta("book.BTC-USD", 12, 302, TS + 20, {"asks": [["43251", "0"]]})],
        expect([up("delta", "book.BTC-USD", 12, P(302))], P(302), {"book.BTC-USD": st(12, b12)}),
    )
    b13 = {"bids": [], "asks": [["43252", "1.5"], ["43300", "10"]]}
    c.ws(
        [delta("book.BTC-USD", 13, 303, TS + 30, {"bids": [["43250.75", "0"], ["43250", "0"]]})],
        expect([up("delta", "book.BTC-USD", 13, P(303))], P(303), {"book.BTC-USD": st(13, b13)}),
    )
    return c


def trailing_elements() -> Case:
    c = Case(
        "ws-trailing-elements-ignored",
        "Fields are only ever added at the end of an array: a hello with two extra "
        "elements, data messages, a heartbeat, a reset and an error with extra trailing "
        "elements are read by their known elements; the rest is ignored. PROTOCOL.md: "
        "'msgpack form' (fields are only ever added at the end).",
    )
    c.connect(None)
    c.ws(
        [["h", 1, E, 600, 15.0, None, DICT_ID, "later", {"k": 1}]],
        expect([], None, {}),
    )
    c.ws(
        [
            [*snap("quote.BTC-USD", 3, 590, TS - 10, QUOTE_BTC), "extra", [1, 2]],
            ["hb", E, 600, TS, None, 99],
        ],
        expect(
            [up("snapshot", "quote.BTC-USD", 3, P(590))],
            P(600),
            {"quote.BTC-USD": st(3, QUOTE_BTC)},
        ),
    )
    q4 = {**QUOTE_BTC, "ask": "43251.5"}
    c.ws(
        [[*delta("quote.BTC-USD", 4, 601, TS + 10, {"ask": "43251.5"}), {"future": True}]],
        expect([up("delta", "quote.BTC-USD", 4, P(601))], P(601), {"quote.BTC-USD": st(4, q4)}),
    )
    c.ws(
        [["hb", E, 610, TS + 1_000_000, "x"]],
        expect([], P(610), {"quote.BTC-USD": st(4, q4)}),
    )
    c.connect(P(610))
    c.ws(
        [["h", 1, E2, 5, 15.0, None, DICT_ID, 0]], expect([], P(610), {"quote.BTC-USD": st(4, q4)})
    )
    c.ws(
        [
            ["r", E2, 5, "other_epoch", "extra"],
            [*snap("quote.BTC-USD", 1, 5, TS + 9_000_000, QUOTE_ETH), 0],
            ["hb", E2, 5, TS + 9_000_000, 0],
        ],
        expect(
            [
                up(
                    "reset",
                    "quote.BTC-USD",
                    1,
                    P(5, E2),
                    loss=loss(P(610), P(5, E2), "other_epoch"),
                )
            ],
            P(5, E2),
            {"quote.BTC-USD": st(1, QUOTE_ETH)},
        ),
    )
    c.ws(
        [["e", 4400, "unknown symbol 'LTC-EUR'", "extra"]],
        expect([], P(5, E2), {"quote.BTC-USD": st(1, QUOTE_ETH)}, refusal=4400),
    )
    return c


def big_integers() -> Case:
    c = Case(
        "ws-integers-beyond-2-53",
        "Prices and sizes are int64 nanos; a day's volume passes 2^53 (DOGE reached 1.4e17 "
        "nanos) and a saturated sum is exactly 2^63-1. Both must be kept exactly and "
        "rendered as exact decimals (a double would round 143256789012345678 to ...680). "
        "change may be negative. PROTOCOL.md: 'Numbers'.",
    )
    c.connect(None)
    c.ws([hello(700)], expect([], None, {}))
    t1 = {
        "last": "0.412345678",
        "open": "0.4",
        "high": "0.42",
        "low": "0.39",
        "volume": "143256789.012345678",
        "change": "0.012345678",
    }
    c.ws(
        [snap("ticker.DOGE-USD", 20, 690, TS, t1), hb(700, TS + 10)],
        expect(
            [up("snapshot", "ticker.DOGE-USD", 20, P(690))], P(700), {"ticker.DOGE-USD": st(20, t1)}
        ),
    )
    t2 = {**t1, "volume": "9223372036.854775807", "change": "-9007199.254740993"}
    c.ws(
        [
            delta(
                "ticker.DOGE-USD",
                21,
                701,
                TS + 20,
                {"volume": "9223372036.854775807", "change": "-9007199.254740993"},
            )
        ],
        expect(
            [up("delta", "ticker.DOGE-USD", 21, P(701))], P(701), {"ticker.DOGE-USD": st(21, t2)}
        ),
    )
    b = {
        "bids": [["0.412345678", "9007199254.740993"], ["0.4", "9223372036.854775807"]],
        "asks": [["0.4124", "1"]],
    }
    c.ws(
        [snap("book.DOGE-USD", 1, 702, TS + 30, b)],
        expect(
            [up("snapshot", "book.DOGE-USD", 1, P(702))],
            P(702),
            {"ticker.DOGE-USD": st(21, t2), "book.DOGE-USD": st(1, b)},
        ),
    )
    return c


def refusal() -> Case:
    c = Case(
        "ws-error-is-a-refusal",
        "An 'e' message refuses the client's request (here an unknown symbol, code 4400): "
        "the client reports the code; no update, nothing held, no resume point (the hello "
        "is none). PROTOCOL.md: 'msgpack form' (error), 'WebSocket' (unknown symbols).",
    )
    c.connect(None)
    c.ws([hello(800)], expect([], None, {}))
    c.ws([["e", 4400, "unknown symbol 'LTC-EUR'"]], expect([], None, {}, refusal=4400))
    return c


def heartbeats_move_resume() -> Case:
    c = Case(
        "ws-heartbeats-move-the-resume-point",
        "After the first burst, a frame holding only a heartbeat is a unit whose resume "
        "point is the heartbeat's position (written after everything up to it), even far "
        "past the last data message; state is unchanged. PROTOCOL.md: 'Resume points', "
        "'WebSocket' (heartbeat).",
    )
    c.connect(None)
    c.ws([hello(900)], expect([], None, {}))
    state = {"quote.ETH-USD": st(30, QUOTE_ETH)}
    c.ws(
        [snap("quote.ETH-USD", 30, 850, TS - 100, QUOTE_ETH), hb(900, TS)],
        expect([up("snapshot", "quote.ETH-USD", 30, P(850))], P(900), state),
    )
    c.ws([hb(950, TS + 15_000_000)], expect([], P(950), state))
    c.ws([hb(1020, TS + 30_000_000)], expect([], P(1020), state))
    q = {**QUOTE_ETH, "bid_size": "4.5"}
    c.ws(
        [
            delta("quote.ETH-USD", 31, 1021, TS + 31_000_000, {"bid_size": "4.5"}),
            hb(1100, TS + 45_000_000),
        ],
        expect([up("delta", "quote.ETH-USD", 31, P(1021))], P(1100), {"quote.ETH-USD": st(31, q)}),
    )
    c.connect(P(1100))
    return c


# -- SSE ----------------------------------------------------------------------------------


def sse_burst_and_resume() -> Case:
    c = Case(
        "sse-burst-resume-last-event-id",
        "SSE: the hello event (no id) is no resume point; a burst is snapshot events "
        "without id: and a heartbeat event with id: = the burst's position, one unit; a "
        "delta's id: is its position; a topic's first message is a snapshot with an id:. "
        "A reconnect sends the last id processed as Last-Event-ID. Unknown JSON keys are "
        "ignored. PROTOCOL.md: 'SSE', 'Resume points'.",
        "sse",
    )
    c.connect(None)
    c.sse(
        'event: hello\ndata: {"version":1,"epoch":1763762000,"offset":1000,"heartbeat_s":15,'
        '"zstd_dictionary":32769,"region":"eu"}\n\n',
        expect([], None, {}),
    )
    state = {
        "quote.BTC-USD": st(41, QUOTE_BTC),
        "book.BTC-USD": st(88, BOOK_BTC),
    }
    c.sse(
        sse_events(
            snap("quote.BTC-USD", 41, 990, TS - 5000, QUOTE_BTC),
            snap("book.BTC-USD", 88, 950, TS - 9000, BOOK_BTC),
            hb(1000, TS),
            ids=False,
        ),
        expect(
            [
                up("snapshot", "quote.BTC-USD", 41, P(990)),
                up("snapshot", "book.BTC-USD", 88, P(950)),
            ],
            P(1000),
            state,
        ),
    )
    q2 = {**QUOTE_BTC, "bid": "43250.75"}
    s2 = {**state, "quote.BTC-USD": st(42, q2)}
    c.sse(
        sse_events(delta("quote.BTC-USD", 42, 1001, TS + 10, {"bid": "43250.75"})),
        expect([up("delta", "quote.BTC-USD", 42, P(1001))], P(1001), s2),
    )
    s3 = {**s2, "trade.BTC-USD": st(1, TRADE_BTC)}
    c.sse(
        'event: snapshot\nid: 1763762000-1002\ndata: {"topic":"trade.BTC-USD","seq":1,'
        '"offset":1002,"ts":1763762213000020,"data":{"price":"43251","size":"0.01",'
        '"side":"buy","id":"cbx-77","venue":"cbx","venue_ts":1763762212999100},'
        '"source":"future-key"}\n\n',
        expect([up("snapshot", "trade.BTC-USD", 1, P(1002))], P(1002), s3),
    )
    c.sse(
        'event: heartbeat\nid: 1763762000-1010\ndata: {"epoch":1763762000,"offset":1010,'
        '"ts":1763762228000000,"lag":0}\n\n',
        expect([], P(1010), s3),
    )
    c.connect(P(1010))
    c.sse(sse_events(hello(1012)), expect([], P(1010), s3))
    b2 = {"bids": [["43250.5", "1"]], "asks": [["43251", "0.3"], ["43252", "1.5"]]}
    s4 = {**s3, "book.BTC-USD": st(89, b2)}
    c.sse(
        sse_events(delta("book.BTC-USD", 89, 1012, TS + 30, {"bids": [["43250", "0"]]})),
        expect([up("delta", "book.BTC-USD", 89, P(1012))], P(1012), s4),
    )
    return c


def sse_reset_cut() -> Case:
    c = Case(
        "sse-reset-unit-cut-before-heartbeat",
        "SSE: a reset unit is the reset event, snapshot events (no id:) and a heartbeat "
        "with id:. A stream cut before that heartbeat has processed nothing of it: no "
        "update, the old state and resume position stay (the browser's Last-Event-ID too), "
        "and the reconnect gets the reset again; then whole, it forgets every topic, "
        "rebuilds from the snapshots (reset updates, reason too_old) and drops the topic "
        "it has no snapshot for. PROTOCOL.md: 'SSE', 'Resume and reset'.",
        "sse",
    )
    c.connect(None)
    c.sse(sse_events(hello(1000)), expect([], None, {}))
    state = {
        "quote.BTC-USD": st(41, QUOTE_BTC),
        "book.BTC-USD": st(88, BOOK_BTC),
        "trade.BTC-USD": st(5, TRADE_BTC),
    }
    c.sse(
        sse_events(
            snap("quote.BTC-USD", 41, 990, TS - 5000, QUOTE_BTC),
            snap("book.BTC-USD", 88, 950, TS - 9000, BOOK_BTC),
            snap("trade.BTC-USD", 5, 970, TS - 7000, TRADE_BTC),
            hb(1000, TS),
            ids=False,
        ),
        expect(
            [
                up("snapshot", "quote.BTC-USD", 41, P(990)),
                up("snapshot", "book.BTC-USD", 88, P(950)),
                up("snapshot", "trade.BTC-USD", 5, P(970)),
            ],
            P(1000),
            state,
        ),
    )
    c.connect(P(1000))
    c.sse(sse_events(hello(90000)), expect([], P(1000), state))
    quote = {"bid": "44000", "bid_size": "1", "ask": "44000.5", "ask_size": "2"}
    book = {"bids": [["44000", "1"]], "asks": [["44000.5", "2"]]}
    partial = sse_events(
        reset(90000, "too_old"),
        snap("quote.BTC-USD", 2041, 89990, TS + 600_000_000, quote),
        ids=False,
    )
    c.sse(partial, expect([], P(1000), state))
    c.connect(P(1000))
    c.sse(sse_events(hello(90001)), expect([], P(1000), state))
    lost = loss(P(1000), P(90001), "too_old")
    after = {"quote.BTC-USD": st(2041, quote), "book.BTC-USD": st(3007, book)}
    c.sse(
        sse_events(
            reset(90001, "too_old"),
            snap("quote.BTC-USD", 2041, 89990, TS + 600_000_000, quote),
            snap("book.BTC-USD", 3007, 90001, TS + 600_000_100, book),
            hb(90001, TS + 600_000_200),
            ids=False,
        ),
        expect(
            [
                up("reset", "quote.BTC-USD", 2041, P(89990), loss=lost),
                up("reset", "book.BTC-USD", 3007, P(90001), loss=lost),
                up("reset", "trade.BTC-USD", 0, P(90001), loss=lost),
            ],
            P(90001),
            after,
        ),
    )
    c.connect(P(90001))
    return c


def sse_gap() -> Case:
    c = Case(
        "sse-delta-gap-resync",
        "SSE: a delta whose seq skips one is not applied; the client reconnects with "
        "Last-Event-ID = the offset of the last message it applied of that topic; the "
        "replay's repeat of another topic's message is ignored. PROTOCOL.md: 'Positions "
        "and sequences', 'SSE'.",
        "sse",
    )
    c.connect(None)
    c.sse(sse_events(hello(300)), expect([], None, {}))
    state = {"quote.ETH-USD": st(7, QUOTE_ETH), "book.BTC-USD": st(10, BOOK_BTC)}
    c.sse(
        sse_events(
            snap("quote.ETH-USD", 7, 280, TS - 100, QUOTE_ETH),
            snap("book.BTC-USD", 10, 290, TS - 50, BOOK_BTC),
            hb(300, TS),
            ids=False,
        ),
        expect(
            [
                up("snapshot", "quote.ETH-USD", 7, P(280)),
                up("snapshot", "book.BTC-USD", 10, P(290)),
            ],
            P(300),
            state,
        ),
    )
    # book 11 at 302 is lost; quote.ETH 8 at 301 and 9 at 303 arrive, then book 12.
    q8 = {**QUOTE_ETH, "ask": "3121"}
    q9 = {**q8, "ask_size": "1"}
    s1 = {**state, "quote.ETH-USD": st(8, q8)}
    s2 = {**state, "quote.ETH-USD": st(9, q9)}
    c.sse(
        sse_events(delta("quote.ETH-USD", 8, 301, TS + 10, {"ask": "3121"})),
        expect([up("delta", "quote.ETH-USD", 8, P(301))], P(301), s1),
    )
    c.sse(
        sse_events(delta("quote.ETH-USD", 9, 303, TS + 30, {"ask_size": "1"})),
        expect([up("delta", "quote.ETH-USD", 9, P(303))], P(303), s2),
    )
    c.sse(
        sse_events(delta("book.BTC-USD", 12, 304, TS + 40, {"asks": [["43252", "0"]]})),
        expect([], P(290), s2, resync=True),
    )
    c.connect(P(290))
    c.sse(sse_events(hello(304)), expect([], P(290), s2))
    c.sse(
        sse_events(delta("quote.ETH-USD", 8, 301, TS + 10, {"ask": "3121"})),
        expect([], P(301), s2),
    )
    b11 = {
        "bids": [["43250.5", "1"], ["43250", "2.5"]],
        "asks": [["43251", "0.5"], ["43252", "1.5"]],
    }
    s3 = {**s2, "book.BTC-USD": st(11, b11)}
    c.sse(
        sse_events(delta("book.BTC-USD", 11, 302, TS + 20, {"asks": [["43251", "0.5"]]})),
        expect([up("delta", "book.BTC-USD", 11, P(302))], P(302), s3),
    )
    c.sse(
        sse_events(delta("quote.ETH-USD", 9, 303, TS + 30, {"ask_size": "1"})),
        expect([], P(303), s3),
    )
    b12 = {"bids": [["43250.5", "1"], ["43250", "2.5"]], "asks": [["43251", "0.5"]]}
    c.sse(
        sse_events(delta("book.BTC-USD", 12, 304, TS + 40, {"asks": [["43252", "0"]]})),
        expect(
            [up("delta", "book.BTC-USD", 12, P(304))], P(304), {**s3, "book.BTC-USD": st(12, b12)}
        ),
    )
    return c


def sse_conflation_keyframe_null() -> Case:
    c = Case(
        "sse-conflated-tick-keyframe-null",
        "SSE: a max_rate tick (or conflated catch-up) is a burst: snapshots without id: at "
        "higher seqs (skipped > 0, exact state) and a heartbeat with id:. A keyframe in "
        "the stream is a snapshot event with an id:. A delta field null removes it. "
        "PROTOCOL.md: 'SSE' (max_rate), 'Snapshots, deltas, keyframes'.",
        "sse",
    )
    c.connect(None)
    c.sse(sse_events(hello(400)), expect([], None, {}))
    c.sse(
        sse_events(snap("quote.ETH-USD", 7, 380, TS - 100, QUOTE_ETH), hb(400, TS), ids=False),
        expect(
            [up("snapshot", "quote.ETH-USD", 7, P(380))],
            P(400),
            {"quote.ETH-USD": st(7, QUOTE_ETH)},
        ),
    )
    q12 = {"bid": "3122", "bid_size": "1", "ask": "3122.5", "ask_size": "1.75"}
    c.sse(
        sse_events(snap("quote.ETH-USD", 12, 430, TS + 300, q12), hb(433, TS + 330), ids=False),
        expect(
            [up("snapshot", "quote.ETH-USD", 12, P(430), skipped=4)],
            P(433),
            {"quote.ETH-USD": st(12, q12)},
        ),
    )
    q13 = {"ask": "3122.5", "ask_size": "1.75"}
    c.sse(
        sse_events(delta("quote.ETH-USD", 13, 434, TS + 340, {"bid": None, "bid_size": None})),
        expect([up("delta", "quote.ETH-USD", 13, P(434))], P(434), {"quote.ETH-USD": st(13, q13)}),
    )
    q14 = {"bid": "3121", "bid_size": "2", "ask": "3122", "ask_size": "0.5"}
    c.sse(
        sse_events(snap("quote.ETH-USD", 14, 435, TS + 350, q14)),
        expect(
            [up("snapshot", "quote.ETH-USD", 14, P(435))], P(435), {"quote.ETH-USD": st(14, q14)}
        ),
    )
    return c


def checksum_mismatch() -> Case:
    c = Case(
        "ws-book-checksum-mismatch-resnapshots",
        "A book message's `checksum` is the CRC32 of the book after it (top 10 levels a "
        "side, interleaved best first, nanos in base 10). A snapshot's and a delta's that "
        "hold apply as usual (the checksum is not part of the state). A delta after which "
        "the client's book fails it (here the server's book has a bid 43249.5 the client "
        "never got: the client's book diverged) is not applied: the client subscribes "
        "afresh (resume null), forgetting every topic, and the burst rebuilds them as "
        "resets with reason `checksum`, `after` the position held before. PROTOCOL.md: "
        "'Book checksum'.",
    )
    c.connect(None)
    c.ws([hello(300)], expect([], None, {}))
    book10 = {**BOOK_BTC, "checksum": BOOK_BTC_SUM}
    state = {"quote.BTC-USD": st(41, QUOTE_BTC), "book.BTC-USD": st(10, BOOK_BTC)}
    c.ws(
        [
            snap("quote.BTC-USD", 41, 280, TS - 200, QUOTE_BTC),
            snap("book.BTC-USD", 10, 290, TS - 100, book10),
            hb(300, TS),
        ],
        expect(
            [
                up("snapshot", "quote.BTC-USD", 41, P(280)),
                up("snapshot", "book.BTC-USD", 10, P(290)),
            ],
            P(300),
            state,
        ),
    )
    b11 = {
        "bids": [["43250.5", "1"], ["43250", "2.5"]],
        "asks": [["43251", "0.4"], ["43252", "1.5"]],
    }
    sum11 = crc(
        "43250500000000:1000000000:43251000000000:400000000:43250000000000:2500000000:"
        "43252000000000:1500000000"
    )
    s1 = {**state, "book.BTC-USD": st(11, b11)}
    c.ws(
        [delta("book.BTC-USD", 11, 301, TS + 10, {"asks": [["43251", "0.4"]], "checksum": sum11})],
        expect([up("delta", "book.BTC-USD", 11, P(301))], P(301), s1),
    )
    # The server's book: bids 43250.5 x 1, 43250 x 3, 43249.5 x 2; the client's lacks
    # 43249.5.
    sum12 = crc(
        "43250500000000:1000000000:43251000000000:400000000:43250000000000:3000000000:"
        "43252000000000:1500000000:43249500000000:2000000000"
    )
    c.ws(
        [delta("book.BTC-USD", 12, 302, TS + 20, {"bids": [["43250", "3"]], "checksum": sum12})],
        expect([], None, {}, resync=True),
    )
    c.connect(None)
    c.ws([hello(305)], expect([], None, {}))
    b12 = {
        "bids": [["43250.5", "1"], ["43250", "3"], ["43249.5", "2"]],
        "asks": [["43251", "0.4"], ["43252", "1.5"]],
    }
    lost = loss(P(301), P(305), "checksum")
    c.ws(
        [
            snap("quote.BTC-USD", 41, 280, TS - 200, QUOTE_BTC),
            snap("book.BTC-USD", 12, 302, TS + 20, {**b12, "checksum": sum12}),
            hb(305, TS + 50),
        ],
        expect(
            [
                up("reset", "quote.BTC-USD", 41, P(280), loss=lost),
                up("reset", "book.BTC-USD", 12, P(302), loss=lost),
            ],
            P(305),
            {"quote.BTC-USD": st(41, QUOTE_BTC), "book.BTC-USD": st(12, b12)},
        ),
    )
    return c


def sse_checksum_mismatch() -> Case:
    c = Case(
        "sse-book-checksum-mismatch-resnapshots",
        "SSE: the `checksum` key of a book's data is a JSON integer and the sides are "
        "decimal strings; the text is built from the nanos all the same. A delta after "
        "which the book fails it: the client reconnects with no Last-Event-ID (a fresh "
        "subscription), and the burst rebuilds the book as a reset with reason "
        "`checksum`. PROTOCOL.md: 'Book checksum', 'SSE'.",
        "sse",
    )
    c.connect(None)
    c.sse(sse_events(hello(300)), expect([], None, {}))
    c.sse(
        sse_events(
            snap("book.BTC-USD", 10, 290, TS - 100, {**BOOK_BTC, "checksum": BOOK_BTC_SUM}),
            hb(300, TS),
            ids=False,
        ),
        expect(
            [up("snapshot", "book.BTC-USD", 10, P(290))], P(300), {"book.BTC-USD": st(10, BOOK_BTC)}
        ),
    )
    # The server's book after removing ask 43251 (the client's still has a bid 43250.5
    # the server's does not: it removed it in a message the client applied wrongly).
    sum11 = crc("43250000000000:2500000000:43252000000000:1500000000")
    c.sse(
        sse_events(
            delta("book.BTC-USD", 11, 301, TS + 10, {"asks": [["43251", "0"]], "checksum": sum11})
        ),
        expect([], None, {}, resync=True),
    )
    c.connect(None)
    c.sse(sse_events(hello(302)), expect([], None, {}))
    b11 = {"bids": [["43250", "2.5"]], "asks": [["43252", "1.5"]]}
    c.sse(
        sse_events(
            snap("book.BTC-USD", 11, 301, TS + 10, {**b11, "checksum": sum11}),
            hb(302, TS + 20),
            ids=False,
        ),
        expect(
            [up("reset", "book.BTC-USD", 11, P(301), loss=loss(P(300), P(302), "checksum"))],
            P(302),
            {"book.BTC-USD": st(11, b11)},
        ),
    )
    return c


BUILDERS = [
    first_message_is_snapshot,
    subscribe_burst,
    hello_not_resume_point,
    reset_unit,
    cut_between_units,
    gap_resync,
    replay_overlap_in_one_frame,
    conflated_snapshot,
    trade_seq_jump,
    keyframe,
    null_field,
    book_size_zero,
    trailing_elements,
    big_integers,
    refusal,
    heartbeats_move_resume,
    sse_burst_and_resume,
    sse_reset_cut,
    sse_gap,
    sse_conflation_keyframe_null,
    checksum_mismatch,
    sse_checksum_mismatch,
]


def render(case: Case) -> str:
    """A case file's text: 2-space JSON, one trailing newline."""
    return json.dumps(case.json(), indent=2, ensure_ascii=False) + "\n"


def built() -> dict[str, str]:
    """Every hand-built case: file name -> text."""
    out: dict[str, str] = {}
    for build in BUILDERS:
        case = build()
        out[f"{case.name}.json"] = render(case)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if a case file is stale")
    args = parser.parse_args()
    stale = []
    for name, text in built().items():
        path = CASES_DIR / name
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(name)
        else:
            CASES_DIR.mkdir(exist_ok=True)
            path.write_text(text)
    if stale:
        print("stale or missing (run conformance/build_cases.py):", *stale, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The fxa venue's native messages: FIX 4.4 market-data types as frozen dataclasses.

Owns the message shapes and the enumerated tag values (269 MDEntryType, 279
MDUpdateAction, 5797 AggressorSide) shared by the codec, the simulator and the
adapter. Must not encode, decode or validate; `fxa_wire` does that.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

SOH: Final = "\x01"

# 269 MDEntryType values.
BID: Final = "0"
OFFER: Final = "1"
TRADE: Final = "2"
OPEN: Final = "4"
HIGH: Final = "7"
LOW: Final = "8"
VOLUME: Final = "B"
ENTRY_TYPES: Final = frozenset((BID, OFFER, TRADE, OPEN, HIGH, LOW, VOLUME))

# 279 MDUpdateAction values.
NEW: Final = 0
CHANGE: Final = 1
DELETE: Final = 2

# 5797 AggressorSide values.
AGGRESSOR_BUY: Final = 1
AGGRESSOR_SELL: Final = 2

FxaLevel = tuple[str, int, int]
"""A full-refresh entry: (269 entry type BID or OFFER, 270 price nanos, 271 size nanos)."""

EntryTuple = tuple[int, str, str, int, int | None, int | None, str | None, int | None]
"""An incremental entry as scanned: the fields of `FxaEntry`, in order."""


@dataclass(frozen=True, slots=True)
class FxaHeader:
    """Standard header: 34 MsgSeqNum (per session), 49/56 comp ids, 52 SendingTime (ms).

    A resend sets 43 PossDupFlag=Y and 122 OrigSendingTime.
    """

    seq: int
    sender: str
    target: str
    sending_time_ns: int
    poss_dup: bool = False
    orig_sending_time_ns: int | None = None


@dataclass(frozen=True, slots=True)
class FxaLogon:
    """35=A: starts a session at 34=1 (98=0 no encryption, 108 HeartBtInt, 141 reset)."""

    header: FxaHeader
    heartbeat_interval_s: int
    reset_seq: bool


@dataclass(frozen=True, slots=True)
class FxaLogout:
    """35=5: ends the session; 58 Text says why."""

    header: FxaHeader
    text: str


@dataclass(frozen=True, slots=True)
class FxaHeartbeat:
    """35=0: liveness; takes a MsgSeqNum like every message."""

    header: FxaHeader


@dataclass(frozen=True, slots=True)
class FxaSnapshotRequest:
    """35=V with 263=0 (snapshot only), 264=0 (full depth), bids and offers of one symbol."""

    header: FxaHeader
    req_id: str
    symbol: str


@dataclass(frozen=True, slots=True)
class FxaSnapshot:
    """35=W full refresh of one symbol; 83 RptSeq is the last per-symbol seq included."""

    header: FxaHeader
    req_id: str | None
    symbol: str
    rpt_seq: int
    entries: tuple[FxaLevel, ...]


@dataclass(frozen=True, slots=True)
class FxaEntry:
    """One 268 group of 35=X; every entry takes the next 83 RptSeq of its symbol.

    Book entries (BID/OFFER) carry the absolute size at the price (DELETE: size None).
    TRADE entries carry 1003 TradeID and 5797 AggressorSide. OPEN/HIGH/LOW carry a
    price, VOLUME a size.
    """

    action: int
    entry_type: str
    symbol: str
    rpt_seq: int
    price: int | None
    size: int | None
    trade_id: str | None = None
    aggressor: int | None = None


@dataclass(frozen=True, slots=True)
class FxaIncremental:
    """35=X incremental refresh: entries for one or more symbols."""

    header: FxaHeader
    entries: tuple[FxaEntry, ...]


FxaMessage = FxaLogon | FxaLogout | FxaHeartbeat | FxaSnapshotRequest | FxaSnapshot | FxaIncremental

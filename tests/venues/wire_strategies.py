"""Hypothesis strategies for the native messages of the three venues."""

from __future__ import annotations

from hypothesis import strategies as st

from ticker.venues import cbx_wire, fxa_messages, itx_wire

nanos = st.integers(-(10**15), 10**15)
sizes = st.integers(0, 10**15)
seqs = st.integers(0, 2**53)
seconds = st.integers(0, 4_000_000_000)
us_times = st.builds(lambda s, us: s * 10**9 + us * 1000, seconds, st.integers(0, 999_999))
ms_times = st.builds(lambda s, ms: s * 10**9 + ms * 10**6, seconds, st.integers(0, 999))
tokens = st.from_regex(r"\A[A-Z0-9]{1,6}[-/][A-Z0-9]{1,6}\Z")
levels = st.lists(st.tuples(nanos, sizes), max_size=6).map(tuple)

cbx_sides = st.sampled_from(["buy", "sell"])
cbx_messages = st.one_of(
    st.builds(cbx_wire.CbxSnapshot, tokens, seqs, us_times, levels, levels),
    st.builds(
        cbx_wire.CbxL2Update,
        tokens,
        seqs,
        us_times,
        st.lists(st.tuples(cbx_sides, nanos, sizes), max_size=5).map(tuple),
    ),
    st.builds(cbx_wire.CbxMatch, tokens, seqs, us_times, seqs, cbx_sides, nanos, sizes),
    st.builds(cbx_wire.CbxTicker, tokens, seqs, us_times, nanos, nanos, nanos, nanos, sizes),
    st.builds(cbx_wire.CbxHeartbeat, tokens, seqs, us_times, seqs),
)

# Any printable ASCII but SOH; "=" inside values exercises the slow split path.
fix_text = st.text(st.characters(min_codepoint=32, max_codepoint=126), min_size=1, max_size=12)
fix_headers = st.builds(
    lambda seq, sender, target, t, dup, orig: fxa_messages.FxaHeader(
        seq, sender, target, t, dup, orig if dup else None
    ),
    seqs,
    fix_text,
    fix_text,
    ms_times,
    st.booleans(),
    st.none() | ms_times,
)
fxa_entries = st.builds(
    fxa_messages.FxaEntry,
    st.sampled_from([fxa_messages.NEW, fxa_messages.CHANGE, fxa_messages.DELETE]),
    st.sampled_from(sorted(fxa_messages.ENTRY_TYPES)),
    fix_text,
    seqs,
    st.none() | nanos,
    st.none() | sizes,
    st.none() | fix_text,
    st.none() | st.sampled_from([fxa_messages.AGGRESSOR_BUY, fxa_messages.AGGRESSOR_SELL]),
)
fxa_levels = st.lists(
    st.tuples(st.sampled_from([fxa_messages.BID, fxa_messages.OFFER]), nanos, sizes), max_size=6
).map(tuple)
fxa_native = st.one_of(
    st.builds(fxa_messages.FxaLogon, fix_headers, st.integers(0, 3600), st.booleans()),
    st.builds(fxa_messages.FxaLogout, fix_headers, st.just("") | fix_text),
    st.builds(fxa_messages.FxaHeartbeat, fix_headers),
    st.builds(fxa_messages.FxaSnapshotRequest, fix_headers, fix_text, fix_text),
    st.builds(
        fxa_messages.FxaSnapshot, fix_headers, st.none() | fix_text, fix_text, seqs, fxa_levels
    ),
    st.builds(
        fxa_messages.FxaIncremental, fix_headers, st.lists(fxa_entries, max_size=5).map(tuple)
    ),
)

u16 = st.integers(0, 2**16 - 1)
u32 = st.integers(0, 2**32 - 1)
u64 = st.integers(0, 2**64 - 1)
i64 = st.integers(-(2**63), 2**63 - 1)
itx_sides = st.sampled_from(["B", "S"])
itx_levels = st.lists(st.tuples(i64, i64), max_size=5).map(tuple)
itx_messages = st.one_of(
    st.builds(itx_wire.ItxSnapshot, u16, u32, u64, itx_levels, itx_levels),
    st.builds(itx_wire.ItxLevelUpdate, u16, u32, u64, itx_sides, i64, i64),
    st.builds(itx_wire.ItxTrade, u16, u32, u64, itx_sides, i64, i64, u64),
)
sessions = st.from_regex(r"\A[!-~]([ -~]{0,8}[!-~])?\Z")
itx_packets = st.one_of(
    st.builds(
        itx_wire.ItxPacket,
        sessions,
        u64,
        st.lists(itx_messages, max_size=6).map(tuple),
    ),
    st.builds(itx_wire.ItxPacket, sessions, u64, st.just(()), st.just(True)),
)

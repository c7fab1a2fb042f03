"""End to end through the pure parts: simulator -> faults -> adapter, for any seed.

The invariants: a book is never crossed; after the faults stop and the feed drains,
every symbol is live again and its book equals the venue's true book.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from feeds.drive import make_run
from feeds.faults import FaultPlan
from ticker.ingest.normalizer import Phase
from ticker.venues.reference import VENUES

rates = st.sampled_from([0.0, 0.0, 0.005, 0.02, 0.06])


@st.composite
def fault_plans(draw: st.DrawFn) -> FaultPlan:
    return FaultPlan(
        drop=draw(rates),
        duplicate=draw(rates),
        reorder=draw(rates),
        malformed=draw(rates),
        truncate=draw(rates),
        stall=draw(st.sampled_from([0.0, 0.002, 0.01])),
        disconnect=draw(st.sampled_from([0.0, 0.0, 0.001, 0.004])),
        stall_max_ns=draw(st.sampled_from([1_000_000, 300_000_000, 3_000_000_000])),
    )


@settings(max_examples=36, deadline=None)
@given(
    venue=st.sampled_from(VENUES),
    seed=st.integers(0, 2**32),
    plan=fault_plans(),
    frames=st.integers(200, 1500),
)
def test_books_converge_to_the_venue_after_any_faults(
    venue: str, seed: int, plan: FaultPlan, frames: int
) -> None:
    run = make_run(venue, seed, plan)
    run.run(frames, check_crossed=True)
    assert run.crossed == []
    run.drain()
    assert set(run.adapter.phases().values()) == {Phase.LIVE}
    assert run.adapter.books() == run.feed.sim.books()
    assert not any(t.book.crossed() for t in run.adapter.norm.tracks.values())


def test_a_heavy_fault_mix_still_converges() -> None:
    plan = FaultPlan(
        drop=0.05,
        duplicate=0.05,
        reorder=0.05,
        malformed=0.05,
        truncate=0.05,
        stall=0.01,
        disconnect=0.005,
    )
    for venue in VENUES:
        run = make_run(venue, 20240101, plan)
        run.run(4000, check_crossed=True)
        assert run.crossed == []
        injected = run.feed.injected
        assert all(injected[kind] > 0 for kind in injected), injected
        counters = run.adapter.counters
        assert counters.malformed > 0
        assert counters.resyncs > 0
        assert counters.disconnects == injected["disconnect"]
        run.drain()
        assert run.adapter.books() == run.feed.sim.books()

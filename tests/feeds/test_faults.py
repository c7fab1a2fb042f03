"""Fault injection: reproducible by seed, each fault kind does what it says."""

from __future__ import annotations

from random import Random

import pytest

from feeds.faults import Disconnect, FaultPlan, FaultyFeed, Stall
from feeds.simulator import Frame, make_simulator
from ticker.ingest.contract import RequestSnapshot
from ticker.venues import fxa_messages, fxa_wire
from ticker.venues.reference import VENUES

Item = Frame | Stall | Disconnect


def items(venue: str, plan: FaultPlan, n: int, seed: int = 1) -> list[Item]:
    feed = FaultyFeed(make_simulator(venue, 5, 1000.0), plan, Random(seed))
    return [feed.next() for _ in range(n)]


def frames(xs: list[Item]) -> list[bytes]:
    return [x.data for x in xs if isinstance(x, Frame)]


def test_plan_is_validated() -> None:
    with pytest.raises(ValueError):
        FaultPlan(drop=1.0)
    with pytest.raises(ValueError):
        FaultPlan(drop=0.6, duplicate=0.6)
    with pytest.raises(ValueError):
        FaultPlan(stall=-0.1)
    with pytest.raises(ValueError):
        FaultPlan(stall_max_ns=0)
    assert FaultPlan().clean and not FaultPlan(reorder=0.1).clean


@pytest.mark.parametrize("venue", VENUES)
def test_a_clean_feed_is_the_simulator(venue: str) -> None:
    sim = make_simulator(venue, 5, 1000.0)
    expected = [f.data for f in sim.connect()] + [sim.next_frame().data for _ in range(300)]
    assert frames(items(venue, FaultPlan(), len(expected))) == expected


@pytest.mark.parametrize("venue", VENUES)
def test_faults_are_reproducible_by_seed(venue: str) -> None:
    plan = FaultPlan(0.05, 0.05, 0.05, 0.05, 0.05, 0.01, 0.01)
    assert items(venue, plan, 800, seed=3) == items(venue, plan, 800, seed=3)
    assert items(venue, plan, 800, seed=3) != items(venue, plan, 800, seed=4)


def test_drop_duplicate_reorder() -> None:
    clean = frames(items("cbx", FaultPlan(), 400))
    dropped = frames(items("cbx", FaultPlan(drop=0.2), 300))
    assert set(dropped) < set(clean) and len(dropped) == 300
    duplicated = frames(items("cbx", FaultPlan(duplicate=0.2), 400))
    assert len(set(duplicated)) < len(duplicated)
    reordered = frames(items("cbx", FaultPlan(reorder=0.2), 400))
    assert sorted(reordered) == sorted(clean) and reordered != clean


def test_fxa_duplicates_are_poss_dup_resends() -> None:
    got = [fxa_wire.decode_message(d) for d in frames(items("fxa", FaultPlan(duplicate=0.3), 200))]
    resends = [m for m in got if m.header.poss_dup]
    assert resends
    originals = {m.header.seq: m for m in got if not m.header.poss_dup}
    for m in resends:
        assert m.header.orig_sending_time_ns == originals[m.header.seq].header.sending_time_ns


def test_stall_advances_simulated_time() -> None:
    feed = FaultyFeed(make_simulator("itx", 5, 1000.0), FaultPlan(stall=0.1), Random(2))
    stalls = 0
    for _ in range(300):
        before = feed.sim.now_ns
        item = feed.next()
        if isinstance(item, Stall):
            stalls += 1
            assert feed.sim.now_ns == before + item.duration_ns
            assert 1 <= item.duration_ns <= feed.plan.stall_max_ns
    assert stalls > 5


def test_disconnect_starts_a_new_session() -> None:
    feed = FaultyFeed(make_simulator("fxa", 5, 1000.0), FaultPlan(disconnect=0.02), Random(9))
    seen = 0
    previous: Item | None = None
    for _ in range(2000):
        item = feed.next()
        if isinstance(previous, Disconnect) and isinstance(item, Frame):
            msg = fxa_wire.decode_message(item.data)
            assert isinstance(msg, fxa_messages.FxaLogon) and msg.header.seq == 1
            seen += 1
        previous = item
    assert seen >= 10


def test_requests_reach_the_simulator() -> None:
    sim = make_simulator("cbx", 5, 1000.0)
    feed = FaultyFeed(sim, FaultPlan(), Random(1))
    feed.next()
    while not feed.idle:
        feed.next()
    feed.request(RequestSnapshot("itx", "BTC-USD"))  # another venue's: ignored
    assert feed.idle
    feed.request(RequestSnapshot("cbx", "BTC-USD"))
    assert not feed.idle

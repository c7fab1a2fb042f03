"""The whole pure pipeline under venue faults: venues -> adapters -> hub -> wire -> mirror.

For any seed and fault plan, a client that joins at any point from snapshots and then
applies every published message (decoded from its msgpack bytes) holds exactly the
sequencer's state at every position. Only the message's own topic changes at a
position, so checking that topic after each message checks every topic at every
position (all others were already equal and did not move).
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from feeds.drive import Run, make_run
from feeds.faults import FaultPlan
from ticker.config import Config
from ticker.core.codec import decode_server, parse_json
from ticker.core.hub import Hub
from ticker.core.messages import DataMessage
from ticker.core.mirror import Applied, Mirror
from ticker.model.events import NormalizedEvent

rates = st.floats(min_value=0.0, max_value=0.02)
plans = st.builds(
    FaultPlan,
    drop=rates,
    duplicate=rates,
    reorder=rates,
    malformed=rates,
    truncate=rates,
    stall=st.floats(0.0, 0.005),
    disconnect=st.floats(0.0, 0.003),
    stall_max_ns=st.just(200_000_000),
)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 10_000),
    plan=plans,
    join_at=st.integers(0, 1500),
    keyframe_interval=st.integers(2, 50),
)
def test_client_state_equals_the_sequencer_at_every_position_under_venue_faults(
    seed: int, plan: FaultPlan, join_at: int, keyframe_interval: int
) -> None:
    hub = Hub(Config(keyframe_interval=keyframe_interval), epoch=1)
    mirror = Mirror()
    joined = False
    published = 0

    def sink(event: NormalizedEvent, now_ns: int) -> None:
        nonlocal joined, published
        if not joined and published >= join_at:
            # Join between two publishes, as a subscribe does: snapshots at this position.
            joined = True
            for topic in hub.topics():
                assert isinstance(mirror.apply(hub.snapshot(topic)), Applied)
        for item in hub.publish(event, now_ns):
            published += 1
            if not joined:
                continue
            message = decode_server(item.payload)
            assert isinstance(message, DataMessage)
            assert parse_json(item.json, snapshot=message.snapshot) == message
            assert mirror.apply(message) == Applied(message.seq), message
            assert mirror.data(message.topic) == hub.snapshot(message.topic).data

    runs: list[Run] = [
        make_run(venue, seed, plan, sink=sink, symbols=["BTC-USD", "ETH-USD", "SOL-USD"])
        for venue in ("cbx", "fxa", "itx")
    ]
    for step in range(900):
        for run in runs:
            run.run(1, timer_every=1, check_crossed=True)
        if step % 100 == 0:
            assert not any(run.crossed for run in runs)
    for run in runs:
        run.drain()
        assert not run.crossed
    assert published > 0
    if joined:
        for topic in hub.topics():
            if topic in mirror:
                assert mirror.data(topic) == hub.snapshot(topic).data

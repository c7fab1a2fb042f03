from __future__ import annotations

from ticker.config import Config
from ticker.core.codec import decode_server, parse_json
from ticker.core.hub import Hub
from ticker.core.position import Position
from ticker.core.replay import Replay, Reset, ResetReason
from ticker.model.events import Quote


def test_publish_encodes_once_and_buffers_for_resume() -> None:
    hub = Hub(Config(replay_max_messages=3), epoch=9)
    out = []
    for i in range(5):
        out += hub.publish(Quote("a", "X-Y", 0, 100 + i, 1, 200, 1), now_ns=1_000_000 * i)
    assert [p.message.offset for p in out] == [1, 2, 3, 4, 5]
    assert decode_server(out[-1].payload) == out[-1].message
    assert out[-1].json is out[-1].json  # rendered once, then shared
    assert parse_json(out[-1].json, snapshot=False) == out[-1].message
    assert hub.since(Position(9, 3)) == Replay(out[3:])
    assert hub.since(Position(9, 1)) == Reset(ResetReason.TOO_OLD)
    assert hub.position == Position(9, 5)


def test_keyframe_goes_into_the_stream() -> None:
    hub = Hub(Config(), epoch=1)
    hub.publish(Quote("a", "X-Y", 0, 100, 1, 200, 1), 0)
    frame = hub.keyframe("quote.X-Y", 0)
    assert frame.message.snapshot and frame.message.offset == 2
    assert hub.snapshot("quote.X-Y", 0).data == frame.message.data

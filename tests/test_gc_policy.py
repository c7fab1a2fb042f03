"""The GC policy of `ticker serve`: applied only when asked, and what it changes."""

from __future__ import annotations

import gc

import pytest

from ticker.config import Config
from ticker.errors import ConfigError
from ticker.server.gc_policy import apply_gc_policy


@pytest.fixture
def restore_gc(request: pytest.FixtureRequest) -> None:
    # Not a generator fixture: trio_mode would take one for a trio fixture.
    threshold = gc.get_threshold()

    def restore() -> None:
        gc.unfreeze()
        gc.set_threshold(*threshold)

    request.addfinalizer(restore)


@pytest.mark.usefixtures("restore_gc")
def test_the_policy_freezes_start_up_and_raises_the_youngest_threshold() -> None:
    gc.unfreeze()
    gc.set_threshold(700, 10, 10)
    assert apply_gc_policy(50_000)
    assert gc.get_threshold() == (50_000, 10, 10)
    assert gc.get_freeze_count() > 0


@pytest.mark.usefixtures("restore_gc")
def test_zero_leaves_the_collector_as_it_is() -> None:
    gc.unfreeze()
    gc.set_threshold(700, 10, 10)
    assert not apply_gc_policy(0)
    assert gc.get_threshold() == (700, 10, 10)
    assert gc.get_freeze_count() == 0


@pytest.mark.usefixtures("restore_gc")
def test_garbage_cycles_are_still_collected_under_the_policy() -> None:
    apply_gc_policy(50_000)
    assert gc.isenabled()

    class Node:
        def __init__(self) -> None:
            self.me = self

    node = Node()
    alive = id(node)
    del node
    gc.collect()
    assert all(id(obj) != alive for obj in gc.get_objects())


def test_the_default_applies_it_and_a_negative_threshold_is_refused() -> None:
    assert Config().gc_gen0_threshold > 700
    with pytest.raises(ConfigError, match="gc_gen0_threshold"):
        Config(gc_gen0_threshold=-1)

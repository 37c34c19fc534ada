"""Beat's garbage-collector policy (scheduler/gc_freeze.py): frozen objects are not lost for good."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from scheduler import gc_freeze


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


@pytest.fixture(autouse=True)
def thawed() -> Iterator[None]:
    # Before too: an in-process scheduler test run earlier in this worker may have left a burst held.
    gc.unfreeze()
    gc_freeze._burst_frozen = False
    yield
    gc.unfreeze()
    gc_freeze._burst_frozen = False


def cycle() -> weakref.ref[Node]:
    a, b = Node(), Node()
    a.other, b.other = b, a
    return weakref.ref(a)


def test_start_up_objects_leave_the_collectors_passes() -> None:
    kept = Node()
    gc_freeze.freeze_start_up()
    assert gc.get_freeze_count() > 0
    assert not any(o is kept for o in gc.get_objects())  # what a full pass scans


def test_cyclic_garbage_frozen_with_a_burst_is_collected_after_it() -> None:
    gc_freeze.freeze_start_up()
    garbage = cycle()
    gc_freeze.hold_burst()
    gc.collect()
    assert garbage() is not None  # frozen: the collector does not see it
    assert gc_freeze.collect_after_burst()
    assert garbage() is None
    assert gc.get_freeze_count() > 0  # the survivors are frozen again
    assert not gc_freeze.collect_after_burst()  # nothing held since: no second full pass


def test_without_a_burst_housekeeping_does_not_collect() -> None:
    kept = Node()
    gc_freeze.freeze_start_up()
    assert not gc_freeze.collect_after_burst()
    # Still frozen (no unfreeze and pass). Not by the freeze count: frozen objects that other
    # threads release by reference counting leave it meanwhile.
    assert not any(o is kept for o in gc.get_objects())

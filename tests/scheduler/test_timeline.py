"""The per-second timeline of next fires."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from scheduler.timeline import Timeline


def test_takes_whole_seconds_up_to_the_horizon_in_order() -> None:
    timeline = Timeline()
    timeline.add(1, 100.9)
    timeline.add(2, 99.1)
    timeline.add(3, 101.0)
    assert timeline.first_second() == 99
    assert timeline.take_until(100.5) == [(99, 2), (100, 1)]
    assert timeline.first_second() == 101 and len(timeline) == 1
    assert timeline.take_until(100.99) == []


@given(st.lists(st.tuples(st.integers(1, 50), st.floats(0, 1e6)), max_size=200), st.floats(0, 1e6))
def test_every_entry_at_or_before_the_horizon_second_is_taken_once(
    entries: list[tuple[int, float]], horizon: float
) -> None:
    timeline = Timeline()
    for task_id, ts in entries:
        timeline.add(task_id, ts)
    taken = timeline.take_until(horizon)
    expected = sorted((int(ts), tid) for tid, ts in entries if int(ts) <= int(horizon))
    assert sorted(taken) == expected
    assert len(timeline) == len(entries) - len(taken)

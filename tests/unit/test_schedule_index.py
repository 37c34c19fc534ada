"""``ScheduleIndex``: what applying a row does to the schedule and to the row writes beat owes, as a table."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from scheduler.schedule_index import ScheduleIndex
from tests.unit.rows import ANCHOR, REGISTERED, row

NOW = ANCHOR + timedelta(seconds=30)
FIRST = ANCHOR + timedelta(minutes=1)
DATE = "2026-01-01 00:05:00"
DATE_AT = ANCHOR + timedelta(minutes=5)


def index() -> ScheduleIndex:
    return ScheduleIndex(REGISTERED, "UTC", 60)


# (row columns, scheduled?, parked?, owed (status, next_run_at, last_error prefix) or None, next_run_at owed?)
CASES = [
    pytest.param({}, True, False, None, True, id="new row: scheduled, next_run_at owed"),
    pytest.param({"next_run_at": FIRST}, True, False, None, False, id="next_run_at already right: nothing owed"),
    pytest.param({"status": "doing", "next_run_at": FIRST}, True, False, None, False, id="running: stays doing"),
    pytest.param(
        {"status": "error", "last_error": "spec: bad"},
        True,
        False,
        ("ready", FIRST, None),
        False,
        id="fixed row: ready again, error cleared",
    ),
    pytest.param(
        {"execute_func": "nope"},
        False,
        True,
        ("error", None, "execute_func: "),
        False,
        id="unknown job: parked in error",
    ),
    pytest.param(
        {"spec": "soon", "status": "error", "last_error": None},
        False,
        True,
        ("error", None, "spec: cannot read interval 'soon'"),
        False,
        id="bad spec: parked, error named",
    ),
    pytest.param({"trigger": "date", "spec": DATE}, True, False, None, True, id="date ahead: scheduled at its date"),
    pytest.param(
        {"trigger": "date", "spec": DATE, "last_run_at": DATE_AT},
        False,
        True,
        ("completed", None, None),
        False,
        id="date fired: parked completed",
    ),
]


@pytest.mark.parametrize(("columns", "scheduled", "parked", "state", "next_owed"), CASES)
def test_apply_row(
    columns: dict[str, Any],
    scheduled: bool,
    parked: bool,
    state: tuple[str, datetime | None, str | None] | None,
    next_owed: bool,
) -> None:
    schedule = index()
    schedule.apply_row(row(**columns), NOW)
    assert (1 in schedule.jobs, 1 in schedule.parked) == (scheduled, parked)
    owed = schedule.row_states.get(1)
    if state is None:
        assert owed is None
    else:
        status, next_run_at, error = state
        assert owed is not None and (owed.status, owed.next_run_at) == (status, next_run_at)
        assert owed.last_error is None if error is None else (owed.last_error or "").startswith(error), owed
    assert (1 in schedule.next_runs) == next_owed


def test_an_unchanged_row_is_not_recompiled_and_a_parked_one_stays_parked() -> None:
    schedule = index()
    schedule.apply_row(row(), NOW)
    job = schedule.jobs[1]
    schedule.apply_row(row(), NOW)
    assert schedule.jobs[1] is job
    schedule.apply_row(row(id=2, execute_func="nope"), NOW)
    schedule.row_states.clear()
    schedule.apply_row(row(id=2, execute_func="nope"), NOW)
    assert 2 in schedule.parked and not schedule.row_states


@pytest.mark.parametrize(
    ("horizon", "due"),
    [
        (FIRST - timedelta(seconds=1), []),
        (FIRST, [1]),
        (FIRST + timedelta(seconds=0.5), [1]),
        (ANCHOR + timedelta(minutes=2), [1, 2]),
    ],
    ids=["before", "at the first fire", "within its second", "both"],
)
def test_pop_due(horizon: datetime, due: list[int]) -> None:
    schedule = index()
    schedule.apply_row(row(id=1), NOW)
    schedule.apply_row(row(id=2, task_key="t2", spec="120"), NOW)
    assert sorted(job.task_id for job in schedule.pop_due(horizon.timestamp())) == due
    assert schedule.pop_due(horizon.timestamp()) == []  # taken once


def test_pop_due_skips_stale_entries_of_a_rescheduled_or_dropped_job() -> None:
    schedule = index()
    schedule.apply_row(row(id=1), NOW)
    schedule.apply_row(row(id=2, task_key="t2"), NOW)
    schedule.schedule_next(schedule.jobs[1], FIRST + timedelta(minutes=10))  # old entry at FIRST is now stale
    schedule.drop(2)
    assert schedule.pop_due((FIRST + timedelta(seconds=5)).timestamp()) == []
    assert [job.task_id for job in schedule.pop_due((FIRST + timedelta(minutes=10)).timestamp())] == [1]

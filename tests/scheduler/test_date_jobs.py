"""Date jobs whose instant has passed when beat first sees the row: run once within the grace,
otherwise one ``skipped`` row and the task row says it was missed (issue 9 item 4).

Real databases, a recording publisher (no broker): the beat side only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Engine, update

from models import Task, make_engine
from scheduler.beat import SqlScheduler
from scheduler.planning import first_pending_instant
from scheduler.rows import compile_row
from tests.scheduler.test_sql_scheduler import add_task, make_scheduler, run_for, run_rows, sent, task_row


@pytest.fixture
def engine(migrated_url: str) -> Iterator[Engine]:
    eng = make_engine(migrated_url)
    yield eng
    eng.dispose()


@pytest.fixture
def schedulers(migrated_url: str) -> Iterator[Callable[..., SqlScheduler]]:
    made: list[SqlScheduler] = []

    def factory(**conf: Any) -> SqlScheduler:
        made.append(make_scheduler(migrated_url, **conf))
        return made[-1]

    yield factory
    for scheduler in made:
        scheduler.close()


def _spec(at: datetime) -> str:
    """A date spec with microseconds and an explicit offset (what an SQL user may write)."""
    return at.astimezone(UTC).isoformat(sep=" ")


def _wait_for_runs(engine: Engine, scheduler: SqlScheduler, task_id: int, count: int = 1, limit_s: float = 10) -> None:
    """Tick ``scheduler`` until the task has ``count`` run rows (or the limit passes)."""
    deadline = datetime.now(UTC) + timedelta(seconds=limit_s)
    while len(run_rows(engine, task_id)) < count and datetime.now(UTC) < deadline:
        run_for(0.1, scheduler)
    run_for(0.3, scheduler)  # let it settle: nothing more may come


def test_sql_update_to_a_date_already_past_runs_it_now(engine: Engine, schedulers: Callable[..., SqlScheduler]) -> None:
    """`UPDATE task SET trigger='date', spec='<3 s ago>'` on a task that has been firing: runs once, late."""
    task_id = add_task(engine, "run_now_by_sql", "test_interval", "interval", "1")
    scheduler = schedulers()
    _wait_for_runs(engine, scheduler, task_id)
    before = len(run_rows(engine, task_id))
    assert before >= 1
    run_at = datetime.now(UTC) - timedelta(seconds=3)
    with engine.begin() as conn:
        conn.execute(update(Task).where(Task.id == task_id).values(trigger="date", spec=_spec(run_at)))
    _wait_for_runs(engine, scheduler, task_id, before + 1)
    dated = [r for r in run_rows(engine, task_id) if r.scheduled_at == run_at]
    assert [r.status for r in dated] == ["pending"], [(r.status, r.scheduled_at) for r in run_rows(engine, task_id)]
    assert [d.run_id for d in sent(scheduler) if d.scheduled_at == run_at] == [dated[0].id]
    row = task_row(engine, task_id)
    assert row.status == "completed" and row.last_run_at == run_at


def test_date_thirty_seconds_late_runs_within_the_grace(
    engine: Engine, schedulers: Callable[..., SqlScheduler]
) -> None:
    run_at = datetime.now(UTC) - timedelta(seconds=30)
    task_id = add_task(engine, "late30", "test_date", "date", _spec(run_at))  # default grace 60 s
    scheduler = schedulers()
    _wait_for_runs(engine, scheduler, task_id)
    rows = run_rows(engine, task_id)
    assert [(r.status, r.scheduled_at) for r in rows] == [("pending", run_at)]
    assert [d.run_id for d in sent(scheduler)] == [rows[0].id]
    assert task_row(engine, task_id).status == "completed"


def test_date_just_ahead_but_committed_after_its_instant_runs(
    engine: Engine, schedulers: Callable[..., SqlScheduler]
) -> None:
    """A date 20 ms ahead whose edit commits after it: the row's last edit is later than its date."""
    scheduler = schedulers()
    run_for(0.2, scheduler)
    run_at = datetime.now(UTC) + timedelta(milliseconds=20)
    edited = run_at + timedelta(milliseconds=200)
    task_id = add_task(engine, "just_ahead", "test_date", "date", _spec(run_at), create_at=edited, update_at=edited)
    _wait_for_runs(engine, scheduler, task_id)
    rows = run_rows(engine, task_id)
    assert [(r.status, r.scheduled_at) for r in rows] == [("pending", run_at)]
    assert len(sent(scheduler)) == 1


def test_date_beyond_the_grace_leaves_one_skipped_row_and_says_so(
    engine: Engine, schedulers: Callable[..., SqlScheduler]
) -> None:
    run_at = datetime.now(UTC) - timedelta(seconds=120)
    task_id = add_task(engine, "missed_date", "test_date", "date", _spec(run_at), misfire_grace_seconds=30)
    first = schedulers()
    _wait_for_runs(engine, first, task_id)
    (row,) = run_rows(engine, task_id)
    assert row.status == "skipped" and row.scheduled_at == run_at
    assert "misfire" in row.result and "misfire_grace_seconds=30" in row.result
    assert sent(first) == []
    task = task_row(engine, task_id)
    assert task.status == "completed" and task.last_status == "skipped"
    assert task.last_error and "missed" in task.last_error and "misfire_grace_seconds=30" in task.last_error
    # Another beat starting later (a full load) neither adds a row nor clears what the row says.
    second = schedulers()
    run_for(0.5, second, first)
    assert len(run_rows(engine, task_id)) == 1 and sent(second) == []
    task = task_row(engine, task_id)
    assert task.status == "completed" and task.last_error and "missed" in task.last_error


def test_date_that_fired_is_not_fired_again_after_an_edit(
    engine: Engine, schedulers: Callable[..., SqlScheduler]
) -> None:
    run_at = datetime.now(UTC) - timedelta(seconds=5)
    task_id = add_task(engine, "fired_once", "test_date", "date", _spec(run_at))
    scheduler = schedulers()
    _wait_for_runs(engine, scheduler, task_id)
    assert len(run_rows(engine, task_id)) == 1
    with engine.begin() as conn:  # a config edit that leaves the date as it is
        conn.execute(update(Task).where(Task.id == task_id).values(desc="edited"))
    restarted = schedulers()
    run_for(0.6, scheduler, restarted)
    assert len(run_rows(engine, task_id)) == 1
    assert len(sent(scheduler)) + len(sent(restarted)) == 1


def test_two_beats_run_a_late_date_once(engine: Engine, schedulers: Callable[..., SqlScheduler]) -> None:
    run_at = datetime.now(UTC) - timedelta(seconds=2)
    task_id = add_task(engine, "late_shared", "test_date", "date", _spec(run_at))
    first, second = schedulers(), schedulers()
    run_for(0.8, first, second)
    assert [r.status for r in run_rows(engine, task_id)] == ["pending"]
    assert len(sent(first)) + len(sent(second)) == 1


# --- the pending instant of a date job, as a property -------------------------------------

_INSTANTS = st.datetimes(min_value=datetime(2001, 1, 1), max_value=datetime(2090, 1, 1), timezones=st.just(UTC)).map(
    lambda d: d.replace(microsecond=d.microsecond // 1000 * 1000)
)


class _Row:
    """The columns compile_row reads."""

    def __init__(self, spec: str, anchor: datetime, last_run_at: datetime | None) -> None:
        self.id, self.task_key, self.execute_func, self.trigger, self.spec = 1, "k", "test_date", "date", spec
        self.args, self.kwargs, self.timezone, self.queue = "", "{}", "UTC", None
        self.max_instances, self.misfire_grace_seconds, self.expires_seconds = 1, None, None
        self.anchor, self.last_run_at, self.is_valid, self.extra = anchor, last_run_at, 1, "{}"


@given(run_at=_INSTANTS, anchor=_INSTANTS, last=st.none() | _INSTANTS)
def test_a_date_is_pending_until_a_fire_at_its_instant_was_claimed(
    run_at: datetime, anchor: datetime, last: datetime | None
) -> None:
    """Whatever the last edit and whatever fired before (another trigger), only a fire at the date ends it."""
    job = compile_row(
        _Row(_spec(run_at), anchor, last),
        registered=frozenset({"test_date"}),
        default_timezone="UTC",
        default_grace_seconds=60,
    )
    expected = None if last == run_at else run_at
    assert first_pending_instant(job) == expected

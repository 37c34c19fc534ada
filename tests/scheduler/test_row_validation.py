"""Rows that beat must refuse, naming the column: reserved ``kwargs`` keys, invalid ``extra``,
``is_valid`` other than 0/1 (issue 9 items 2 and 6).  Real databases, a recording publisher."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, update

from models import Task, make_engine
from scheduler.beat import SqlScheduler
from tests.scheduler.test_sql_scheduler import add_task, make_scheduler, run_for, run_rows, task_row, tick_until


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


BAD_ROWS = [
    pytest.param({"kwargs": '{"self": 1}'}, "kwargs", id="kwargs-self"),
    pytest.param({"kwargs": '{"task_key": 1}'}, "kwargs", id="kwargs-task_key"),
    pytest.param({"kwargs": '{"channel": "#ops", "sub_task_id": 7}'}, "kwargs", id="kwargs-sub_task_id"),
    pytest.param({"extra": "{not json"}, "extra", id="extra-invalid-json"),
    pytest.param({"extra": "[1, 2]"}, "extra", id="extra-not-an-object"),
    pytest.param({"is_valid": 2}, "is_valid", id="is_valid-2"),
    pytest.param({"is_valid": -1}, "is_valid", id="is_valid-minus-1"),
]


def _wait_for_status(engine: Engine, scheduler: SqlScheduler, task_id: int, status: str, limit_s: float = 5) -> Task:
    for _ in range(int(limit_s / 0.1)):
        run_for(0.1, scheduler)
        row = task_row(engine, task_id)
        if row.status == status:
            return row
    return task_row(engine, task_id)


@pytest.mark.parametrize(("cols", "column"), BAD_ROWS)
def test_bad_row_at_load_goes_to_error_naming_the_column(
    engine: Engine, schedulers: Callable[..., SqlScheduler], cols: dict[str, Any], column: str
) -> None:
    good = add_task(engine, "good", "test_interval", "interval", "1")
    bad = add_task(engine, "bad", "test_interval", "interval", "1", **cols)
    scheduler = schedulers()
    row = _wait_for_status(engine, scheduler, bad, "error")
    assert row.status == "error" and row.last_error and row.last_error.startswith(f"{column}:"), row.last_error
    tick_until(lambda: run_rows(engine, good), scheduler, what="the good row to keep firing")
    assert run_rows(engine, bad) == []


@pytest.mark.parametrize(("cols", "column"), BAD_ROWS)
def test_bad_edit_of_a_running_row_goes_to_error_and_a_fix_brings_it_back(
    engine: Engine, schedulers: Callable[..., SqlScheduler], cols: dict[str, Any], column: str
) -> None:
    task_id = add_task(engine, "edited", "test_interval", "interval", "1")
    scheduler = schedulers()
    run_for(0.3, scheduler)
    with engine.begin() as conn:
        conn.execute(update(Task).where(Task.id == task_id).values(**cols))
    row = _wait_for_status(engine, scheduler, task_id, "error")
    assert row.status == "error" and row.last_error and row.last_error.startswith(f"{column}:"), row.last_error
    with engine.begin() as conn:
        conn.execute(update(Task).where(Task.id == task_id).values(kwargs="{}", extra="{}", is_valid=1))
    row = _wait_for_status(engine, scheduler, task_id, "ready")
    assert row.status == "ready" and row.last_error is None


def test_is_valid_zero_still_pauses(engine: Engine, schedulers: Callable[..., SqlScheduler]) -> None:
    task_id = add_task(engine, "paused", "test_interval", "interval", "1", is_valid=0, status="ready")
    scheduler = schedulers()
    row = _wait_for_status(engine, scheduler, task_id, "paused")
    assert row.status == "paused" and row.last_error is None
    run_for(1.2, scheduler)
    assert run_rows(engine, task_id) == []

"""The worker's hot statements on a raw DB-API cursor: same guards, same errors as through SQLAlchemy.

Real SQLite, MariaDB and PostgreSQL (each driver binds datetimes and booleans its own way).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError

from models import ExecuteTask, RunStatus, Task, make_engine
from models.raw_statements import RawStatement
from tests.unit.test_slots import add_task_with_runs
from workers.message_match import RunMessage, config_stamp
from workers.runs import _START_FRESH_RUN_NOW, RunStore, StartDecision


@pytest.fixture
def engine(migrated_url: str) -> Iterator[Engine]:
    eng = make_engine(migrated_url)
    yield eng
    eng.dispose()


def stamp_of(engine: Engine, task_id: int) -> datetime:
    with engine.connect() as conn:
        stamp = conn.scalar(select(config_stamp()).where(Task.id == task_id))
    assert stamp is not None
    return stamp if stamp.tzinfo is not None else stamp.replace(tzinfo=UTC)


@pytest.mark.parametrize(("offset", "decision"), [(0.0, "run"), (5.0, "cancelled")], ids=["same stamp", "edited"])
def test_the_config_stamp_guard_binds_datetimes(
    migrated_url: str, engine: Engine, offset: float, decision: str
) -> None:
    """The start's BETWEEN on the task's config stamp, bound by the driver from an aware datetime."""
    task_id, (run_id,) = add_task_with_runs(engine, 1, 1)
    # The fire's instant is after the task's last edit: an edit since the claim cancels it.
    with engine.begin() as conn:
        conn.execute(
            ExecuteTask.__table__.update()
            .where(ExecuteTask.id == run_id)
            .values(scheduled_at=datetime(2100, 1, 1, tzinfo=UTC))
        )
    claimed_with = stamp_of(engine, task_id) - timedelta(seconds=offset)
    message = RunMessage(run_id, trace_id=f"t{run_id}", job_name="job", task_id=task_id, config_at=claimed_with)
    store = RunStore(migrated_url)
    assert store.start_run(message, "c1", "w1", max_instances=1).decision.value == decision
    if decision == "run":
        assert store.finish_run(run_id, RunStatus.SUCCESS, result="1", attempt=1, worker="w1", task_id=task_id)
        with engine.connect() as conn:
            row = conn.execute(
                select(
                    ExecuteTask.status,
                    ExecuteTask.result,
                    ExecuteTask.running_slot,
                    ExecuteTask.started_at,
                    ExecuteTask.finished_at,
                ).where(ExecuteTask.id == run_id)
            ).one()
        assert (row.status, row.result, row.running_slot) == ("success", "1", None)
        assert row.started_at is not None and row.finished_at is not None


def test_a_taken_slot_raises_sqlalchemys_integrity_error(engine: Engine) -> None:
    """The slot race is decided by the unique index; the raw path reports it as SQLAlchemy would."""
    task_id, (first, second) = add_task_with_runs(engine, 1, 2)
    stmt = RawStatement(_START_FRESH_RUN_NOW, engine.dialect)
    engine_ac = engine.execution_options(isolation_level="AUTOCOMMIT")

    def start(run_id: int) -> int:
        values = {"b_id": run_id, "b_worker": "w", "b_celery": f"c{run_id}", "b_slot": 1}
        values.update(m_trace=f"t{run_id}", m_task=task_id, m_job="job")
        with engine_ac.connect() as conn:
            raw = conn.connection
            return stmt.execute(raw, values)

    assert start(first) == 1
    with pytest.raises(IntegrityError):
        start(second)
    assert start(first) == 0  # already running: the guard moves nothing


def test_a_store_start_of_a_missing_run_is_a_duplicate(migrated_url: str, engine: Engine) -> None:
    task_id, _ = add_task_with_runs(engine, 1, 1)
    message = RunMessage(10_000, trace_id="nobody", job_name="job", task_id=task_id)
    result = RunStore(migrated_url).start_run(message, "c", "w", max_instances=1)
    assert result.decision is StartDecision.DUPLICATE

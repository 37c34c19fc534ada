"""Slot taking: ``max_instances`` enforced by the database, on the fresh (headers) and the row path.

Real SQLite, MariaDB and PostgreSQL (the unique ``(task_id, running_slot)`` index is what decides).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, insert, select, update

from models import ExecuteTask, RunStatus, Task, make_engine
from workers.message_match import RunMessage
from workers.runs import RunStore

START = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def engine(migrated_url: str) -> Iterator[Engine]:
    eng = make_engine(migrated_url)
    yield eng
    eng.dispose()


def add_task_with_runs(engine: Engine, max_instances: int, runs: int) -> tuple[int, list[int]]:
    """A task and ``runs`` pending runs of it; returns (task id, run ids)."""
    with engine.begin() as conn:
        task_id = conn.execute(
            insert(Task).values(
                task_key="slots",
                desc="",
                execute_func="job",
                trigger="interval",
                spec="60",
                args="",
                is_valid=1,
                status="ready",
                extra="{}",
                max_instances=max_instances,
            )
        ).inserted_primary_key[0]
        run_ids = [
            conn.execute(
                insert(ExecuteTask).values(
                    task_id=task_id,
                    status=RunStatus.PENDING.value,
                    trace_id=None,
                    scheduled_at=START + timedelta(seconds=n),
                )
            ).inserted_primary_key[0]
            for n in range(runs)
        ]
        for run_id in run_ids:  # the trace ID a run's message carries must be the row's
            conn.execute(update(ExecuteTask).where(ExecuteTask.id == run_id).values(trace_id=f"t{run_id}"))
    return int(task_id), [int(r) for r in run_ids]


def message(run_id: int, task_id: int, headers: bool) -> RunMessage:
    """The message beat sends for the run (``headers``: with the task id, for the one-UPDATE start)."""
    return RunMessage(run_id, trace_id=f"t{run_id}", job_name="job", task_id=task_id if headers else None)


def running_slots(engine: Engine, task_id: int) -> list[int | None]:
    with engine.connect() as conn:
        query = select(ExecuteTask.running_slot).where(
            ExecuteTask.task_id == task_id, ExecuteTask.status == RunStatus.RUNNING.value
        )
        return sorted(conn.scalars(query), key=lambda slot: slot or 0)


# (max_instances, runs started one after another, decisions, slots held)
CASES = [
    pytest.param(1, 2, ["run", "skipped"], [1], id="one instance"),
    pytest.param(2, 3, ["run", "run", "skipped"], [1, 2], id="two instances"),
    pytest.param(3, 2, ["run", "run"], [1, 2], id="room to spare"),
    pytest.param(0, 3, ["run", "run", "run"], [None, None, None], id="0 means no limit"),
]


@pytest.mark.parametrize("headers", [True, False], ids=["fresh path", "row path"])
@pytest.mark.parametrize(("limit", "runs", "decisions", "slots"), CASES)
def test_slots(
    migrated_url: str, engine: Engine, headers: bool, limit: int, runs: int, decisions: list[str], slots: list[int]
) -> None:
    task_id, run_ids = add_task_with_runs(engine, limit, runs)
    store = RunStore(migrated_url)
    got = [
        store.start_run(
            message(run_id, task_id, headers), f"celery-{run_id}", "w1", max_instances=limit if headers else None
        ).decision.value
        for run_id in run_ids
    ]
    assert got == decisions
    assert running_slots(engine, task_id) == slots


@pytest.mark.parametrize("headers", [True, False], ids=["fresh path", "row path"])
def test_a_finished_run_frees_its_slot_and_a_second_delivery_is_a_duplicate(
    migrated_url: str, engine: Engine, headers: bool
) -> None:
    task_id, (first, second, third) = add_task_with_runs(engine, 1, 3)
    store = RunStore(migrated_url)
    limit = 1 if headers else None

    def start(run_id: int, worker: str) -> str:
        return store.start_run(
            message(run_id, task_id, headers), f"c{run_id}", worker, max_instances=limit
        ).decision.value

    assert start(first, "w1") == "run"
    assert start(first, "w2") == "duplicate"
    assert start(second, "w1") == "skipped"
    assert store.finish_run(first, RunStatus.SUCCESS, result="1", attempt=1, worker="w1", task_id=task_id)
    assert start(third, "w1") == "run"
    assert running_slots(engine, task_id) == [1]

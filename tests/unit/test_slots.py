"""Slot taking: ``max_instances`` enforced by the database, on the fresh (headers) and the row path.

Real SQLite, MariaDB and PostgreSQL (the unique ``(task_id, running_slot)`` index is what decides).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, insert, select

from models import ExecuteTask, RunStatus, Task, make_engine
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
                    trace_id=f"t{n}",
                    scheduled_at=START + timedelta(seconds=n),
                )
            ).inserted_primary_key[0]
            for n in range(runs)
        ]
    return int(task_id), [int(r) for r in run_ids]


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
            run_id,
            f"celery-{run_id}",
            "w1",
            task_id=task_id if headers else None,
            max_instances=limit if headers else None,
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
    options = {"task_id": task_id, "max_instances": 1} if headers else {}
    assert store.start_run(first, "c1", "w1", **options).decision.value == "run"
    assert store.start_run(first, "c1", "w2", **options).decision.value == "duplicate"
    assert store.start_run(second, "c2", "w1", **options).decision.value == "skipped"
    assert store.finish_run(first, RunStatus.SUCCESS, result="1", attempt=1, worker="w1", task_id=task_id)
    assert store.start_run(third, "c3", "w1", **options).decision.value == "run"
    assert running_slots(engine, task_id) == [1]

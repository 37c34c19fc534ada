"""Task ids are never reused (issue 9 item 6): a deleted task's runs stay with it, never with a new task.

SQLite needs ``AUTOINCREMENT`` for that; migration 0005 rebuilds an existing ``task`` table
with it, keeping every row, index and trigger.  MariaDB and PostgreSQL never reuse ids.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Engine, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from models import ExecuteTask, Task, TaskChange, make_engine
from models.migrate import current_revision, head_revision, upgrade
from tests.conftest import fresh_database

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


@pytest.fixture
def sqlite_url() -> Iterator[str]:
    with fresh_database("sqlite") as url:
        yield url


def _add(engine: Engine, key: str, **values: Any) -> int:
    with engine.begin() as conn:
        row = {"task_key": key, "execute_func": "noop", "trigger": "interval", "spec": "60", "extra": "{}", **values}
        return int(conn.execute(insert(Task).values(**row)).inserted_primary_key[0])


def _run(engine: Engine, task_id: int, second: int) -> None:
    with engine.begin() as conn:
        conn.execute(
            insert(ExecuteTask).values(
                task_id=task_id, status="success", scheduled_at=NOW.replace(second=second), extra="{}", attempt=1
            )
        )


def _delete(engine: Engine, task_id: int) -> None:
    with engine.begin() as conn:
        conn.execute(delete(Task).where(Task.id == task_id))


def test_ids_of_deleted_tasks_are_never_reused(migrated_url: str) -> None:
    engine = make_engine(migrated_url)
    try:
        first, second = _add(engine, "a"), _add(engine, "b")
        _run(engine, second, 1)
        _delete(engine, second)
        third = _add(engine, "c")
        assert third > second > first
        with engine.connect() as conn:
            assert conn.scalar(select(func.count()).where(ExecuteTask.task_id == third)) == 0
    finally:
        engine.dispose()


def _sqlite_sql(url: str, name: str) -> str:
    with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
        return str(conn.execute("SELECT sql FROM sqlite_master WHERE name = ?", (name,)).fetchone()[0])


def test_existing_sqlite_task_table_gets_autoincrement_and_keeps_everything(sqlite_url: str) -> None:
    upgrade(sqlite_url, "0004")
    assert "AUTOINCREMENT" not in _sqlite_sql(sqlite_url, "task").upper()
    engine = make_engine(sqlite_url)
    try:
        ids = [_add(engine, f"t{i}", args=f"{i},'x'", kwargs=f'{{"n": {i}}}', last_error=f"e{i}") for i in range(5)]
        for second, task_id in enumerate(ids):
            _run(engine, task_id, second)
        _delete(engine, ids[-1])  # its run stays in execute_task with task_id = ids[-1]
        _delete(engine, ids[-2])
        with engine.connect() as conn:
            # The columns of revision 0004: later revisions add more.
            result = conn.exec_driver_sql("SELECT * FROM task ORDER BY id")
            columns = ", ".join(f'"{name}"' for name in result.keys())
            before = [tuple(r) for r in result]
            changes = conn.scalar(select(func.count()).select_from(TaskChange))
        engine.dispose()

        upgrade(sqlite_url)
        assert current_revision(sqlite_url) == head_revision()
        assert "AUTOINCREMENT" in _sqlite_sql(sqlite_url, "task").upper()
        with engine.connect() as conn:
            assert [tuple(r) for r in conn.exec_driver_sql(f"SELECT {columns} FROM task ORDER BY id")] == before
            assert conn.scalar(select(func.count()).select_from(TaskChange)) == changes
        # Ids above every id a run still names, even of tasks deleted before the upgrade.
        new = _add(engine, "after")
        assert new > ids[-1]
        with engine.connect() as conn:  # the column defaults survived too
            created, status, extra = conn.execute(
                select(Task.create_at, Task.status, Task.extra).where(Task.id == new)
            ).one()
        assert created is not None and status == "ready" and extra == "{}"
        # The triggers and the unique key survived the rebuild.
        with engine.begin() as conn:
            conn.execute(update(Task).where(Task.id == ids[0]).values(spec="90"))
            logged = conn.scalar(select(func.count()).where(TaskChange.task_id == ids[0]))
        assert logged and logged >= 2
        with pytest.raises(IntegrityError):
            _add(engine, "t0")
        for index in ("ix_task_update_at", "ix_task_status", "ix_task_next_run_at"):
            assert _sqlite_sql(sqlite_url, index)
    finally:
        engine.dispose()


def test_upgrade_to_head_twice_keeps_autoincrement(sqlite_url: str) -> None:
    upgrade(sqlite_url)
    upgrade(sqlite_url)
    assert "AUTOINCREMENT" in _sqlite_sql(sqlite_url, "task").upper()
    engine = make_engine(sqlite_url)
    try:
        gone = _add(engine, "x")
        _delete(engine, gone)
        assert _add(engine, "y") > gone
    finally:
        engine.dispose()

"""Helpers shared by the API and CLI tests: a migrated MariaDB database, a Redis broker, rows."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, insert, text

from models import ExecuteTask
from tests.conftest import migrated_database

UTC = UTC


@contextmanager
def migrated_mariadb() -> Iterator[str]:
    """A fresh MariaDB database with tablebeat's schema; dropped afterwards."""
    with migrated_database("mariadb") as url:
        yield url


def clear_tables(engine: Engine) -> None:
    """Empty the tables a test writes, so each test starts from nothing."""
    with engine.begin() as conn:
        for table in ("execute_task", "task", "task_change", "console_session", "login_failure"):
            conn.execute(text(f"DELETE FROM {table}"))


def insert_run(engine: Engine, task_id: int, status: str, scheduled_at: datetime, **values: Any) -> int:
    """One ``execute_task`` row, as a worker would have left it."""
    row = {
        "task_id": task_id,
        "status": status,
        "scheduled_at": scheduled_at,
        "trace_id": f"trace-{status}-{scheduled_at:%H%M%S%f}",
        "extra": "{}",
        "attempt": 1,
        "create_at": scheduled_at,
        "update_at": scheduled_at,
        **values,
    }
    with engine.begin() as conn:
        return int(conn.execute(insert(ExecuteTask).values(**row)).inserted_primary_key[0])


def ago(**delta: float) -> datetime:
    """An aware UTC instant ``delta`` before now."""
    return datetime.now(UTC) - timedelta(**delta)

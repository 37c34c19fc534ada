"""The change-log cursor sees edits whose transaction commits after a later one."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, insert

from models import TaskChange, make_engine
from scheduler import store


@pytest.fixture
def engine(migrated_url: str) -> Iterator[Engine]:
    eng = make_engine(migrated_url)
    yield eng
    eng.dispose()


def log_change(engine: Engine, change_id: int, task_id: int) -> None:
    with engine.begin() as conn:
        conn.execute(insert(TaskChange).values(id=change_id, task_id=task_id))


def read(engine: Engine, cursor: store.ChangeCursor, now_m: float = 0.0) -> set[int]:
    with engine.begin() as conn:
        return store.read_changes(conn, cursor, now_m)


def test_late_commit_below_the_cursor_is_still_read(engine: Engine) -> None:
    cursor = store.ChangeCursor()
    log_change(engine, 1, 10)
    log_change(engine, 3, 30)  # id 2 is held by a transaction that has not committed yet
    assert read(engine, cursor) == {10, 30}
    assert cursor.last_id == 3 and set(cursor.gaps) == {2}
    assert read(engine, cursor) == set()
    log_change(engine, 2, 20)  # ... and now it commits
    assert read(engine, cursor) == {20}
    assert cursor.gaps == {} and read(engine, cursor) == set()


def test_gaps_are_forgotten_after_the_wait(engine: Engine) -> None:
    cursor = store.ChangeCursor()
    log_change(engine, 5, 50)
    assert read(engine, cursor, now_m=0.0) == {50}
    assert set(cursor.gaps) == {1, 2, 3, 4}
    read(engine, cursor, now_m=store.GAP_WAIT_S + 1)
    assert cursor.gaps == {}

"""A deadlock in the worker's writes is retried and logged as a deadlock (issue 9: it was logged
as ``task status not written yet (database unavailable?)``, and a run write was not retried).

Real deadlocks on MariaDB: a heavier transaction holds one row and then asks for the row the
worker's write holds, so InnoDB rolls back the worker's (lighter) transaction.
"""

from __future__ import annotations

import logging
import threading

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import OperationalError

from models import RunStatus
from tests.processes import wait_for
from workers.runs import RunStore
from workers.task_status import TaskStatusWriter

pytestmark = [pytest.mark.mariadb]


def _add_tasks(engine: Engine, n: int) -> list[int]:
    with engine.begin() as conn:
        for i in range(n):
            conn.execute(
                text(
                    "INSERT INTO task (task_key, `desc`, execute_func, `trigger`, spec, args, is_valid, status, extra)"
                    " VALUES (:k, '', 'noop', 'interval', '60', '', 1, 'ready', '{}')"
                ),
                {"k": f"dl{i}"},
            )
        return [int(r[0]) for r in conn.execute(text("SELECT id FROM task ORDER BY id"))]


def _locked_by_another(engine: Engine, task_id: int) -> bool:
    """Whether another transaction holds row ``task_id`` (probed without waiting, released at once)."""
    with engine.connect() as conn:
        try:
            conn.execute(text("SELECT id FROM task WHERE id = :a FOR UPDATE NOWAIT"), {"a": task_id})
        except OperationalError:
            return True
        finally:
            conn.rollback()
    return False


def _deadlock_against(engine: Engine, first: int, second: int, victim_write) -> threading.Thread:
    """Hold row ``second`` with a heavy transaction, wait until ``victim_write`` holds row ``first``,
    then ask for ``first``: the victim's next write, on ``second``, closes a lock cycle and InnoDB
    rolls back the lighter transaction, the victim's."""
    holder = engine.connect()
    trx = holder.begin()
    # Weight: InnoDB rolls back the transaction that changed fewer rows.
    holder.execute(text("UPDATE task SET `desc` = 'heavy' WHERE id <> :a"), {"a": first})
    thread = threading.Thread(target=victim_write, daemon=True)
    thread.start()
    try:
        wait_for(lambda: _locked_by_another(engine, first), 10, 0.01, what="the worker's write to hold the first row")
        holder.execute(text("UPDATE task SET `desc` = 'heavy' WHERE id = :a"), {"a": first})
        trx.commit()
    finally:
        holder.close()
    return thread


def test_task_status_deadlock_is_retried_and_logged_as_deadlock(
    maria_url: str, engine_for, caplog: pytest.LogCaptureFixture
) -> None:
    db = engine_for(maria_url)
    ids = _add_tasks(db, 20)
    first, second = ids[0], ids[1]

    class Source:
        engine = db

    writer = TaskStatusWriter(Source())
    writer._pending = {first: "__started__", second: RunStatus.FAILED.value}  # rows written in this order
    caplog.set_level(logging.WARNING, logger="workers.task_status")
    _deadlock_against(db, first, second, writer.flush).join(30)
    with db.connect() as conn:
        states = dict(
            conn.execute(text("SELECT id, last_status FROM task WHERE id IN (:a, :b)"), {"a": first, "b": second}).all()
        )
    assert states == {first: "running", second: "failed"}, caplog.text
    assert "deadlock" in caplog.text
    assert "database unavailable" not in caplog.text


def test_run_write_deadlock_is_retried(maria_url: str, engine_for, caplog: pytest.LogCaptureFixture) -> None:
    db = engine_for(maria_url)
    ids = _add_tasks(db, 20)
    first, second = ids[0], ids[1]
    store = RunStore(maria_url)
    outcome: list[object] = []

    def write_both() -> None:
        def both() -> int:
            with store.engine.begin() as conn:
                conn.execute(text("UPDATE task SET last_error = 'w' WHERE id = :a"), {"a": first})
                conn.execute(text("UPDATE task SET last_error = 'w' WHERE id = :b"), {"b": second})
            return 2

        try:
            outcome.append(store._retrying("a test write", both))
        except Exception as exc:  # recorded for the assertion below
            outcome.append(exc)

    caplog.set_level(logging.WARNING, logger="workers.runs")
    _deadlock_against(db, first, second, write_both).join(30)
    assert outcome == [2], caplog.text
    assert "deadlock while writing a test write; retrying" in caplog.text
    with db.connect() as conn:
        assert conn.scalar(text("SELECT COUNT(*) FROM task WHERE last_error = 'w'")) == 2

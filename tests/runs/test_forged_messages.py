"""Runs belong to their messages (issue 10 item 5): a message naming another run's row does not
touch it.  Before: ``send_task('always_fails', kwargs={'sub_task_id': N})`` turned another task's
pending run N ``failed`` with the sender's traceback, and rewrote a ``lost`` run."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from celery import Celery
from sqlalchemy import Engine

from tests.helpers import insert_task, sql
from tests.processes import wait_for
from tests.reliability.helpers import count_lines

pytestmark = [pytest.mark.integration, pytest.mark.mariadb]

TRACE = "a" * 32


def _run_row(db: Engine, task_id: int, status: str, trace: str, at: datetime) -> int:
    sql(
        db,
        "INSERT INTO execute_task (task_id, status, trace_id, scheduled_at, published_at, attempt, extra)"
        " VALUES (:t, :s, :tr, :at, :at, 1, '{}')",
        t=task_id,
        s=status,
        tr=trace,
        at=at.replace(tzinfo=None),
    )
    return int(sql(db, "SELECT id FROM execute_task WHERE trace_id = :tr", tr=trace)[0][0])


def _row(db: Engine, run_id: int) -> tuple:
    return sql(db, "SELECT status, attempt, worker, error, result FROM execute_task WHERE id = :i", i=run_id)[0]


def test_forged_messages_do_not_touch_other_runs(maria_url, broker_url, make_cluster, engine_for) -> None:
    db = engine_for(maria_url)
    victim = insert_task(db, "victim", "test_interval", "interval", "3600", "1")
    now = datetime.now(UTC)
    pending = _run_row(db, victim, "pending", TRACE, now - timedelta(seconds=5))
    lost = _run_row(db, victim, "lost", "b" * 32, now - timedelta(seconds=60))
    before = {pending: _row(db, pending), lost: _row(db, lost)}
    cluster = make_cluster(maria_url)
    worker = cluster.start_worker()
    worker.wait_ready()

    sender = Celery(broker=broker_url)
    try:
        # No trace ID at all (the attack), on the pending and on the lost run.
        sender.send_task("always_fails", args=("attacker",), kwargs={"sub_task_id": pending})
        sender.send_task("test_interval", args=("attacker",), kwargs={"sub_task_id": lost})
        # The right trace ID but another job, and the right job with another task's id.
        sender.send_task(
            "always_fails", args=("attacker",), kwargs={"sub_task_id": pending, "__unique_trace_id__": TRACE}
        )
        sender.send_task(
            "test_interval",
            args=("attacker",),
            kwargs={"sub_task_id": pending, "__unique_trace_id__": TRACE},
            headers={"tablebeat_task_id": victim + 1000, "tablebeat_max_instances": 1},
        )
        wait_for(
            lambda: count_lines(worker.log(), "forged message refused") >= 4, 30, what="four forged messages refused"
        )
        assert {pending: _row(db, pending), lost: _row(db, lost)} == before, worker.log()[-4000:]
        assert "always_fails ran" not in worker.log() and "test_interval ran" not in worker.log()

        # The message that does own the row still starts it (the guard is not a wall).
        sender.send_task(
            "test_interval",
            args=("victim",),
            kwargs={"sub_task_id": pending, "__unique_trace_id__": TRACE},
            headers={"tablebeat_task_id": victim, "tablebeat_max_instances": 1, "trace_id": TRACE},
        )
        wait_for(lambda: _row(db, pending)[0] == "success", 30, what="the owning message's run to succeed")
        assert _row(db, lost) == before[lost]
    finally:
        sender.close()

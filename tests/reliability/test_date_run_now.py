"""Issue 9 item 4 end to end (real beat and worker, MariaDB + Redis): "run this now" by SQL with a
date already past runs once, even 30 s late; beyond the grace it leaves one skipped run and says so."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import Engine

from tests.helpers import insert_task, sql
from tests.processes import Cluster, wait_for
from tests.reliability.helpers import runs

pytestmark = [pytest.mark.integration, pytest.mark.mariadb]


def _set_date(db: Engine, task_id: int, seconds_ago: int) -> None:
    # As the README shows it: the date written in UTC with its offset, by the database's clock.
    sql(
        db,
        "UPDATE task SET `trigger` = 'date', spec = CONCAT(UTC_TIMESTAMP() - INTERVAL :s SECOND, '+00:00') "
        "WHERE id = :i",
        s=seconds_ago,
        i=task_id,
    )


def test_sql_run_now_with_a_past_date(cluster: Cluster, db: Engine) -> None:
    cluster.start_worker(concurrency=2)
    cluster.start_beat()
    cluster.wait_ready()
    now_task = insert_task(db, "date_now", "test_date", "interval", "3600")
    late_task = insert_task(db, "date_30s_late", "test_date", "interval", "3600")
    missed_task = insert_task(db, "date_missed", "test_date", "interval", "3600", misfire_grace_seconds=60)
    time.sleep(1.5)  # beat has scheduled the three rows as interval jobs
    _set_date(db, now_task, 0)
    _set_date(db, late_task, 30)
    _set_date(db, missed_task, 180)

    for task_id in (now_task, late_task):
        wait_for(lambda t=task_id: runs(db, t, "success"), 30, what=f"task {task_id}'s date to run")
    wait_for(lambda: runs(db, missed_task), 30, what="the missed date to be recorded")
    time.sleep(2)  # nothing more may come

    for task_id in (now_task, late_task):
        (run,) = runs(db, task_id)
        assert run["status"] == "success" and run["trace_id"], run
        assert sql(db, "SELECT status FROM task WHERE id = :i", i=task_id)[0][0] == "completed"
    (skipped,) = runs(db, missed_task)
    assert skipped["status"] == "skipped" and "misfire_grace_seconds=60" in skipped["result"]
    status, last_status, last_error = sql(
        db, "SELECT status, last_status, last_error FROM task WHERE id = :i", i=missed_task
    )[0]
    assert (status, last_status) == ("completed", "skipped") and "missed" in last_error

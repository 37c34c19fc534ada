"""Plain SQL edits of ``task`` drive real beat and worker processes (MariaDB + Redis).

Fire and record, pause and resume, delete and edit pickup are the contract suite's, on every
backend (tests/contract); these are the further behaviours, on MariaDB + Redis.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine

from tests.helpers import insert_task, sql
from tests.integration.conftest import PATIENCE_S
from tests.processes import Cluster, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.mariadb]


def runs(db: Engine, task_id: int, status: str | None = None) -> list[tuple]:
    query = (
        "SELECT id, status, trace_id, scheduled_at, started_at, finished_at, worker, celery_id, result, error, attempt "
        "FROM execute_task WHERE task_id = :t"
    )
    if status:
        query += " AND status = :s"
    return sql(db, query + " ORDER BY scheduled_at", t=task_id, s=status)


def test_failing_job_records_traceback(cluster: Cluster, db: Engine) -> None:
    task_id = insert_task(db, "it_fail", "always_fails", "interval", "2", "7")
    failed = wait_for(lambda: runs(db, task_id, "failed"), PATIENCE_S, what="a failed run")
    error = failed[0][9]
    assert "Traceback (most recent call last)" in error and "RuntimeError: it_fail failed on purpose" in error
    assert sql(db, "SELECT last_status FROM task WHERE id = :t", t=task_id)[0][0] in ("failed", "pending", "running")


def test_bad_rows_go_to_error_while_others_fire(cluster: Cluster, db: Engine) -> None:
    good = insert_task(db, "it_good", "test_interval", "interval", "1")
    bad = {
        "it_bad_func": ("os.system", "interval", "5", ""),
        "it_bad_cron": ("test_cron", "cron", "61 * * * *", ""),
        "it_bad_trigger": ("test_cron", "weekly", "5", ""),
        "it_bad_args": ("test_interval", "interval", "5", "__import__('os').system('id')"),
    }
    ids = {key: insert_task(db, key, *values) for key, values in bad.items()}
    for key, task_id in ids.items():
        status, error = wait_for(
            lambda task_id=task_id: (
                (r := sql(db, "SELECT status, last_error FROM task WHERE id = :t", t=task_id)[0])[0] == "error" and r
            ),
            PATIENCE_S,
            what=f"{key} in error",
        )
        expected_column = {
            "it_bad_func": "execute_func",
            "it_bad_cron": "spec",
            "it_bad_trigger": "trigger",
            "it_bad_args": "args",
        }[key]
        assert error.startswith(f"{expected_column}:"), error
    before = len(runs(db, good))
    wait_for(lambda: len(runs(db, good)) >= before + 2, PATIENCE_S, what="the good row to keep firing")
    assert all(not runs(db, task_id) for task_id in ids.values())

    sql(db, "UPDATE task SET spec = '*/1 * * * * */2' WHERE id = :t", t=ids["it_bad_cron"])
    wait_for(
        lambda: sql(db, "SELECT status FROM task WHERE id = :t", t=ids["it_bad_cron"])[0][0] == "ready",
        PATIENCE_S,
        what="fixed row back to ready",
    )
    wait_for(lambda: runs(db, ids["it_bad_cron"], "success"), PATIENCE_S, what="fixed row firing")


def test_date_job_runs_once_then_completed(cluster: Cluster, db: Engine) -> None:
    run_at = (datetime.now(UTC) + timedelta(seconds=3)).strftime("%Y-%m-%d %H:%M:%S")
    task_id = insert_task(db, "it_date", "test_date", "date", run_at, timezone="UTC")
    wait_for(lambda: runs(db, task_id, "success"), PATIENCE_S, what="the date run")
    wait_for(
        lambda: sql(db, "SELECT status FROM task WHERE id = :t", t=task_id)[0][0] == "completed",
        PATIENCE_S,
        what="status completed",
    )
    time.sleep(2)
    assert len(runs(db, task_id)) == 1


def test_async_job_and_trace_handed_to_child(cluster: Cluster, db: Engine) -> None:
    async_id = insert_task(db, "it_async", "test_async", "interval", "2")
    parent_id = insert_task(db, "it_parent", "spawn_child", "interval", "3")
    wait_for(lambda: runs(db, async_id, "success"), PATIENCE_S, what="an async run")
    parent = wait_for(lambda: runs(db, parent_id, "success"), PATIENCE_S, what="a parent run")
    trace_id = parent[0][2]
    child = wait_for(
        lambda: sql(
            db,
            "SELECT status FROM execute_task WHERE trace_id = :tr AND task_id <> :t AND status = 'success'",
            tr=trace_id,
            t=parent_id,
        ),
        PATIENCE_S,
        what="the child run under the parent's trace",
    )
    assert child


def test_celery_retry_is_recorded_and_finishes_on_the_same_row(cluster: Cluster, db: Engine) -> None:
    run_at = (datetime.now(UTC) + timedelta(seconds=2)).strftime("%Y-%m-%d %H:%M:%S")
    task_id = insert_task(db, "it_flaky", "flaky", "date", run_at, timezone="UTC")
    done = wait_for(lambda: runs(db, task_id, "success"), PATIENCE_S, what="the retried run to succeed")
    assert len(runs(db, task_id)) == 1, "a retry reuses the run's row"
    _id, _status, trace_id, *_rest, result, error, attempt = done[0]
    assert attempt == 2 and result == "'ok after 1 retries'"
    assert "upstream not ready yet" in (error or ""), "the retried attempt's error stays visible"
    assert f"trace_id={trace_id}" in cluster.logs()

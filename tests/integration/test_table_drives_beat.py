"""Plain SQL edits of ``task`` drive real beat and worker processes (MariaDB + Redis)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine

from tests.integration.conftest import REFRESH_SECONDS, sql
from tests.processes import Cluster, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.mariadb]


def now_naive() -> datetime:
    """Now in UTC without tzinfo: how MariaDB's DATETIME columns come back over plain SQL."""
    return datetime.now(UTC).replace(tzinfo=None)


def insert_task(db: Engine, key: str, func: str, trigger: str, spec: str, args: str = "", **cols: object) -> int:
    extra_cols = "".join(f", {c}" for c in cols)
    extra_vals = "".join(f", :{c}" for c in cols)
    sql(
        db,
        "INSERT INTO task (task_key, `desc`, execute_func, `trigger`, spec, args, is_valid, status, extra"
        f"{extra_cols}) VALUES (:k, 'test', :f, :t, :s, :a, 1, 'ready', '{{}}'{extra_vals})",
        k=key,
        f=func,
        t=trigger,
        s=spec,
        a=args,
        **cols,
    )
    return int(sql(db, "SELECT id FROM task WHERE task_key = :k", k=key)[0][0])


def runs(db: Engine, task_id: int, status: str | None = None) -> list[tuple]:
    query = (
        "SELECT id, status, trace_id, scheduled_at, started_at, finished_at, worker, celery_id, result, error, attempt "
        "FROM execute_task WHERE task_id = :t"
    )
    if status:
        query += " AND status = :s"
    return sql(db, query + " ORDER BY scheduled_at", t=task_id, s=status)


def test_insert_fires_within_refresh_plus_interval(cluster: Cluster, db: Engine) -> None:
    inserted = time.monotonic()
    task_id = insert_task(db, "it_insert", "test_interval", "interval", "2", "1,2,3")
    wait_for(lambda: runs(db, task_id, "success"), REFRESH_SECONDS + 2 + 5, what="first successful run")
    assert time.monotonic() - inserted <= REFRESH_SECONDS + 2 + 5
    row = runs(db, task_id, "success")[0]
    _id, status, trace_id, scheduled_at, started_at, finished_at, worker, celery_id, result, error, attempt = row
    assert len(trace_id) == 32 and worker and celery_id and attempt == 1
    assert started_at >= scheduled_at - timedelta(milliseconds=5) and finished_at >= started_at
    assert result == "'interval ok [1, 2, 3]'"
    next_run_at, last_run_at = sql(db, "SELECT next_run_at, last_run_at FROM task WHERE id = :t", t=task_id)[0]
    assert next_run_at > last_run_at
    worker_log = cluster.logs()
    assert f"trace_id={trace_id}" in worker_log and "task_key=it_insert" in worker_log


def test_update_spec_changes_cadence_and_pause_stops(cluster: Cluster, db: Engine) -> None:
    task_id = insert_task(db, "it_cadence", "test_interval", "interval", "1")
    wait_for(lambda: len(runs(db, task_id)) >= 3, REFRESH_SECONDS + 6, what="three 1 s fires")
    sql(db, "UPDATE task SET spec = '3' WHERE id = :t", t=task_id)
    changed = now_naive()
    time.sleep(REFRESH_SECONDS + 7)
    later = [r[3] for r in runs(db, task_id) if r[3] > changed + timedelta(seconds=REFRESH_SECONDS)]
    gaps = [(b - a).total_seconds() for a, b in zip(later, later[1:], strict=False)]
    assert gaps and all(abs(g - 3) < 0.01 for g in gaps), gaps

    sql(db, "UPDATE task SET is_valid = 0 WHERE id = :t", t=task_id)
    paused = now_naive()
    wait_for(
        lambda: sql(db, "SELECT status FROM task WHERE id = :t", t=task_id)[0][0] == "paused",
        REFRESH_SECONDS + 1,
        what="status paused",
    )
    time.sleep(REFRESH_SECONDS + 4)
    assert not [r for r in runs(db, task_id) if r[3] > paused + timedelta(seconds=REFRESH_SECONDS)]

    sql(db, "UPDATE task SET is_valid = 1 WHERE id = :t", t=task_id)
    wait_for(
        lambda: [r for r in runs(db, task_id) if r[3] > paused + timedelta(seconds=REFRESH_SECONDS)],
        REFRESH_SECONDS + 5,
        what="fires after resume",
    )


def test_delete_stops_firing(cluster: Cluster, db: Engine) -> None:
    task_id = insert_task(db, "it_delete", "test_interval", "interval", "1")
    wait_for(lambda: runs(db, task_id), REFRESH_SECONDS + 4, what="a fire")
    sql(db, "DELETE FROM task WHERE id = :t", t=task_id)
    deleted = now_naive()
    time.sleep(REFRESH_SECONDS + 3)
    assert not [r for r in runs(db, task_id) if r[3] > deleted + timedelta(seconds=REFRESH_SECONDS)]


def test_failing_job_records_traceback(cluster: Cluster, db: Engine) -> None:
    task_id = insert_task(db, "it_fail", "always_fails", "interval", "2", "7")
    failed = wait_for(lambda: runs(db, task_id, "failed"), REFRESH_SECONDS + 8, what="a failed run")
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
            REFRESH_SECONDS + 3,
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
    wait_for(lambda: len(runs(db, good)) >= before + 2, 5, what="the good row to keep firing")
    assert all(not runs(db, task_id) for task_id in ids.values())

    sql(db, "UPDATE task SET spec = '*/1 * * * * */2' WHERE id = :t", t=ids["it_bad_cron"])
    wait_for(
        lambda: sql(db, "SELECT status FROM task WHERE id = :t", t=ids["it_bad_cron"])[0][0] == "ready",
        REFRESH_SECONDS + 1,
        what="fixed row back to ready",
    )
    wait_for(lambda: runs(db, ids["it_bad_cron"], "success"), REFRESH_SECONDS + 6, what="fixed row firing")


def test_date_job_runs_once_then_completed(cluster: Cluster, db: Engine) -> None:
    run_at = (datetime.now(UTC) + timedelta(seconds=3)).strftime("%Y-%m-%d %H:%M:%S")
    task_id = insert_task(db, "it_date", "test_date", "date", run_at, timezone="UTC")
    wait_for(lambda: runs(db, task_id, "success"), REFRESH_SECONDS + 8, what="the date run")
    wait_for(
        lambda: sql(db, "SELECT status FROM task WHERE id = :t", t=task_id)[0][0] == "completed",
        3,
        what="status completed",
    )
    time.sleep(2)
    assert len(runs(db, task_id)) == 1


def test_async_job_and_trace_handed_to_child(cluster: Cluster, db: Engine) -> None:
    async_id = insert_task(db, "it_async", "test_async", "interval", "2")
    parent_id = insert_task(db, "it_parent", "spawn_child", "interval", "3")
    wait_for(lambda: runs(db, async_id, "success"), REFRESH_SECONDS + 6, what="an async run")
    parent = wait_for(lambda: runs(db, parent_id, "success"), REFRESH_SECONDS + 8, what="a parent run")
    trace_id = parent[0][2]
    child = wait_for(
        lambda: sql(
            db,
            "SELECT status FROM execute_task WHERE trace_id = :tr AND task_id <> :t AND status = 'success'",
            tr=trace_id,
            t=parent_id,
        ),
        10,
        what="the child run under the parent's trace",
    )
    assert child


def test_celery_retry_is_recorded_and_finishes_on_the_same_row(cluster: Cluster, db: Engine) -> None:
    run_at = (datetime.now(UTC) + timedelta(seconds=2)).strftime("%Y-%m-%d %H:%M:%S")
    task_id = insert_task(db, "it_flaky", "flaky", "date", run_at, timezone="UTC")
    done = wait_for(lambda: runs(db, task_id, "success"), REFRESH_SECONDS + 12, what="the retried run to succeed")
    assert len(runs(db, task_id)) == 1, "a retry reuses the run's row"
    _id, _status, trace_id, *_rest, result, error, attempt = done[0]
    assert attempt == 2 and result == "'ok after 1 retries'"
    assert "upstream not ready yet" in (error or ""), "the retried attempt's error stays visible"
    assert f"trace_id={trace_id}" in cluster.logs()

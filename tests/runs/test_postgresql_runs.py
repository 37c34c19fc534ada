"""Scheduled runs execute on PostgreSQL (issue 9: every run failed in ``_take_slot`` with
``SAVEPOINT can only be used in transaction blocks`` and stayed ``pending``)."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from tests.processes import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.postgresql]


def _insert(engine, key: str, func: str, spec: str, args: str = "", max_instances: int = 1) -> int:
    with engine.begin() as conn:
        conn.execute(
            text(
                'INSERT INTO task (task_key, "desc", execute_func, "trigger", spec, args, is_valid, status, extra,'
                " max_instances) VALUES (:k, 'pg', :f, 'interval', :s, :a, 1, 'ready', '{}', :m)"
            ),
            {"k": key, "f": func, "s": spec, "a": args, "m": max_instances},
        )
        return int(conn.scalar(text("SELECT id FROM task WHERE task_key = :k"), {"k": key}))


def _statuses(engine, task_id: int) -> dict[str, int]:
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT status, COUNT(*) FROM execute_task WHERE task_id = :t GROUP BY status"), {"t": task_id}
        )
        return {status: int(n) for status, n in rows}


def test_scheduled_runs_succeed_on_postgresql(pg_url, make_cluster, engine_for) -> None:
    engine = engine_for(pg_url)
    limited = _insert(engine, "pg_limited", "test_interval", "1", "1,2", max_instances=1)
    unlimited = _insert(engine, "pg_unlimited", "test_interval", "1", max_instances=0)
    two = _insert(engine, "pg_two", "sleep_for", "1", "2.5", max_instances=2)
    cluster = make_cluster(pg_url)
    cluster.start_worker(concurrency=4)
    cluster.start_beat()
    for task_id in (limited, unlimited):
        wait_for(lambda t=task_id: _statuses(engine, t).get("success", 0) >= 3, 60, what=f"3 successes of {task_id}")
    # max_instances=2 with a 2.5 s job firing every second: both slots taken, then a fire is skipped.
    wait_for(lambda: _statuses(engine, two).get("success", 0) >= 2, 60, what="2 successes of the sleeping job")
    wait_for(lambda: _statuses(engine, two).get("skipped", 0) >= 1, 60, what="a max_instances skip")
    logs = cluster.logs()
    assert "SAVEPOINT" not in logs and "NoActiveSqlTransaction" not in logs, logs
    with engine.connect() as conn:
        result = conn.scalar(
            text("SELECT result FROM execute_task WHERE task_id = :t AND status = 'success' LIMIT 1"), {"t": limited}
        )
        failed = conn.scalar(text("SELECT COUNT(*) FROM execute_task WHERE status = 'failed'"))
    assert result == "'interval ok [1, 2]'"
    assert failed == 0

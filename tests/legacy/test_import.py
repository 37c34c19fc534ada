"""``tablebeat db import``: 003's and 004's tables into tablebeat's, twice without doubling (MariaDB)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from models import make_engine
from models.migrate import upgrade
from tests.conftest import fresh_database
from tests.helpers import sql
from tests.legacy.conftest import legacy_env
from tests.legacy.documents import json_examples, statements
from tests.processes import Cluster, redis_broker_db, wait_for

pytestmark = pytest.mark.mariadb

#: 004 gives its table as a Django model only; this is the DDL Django's MySQL backend makes of it.
SYS_SCHEDULER_TASK_DDL = """
CREATE TABLE `sys_scheduler_task` (
  `id` bigint AUTO_INCREMENT NOT NULL PRIMARY KEY,
  `name` varchar(128) NOT NULL,
  `job_id` varchar(64) NOT NULL UNIQUE,
  `func` varchar(255) NOT NULL,
  `trigger` varchar(32) NOT NULL,
  `trigger_args` json NOT NULL,
  `status` integer NOT NULL,
  `last_run` datetime(6) NULL,
  `next_run` datetime(6) NULL
)"""
IDS = ["6f1c0b8e-0000-4000-8000-00000000000" + str(n) for n in range(4)]


@pytest.fixture
def url() -> Iterator[str]:
    with fresh_database("mariadb") as database_url:
        yield database_url


def create_legacy_tables(url: str) -> None:
    """003's tables from its document, filled with its own example bodies as 003 stored them; 004's row."""
    engine = make_engine(url)
    examples = json_examples("003")
    statuses = ["pending", "completed", "paused", "failed"]
    try:
        with engine.begin() as conn:
            for statement in statements("003"):
                conn.exec_driver_sql(statement)
            for task_id, body, status in zip(IDS, examples, statuses, strict=True):
                conn.execute(
                    text(
                        "INSERT INTO task_manage (id, name, task_type, status, trigger_type, trigger_args, func_path, "
                        "func_args, max_instances, description, create_time, update_time) VALUES (:id, :name, :tt, "
                        ":st, :tr, :ta, :fp, :fa, :mi, :d, '2024-05-01 09:00:00', '2024-05-02 09:00:00')"
                    ),
                    {
                        "id": task_id,
                        "name": body["name"],
                        "tt": body["task_type"],
                        "st": status,
                        "tr": body["trigger_type"],
                        "ta": json.dumps(body["trigger_args"]),
                        "fp": body["func_path"],
                        "fa": json.dumps(body["func_args"]),
                        "mi": body.get("max_instances", 1),
                        "d": body["description"],
                    },
                )
            logs = [
                ("log-1", IDS[0], "2024-05-03 09:00:00", "2024-05-03 09:00:01", "completed", "ok", None),
                ("log-2", IDS[0], "2024-05-03 09:00:00", None, "running", None, None),
                ("log-3", IDS[2], "2024-05-03 10:00:00", "2024-05-03 10:00:02", "failed", None, "boom"),
            ]
            for row in logs:
                conn.execute(
                    text(
                        "INSERT INTO task_execution_log (id, task_id, start_time, end_time, status, result, error) "
                        "VALUES (:i, :t, :s, :e, :st, :r, :er)"
                    ),
                    dict(zip(("i", "t", "s", "e", "st", "r", "er"), row, strict=True)),
                )
            conn.exec_driver_sql(SYS_SCHEDULER_TASK_DDL)
            (body,) = json_examples("004")
            conn.execute(
                text(
                    "INSERT INTO sys_scheduler_task (id, name, job_id, func, `trigger`, trigger_args, status, "
                    "last_run) VALUES (42, :n, 'daily_sync', :f, :t, :a, 1, '2024-05-03 02:00:00')"
                ),
                {"n": body["name"], "f": body["func"], "t": body["trigger"], "a": json.dumps(body["trigger_args"])},
            )
    finally:
        engine.dispose()


def run_import(url: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "cli.main", "db", "import", "--url", url, "--timezone", "Asia/Shanghai"],
        capture_output=True,
        text=True,
        timeout=120,
        env=legacy_env(url, "memory://"),
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def test_import_maps_fields_and_statuses_and_runs_twice_without_doubling(url: str, tmp_path: Path) -> None:
    upgrade(url)
    create_legacy_tables(url)
    first = run_import(url)
    assert "task_manage: 4 copied" in first and "task_execution_log: 3 copied" in first
    assert "sys_scheduler_task: 1 copied" in first
    second = run_import(url)
    assert "task_manage: 0 copied, 4 already there" in second
    assert "task_execution_log: 0 copied, 3 already there" in second
    assert "sys_scheduler_task: 0 copied, 1 already there" in second

    engine = make_engine(url)
    try:
        tasks = {
            r[0]: r
            for r in sql(
                engine,
                "SELECT task_key, id, `desc`, execute_func, `trigger`, spec, timezone, kwargs, is_valid, status, "
                "trigger_args, extra, last_run_at FROM task",
            )
        }
        assert len(tasks) == 5
        notify = tasks[IDS[0]]
        assert notify[2:8] == (
            "定时通知任务",
            "knowledge_api.framework.task_manage.example_tasks.notification_task",
            "cron",
            "0 9 * * *",
            "Asia/Shanghai",
            json.dumps(json_examples("003")[0]["func_args"], ensure_ascii=False),
        )
        assert json.loads(notify[10]) == {"hour": "9", "minute": "0"}
        assert json.loads(notify[11])["task_manage"] == {
            "name": "定时通知任务",
            "task_type": "notification",
            "description": "每天早上9点发送通知",
        }
        assert tasks[IDS[1]][8:10] == (1, "completed")  # the date example, completed under 003
        assert tasks[IDS[2]][4:6] == ("interval", "3600") and tasks[IDS[2]][8:10] == (0, "paused")
        assert tasks[IDS[3]][4:6] == ("cron", "30 23 * * mon-fri")
        daily = tasks["daily_sync"]
        assert daily[1] == 42 and daily[3:6] == ("scheduler.module.sync_tasks:sync_project_data", "cron", "0 2 * * *")
        assert daily[12].hour == 18  # 02:00 Asia/Shanghai, stored in UTC
        runs = sql(
            engine,
            "SELECT trace_id, status, scheduled_at, finished_at, result, error FROM execute_task ORDER BY trace_id",
        )
        assert [(r[0], r[1]) for r in runs] == [("log-1", "success"), ("log-2", "lost"), ("log-3", "failed")]
        assert runs[0][2] != runs[1][2]  # same second in 003, distinct fires here
        assert runs[2][5] == "boom"
    finally:
        engine.dispose()

    # Beat accepts every imported row (none is marked error) on a real cluster.
    with redis_broker_db() as broker:
        cluster = Cluster(legacy_env(url, broker), tmp_path)
        try:
            cluster.start_beat()
            engine = make_engine(url)
            try:

                def scheduled() -> bool:
                    rows = sql(engine, "SELECT status, next_run_at, last_error FROM task WHERE is_valid = 1")
                    assert not [r for r in rows if r[0] == "error"], rows
                    return all(r[1] is not None for r in rows if r[0] == "ready")

                wait_for(scheduled, 40, what="beat to schedule the imported rows")
            finally:
                engine.dispose()
        finally:
            cluster.stop_all()


@pytest.mark.postgresql
def test_import_from_mariadb_into_postgresql(url: str) -> None:
    """``--from`` another database; 004's kept ids move PostgreSQL's id sequence on."""
    create_legacy_tables(url)
    with fresh_database("postgresql") as target:
        upgrade(target)
        proc = subprocess.run(
            [sys.executable, "-m", "cli.main", "db", "import", "--url", target, "--from", url],
            capture_output=True,
            text=True,
            timeout=120,
            env=legacy_env(target, "memory://"),
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "task_manage: 4 copied" in proc.stdout and "sys_scheduler_task: 1 copied" in proc.stdout
        engine = make_engine(target)
        try:
            assert sql(engine, "SELECT id FROM task WHERE task_key = 'daily_sync'") == [(42,)]
            sql(
                engine,
                'INSERT INTO task (task_key, execute_func, "trigger", spec) '
                "VALUES ('after', 'noop', 'interval', '5')",
            )
            assert sql(engine, "SELECT id FROM task WHERE task_key = 'after'")[0][0] > 42
            assert sql(engine, "SELECT COUNT(*) FROM execute_task")[0][0] == 3
        finally:
            engine.dispose()

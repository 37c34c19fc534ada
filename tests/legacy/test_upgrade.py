"""``tablebeat db upgrade`` on the 000/001/002 schemas, built from each document's own DDL (MariaDB)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from croniter import croniter
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from models import make_engine
from models.legacy_upgrade import aps_go_schedule
from models.migrate import current_revision, head_revision, upgrade
from scheduler.triggers import build_trigger, next_fires
from tests.conftest import fresh_database
from tests.helpers import sql
from tests.legacy.conftest import legacy_env
from tests.legacy.documents import statements
from tests.processes import Cluster, redis_broker_db, wait_for

pytestmark = pytest.mark.mariadb

#: aps-go rows: robfig cron with seconds first, @every, CRON_TZ=, params as list or JSON object.
APS_GO_TASKS = [
    (1, "every_second", "test_cron", "*/1 * * * * *", "1,2,3", "ready"),
    (2, "weekday_930", "test_cron", "0 30 9 * * mon-fri", '{"a": 1}', "doing"),
    (3, "every_10s", "test_interval", "@every 10s", "", "ready"),
    (4, "shanghai_2am", "test_cron", "CRON_TZ=Asia/Shanghai 0 0 2 * * *", '"x","y"', "ready"),
    (5, "quarter_past_5s", "test_cron", "5 15 * * * *", "", "ready"),
]
APS_GO_RUNS = [
    (1, 1, "success", "trace-a"),
    (2, 1, "fail", "trace-b"),
    (3, 2, "doing", "trace-c"),
    (4, 3, "done", "trace-d"),
]
EXPECTED_SCHEDULES = {
    "every_second": ("cron", "* * * * * */1", None, "1,2,3", {}),
    "weekday_930": ("cron", "30 9 * * mon-fri", None, "", {"a": 1}),
    "every_10s": ("interval", "10", None, "", {}),
    "shanghai_2am": ("cron", "0 2 * * *", "Asia/Shanghai", '"x","y"', {}),
    "quarter_past_5s": ("cron", "15 * * * * 5", None, "", {}),
}


@pytest.fixture
def url() -> Iterator[str]:
    with fresh_database("mariadb") as database_url:
        yield database_url


def run_ddl(url: str, number: str) -> None:
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            for statement in statements(number):
                conn.exec_driver_sql(statement.replace("%", "%%"))
    finally:
        engine.dispose()


def create_aps_go(url: str) -> None:
    run_ddl(url, "002")
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            for row in APS_GO_TASKS:
                conn.execute(
                    text(
                        "INSERT INTO task (id, task_key, execute_func, spec, params, is_valid, status, extra) "
                        "VALUES (:i, :k, :f, :s, :p, 1, :st, '{}')"
                    ),
                    dict(zip(("i", "k", "f", "s", "p", "st"), row, strict=True)),
                )
            for row in APS_GO_RUNS:
                conn.execute(
                    text(
                        "INSERT INTO task_execute (id, task_id, status, extra, trace_id) VALUES (:i, :t, :s, '{}', :tr)"
                    ),
                    dict(zip(("i", "t", "s", "tr"), row, strict=True)),
                )
    finally:
        engine.dispose()


def row_formats(url: str) -> dict[str, str]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return dict(
                conn.execute(
                    text("SELECT TABLE_NAME, ROW_FORMAT FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE()")
                ).all()
            )
    finally:
        engine.dispose()


def snapshot(url: str) -> dict[str, object]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            tasks = conn.execute(
                text("SELECT task_key, `trigger`, spec, timezone, args, kwargs, status, is_valid FROM task ORDER BY id")
            ).all()
            runs = conn.execute(text("SELECT id, task_id, status, trace_id FROM execute_task ORDER BY id")).all()
        return {"tasks": [tuple(r) for r in tasks], "runs": [tuple(r) for r in runs], "formats": row_formats(url)}
    finally:
        engine.dispose()


def test_aps_go_spec_conversion() -> None:
    assert aps_go_schedule("0 */5 * * * *") == ("cron", "*/5 * * * *", None)
    assert aps_go_schedule("30 0 9 * * *") == ("cron", "0 9 * * * 30", None)
    assert aps_go_schedule("@every 1m30s") == ("interval", "90", None)
    assert aps_go_schedule("@every 1h") == ("interval", "3600", None)
    assert aps_go_schedule("@daily") == ("cron", "@daily", None)
    assert aps_go_schedule("TZ=Europe/Paris 0 0 8 * * *") == ("cron", "0 8 * * *", "Europe/Paris")
    assert aps_go_schedule("*/5 * * * *") == ("cron", "*/5 * * * *", None)  # already 5 fields
    assert aps_go_schedule("@every 500ms") == ("interval", "500ms", None)  # left for beat to report


def test_aps_go_schema_upgraded_in_place_with_history(url: str) -> None:
    create_aps_go(url)
    assert row_formats(url) == {"task": "Compact", "task_execute": "Compact"}
    upgrade(url)
    assert current_revision(url) == head_revision()
    after = snapshot(url)
    by_key = {row[0]: row for row in after["tasks"]}
    for key, (trigger, spec, tz, args, kwargs) in EXPECTED_SCHEDULES.items():
        row = by_key[key]
        assert row[1:4] == (trigger, spec, tz), row
        assert row[4] == args and json.loads(row[5] or "{}") == kwargs, row
    assert by_key["weekday_930"][6] == "ready"  # doing -> ready: nothing runs across the switch
    assert after["runs"] == [
        (1, 1, "success", "trace-a"),
        (2, 1, "failed", "trace-b"),
        (3, 2, "lost", "trace-c"),
        (4, 3, "success", "trace-d"),
    ]
    assert after["formats"]["task"] == "Dynamic" and after["formats"]["execute_task"] == "Dynamic"
    engine = make_engine(url)
    try:
        columns = {c["name"] for c in sa.inspect(engine).get_columns("task")}
        assert "params" not in columns and {"trigger", "args", "kwargs"} <= columns
        assert "task_execute" not in sa.inspect(engine).get_table_names()
    finally:
        engine.dispose()
    # Run again: nothing changes.
    upgrade(url)
    assert snapshot(url) == after


@pytest.mark.parametrize("table", ["task", "task_execute"])
def test_aps_go_upgrade_failing_mid_way_finishes_when_run_again(url: str, table: str) -> None:
    """A failure injected after the first DDL (a user trigger refusing one row) leaves a re-runnable state."""
    with fresh_database("mariadb") as clean_url:
        create_aps_go(clean_url)
        upgrade(clean_url)
        clean = snapshot(clean_url)

    create_aps_go(url)
    engine = make_engine(url)
    guard = "id = 4" if table == "task" else "id = 3"
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(
                f"CREATE TRIGGER inject_failure BEFORE UPDATE ON `{table}` FOR EACH ROW "
                f"BEGIN IF NEW.{guard} THEN SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'injected'; END IF; END"
            )
        with pytest.raises(sa.exc.DBAPIError, match="injected"):
            upgrade(url)
        assert current_revision(url) is None
        assert row_formats(url).get("task") == "Dynamic"  # DDL already happened: not "as it was"
        with engine.begin() as conn:
            conn.exec_driver_sql("DROP TRIGGER inject_failure")
    finally:
        engine.dispose()
    upgrade(url)
    assert current_revision(url) == head_revision()
    assert snapshot(url) == clean


def test_upgraded_aps_go_rows_fire_on_real_beat_and_worker(url: str, tmp_path: Path) -> None:
    create_aps_go(url)
    upgrade(url)
    with redis_broker_db() as broker:
        cluster = Cluster(legacy_env(url, broker), tmp_path)
        try:
            cluster.start_worker()
            cluster.start_beat()
            engine = make_engine(url)
            try:

                def fired() -> list[tuple]:
                    return sql(
                        engine,
                        "SELECT e.result FROM execute_task e JOIN task t ON t.id = e.task_id "
                        "WHERE t.task_key = 'every_second' AND e.status = 'success' AND e.id > 4",
                    )

                assert wait_for(fired, 40, what="a run of the upgraded aps-go row")[0][0] == "'cron ok'"
            finally:
                engine.dispose()
        finally:
            cluster.stop_all()


@pytest.mark.parametrize("number", ["000", "001"])
def test_aps_mysql_schema_from_the_document_upgrades(url: str, number: str) -> None:
    run_ddl(url, number)
    proc = subprocess.run(
        [sys.executable, "-m", "cli.main", "db", "upgrade", "--url", url],
        capture_output=True,
        text=True,
        timeout=120,
        env=legacy_env(url, "memory://"),
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert current_revision(url) == head_revision()
    after = snapshot(url)
    if number == "001":  # the document's own rows, kept
        assert [r[:3] for r in after["tasks"]] == [
            ("test_interval", "interval", "5"),
            ("test_date", "date", "2020-04-24 18:08:00"),
            ("test_cron", "cron", "* * * * *"),
        ]


_SECOND = st.sampled_from(["0", "5", "*/10", "30", "0,30", "*"])
_MINUTE = st.sampled_from(["0", "*/5", "15", "1-10", "*"])
_HOUR = st.sampled_from(["*", "9", "9-17", "*/6", "0"])
_DOM = st.sampled_from(["*", "1", "15", "1-7"])
_MONTH = st.sampled_from(["*", "1", "6-8", "*/3"])
_DOW = st.sampled_from(["*", "mon-fri", "0", "sat,sun", "1-5"])


@settings(max_examples=80, deadline=None)
@given(fields=st.tuples(_SECOND, _MINUTE, _HOUR, _DOM, _MONTH, _DOW), start=st.integers(0, 10**8))
def test_aps_go_cron_fires_where_robfig_did(fields: tuple[str, ...], start: int) -> None:
    """The converted spec fires on the instants the seconds-first original named."""
    spec = " ".join(fields)
    trigger, converted, _ = aps_go_schedule(spec)
    ours = build_trigger(trigger, converted, ZoneInfo("UTC"), datetime(2000, 1, 1, tzinfo=UTC))
    after = datetime(2030, 1, 1, tzinfo=UTC) + timedelta(seconds=start)
    theirs = croniter(spec, after.replace(tzinfo=None), second_at_beginning=True)
    expected = [theirs.get_next(datetime).replace(tzinfo=UTC) for _ in range(5)]
    assert next_fires(ours, after, 5) == expected, (spec, converted)

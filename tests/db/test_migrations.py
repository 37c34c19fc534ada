"""Migration 0001 and the ``task`` triggers, on real SQLite, MariaDB and PostgreSQL databases."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from models import CONFIG_COLUMNS, Base, ExecuteTask, Task, TaskChange, make_engine
from models.migrate import current_revision, head_revision, upgrade
from tests.conftest import fresh_database

TABLES = ("task", "task_change", "execute_task", "worker_heartbeat")

# --------------------------------------------------------------------------- helpers


@pytest.fixture
def migrated_url(db_url: str) -> str:
    """Here the migrations themselves run (elsewhere tests get copies of a database migrated once)."""
    upgrade(db_url)
    return db_url


def schema_of(url: str) -> dict[str, Any]:
    """Tables with their columns, indexes and unique constraints, and the trigger names."""
    with engine_for(url) as engine:
        inspector = sa.inspect(engine)
        tables = {
            name: (
                [(c["name"], str(c["type"]), c["nullable"]) for c in inspector.get_columns(name)],
                sorted((i["name"], tuple(i["column_names"]), bool(i["unique"])) for i in inspector.get_indexes(name)),
                sorted((u["name"], tuple(u["column_names"])) for u in inspector.get_unique_constraints(name)),
            )
            for name in inspector.get_table_names()
        }
        with engine.connect() as conn:
            triggers = {
                "sqlite": "SELECT name FROM sqlite_master WHERE type = 'trigger'",
                "mysql": "SELECT trigger_name FROM information_schema.triggers WHERE trigger_schema = DATABASE()",
                "postgresql": "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal",
            }[engine.dialect.name]
            names = sorted(row[0] for row in conn.execute(text(triggers)))
            revision = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    return {"tables": tables, "triggers": names, "revision": revision}


@contextmanager
def engine_for(url: str) -> Iterator[Engine]:
    engine = make_engine(url)
    try:
        yield engine
    finally:
        engine.dispose()


def q(conn: Connection, name: str) -> str:
    """Quote an identifier for ``conn``'s dialect (desc/trigger are reserved words)."""
    return conn.dialect.identifier_preparer.quote_identifier(name)


def insert_task(conn: Connection, key: str, **values: Any) -> int:
    row = {"task_key": key, "execute_func": "f", "trigger": "interval", "spec": "5", **values}
    cols = ", ".join(q(conn, c) for c in row)
    params = ", ".join(f":{c}" for c in row)
    conn.execute(text(f"INSERT INTO task ({cols}) VALUES ({params})"), row)
    return conn.execute(text("SELECT id FROM task WHERE task_key = :k"), {"k": key}).scalar_one()


def change_count(conn: Connection, task_id: int | None = None) -> int:
    if task_id is None:
        return conn.execute(text("SELECT COUNT(*) FROM task_change")).scalar_one()
    return conn.execute(text("SELECT COUNT(*) FROM task_change WHERE task_id = :i"), {"i": task_id}).scalar_one()


def read_update_at(engine: Engine, task_id: int) -> datetime:
    with Session(engine) as s:
        value = s.execute(sa.select(Task.update_at).where(Task.id == task_id)).scalar_one()
    assert value is not None and value.tzinfo is not None
    return value


def system_write_sql(conn: Connection) -> str:
    """How the system writes its own columns: MySQL needs update_at = update_at against ON UPDATE."""
    keep = ", update_at = update_at" if conn.dialect.name in ("mysql", "mariadb") else ""
    return (
        "UPDATE task SET next_run_at = :nr, status = 'doing', last_run_at = :lr, "
        f"last_status = 'success', last_error = NULL{keep} WHERE id = :i"
    )


def utc_param(conn: Connection, value: datetime) -> Any:
    """A UTC instant as a plain-SQL parameter (naive UTC on MySQL/SQLite, aware on PostgreSQL)."""
    if conn.dialect.name == "postgresql":
        return value
    if conn.dialect.name == "sqlite":
        return value.replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")
    return value.replace(tzinfo=None)


def now_utc() -> datetime:
    return datetime.now(UTC)


# --------------------------------------------------------------------------- schema


def test_schema_created(migrated_url: str) -> None:
    assert current_revision(migrated_url) == head_revision()
    with engine_for(migrated_url) as engine:
        inspector = sa.inspect(engine)
        assert set(TABLES) <= set(inspector.get_table_names())
        for table in TABLES:
            have = {c["name"] for c in inspector.get_columns(table)}
            assert have == set(Base.metadata.tables[table].columns.keys()), table
        task_indexes = {i["name"] for i in inspector.get_indexes("task")}
        assert {"ix_task_update_at", "ix_task_status", "ix_task_next_run_at", "ix_task_queue_note"} <= task_indexes
        exec_indexes = {i["name"] for i in inspector.get_indexes("execute_task")}
        assert {
            "ix_execute_task_trace_id",
            "ix_execute_task_status",
            "ix_execute_task_created",
            "ix_execute_task_status_scheduled",
        } <= exec_indexes


def test_test_copies_equal_a_migrated_database(db_kind: str, migrated_url: str) -> None:
    """The copies other tests use (tests/schema_copies.py) have the migrated schema, triggers included."""
    with fresh_database(db_kind, migrated=True) as copy:
        assert schema_of(copy) == schema_of(migrated_url)


def test_unique_constraints_enforced(migrated_url: str) -> None:
    with engine_for(migrated_url) as engine:
        with engine.begin() as conn:
            task_id = insert_task(conn, "uniq")
        with pytest.raises(IntegrityError), engine.begin() as conn:
            insert_task(conn, "uniq")

        fire = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
        with Session(engine) as s, s.begin():
            s.add(ExecuteTask(task_id=task_id, scheduled_at=fire, trace_id="t1"))
        with pytest.raises(IntegrityError), Session(engine) as s, s.begin():
            s.add(ExecuteTask(task_id=task_id, scheduled_at=fire, trace_id="t2"))
        # Another fire instant, or another task at the same instant, is fine.
        with Session(engine) as s, s.begin():
            s.add(ExecuteTask(task_id=task_id, scheduled_at=fire + timedelta(seconds=5), trace_id="t3"))
            s.add(ExecuteTask(task_id=task_id + 1, scheduled_at=fire, trace_id="t4"))
        with engine.connect() as conn:
            assert conn.execute(text("SELECT COUNT(*) FROM execute_task")).scalar_one() == 3


def test_upgrade_is_idempotent(db_url: str) -> None:
    upgrade(db_url)
    upgrade(db_url)
    assert current_revision(db_url) == head_revision()
    with engine_for(db_url) as engine, engine.begin() as conn:
        task_id = insert_task(conn, "once")
        assert change_count(conn, task_id) == 1  # triggers not duplicated


def test_current_revision_of_empty_database(db_url: str) -> None:
    assert current_revision(db_url) is None


def test_orm_round_trip_and_server_defaults(migrated_url: str) -> None:
    before = now_utc() - timedelta(seconds=5)
    with engine_for(migrated_url) as engine:
        with Session(engine) as s, s.begin():
            s.add(Task(task_key="orm", execute_func="f", trigger="cron", spec="*/5 * * * *", desc="描述"))
        with Session(engine) as s:
            task = s.execute(sa.select(Task).where(Task.task_key == "orm")).scalar_one()
            assert task.desc == "描述"
            assert task.status == "ready" and task.is_valid == 1 and task.max_instances == 1
            for value in (task.create_at, task.update_at):
                assert value is not None and value.tzinfo is not None
                assert before <= value <= now_utc() + timedelta(seconds=5)
            change = s.execute(sa.select(TaskChange).where(TaskChange.task_id == task.id)).scalar_one()
            assert change.changed_at is not None and before <= change.changed_at <= now_utc() + timedelta(seconds=5)
        # Plain SQL leaving out the optional columns gets the documented defaults.
        with engine.begin() as conn:
            insert_task(conn, "plain")
            row = conn.execute(
                text(
                    f"SELECT {q(conn, 'desc')}, args, extra, kwargs, status, is_valid FROM task WHERE task_key='plain'"
                )
            ).one()
            assert tuple(row) == ("", "", "{}", "{}", "ready", 1)


def test_refuses_unknown_existing_task_table_outside_mysql(db_kind: str, db_url: str) -> None:
    if db_kind == "mariadb":
        pytest.skip("MySQL/MariaDB upgrade existing tables in place (tested below)")
    with engine_for(db_url) as engine, engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE task (id INTEGER PRIMARY KEY, task_key VARCHAR(255))")
    with pytest.raises(RuntimeError, match="in-place upgrade"):
        upgrade(db_url)


# --------------------------------------------------------------------------- triggers


def test_change_log_triggers(migrated_url: str) -> None:
    with engine_for(migrated_url) as engine:
        with engine.begin() as conn:
            task_id = insert_task(conn, "logged")
            assert change_count(conn) == 1
        with engine.begin() as conn:
            conn.execute(text("UPDATE task SET spec = '10' WHERE id = :i"), {"i": task_id})
            assert change_count(conn) == 2
        with engine.begin() as conn:
            t = now_utc()
            conn.execute(
                text(system_write_sql(conn)),
                {"nr": utc_param(conn, t + timedelta(seconds=10)), "lr": utc_param(conn, t), "i": task_id},
            )
            conn.execute(text("UPDATE task SET status = 'ready' WHERE id = :i"), {"i": task_id})
            assert change_count(conn) == 2, "system columns must not log"
        with engine.begin() as conn:
            # An UPDATE that sets a config column to its current value is not a change.
            conn.execute(text("UPDATE task SET spec = '10' WHERE id = :i"), {"i": task_id})
            assert change_count(conn) == 2
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM task WHERE id = :i"), {"i": task_id})
            assert change_count(conn) == 3
            ids = conn.execute(text("SELECT task_id FROM task_change ORDER BY id")).scalars().all()
            assert ids == [task_id] * 3


NEW_VALUES: dict[str, Any] = {
    "task_key": "renamed",
    "desc": "新描述",
    "execute_func": "g",
    "trigger": "cron",
    "spec": "*/2 * * * *",
    "args": "1,2",
    "kwargs": '{"a": 1}',
    "is_valid": 0,
    "timezone": "Asia/Shanghai",
    "queue": "q2",
    "max_instances": 3,
    "misfire_grace_seconds": 30,
    "expires_seconds": 60,
    "extra": '{"k": "v"}',
    "trigger_args": '{"minute": "*/2"}',
    "start_date": "2031-01-01 00:00:00",
    "end_date": "2032-01-01 00:00:00",
    "jitter_seconds": 5,
    "cron_year": "2031",
    "cron_week": "1-10",
}


def test_every_config_column_logs(migrated_url: str) -> None:
    assert set(NEW_VALUES) == set(CONFIG_COLUMNS)
    with engine_for(migrated_url) as engine:
        with engine.begin() as conn:
            task_id = insert_task(conn, "cfg")
        for column, value in NEW_VALUES.items():
            with engine.begin() as conn:
                before = change_count(conn, task_id)
                conn.execute(text(f"UPDATE task SET {q(conn, column)} = :v WHERE id = :i"), {"v": value, "i": task_id})
                assert change_count(conn, task_id) == before + 1, column
        # NULL-safe: value -> NULL and NULL -> value are changes.
        for value in (None, "Europe/Paris"):
            with engine.begin() as conn:
                before = change_count(conn, task_id)
                conn.execute(text("UPDATE task SET timezone = :v WHERE id = :i"), {"v": value, "i": task_id})
                assert change_count(conn, task_id) == before + 1
        # Case-only and trailing-space edits are changes, whatever the column collation.
        for spec in ("*/2 * * * * ", "A", "a"):
            with engine.begin() as conn:
                before = change_count(conn, task_id)
                conn.execute(text("UPDATE task SET spec = :v WHERE id = :i"), {"v": spec, "i": task_id})
                assert change_count(conn, task_id) == before + 1, repr(spec)


def test_update_at_moves_on_config_edit_only(migrated_url: str) -> None:
    old = datetime(2001, 2, 3, 4, 5, 6, 123456, tzinfo=UTC)
    with engine_for(migrated_url) as engine:
        with engine.begin() as conn:
            task_id = insert_task(conn, "touch")
            # Setting update_at explicitly (no config change) keeps the given value.
            conn.execute(
                text("UPDATE task SET update_at = :u WHERE id = :i"), {"u": utc_param(conn, old), "i": task_id}
            )
        assert read_update_at(engine, task_id) == old

        with engine.begin() as conn:
            t = now_utc()
            conn.execute(
                text(system_write_sql(conn)),
                {"nr": utc_param(conn, t + timedelta(seconds=10)), "lr": utc_param(conn, t), "i": task_id},
            )
        assert read_update_at(engine, task_id) == old, "a system write must not move update_at"

        before = now_utc() - timedelta(seconds=5)
        with engine.begin() as conn:
            conn.execute(text("UPDATE task SET spec = '7' WHERE id = :i"), {"i": task_id})
        moved = read_update_at(engine, task_id)
        assert before <= moved <= now_utc() + timedelta(seconds=5)


# --------------------------------------------------------------------------- original MySQL schema

LEGACY_DDL = [
    """CREATE TABLE `task` (`id` int NOT NULL AUTO_INCREMENT, `task_key` varchar(255), `desc` varchar(255),
    `execute_func` varchar(255), `trigger` varchar(255), `spec` varchar(255), `args` varchar(255) DEFAULT '',
    `is_valid` int, `status` varchar(255) COMMENT 'ready/doing', `extra` text DEFAULT '{}',
    `create_at` timestamp DEFAULT CURRENT_TIMESTAMP,
    `update_at` timestamp DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP,
    PRIMARY KEY (`id`), UNIQUE KEY `task_key` (`task_key`,`status`)) {options}""",
    """CREATE TABLE `execute_task` (`id` int NOT NULL AUTO_INCREMENT, `task_id` int, `status` varchar(255),
    `extra` text DEFAULT '{}', `trace_id` varchar(255), `create_at` timestamp DEFAULT CURRENT_TIMESTAMP,
    `update_at` timestamp DEFAULT CURRENT_TIMESTAMP, PRIMARY KEY (`id`)) {options}""",
]
LEGACY_TASKS = (
    "INSERT INTO task VALUES "
    "(1,'test_interval','测试interval任务','test_interval','interval','5','1,2,3',1,'ready','{}',"
    "'2024-05-01 10:00:00','2024-05-01 10:00:01'), "
    "(2,'test_date','测试date任务','test_date','date','2020-04-24 18:08:00','\"guess\",\"hello\"',1,'ready','{}',"
    "'2024-05-01 10:00:02','2024-05-01 10:00:03'), "
    "(3,'test_cron','测试cron任务','test_cron','cron','*/1 * * * *','',1,'doing','{}',NOW(),NOW())"
)
LEGACY_RUNS = (
    "INSERT INTO execute_task (id, task_id, status, extra, trace_id, create_at, update_at) VALUES "
    "(1, 1, 'success', '{}', 'trace-1', '2024-05-01 10:00:05', '2024-05-01 10:00:06'), "
    "(2, 1, 'success', '{}', 'trace-2', '2024-05-01 10:00:10', '2024-05-01 10:00:11'), "
    # two runs of one task in the same second: scheduled_at must still be unique
    "(3, 3, 'doing', '{}', 'trace-3', '2024-05-01 10:01:00', '2024-05-01 10:01:00'), "
    "(4, 3, 'fail', '{\"x\": \"失败\"}', 'trace-4', '2024-05-01 10:01:00', '2024-05-01 10:01:00')"
)


def create_legacy(url: str, table_options: str = "", session_tz: str = "+08:00") -> dict[str, dict[int, float]]:
    """The original schema and rows, written from a non-UTC session like the original system.

    Returns the epoch seconds of every row's timestamps, to check the upgrade keeps the instants.
    """
    import pymysql

    parsed = sa.engine.make_url(url)
    conn = pymysql.connect(
        host=parsed.host,
        port=parsed.port or 3306,
        user=parsed.username,
        password=parsed.password or "",
        database=parsed.database,
        charset="utf8mb4",
        autocommit=True,
    )
    try:
        cur = conn.cursor()
        cur.execute(f"SET time_zone = '{session_tz}'")
        for ddl in LEGACY_DDL:
            cur.execute(ddl.replace("{options}", table_options))
        cur.execute(LEGACY_TASKS)
        cur.execute(LEGACY_RUNS)
        instants: dict[str, dict[int, float]] = {}
        for table in ("task", "execute_task"):
            cur.execute(f"SELECT id, UNIX_TIMESTAMP(create_at), UNIX_TIMESTAMP(update_at) FROM {table}")
            for row_id, created, updated in cur.fetchall():
                instants.setdefault(f"{table}.create_at", {})[row_id] = float(created)
                instants.setdefault(f"{table}.update_at", {})[row_id] = float(updated)
        return instants
    finally:
        conn.close()


@pytest.fixture
def legacy_url() -> Iterator[str]:
    with fresh_database("mariadb") as url:
        yield url


@pytest.mark.mariadb
def test_original_schema_upgraded_in_place(legacy_url: str) -> None:
    instants = create_legacy(legacy_url)
    upgrade(legacy_url)
    assert current_revision(legacy_url) == head_revision()

    with engine_for(legacy_url) as engine:
        with Session(engine) as s:
            tasks = {t.id: t for t in s.execute(sa.select(Task)).scalars()}
            assert sorted(tasks) == [1, 2, 3]
            assert [(t.task_key, t.desc, t.args, t.spec, t.trigger, t.status) for t in tasks.values()] == [
                ("test_interval", "测试interval任务", "1,2,3", "5", "interval", "ready"),
                ("test_date", "测试date任务", '"guess","hello"', "2020-04-24 18:08:00", "date", "ready"),
                ("test_cron", "测试cron任务", "", "*/1 * * * *", "cron", "ready"),  # doing -> ready
            ]
            for t in tasks.values():
                assert t.create_at.timestamp() == instants["task.create_at"][t.id]
                assert t.update_at.timestamp() == instants["task.update_at"][t.id]
                assert t.kwargs == "{}" and t.max_instances == 1 and t.is_valid == 1
            runs = {r.id: r for r in s.execute(sa.select(ExecuteTask)).scalars()}
            assert sorted(runs) == [1, 2, 3, 4]
            assert (
                runs[4].extra == '{"x": "失败"}' and runs[3].status == "lost" and runs[4].status == "failed"
            )  # statuses mapped
            for r in runs.values():
                assert r.create_at.timestamp() == instants["execute_task.create_at"][r.id]
                assert r.update_at.timestamp() == instants["execute_task.update_at"][r.id]
                assert r.scheduled_at is not None and r.attempt == 1
            assert runs[1].scheduled_at == runs[1].create_at
            assert runs[3].scheduled_at == runs[3].create_at
            assert runs[3].scheduled_at < runs[4].scheduled_at < runs[3].scheduled_at + timedelta(seconds=1)

        # The upgraded tables take the new columns and enforce the new keys.
        with Session(engine) as s, s.begin():
            s.add(
                Task(
                    task_key="new",
                    execute_func="f",
                    trigger="interval",
                    spec="90s",
                    kwargs='{"a": 1}',
                    timezone="Asia/Shanghai",
                    queue="q",
                    max_instances=2,
                    misfire_grace_seconds=5,
                    expires_seconds=9,
                    last_status="success",
                    next_run_at=now_utc(),
                )
            )
            s.add(ExecuteTask(task_id=1, scheduled_at=now_utc(), worker="w", celery_id="c", result="ok"))
        with Session(engine) as s:
            new = s.execute(sa.select(Task).where(Task.task_key == "new")).scalar_one()
            assert new.id == 4 and new.queue == "q"
        with pytest.raises(IntegrityError), engine.begin() as conn:
            # same key with another status was allowed by the original UNIQUE(task_key, status)
            insert_task(conn, "test_cron", status="paused")
        with pytest.raises(IntegrityError), engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO execute_task (task_id, scheduled_at, status) "
                    "SELECT task_id, scheduled_at, 'pending' FROM execute_task WHERE id = 1"
                )
            )
        with engine.begin() as conn:
            before = change_count(conn, 1)
            conn.execute(text("UPDATE task SET spec = '6' WHERE id = 1"))
            assert change_count(conn, 1) == before + 1
            charset = conn.execute(
                text(
                    "SELECT TABLE_COLLATION FROM information_schema.TABLES "
                    "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'task'"
                )
            ).scalar_one()
            assert charset.startswith("utf8mb4")


def _mysql_schema(url: str) -> dict[str, Any]:
    with engine_for(url) as engine, engine.connect() as conn:
        columns = conn.execute(
            text(
                "SELECT TABLE_NAME, COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE, COLUMN_DEFAULT, EXTRA, CHARACTER_SET_NAME "
                "FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE()"
            )
        ).all()
        indexes = conn.execute(
            text(
                "SELECT TABLE_NAME, INDEX_NAME, NON_UNIQUE, GROUP_CONCAT(COLUMN_NAME ORDER BY SEQ_IN_INDEX) "
                "FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE() "
                "GROUP BY TABLE_NAME, INDEX_NAME, NON_UNIQUE"
            )
        ).all()
        triggers = conn.execute(
            text(
                "SELECT TRIGGER_NAME, ACTION_STATEMENT FROM information_schema.TRIGGERS "
                "WHERE TRIGGER_SCHEMA = DATABASE()"
            )
        ).all()
    return {
        "columns": {(r[0], r[1]): tuple(r[2:]) for r in columns},
        "indexes": {tuple(r) for r in indexes},
        "triggers": dict(triggers),
    }


@pytest.mark.mariadb
def test_original_schema_upgrade_matches_fresh_schema(legacy_url: str) -> None:
    create_legacy(legacy_url)
    upgrade(legacy_url)
    with fresh_database("mariadb") as fresh_url:
        upgrade(fresh_url)
        fresh = _mysql_schema(fresh_url)
    upgraded = _mysql_schema(legacy_url)
    assert upgraded["columns"] == fresh["columns"]
    assert upgraded["indexes"] == fresh["indexes"]
    assert upgraded["triggers"] == fresh["triggers"]


@pytest.mark.mariadb
def test_original_schema_in_utf8mb3_and_duplicate_keys(legacy_url: str) -> None:
    create_legacy(legacy_url, table_options="DEFAULT CHARSET=utf8", session_tz="+00:00")
    with engine_for(legacy_url) as engine, engine.begin() as conn:
        # the original key let one task_key exist once per status
        conn.exec_driver_sql(
            "INSERT INTO task (id, task_key, `desc`, execute_func, `trigger`, spec, args, is_valid, status) "
            "VALUES (7, 'test_cron', '重复', 'test_cron', 'cron', '*/3 * * * *', '', 1, 'ready')"
        )
    upgrade(legacy_url)
    with engine_for(legacy_url) as engine, engine.connect() as conn:
        rows = conn.execute(text("SELECT id, task_key, `desc`, is_valid, status FROM task ORDER BY id")).all()
        assert [tuple(r) for r in rows] == [
            (1, "test_interval", "测试interval任务", 1, "ready"),
            (2, "test_date", "测试date任务", 1, "ready"),
            (3, "test_cron", "测试cron任务", 1, "ready"),
            (7, "test_cron#dup7", "重复", 0, "ready"),
        ]
        collations = (
            conn.execute(text("SELECT TABLE_COLLATION FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE()"))
            .scalars()
            .all()
        )
        assert all(c.startswith("utf8mb4") for c in collations)


@pytest.mark.mariadb
def test_interrupted_original_schema_upgrade_can_rerun(legacy_url: str) -> None:
    create_legacy(legacy_url)
    with engine_for(legacy_url) as engine, engine.begin() as conn:
        # as if a previous attempt died after its first ALTERs
        conn.exec_driver_sql(
            "ALTER TABLE task DROP INDEX task_key, ADD COLUMN kwargs TEXT, ADD COLUMN queue VARCHAR(255)"
        )
        conn.exec_driver_sql("ALTER TABLE execute_task ADD COLUMN scheduled_at DATETIME(6)")
    upgrade(legacy_url)
    with engine_for(legacy_url) as engine, engine.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM task")).scalar_one() == 3
        assert conn.execute(text("SELECT COUNT(*) FROM execute_task WHERE scheduled_at IS NOT NULL")).scalar_one() == 4


@pytest.mark.mariadb
def test_mysql_timestamps_are_utc_whatever_the_session_zone(legacy_url: str) -> None:
    """An operator's SQL client in +08:00 still stores UTC create_at / update_at / changed_at."""
    upgrade(legacy_url)
    with engine_for(legacy_url) as engine:
        with engine.begin() as conn:
            conn.exec_driver_sql("SET time_zone = '+08:00'")
            task_id = insert_task(conn, "tz")
        with Session(engine) as s:
            task = s.get(Task, task_id)
            change = s.execute(sa.select(TaskChange).where(TaskChange.task_id == task_id)).scalar_one()
        for value in (task.create_at, task.update_at, change.changed_at):
            assert abs(value - now_utc()) < timedelta(minutes=1)
        old = datetime(2001, 1, 1, tzinfo=UTC)
        with engine.begin() as conn:
            conn.execute(
                text("UPDATE task SET update_at = :u WHERE id = :i"), {"u": old.replace(tzinfo=None), "i": task_id}
            )
        with engine.begin() as conn:
            conn.exec_driver_sql("SET time_zone = '+08:00'")
            conn.execute(text("UPDATE task SET spec = '9' WHERE id = :i"), {"i": task_id})
        assert abs(read_update_at(engine, task_id) - now_utc()) < timedelta(minutes=1)
        with engine.begin() as conn:
            conn.execute(
                text("UPDATE task SET update_at = :u WHERE id = :i"), {"u": old.replace(tzinfo=None), "i": task_id}
            )
        with engine.begin() as conn:
            conn.exec_driver_sql("SET time_zone = '+08:00'")
            conn.execute(text("UPDATE task SET status = 'paused' WHERE id = :i"), {"i": task_id})
        assert abs(read_update_at(engine, task_id) - now_utc()) < timedelta(minutes=1)

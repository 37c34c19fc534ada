"""Initial schema: task, task_change, execute_task, worker_heartbeat, and the task triggers.

Two starting points are handled, detected by inspecting the database:

(a) an empty database: the four tables are created as the models describe them;
(b) a MySQL/MariaDB database made with an earlier schema (000/001 ``task`` / ``execute_task``, or
    002's aps-go ``task`` / ``task_execute``, see :mod:`models.legacy_upgrade`; no ``alembic_version``):
    the tables are upgraded in place, keeping every row -- new columns
    added, ``args`` widened to TEXT, TIMESTAMP columns converted to DATETIME(6) in UTC, utf8mb4,
    UNIQUE(task_key, status) replaced by UNIQUE(task_key), legacy ``doing`` status mapped to
    ``ready`` (nothing runs across an upgrade), ``execute_task.scheduled_at`` back-filled from
    ``create_at`` with the unique ``(task_id, scheduled_at)`` added.

Each step of (b) checks the current state first, so an upgrade interrupted half way (MySQL DDL
is not transactional) can simply be run again.

Revision ID: 0001
Revises:
Create Date: 2024-05-01
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import Connection
from sqlalchemy.schema import CreateColumn

from models import legacy_upgrade, triggers_sql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

log = logging.getLogger("alembic.runtime.migration")

#: The config columns as of this revision (frozen: later revisions recreate the triggers).
CONFIG_COLUMNS_0001 = (
    "task_key",
    "desc",
    "execute_func",
    "trigger",
    "spec",
    "args",
    "kwargs",
    "is_valid",
    "timezone",
    "queue",
    "max_instances",
    "misfire_grace_seconds",
    "expires_seconds",
    "extra",
)

MYSQL_TABLE_OPTIONS = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4"}


# --------------------------------------------------------------------------- column definitions


def _family(bind: Connection) -> str:
    name = bind.dialect.name
    return "mysql" if name in ("mysql", "mariadb") else name


def _ts(family: str) -> sa.types.TypeEngine[Any]:
    if family == "postgresql":
        return sa.DateTime(timezone=True)
    if family == "mysql":
        return mysql.DATETIME(fsp=6)
    return sa.DateTime()


def _now(family: str, on_update: bool = False) -> sa.TextClause:
    if family == "mysql":
        clause = "CURRENT_TIMESTAMP(6)"
        return sa.text(clause + " ON UPDATE CURRENT_TIMESTAMP(6)" if on_update else clause)
    if family == "sqlite":
        return sa.text(triggers_sql.SQLITE_NOW)
    return sa.text("CURRENT_TIMESTAMP")


def _text_default(family: str, value: str) -> sa.TextClause:
    # MySQL only accepts a TEXT default as an expression: DEFAULT ('{}').
    literal = "'" + value.replace("'", "''") + "'"
    return sa.text(f"({literal})" if family == "mysql" else literal)


def _task_columns(family: str) -> list[sa.Column[Any]]:
    def ts() -> sa.types.TypeEngine[Any]:
        return _ts(family)

    return [
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("task_key", sa.String(255), nullable=False),
        sa.Column("desc", sa.String(255), nullable=False, server_default=""),
        sa.Column("execute_func", sa.String(255), nullable=True),
        sa.Column("trigger", sa.String(255), nullable=True),
        sa.Column("spec", sa.String(255), nullable=True),
        sa.Column("args", sa.Text, nullable=True, server_default=_text_default(family, "")),
        sa.Column("is_valid", sa.Integer, nullable=False, server_default="1"),
        sa.Column("status", sa.String(255), nullable=False, server_default="ready"),
        sa.Column("extra", sa.Text, nullable=True, server_default=_text_default(family, "{}")),
        sa.Column("create_at", ts(), nullable=True, server_default=_now(family)),
        sa.Column("update_at", ts(), nullable=True, server_default=_now(family, on_update=True)),
        sa.Column("kwargs", sa.Text, nullable=True, server_default=_text_default(family, "{}")),
        sa.Column("timezone", sa.String(64), nullable=True),
        sa.Column("queue", sa.String(255), nullable=True),
        sa.Column("max_instances", sa.Integer, nullable=False, server_default="1"),
        sa.Column("misfire_grace_seconds", sa.Integer, nullable=True),
        sa.Column("expires_seconds", sa.Integer, nullable=True),
        sa.Column("next_run_at", ts(), nullable=True),
        sa.Column("last_run_at", ts(), nullable=True),
        sa.Column("last_status", sa.String(32), nullable=True),
        sa.Column("last_error", sa.Text, nullable=True),
    ]


def _execute_task_columns(family: str) -> list[sa.Column[Any]]:
    def ts() -> sa.types.TypeEngine[Any]:
        return _ts(family)

    return [
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("task_id", sa.Integer, nullable=False),
        sa.Column("status", sa.String(255), nullable=False, server_default="pending"),
        sa.Column("extra", sa.Text, nullable=True, server_default=_text_default(family, "{}")),
        sa.Column("trace_id", sa.String(255), nullable=True),
        sa.Column("create_at", ts(), nullable=True, server_default=_now(family)),
        sa.Column("update_at", ts(), nullable=True, server_default=_now(family, on_update=True)),
        sa.Column("scheduled_at", ts(), nullable=True),
        sa.Column("started_at", ts(), nullable=True),
        sa.Column("finished_at", ts(), nullable=True),
        sa.Column("published_at", ts(), nullable=True),
        sa.Column("worker", sa.String(255), nullable=True),
        sa.Column("celery_id", sa.String(64), nullable=True),
        sa.Column("result", sa.Text, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("attempt", sa.Integer, nullable=False, server_default="1"),
        sa.Column("claimed_by", sa.String(64), nullable=True),
    ]


TASK_INDEXES = {
    "ix_task_update_at": ["update_at"],
    "ix_task_status": ["status"],
    "ix_task_next_run_at": ["next_run_at"],
}
EXECUTE_TASK_INDEXES = {
    "ix_execute_task_trace_id": ["trace_id"],
    "ix_execute_task_status": ["status", "task_id"],
    "ix_execute_task_created": ["create_at"],
}
UQ_TASK_KEY = "uq_task_task_key"
UQ_EXECUTE_TASK_FIRE = "uq_execute_task_fire"


# --------------------------------------------------------------------------- (a) fresh tables


def _table_options(family: str) -> dict[str, Any]:
    return dict(MYSQL_TABLE_OPTIONS) if family == "mysql" else {}


def _create_task(family: str) -> None:
    op.create_table(
        "task",
        *_task_columns(family),
        sa.UniqueConstraint("task_key", name=UQ_TASK_KEY),
        **_table_options(family),
    )
    for name, cols in TASK_INDEXES.items():
        op.create_index(name, "task", cols)


def _create_execute_task(family: str) -> None:
    op.create_table(
        "execute_task",
        *_execute_task_columns(family),
        sa.UniqueConstraint("task_id", "scheduled_at", name=UQ_EXECUTE_TASK_FIRE),
        **_table_options(family),
    )
    for name, cols in EXECUTE_TASK_INDEXES.items():
        op.create_index(name, "execute_task", cols)


def _create_task_change(family: str) -> None:
    op.create_table(
        "task_change",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("task_id", sa.Integer, nullable=False),
        sa.Column("changed_at", _ts(family), nullable=True, server_default=_now(family)),
        # Beat reads with "id > cursor": ids must never be reused after pruning.
        sqlite_autoincrement=True,
        **_table_options(family),
    )


def _create_worker_heartbeat(family: str) -> None:
    op.create_table(
        "worker_heartbeat",
        sa.Column("hostname", sa.String(255), primary_key=True),
        sa.Column("seen_at", _ts(family), nullable=False),
        sa.Column("started_at", _ts(family), nullable=False),
        **_table_options(family),
    )


# --------------------------------------------------------------------------- (b) legacy MySQL


def _column_ddl(bind: Connection, table: str, column: sa.Column[Any]) -> str:
    """The MySQL column definition of ``column``, as CREATE TABLE would render it."""
    column = column._copy()
    sa.Table(table, sa.MetaData(), column)  # CreateColumn needs the column attached to a table
    return str(CreateColumn(column).compile(dialect=bind.dialect))


def _mysql_table_charset(bind: Connection, table: str) -> str:
    collation = bind.execute(
        sa.text(
            "SELECT TABLE_COLLATION FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = :t"
        ),
        {"t": table},
    ).scalar()
    return (collation or "").split("_", 1)[0]


def _mysql_indexes(bind: Connection, table: str) -> dict[str, tuple[bool, list[str]]]:
    """name -> (unique, columns in order), PRIMARY excluded."""
    rows = bind.execute(
        sa.text(
            "SELECT INDEX_NAME, NON_UNIQUE, COLUMN_NAME FROM information_schema.STATISTICS "
            "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = :t ORDER BY INDEX_NAME, SEQ_IN_INDEX"
        ),
        {"t": table},
    ).all()
    out: dict[str, tuple[bool, list[str]]] = {}
    for name, non_unique, column in rows:
        if name == "PRIMARY":
            continue
        out.setdefault(name, (not int(non_unique), []))[1].append(column)
    return out


def _mysql_columns(bind: Connection, table: str) -> set[str]:
    return {c["name"] for c in sa.inspect(bind).get_columns(table)}


def _mysql_prepare_table(bind: Connection, table: str) -> None:
    """utf8mb4 and no stale UNIQUE keys that the data fixes below would violate."""
    if _mysql_table_charset(bind, table) != "utf8mb4":
        log.info("converting %s to utf8mb4", table)
        bind.exec_driver_sql(f"ALTER TABLE `{table}` CONVERT TO CHARACTER SET utf8mb4")
    engine_name = bind.execute(
        sa.text("SELECT ENGINE FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = :t"),
        {"t": table},
    ).scalar()
    if engine_name and engine_name.lower() != "innodb":
        bind.exec_driver_sql(f"ALTER TABLE `{table}` ENGINE=InnoDB")


def _mysql_finish_table(
    bind: Connection,
    table: str,
    columns: list[sa.Column[Any]],
    unique: dict[str, list[str]],
    indexes: dict[str, list[str]],
) -> None:
    """One ALTER TABLE bringing every column, unique key and index to the model's definition."""
    existing_indexes = _mysql_indexes(bind, table)
    clauses = [f"MODIFY COLUMN {_column_ddl(bind, table, c)}" for c in columns if not c.primary_key]
    pk = next(c for c in columns if c.primary_key)
    clauses.insert(0, f"MODIFY COLUMN {_column_ddl(bind, table, pk)}")
    for name, cols in unique.items():
        if any(u and ic == cols for u, ic in existing_indexes.values()):
            continue
        if name in existing_indexes:
            clauses.append(f"DROP INDEX `{name}`")
        clauses.append(f"ADD CONSTRAINT `{name}` UNIQUE ({', '.join(f'`{c}`' for c in cols)})")
    for name, cols in indexes.items():
        if name not in existing_indexes:
            clauses.append(f"ADD INDEX `{name}` ({', '.join(f'`{c}`' for c in cols)})")
    bind.exec_driver_sql(f"ALTER TABLE `{table}`\n  " + ",\n  ".join(clauses))


def _mysql_add_missing_columns(bind: Connection, table: str, columns: list[sa.Column[Any]]) -> None:
    have = _mysql_columns(bind, table)
    missing = [c for c in columns if c.name not in have]
    if missing:
        log.info("adding columns %s to %s", [c.name for c in missing], table)
        clauses = [f"ADD COLUMN {_column_ddl(bind, table, c)}" for c in missing]
        bind.exec_driver_sql(f"ALTER TABLE `{table}` " + ", ".join(clauses))


def _upgrade_legacy_task(bind: Connection) -> None:
    log.info("upgrading the existing `task` table in place")
    _mysql_prepare_table(bind, "task")
    # UNIQUE(task_key, status) (or any unique key other than task_key alone) goes first: the
    # status mapping below would violate it.
    for name, (unique, cols) in _mysql_indexes(bind, "task").items():
        if unique and cols != ["task_key"]:
            bind.exec_driver_sql(f"ALTER TABLE `task` DROP INDEX `{name}`")
    # New columns, so that every column exists for the data fixes below.
    columns = _task_columns("mysql")
    _mysql_add_missing_columns(bind, "task", columns)
    # Data fixes. "update_at = update_at" keeps ON UPDATE from touching the rows.
    keep = "`update_at` = `update_at`"
    bind.exec_driver_sql(f"UPDATE `task` SET `status` = 'ready', {keep} WHERE `status` = 'doing' OR `status` IS NULL")
    bind.exec_driver_sql(f"UPDATE `task` SET `desc` = '', {keep} WHERE `desc` IS NULL")
    bind.exec_driver_sql(f"UPDATE `task` SET `is_valid` = 0, {keep} WHERE `is_valid` IS NULL")
    bind.exec_driver_sql(f"UPDATE `task` SET `max_instances` = 1, {keep} WHERE `max_instances` IS NULL")
    bind.exec_driver_sql(f"UPDATE `task` SET `task_key` = CONCAT('task-', `id`), {keep} WHERE `task_key` IS NULL")
    # The old key allowed one task_key per status; keep the lowest id under its name and rename
    # (and disable) the others, so no row is lost.
    dups = bind.exec_driver_sql(
        "SELECT t.`id`, t.`task_key` FROM `task` t JOIN (SELECT `task_key`, MIN(`id`) AS keep_id "
        "FROM `task` GROUP BY `task_key` HAVING COUNT(*) > 1) d "
        "ON t.`task_key` = d.`task_key` AND t.`id` <> d.keep_id ORDER BY t.`id`"
    ).all()
    for task_id, task_key in dups:
        new_key = f"{task_key[:230]}#dup{task_id}"
        log.warning("task %s: duplicate task_key %r renamed to %r and disabled", task_id, task_key, new_key)
        bind.execute(
            sa.text(f"UPDATE `task` SET `task_key` = :k, `is_valid` = 0, {keep} WHERE `id` = :i"),
            {"k": new_key, "i": task_id},
        )
    # TIMESTAMP -> DATETIME(6) converts through the session time zone, which make_engine sets to
    # UTC, so the stored instants are kept (now as naive UTC).
    _mysql_finish_table(bind, "task", columns, {UQ_TASK_KEY: ["task_key"]}, TASK_INDEXES)


def _upgrade_legacy_execute_task(bind: Connection) -> None:
    log.info("upgrading the existing `execute_task` table in place")
    _mysql_prepare_table(bind, "execute_task")
    for name, (unique, cols) in _mysql_indexes(bind, "execute_task").items():
        if unique and cols != ["task_id", "scheduled_at"]:
            bind.exec_driver_sql(f"ALTER TABLE `execute_task` DROP INDEX `{name}`")
    columns = _execute_task_columns("mysql")
    _mysql_add_missing_columns(bind, "execute_task", columns)
    keep = "`update_at` = `update_at`"
    bind.exec_driver_sql(f"UPDATE `execute_task` SET `task_id` = 0, {keep} WHERE `task_id` IS NULL")
    bind.exec_driver_sql(f"UPDATE `execute_task` SET `status` = 'lost', {keep} WHERE `status` IS NULL")
    bind.exec_driver_sql(f"UPDATE `execute_task` SET `attempt` = 1, {keep} WHERE `attempt` IS NULL")
    # A past run's fire instant is best approximated by its create_at. Legacy timestamps have
    # second precision, so two runs of one task may share it: the later ids get a sub-second
    # offset (id mod 10^6 microseconds) to satisfy UNIQUE(task_id, scheduled_at).
    if "uq_execute_task_fire" not in _mysql_indexes(bind, "execute_task"):
        bind.exec_driver_sql(
            f"UPDATE `execute_task` SET `scheduled_at` = `create_at`, {keep} "
            "WHERE `scheduled_at` IS NULL AND `create_at` IS NOT NULL"
        )
        bind.exec_driver_sql(
            "UPDATE `execute_task` e JOIN (SELECT `task_id`, `scheduled_at`, MIN(`id`) AS keep_id "
            "FROM `execute_task` WHERE `scheduled_at` IS NOT NULL GROUP BY `task_id`, `scheduled_at` "
            "HAVING COUNT(*) > 1) d ON e.`task_id` = d.`task_id` AND e.`scheduled_at` = d.`scheduled_at` "
            "AND e.`id` <> d.keep_id "
            "SET e.`scheduled_at` = e.`scheduled_at` + INTERVAL (e.`id` MOD 1000000) MICROSECOND, "
            "e.`update_at` = e.`update_at`"
        )
    _mysql_finish_table(
        bind, "execute_task", columns, {UQ_EXECUTE_TASK_FIRE: ["task_id", "scheduled_at"]}, EXECUTE_TASK_INDEXES
    )


def _check_existing(bind: Connection, table: str, columns: list[sa.Column[Any]]) -> None:
    """Outside MySQL only tables tablebeat itself created can be adopted (e.g. by create_all)."""
    have = {c["name"] for c in sa.inspect(bind).get_columns(table)}
    missing = sorted(c.name for c in columns if c.name not in have)
    if missing:
        raise RuntimeError(
            f"table {table!r} already exists without the columns {missing}; in-place upgrade of the "
            f"original schema is supported on MySQL/MariaDB only"
        )


# --------------------------------------------------------------------------- entry points


def upgrade() -> None:
    bind = op.get_bind()
    family = _family(bind)
    tables = set(sa.inspect(bind).get_table_names())
    legacy = family == "mysql" and bool(tables & set(legacy_upgrade.LEGACY_TABLES))
    if legacy:
        # 002 (aps-go) tables first: row format, task_execute -> execute_task, trigger, params.
        legacy_upgrade.prepare(bind)
        tables = set(sa.inspect(bind).get_table_names())

    if "task" not in tables:
        _create_task(family)
    elif family == "mysql":
        _upgrade_legacy_task(bind)
    else:
        _check_existing(bind, "task", _task_columns(family))

    if "execute_task" not in tables:
        _create_execute_task(family)
    elif family == "mysql":
        _upgrade_legacy_execute_task(bind)
    else:
        _check_existing(bind, "execute_task", _execute_task_columns(family))

    if legacy:
        legacy_upgrade.map_run_statuses(bind)

    if "task_change" not in tables:
        _create_task_change(family)
    if "worker_heartbeat" not in tables:
        _create_worker_heartbeat(family)

    triggers_sql.create_triggers(bind, CONFIG_COLUMNS_0001)


def downgrade() -> None:
    # Revision 0001 may have converted a pre-existing production table; dropping it would lose data.
    raise NotImplementedError("revision 0001 cannot be downgraded; drop the tables by hand or restore a backup")

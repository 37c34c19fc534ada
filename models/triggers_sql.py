"""DDL of the database triggers on ``task``, per dialect.

The triggers implement the change log that beat polls (see docs/design.md, "Change detection"):

* every INSERT and DELETE of a ``task`` row appends one ``task_change`` row;
* an UPDATE appends one only when a *config* column changed (NULL-safe comparison), so the
  system's own writes (status, next_run_at, last_run_at, last_status, last_error, update_at)
  never log;
* a config change also sets ``update_at`` to the current UTC time (PostgreSQL and SQLite by
  trigger; MySQL/MariaDB have ``ON UPDATE CURRENT_TIMESTAMP(6)`` on the column, and a BEFORE
  trigger that rewrites the value in UTC when the writing session is not in UTC).

On MySQL/MariaDB one BEFORE UPDATE trigger does both (logs and touches): each row trigger costs
its invocation whatever its body, ~11 us a row, and beat's claim updates thousands of rows a
second (5,000 rows: 185 ms with two triggers, 130 ms with one). Its log rows are part of the
statement, so a failed update leaves none.

All timestamps written by the triggers are UTC, whatever the writer's session time zone.
:func:`create_statements` drops each object before creating it, so it can be re-run safely.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy.engine import Connection

from models.tables import CONFIG_COLUMNS

#: Trigger names, the same on every dialect.
TRIGGER_LOG_INSERT = "trg_task_change_ins"
TRIGGER_LOG_UPDATE = "trg_task_change_upd"  # not on MySQL/MariaDB: TRIGGER_TOUCH_UPDATE logs there
TRIGGER_LOG_DELETE = "trg_task_change_del"
TRIGGER_TOUCH_UPDATE = "trg_task_touch_upd"  # sets update_at on config changes (and logs them on MySQL)
TRIGGER_UTC_INSERT = "trg_task_utc_ins"  # MySQL only: CURRENT_TIMESTAMP defaults -> UTC

#: PostgreSQL trigger functions.
PG_FUNCTION_LOG = "tablebeat_task_change_log"
PG_FUNCTION_TOUCH = "tablebeat_task_touch"

#: SQLite now, in the text format SQLAlchemy's DateTime uses ("YYYY-MM-DD HH:MM:SS.ffffff").
#: ``%f`` yields milliseconds (``SS.SSS``); the appended zeros make six fractional digits so
#: values written by triggers, by server defaults and by SQLAlchemy sort and compare as text.
SQLITE_NOW = "(strftime('%Y-%m-%d %H:%M:%f','now') || '000')"


def _dialect_family(dialect_name: str) -> str:
    if dialect_name in ("mysql", "mariadb"):
        return "mysql"
    if dialect_name in ("postgresql", "sqlite"):
        return dialect_name
    raise ValueError(f"no trigger DDL for dialect {dialect_name!r}")


def _mysql_changed(columns: Sequence[str]) -> str:
    # Compare as bytes: with a case-insensitive / PAD SPACE collation 'abc' <=> 'ABC ' is true.
    same = " AND ".join(f"CAST(NEW.`{c}` AS BINARY) <=> CAST(OLD.`{c}` AS BINARY)" for c in columns)
    return f"NOT ({same} AND NEW.`id` <=> OLD.`id`)"


def _pg_changed(columns: Sequence[str]) -> str:
    parts = [f'OLD."{c}" IS DISTINCT FROM NEW."{c}"' for c in (*columns, "id")]
    return " OR ".join(parts)


def _sqlite_changed(columns: Sequence[str]) -> str:
    parts = [f'OLD."{c}" IS NOT NEW."{c}"' for c in (*columns, "id")]
    return " OR ".join(parts)


def drop_statements(dialect_name: str) -> list[str]:
    """Statements that remove every tablebeat trigger (and PG trigger function); idempotent."""
    family = _dialect_family(dialect_name)
    names = [TRIGGER_LOG_INSERT, TRIGGER_LOG_UPDATE, TRIGGER_LOG_DELETE, TRIGGER_TOUCH_UPDATE]
    if family == "mysql":
        return [f"DROP TRIGGER IF EXISTS `{n}`" for n in (*names, TRIGGER_UTC_INSERT)]
    if family == "postgresql":
        stmts = [f'DROP TRIGGER IF EXISTS "{n}" ON "task"' for n in names]
        stmts += [
            f"DROP FUNCTION IF EXISTS {PG_FUNCTION_LOG}()",
            f"DROP FUNCTION IF EXISTS {PG_FUNCTION_TOUCH}()",
        ]
        return stmts
    return [f'DROP TRIGGER IF EXISTS "{n}"' for n in names]


def create_statements(dialect_name: str, config_columns: Iterable[str] = CONFIG_COLUMNS) -> list[str]:
    """Statements that (re)create the triggers; drops come first so re-running is safe.

    ``config_columns`` must all exist on ``task``; migrations pass a frozen list.
    """
    columns = tuple(config_columns)
    family = _dialect_family(dialect_name)
    if family == "mysql":
        body = _mysql_create(columns)
    elif family == "postgresql":
        body = _pg_create(columns)
    else:
        body = _sqlite_create(columns)
    return drop_statements(dialect_name) + body


def _mysql_create(columns: Sequence[str]) -> list[str]:
    now = "UTC_TIMESTAMP(6)"
    log = "INSERT INTO `task_change` (`task_id`, `changed_at`) VALUES ({ref}.`id`, " + now + ")"
    changed = _mysql_changed(columns)
    return [
        f"CREATE TRIGGER `{TRIGGER_LOG_INSERT}` AFTER INSERT ON `task` FOR EACH ROW " + log.format(ref="NEW"),
        f"CREATE TRIGGER `{TRIGGER_LOG_DELETE}` AFTER DELETE ON `task` FOR EACH ROW " + log.format(ref="OLD"),
        # ON UPDATE / DEFAULT CURRENT_TIMESTAMP(6) use the writer's session time zone; tablebeat's
        # own sessions are UTC, but an operator's SQL client may not be. Store UTC regardless.
        f"CREATE TRIGGER `{TRIGGER_TOUCH_UPDATE}` BEFORE UPDATE ON `task` FOR EACH ROW\n"
        f"BEGIN\n"
        f"  IF {changed} THEN\n"
        f"    SET NEW.`update_at` = {now};\n"
        f"    {log.format(ref='NEW')};\n"
        f"    IF NOT (NEW.`id` <=> OLD.`id`) THEN {log.format(ref='OLD')}; END IF;\n"
        f"  ELSEIF NEW.`update_at` = CURRENT_TIMESTAMP(6) AND NOT (NEW.`update_at` <=> OLD.`update_at`) THEN\n"
        f"    SET NEW.`update_at` = {now};\n"
        f"  END IF;\n"
        f"END",
        f"CREATE TRIGGER `{TRIGGER_UTC_INSERT}` BEFORE INSERT ON `task` FOR EACH ROW\n"
        f"BEGIN\n"
        f"  IF NEW.`create_at` = CURRENT_TIMESTAMP(6) THEN SET NEW.`create_at` = {now}; END IF;\n"
        f"  IF NEW.`update_at` = CURRENT_TIMESTAMP(6) THEN SET NEW.`update_at` = {now}; END IF;\n"
        f"END",
    ]


def _pg_create(columns: Sequence[str]) -> list[str]:
    changed = _pg_changed(columns)
    return [
        f"""CREATE OR REPLACE FUNCTION {PG_FUNCTION_LOG}() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
  IF TG_OP = 'DELETE' THEN
    INSERT INTO task_change (task_id, changed_at) VALUES (OLD.id, now());
    RETURN OLD;
  END IF;
  INSERT INTO task_change (task_id, changed_at) VALUES (NEW.id, now());
  IF TG_OP = 'UPDATE' AND OLD.id IS DISTINCT FROM NEW.id THEN
    INSERT INTO task_change (task_id, changed_at) VALUES (OLD.id, now());
  END IF;
  RETURN NEW;
END
$fn$""",
        f"""CREATE OR REPLACE FUNCTION {PG_FUNCTION_TOUCH}() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
  NEW.update_at := now();
  RETURN NEW;
END
$fn$""",
        f'CREATE TRIGGER "{TRIGGER_LOG_INSERT}" AFTER INSERT ON "task" '
        f"FOR EACH ROW EXECUTE FUNCTION {PG_FUNCTION_LOG}()",
        f'CREATE TRIGGER "{TRIGGER_LOG_DELETE}" AFTER DELETE ON "task" '
        f"FOR EACH ROW EXECUTE FUNCTION {PG_FUNCTION_LOG}()",
        f'CREATE TRIGGER "{TRIGGER_LOG_UPDATE}" AFTER UPDATE ON "task" '
        f"FOR EACH ROW WHEN ({changed}) EXECUTE FUNCTION {PG_FUNCTION_LOG}()",
        f'CREATE TRIGGER "{TRIGGER_TOUCH_UPDATE}" BEFORE UPDATE ON "task" '
        f"FOR EACH ROW WHEN ({changed}) EXECUTE FUNCTION {PG_FUNCTION_TOUCH}()",
    ]


def _sqlite_create(columns: Sequence[str]) -> list[str]:
    changed = _sqlite_changed(columns)
    log = 'INSERT INTO "task_change" ("task_id", "changed_at") VALUES ({ref}."id", ' + SQLITE_NOW + ")"
    return [
        f'CREATE TRIGGER "{TRIGGER_LOG_INSERT}" AFTER INSERT ON "task"\nBEGIN {log.format(ref="NEW")}; END',
        f'CREATE TRIGGER "{TRIGGER_LOG_DELETE}" AFTER DELETE ON "task"\nBEGIN {log.format(ref="OLD")}; END',
        f'CREATE TRIGGER "{TRIGGER_LOG_UPDATE}" AFTER UPDATE ON "task" WHEN {changed}\n'
        f"BEGIN\n"
        f"  {log.format(ref='NEW')};\n"
        f'  INSERT INTO "task_change" ("task_id", "changed_at") '
        f'SELECT OLD."id", {SQLITE_NOW} WHERE OLD."id" IS NOT NEW."id";\n'
        f"END",
        # The nested UPDATE changes only update_at, so the WHEN clauses are false for it.
        f'CREATE TRIGGER "{TRIGGER_TOUCH_UPDATE}" AFTER UPDATE ON "task" WHEN {changed}\n'
        f'BEGIN UPDATE "task" SET "update_at" = {SQLITE_NOW} WHERE "id" = NEW."id"; END',
    ]


def _execute_all(connection: Connection, statements: Iterable[str]) -> None:
    for statement in statements:
        # exec_driver_sql: no bind-parameter parsing of ':' and no '%' interpolation.
        connection.exec_driver_sql(statement)


def create_triggers(connection: Connection, config_columns: Iterable[str] = CONFIG_COLUMNS) -> None:
    """(Re)create the ``task`` triggers on ``connection``'s database."""
    _execute_all(connection, create_statements(connection.dialect.name, config_columns))


def drop_triggers(connection: Connection) -> None:
    """Remove the ``task`` triggers from ``connection``'s database, if present."""
    _execute_all(connection, drop_statements(connection.dialect.name))

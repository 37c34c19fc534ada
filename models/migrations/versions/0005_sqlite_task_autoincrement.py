"""SQLite: ``task.id`` AUTOINCREMENT, so the id of a deleted task is never given to a new one.

Without it SQLite hands out ``MAX(id) + 1``: delete the newest task, add another, and the new
task shows the deleted one's runs.  The table is rebuilt (SQLite cannot alter a primary key)
with every row, index and the change-log triggers kept, and the id sequence starts above
every task id a run, a change-log row or an alert state still names.  MariaDB/MySQL and
PostgreSQL never reuse ids: nothing to do there.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op
from sqlalchemy import Connection

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: Tables whose ``task_id`` may name a task deleted before this upgrade.
_REFERENCING = ("execute_task", "task_change", "alert_state")


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        return
    table_sql = bind.exec_driver_sql("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'task'").scalar()
    if table_sql is not None and "AUTOINCREMENT" not in str(table_sql).upper():
        # Dropping the old table drops its triggers: keep their exact text to create them again.
        triggers = [
            str(sql)
            for (sql,) in bind.exec_driver_sql(
                "SELECT sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'task' AND sql IS NOT NULL"
            )
        ]
        with op.batch_alter_table("task", recreate="always", table_kwargs={"sqlite_autoincrement": True}):
            pass
        for sql in triggers:
            bind.exec_driver_sql(sql)
    _start_ids_above_every_reference(bind)


def _start_ids_above_every_reference(bind: Connection) -> None:
    tables = {name for (name,) in bind.exec_driver_sql("SELECT name FROM sqlite_master WHERE type = 'table'")}
    highest = [int(bind.exec_driver_sql('SELECT COALESCE(MAX("id"), 0) FROM "task"').scalar() or 0)]
    for table in _REFERENCING:
        if table in tables:
            found = bind.exec_driver_sql(f'SELECT COALESCE(MAX("task_id"), 0) FROM "{table}"').scalar()
            highest.append(int(found or 0))
    current = bind.exec_driver_sql("SELECT seq FROM sqlite_sequence WHERE name = 'task'").scalar()
    seq = max([*highest, int(current or 0)])
    if current is None:
        bind.exec_driver_sql("INSERT INTO sqlite_sequence (name, seq) VALUES ('task', ?)", (seq,))
    else:
        bind.exec_driver_sql("UPDATE sqlite_sequence SET seq = ? WHERE name = 'task'", (seq,))


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        return
    triggers = [
        str(sql)
        for (sql,) in bind.exec_driver_sql(
            "SELECT sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'task' AND sql IS NOT NULL"
        )
    ]
    with op.batch_alter_table("task", recreate="always", table_kwargs={"sqlite_autoincrement": False}):
        pass
    for sql in triggers:
        bind.exec_driver_sql(sql)

"""``ix_task_queue_note``: the tasks whose ``last_error`` says their runs wait on a queue no live
worker consumes, found without reading the whole table.

Beat's housekeeping looks for these notes every refresh (to clear them once a worker consumes the
queue); without an index that was a full scan of ``task``: at 1,000,000 rows, seconds of database
CPU every 10 s.  PostgreSQL and SQLite index only the noted rows (a partial index); MariaDB/MySQL
index a 20-character prefix of ``last_error`` (the note's fixed prefix is 19).

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: The note's fixed start (``scheduler.sweeps.NO_CONSUMER_PREFIX``), as the SQL pattern beat queries with.
NOTED = "last_error LIKE 'runs wait on queue %'"


def upgrade() -> None:
    if "ix_task_queue_note" in {i["name"] for i in sa.inspect(op.get_bind()).get_indexes("task")}:
        return
    op.create_index(
        "ix_task_queue_note",
        "task",
        ["last_error"],
        mysql_length=20,
        mariadb_length=20,
        postgresql_where=sa.text(NOTED),
        sqlite_where=sa.text(NOTED),
    )


def downgrade() -> None:
    op.drop_index("ix_task_queue_note", table_name="task")

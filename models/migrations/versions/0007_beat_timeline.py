"""The table as the timeline: ``beat_node`` (beat liveness), ``schedule_cursor`` (settled change log),
and ``execute_task(claimed_by, published_at)`` to find a dead beat's unpublished claims.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _ts(dialect: str) -> sa.types.TypeEngine[Any]:
    # The same storage as models.base.UTCDateTime, frozen as of this revision.
    if dialect == "postgresql":
        return sa.DateTime(timezone=True)
    if dialect in ("mysql", "mariadb"):
        return mysql.DATETIME(fsp=6)
    return sa.DateTime()


def upgrade() -> None:
    bind = op.get_bind()
    dialect = bind.dialect.name
    inspector = sa.inspect(bind)
    tables = set(inspector.get_table_names())
    options: dict[str, Any] = (
        {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4"} if dialect in ("mysql", "mariadb") else {}
    )
    if "beat_node" not in tables:
        op.create_table(
            "beat_node",
            sa.Column("token", sa.String(64), primary_key=True),
            sa.Column("seen_at", _ts(dialect), nullable=False),
            sa.Column("started_at", _ts(dialect), nullable=False),
            **options,
        )
    if "schedule_cursor" not in tables:
        cursor = op.create_table(
            "schedule_cursor",
            sa.Column("name", sa.String(32), primary_key=True),
            sa.Column("change_id", sa.BigInteger, nullable=True),
            **options,
        )
        # NULL: rows written before this revision are settled once by the first beat that starts.
        op.bulk_insert(cursor, [{"name": "settled", "change_id": None}])
    if "ix_execute_task_claimed" not in {i["name"] for i in inspector.get_indexes("execute_task")}:
        op.create_index("ix_execute_task_claimed", "execute_task", ["claimed_by", "published_at"])


def downgrade() -> None:
    op.drop_index("ix_execute_task_claimed", table_name="execute_task")
    op.drop_table("schedule_cursor")
    op.drop_table("beat_node")

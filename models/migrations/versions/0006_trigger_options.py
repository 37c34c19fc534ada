"""APScheduler trigger options as ``task`` columns: ``trigger_args`` (as given), ``start_date``,
``end_date``, ``jitter_seconds``, ``cron_year``, ``cron_week``; the change-log triggers are
recreated so an edit of any of them reaches beat like any other config edit.

Each step checks first, so an interrupted upgrade finishes when run again.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

from models import triggers_sql

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: The config columns as of this revision (frozen: later revisions recreate the triggers).
CONFIG_COLUMNS_0006 = (
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
    "trigger_args",
    "start_date",
    "end_date",
    "jitter_seconds",
    "cron_year",
    "cron_week",
)


def _ts(dialect: str) -> sa.types.TypeEngine[Any]:
    if dialect == "postgresql":
        return sa.DateTime(timezone=True)
    if dialect in ("mysql", "mariadb"):
        return mysql.DATETIME(fsp=6)
    return sa.DateTime()


def upgrade() -> None:
    bind = op.get_bind()
    ts = _ts(bind.dialect.name)
    wanted = [
        sa.Column("trigger_args", sa.Text, nullable=True),
        sa.Column("start_date", ts, nullable=True),
        sa.Column("end_date", ts, nullable=True),
        sa.Column("jitter_seconds", sa.Integer, nullable=True),
        sa.Column("cron_year", sa.String(64), nullable=True),
        sa.Column("cron_week", sa.String(64), nullable=True),
    ]
    have = {c["name"] for c in sa.inspect(bind).get_columns("task")}
    missing = [c for c in wanted if c.name not in have]
    if missing:
        with op.batch_alter_table("task") as batch:
            for column in missing:
                batch.add_column(column)
    triggers_sql.create_triggers(bind, CONFIG_COLUMNS_0006)


def downgrade() -> None:
    bind = op.get_bind()
    triggers_sql.create_triggers(bind, CONFIG_COLUMNS_0006[:14])
    with op.batch_alter_table("task") as batch:
        for name in ("trigger_args", "start_date", "end_date", "jitter_seconds", "cron_year", "cron_week"):
            batch.drop_column(name)

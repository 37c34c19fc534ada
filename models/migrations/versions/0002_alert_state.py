"""Alert rate-limit state: ``alert_state(task_id PK, last_sent_at, suppressed)``.

Revision ID: 0002
Revises: 0001
Create Date: 2024-05-02
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "0002"
down_revision: str | None = "0001"
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
    if "alert_state" in sa.inspect(bind).get_table_names():
        return
    options: dict[str, Any] = (
        {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4"} if bind.dialect.name in ("mysql", "mariadb") else {}
    )
    op.create_table(
        "alert_state",
        sa.Column("task_id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("last_sent_at", _ts(bind.dialect.name), nullable=True),
        sa.Column("suppressed", sa.Integer, nullable=False, server_default="0"),
        **options,
    )


def downgrade() -> None:
    op.drop_table("alert_state")

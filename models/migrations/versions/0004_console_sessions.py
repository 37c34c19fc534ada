"""Console sessions and failed sign-ins: ``console_session``, ``login_failure``.

Kept in the database so every API process sees the same sessions (signing out in one
ends the session in all) and counts the same failures.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "0004"
down_revision: str | None = "0003"
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
    existing = set(sa.inspect(bind).get_table_names())
    ts = _ts(bind.dialect.name)
    options: dict[str, Any] = (
        {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4"} if bind.dialect.name in ("mysql", "mariadb") else {}
    )
    if "console_session" not in existing:
        op.create_table(
            "console_session",
            sa.Column("id_hash", sa.String(64), primary_key=True),
            sa.Column("token_tag", sa.String(64), nullable=False),
            sa.Column("client", sa.String(64), nullable=False),
            sa.Column("created_at", ts, nullable=False),
            sa.Column("expires_at", ts, nullable=False),
            **options,
        )
        op.create_index("ix_console_session_expires", "console_session", ["expires_at"])
    if "login_failure" not in existing:
        op.create_table(
            "login_failure",
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("client", sa.String(64), nullable=False),
            sa.Column("failed_at", ts, nullable=False),
            **options,
        )
        op.create_index("ix_login_failure_client", "login_failure", ["client", "failed_at"])


def downgrade() -> None:
    op.drop_table("login_failure")
    op.drop_table("console_session")

"""``worker_heartbeat.queues``: the queues each worker consumes, so beat can tell when runs wait
on a queue no live worker consumes.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    columns = {c["name"] for c in sa.inspect(op.get_bind()).get_columns("worker_heartbeat")}
    if "queues" not in columns:
        op.add_column("worker_heartbeat", sa.Column("queues", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("worker_heartbeat", "queues")

"""``ix_execute_task_status_scheduled`` (status, scheduled_at, published_at): housekeeping reads the
pending runs it acts on, not every pending run.

Beat's sweeps of pending runs (republish after ``pending_republish_seconds``, expire after
``pending_expire_seconds``, take over claims left unpublished, note queues no worker consumes) each
read ``status = 'pending'`` through ``(status, task_id)`` and filtered the rows.  With workers down
and 5,000 fires a second, 450,000 pending runs made one housekeeping pass take 1.9 s on MariaDB
(expire 0.74 s, take-over 0.70 s, republish 0.25 s, no-consumer 0.16 s), and the fires due meanwhile
went out that late.  With this index each reads a range of its own candidates: 1, 50, 110 (5,000
runs republished) and 11 ms.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NAME = "ix_execute_task_status_scheduled"


def upgrade() -> None:
    if NAME in {i["name"] for i in sa.inspect(op.get_bind()).get_indexes("execute_task")}:
        return
    op.create_index(NAME, "execute_task", ["status", "scheduled_at", "published_at"])


def downgrade() -> None:
    op.drop_index(NAME, table_name="execute_task")

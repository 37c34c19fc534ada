"""Run slots: ``execute_task.running_slot`` with unique ``(task_id, running_slot)``.

A run holds slot 1..max_instances while ``running`` (NULL otherwise), so the database
itself guarantees no task has more than ``max_instances`` runs at once, and a worker
takes a slot with one UPDATE instead of locking the task row and counting.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    if "running_slot" not in {c["name"] for c in inspector.get_columns("execute_task")}:
        with op.batch_alter_table("execute_task") as batch:
            batch.add_column(sa.Column("running_slot", sa.Integer, nullable=True))
    names = {u["name"] for u in inspector.get_unique_constraints("execute_task")}
    names |= {i["name"] for i in inspector.get_indexes("execute_task")}
    if "uq_execute_task_running_slot" not in names:
        op.create_index("uq_execute_task_running_slot", "execute_task", ["task_id", "running_slot"], unique=True)


def downgrade() -> None:
    op.drop_index("uq_execute_task_running_slot", table_name="execute_task")
    with op.batch_alter_table("execute_task") as batch:
        batch.drop_column("running_slot")

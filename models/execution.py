"""The ``execute_task`` table's ORM model (``ExecuteTask``), mapped onto ``models.tables``."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Mapped

from models.base import Base
from models.states import FINAL_STATUSES, RunStatus
from models.tables import execute_task_table

__all__ = ["FINAL_STATUSES", "ExecuteTask", "RunStatus"]


class ExecuteTask(Base):
    """One run of a task: claimed by beat (``pending``), then moved on by the worker."""

    __table__ = execute_task_table

    id: Mapped[int]
    task_id: Mapped[int]
    status: Mapped[str]
    extra: Mapped[str | None]
    trace_id: Mapped[str | None]
    create_at: Mapped[datetime | None]
    update_at: Mapped[datetime | None]
    scheduled_at: Mapped[datetime | None]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    published_at: Mapped[datetime | None]
    worker: Mapped[str | None]
    celery_id: Mapped[str | None]
    result: Mapped[str | None]
    error: Mapped[str | None]
    attempt: Mapped[int]
    claimed_by: Mapped[str | None]
    running_slot: Mapped[int | None]

    def __repr__(self) -> str:
        return (
            f"ExecuteTask(id={self.id!r}, task_id={self.task_id!r}, status={self.status!r}, "
            f"scheduled_at={self.scheduled_at!r}, trace_id={self.trace_id!r})"
        )

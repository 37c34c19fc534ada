"""The ``task`` table's ORM models (``Task``, ``TaskChange``), mapped onto ``models.tables``."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Mapped

from models.base import Base
from models.states import TaskStatus, TriggerKind
from models.tables import CONFIG_COLUMNS, task_change_table, task_table

__all__ = ["CONFIG_COLUMNS", "Task", "TaskChange", "TaskStatus", "TriggerKind"]


class Task(Base):
    """A scheduled job. Column names of the original schema are kept."""

    __table__ = task_table

    id: Mapped[int]
    task_key: Mapped[str]
    desc: Mapped[str]
    execute_func: Mapped[str | None]
    trigger: Mapped[str | None]
    spec: Mapped[str | None]
    args: Mapped[str | None]
    is_valid: Mapped[int]
    status: Mapped[str]
    extra: Mapped[str | None]
    create_at: Mapped[datetime | None]
    update_at: Mapped[datetime | None]
    kwargs: Mapped[str | None]
    timezone: Mapped[str | None]
    queue: Mapped[str | None]
    max_instances: Mapped[int]
    misfire_grace_seconds: Mapped[int | None]
    expires_seconds: Mapped[int | None]
    next_run_at: Mapped[datetime | None]
    last_run_at: Mapped[datetime | None]
    last_status: Mapped[str | None]
    last_error: Mapped[str | None]
    trigger_args: Mapped[str | None]
    start_date: Mapped[datetime | None]
    end_date: Mapped[datetime | None]
    jitter_seconds: Mapped[int | None]
    cron_year: Mapped[str | None]
    cron_week: Mapped[str | None]

    def __repr__(self) -> str:
        return f"Task(id={self.id!r}, task_key={self.task_key!r}, trigger={self.trigger!r}, spec={self.spec!r})"


class TaskChange(Base):
    """Change log of ``task``, appended by database triggers on every config edit.

    Beat reads it with a primary-key range probe, so finding "nothing changed" costs
    one index lookup however many tasks there are.
    """

    __table__ = task_change_table

    id: Mapped[int]
    task_id: Mapped[int]
    changed_at: Mapped[datetime | None]

    def __repr__(self) -> str:
        return f"TaskChange(id={self.id!r}, task_id={self.task_id!r})"

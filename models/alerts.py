"""The ``alert_state`` table's ORM model: per-task rate limit of run alerts, shared by every process."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Mapped

from models.base import Base
from models.tables import alert_state_table


class AlertState(Base):
    """When the last alert of a task was sent, and how many were held back since.

    Kept out of ``task.extra`` on purpose: an UPDATE of ``extra`` is a config change to the
    change-log triggers, and would make beat reload the task on every alert.
    """

    __table__ = alert_state_table

    task_id: Mapped[int]
    last_sent_at: Mapped[datetime | None]
    suppressed: Mapped[int]

    def __repr__(self) -> str:
        return (
            f"AlertState(task_id={self.task_id!r}, last_sent_at={self.last_sent_at!r}, suppressed={self.suppressed!r})"
        )

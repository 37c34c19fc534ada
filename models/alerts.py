"""The ``alert_state`` table: per-task rate limit of run alerts, shared by every process."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, UTCDateTime


class AlertState(Base):
    """When the last alert of a task was sent, and how many were held back since.

    Kept out of ``task.extra`` on purpose: an UPDATE of ``extra`` is a config change to the
    change-log triggers, and would make beat reload the task on every alert.
    """

    __tablename__ = "alert_state"

    task_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    last_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    suppressed: Mapped[int] = mapped_column(Integer, default=0, server_default="0")

    def __repr__(self) -> str:
        return (
            f"AlertState(task_id={self.task_id!r}, last_sent_at={self.last_sent_at!r}, suppressed={self.suppressed!r})"
        )

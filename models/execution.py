"""The ``execute_task`` table: one row per fire of a task."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import BigInteger, Index, Integer, String, Text, UniqueConstraint, func
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, UTCDateTime


class RunStatus(str, enum.Enum):
    """Lifecycle of one run (``execute_task.status``)."""

    PENDING = "pending"
    RUNNING = "running"
    SUCCESS = "success"
    FAILED = "failed"
    RETRYING = "retrying"
    SKIPPED = "skipped"
    LOST = "lost"
    EXPIRED = "expired"


#: Statuses after which a run never changes again.
FINAL_STATUSES = frozenset({RunStatus.SUCCESS, RunStatus.FAILED, RunStatus.SKIPPED, RunStatus.LOST, RunStatus.EXPIRED})


class ExecuteTask(Base):
    """One run of a task: claimed by beat (``pending``), then moved on by the worker."""

    __tablename__ = "execute_task"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    task_id: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(255), default=RunStatus.PENDING.value)
    extra: Mapped[str | None] = mapped_column(Text, default="{}")
    trace_id: Mapped[str | None] = mapped_column(String(255))
    create_at: Mapped[datetime | None] = mapped_column(UTCDateTime, server_default=func.current_timestamp())
    update_at: Mapped[datetime | None] = mapped_column(UTCDateTime, server_default=func.current_timestamp())
    scheduled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    worker: Mapped[str | None] = mapped_column(String(255))
    celery_id: Mapped[str | None] = mapped_column(String(64))
    result: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    attempt: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    #: 1..max_instances while running, NULL otherwise; unique per task (see migration 0003).
    running_slot: Mapped[int | None] = mapped_column(Integer)

    __table_args__ = (
        UniqueConstraint("task_id", "scheduled_at", name="uq_execute_task_fire"),
        Index("ix_execute_task_trace_id", "trace_id"),
        Index("ix_execute_task_status", "status", "task_id"),
        Index("ix_execute_task_created", "create_at"),
        Index("ix_execute_task_claimed", "claimed_by", "published_at"),
        Index("uq_execute_task_running_slot", "task_id", "running_slot", unique=True),
    )

    def __repr__(self) -> str:
        return (
            f"ExecuteTask(id={self.id!r}, task_id={self.task_id!r}, status={self.status!r}, "
            f"scheduled_at={self.scheduled_at!r}, trace_id={self.trace_id!r})"
        )

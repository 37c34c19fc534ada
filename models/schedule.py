"""The ``task`` table: one row per scheduled job, edited by operators."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import BigInteger, Index, Integer, String, Text, func
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, UTCDateTime


class TaskStatus(str, enum.Enum):
    """Values of ``task.status``; written by the system, never by operators."""

    READY = "ready"
    DOING = "doing"
    PAUSED = "paused"
    COMPLETED = "completed"
    ERROR = "error"


class TriggerKind(str, enum.Enum):
    """Values of ``task.trigger``."""

    CRON = "cron"
    INTERVAL = "interval"
    DATE = "date"


#: Columns an operator edits; a change to any of them is a schedule change.
CONFIG_COLUMNS: tuple[str, ...] = (
    "task_key",
    "desc",
    "execute_func",
    "trigger",
    "spec",
    "args",
    "kwargs",
    "is_valid",
    "timezone",
    "queue",
    "max_instances",
    "misfire_grace_seconds",
    "expires_seconds",
    "extra",
    "trigger_args",
    "start_date",
    "end_date",
    "jitter_seconds",
    "cron_year",
    "cron_week",
)


class Task(Base):
    """A scheduled job. Column names of the original schema are kept."""

    __tablename__ = "task"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    task_key: Mapped[str] = mapped_column(String(255), unique=True)
    desc: Mapped[str] = mapped_column(String(255), default="", server_default="")
    execute_func: Mapped[str | None] = mapped_column(String(255))
    trigger: Mapped[str | None] = mapped_column(String(255))
    spec: Mapped[str | None] = mapped_column(String(255))
    args: Mapped[str | None] = mapped_column(Text, default="")
    is_valid: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    status: Mapped[str] = mapped_column(String(255), default="ready", server_default="ready")
    extra: Mapped[str | None] = mapped_column(Text, default="{}")
    create_at: Mapped[datetime | None] = mapped_column(UTCDateTime, server_default=func.current_timestamp())
    update_at: Mapped[datetime | None] = mapped_column(UTCDateTime, server_default=func.current_timestamp())
    kwargs: Mapped[str | None] = mapped_column(Text, default="{}")
    timezone: Mapped[str | None] = mapped_column(String(64))
    queue: Mapped[str | None] = mapped_column(String(255))
    max_instances: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    misfire_grace_seconds: Mapped[int | None] = mapped_column(Integer)
    expires_seconds: Mapped[int | None] = mapped_column(Integer)
    next_run_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_run_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_status: Mapped[str | None] = mapped_column(String(32))
    last_error: Mapped[str | None] = mapped_column(Text)
    #: APScheduler-style trigger arguments exactly as given (JSON), next to the compiled trigger/spec.
    trigger_args: Mapped[str | None] = mapped_column(Text)
    #: APScheduler's trigger options, honoured by beat (``scheduler.trigger_window``), migration 0006.
    start_date: Mapped[datetime | None] = mapped_column(UTCDateTime)
    end_date: Mapped[datetime | None] = mapped_column(UTCDateTime)
    jitter_seconds: Mapped[int | None] = mapped_column(Integer)
    cron_year: Mapped[str | None] = mapped_column(String(64))
    cron_week: Mapped[str | None] = mapped_column(String(64))

    __table_args__ = (
        Index("ix_task_update_at", "update_at"),
        Index("ix_task_status", "status"),
        Index("ix_task_next_run_at", "next_run_at"),
        # Also ix_task_queue_note (migration 0009: partial on PostgreSQL/SQLite, a prefix on MySQL), not
        # declared here: dialect options on an Index import every dialect named (~0.1 s of beat's start).
        # Ids are never reused: a deleted task's runs must never show up under a new task.
        {"sqlite_autoincrement": True},
    )

    def __repr__(self) -> str:
        return f"Task(id={self.id!r}, task_key={self.task_key!r}, trigger={self.trigger!r}, spec={self.spec!r})"


class TaskChange(Base):
    """Change log of ``task``, appended by database triggers on every config edit.

    Beat reads it with a primary-key range probe, so finding "nothing changed" costs
    one index lookup however many tasks there are.
    """

    __tablename__ = "task_change"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    task_id: Mapped[int] = mapped_column(Integer)
    changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, server_default=func.current_timestamp())

    def __repr__(self) -> str:
        return f"TaskChange(id={self.id!r}, task_id={self.task_id!r})"

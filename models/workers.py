"""The ``worker_heartbeat`` table: liveness of worker hosts, for lost-run detection."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, String, Text, and_, or_, select
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, UTCDateTime
from models.execution import ExecuteTask


class WorkerHeartbeat(Base):
    """Last time a worker (Celery hostname) proved it was alive."""

    __tablename__ = "worker_heartbeat"

    hostname: Mapped[str] = mapped_column(String(255), primary_key=True)
    seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    #: Comma-separated names of the queues the worker consumes (NULL: not known, e.g. an older worker).
    queues: Mapped[str | None] = mapped_column(Text, nullable=True)

    def __repr__(self) -> str:
        return f"WorkerHeartbeat(hostname={self.hostname!r}, seen_at={self.seen_at!r})"


def dead_before(now: datetime, dead_seconds: float) -> datetime:
    """The instant before which a silent worker counts as dead."""
    return now - timedelta(seconds=dead_seconds)


def run_worker_died(cutoff: datetime) -> ColumnElement[bool]:
    """SQL, true for an ``execute_task`` row whose worker is dead (the one statement of that rule).

    Dead means: its heartbeat is older than ``cutoff``; or it has no heartbeat row (a clean
    shutdown removed it, or it never wrote one) and the run began before ``cutoff``; or it
    restarted under the same hostname after the run began (the run died with the old process).
    Beat uses it to mark ``running`` rows lost, a worker to take over a redelivered one.
    """
    same_host = WorkerHeartbeat.hostname == ExecuteTask.worker
    silent = select(WorkerHeartbeat.hostname).where(same_host, WorkerHeartbeat.seen_at < cutoff).exists()
    restarted = (
        select(WorkerHeartbeat.hostname).where(same_host, WorkerHeartbeat.started_at > ExecuteTask.started_at).exists()
    )
    gone = and_(~select(WorkerHeartbeat.hostname).where(same_host).exists(), ExecuteTask.started_at < cutoff)
    return and_(ExecuteTask.worker.is_not(None), ExecuteTask.worker != "", or_(silent, restarted, gone))

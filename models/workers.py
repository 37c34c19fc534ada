"""The ``worker_heartbeat`` table's ORM model: liveness of worker hosts, for lost-run detection."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Mapped

from models.base import Base
from models.tables import worker_heartbeat_table
from models.worker_liveness import dead_before, run_worker_died

__all__ = ["WorkerHeartbeat", "dead_before", "run_worker_died"]


class WorkerHeartbeat(Base):
    """Last time a worker (Celery hostname) proved it was alive."""

    __table__ = worker_heartbeat_table

    hostname: Mapped[str]
    seen_at: Mapped[datetime]
    started_at: Mapped[datetime]
    queues: Mapped[str | None]

    def __repr__(self) -> str:
        return f"WorkerHeartbeat(hostname={self.hostname!r}, seen_at={self.seen_at!r})"

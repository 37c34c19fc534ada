"""The ``worker_heartbeat`` table: liveness of worker hosts, for lost-run detection."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String, Text
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, UTCDateTime


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

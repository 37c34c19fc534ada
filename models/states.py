"""The status and trigger values stored in ``task`` and ``execute_task``."""

from __future__ import annotations

import enum


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

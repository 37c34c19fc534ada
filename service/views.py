"""What the service layer returns: plain values the API serialises and the CLI prints."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class TaskView:
    """A task row as the API and the CLI show it, with its next fire times."""

    id: int
    task_key: str
    desc: str
    execute_func: str | None
    trigger: str | None
    spec: str | None
    args: str
    kwargs: Any
    timezone: str | None
    queue: str | None
    max_instances: int
    misfire_grace_seconds: int | None
    expires_seconds: int | None
    is_valid: bool
    status: str
    extra: Any
    create_at: datetime | None
    update_at: datetime | None
    next_run_at: datetime | None
    last_run_at: datetime | None
    last_status: str | None
    last_error: str | None
    next_fire_times: list[datetime] = field(default_factory=list)
    #: APScheduler-style trigger arguments as given (None when the schedule was given as trigger + spec).
    trigger_args: Any = None
    start_date: datetime | None = None
    end_date: datetime | None = None
    jitter_seconds: int | None = None
    cron_year: str | None = None
    cron_week: str | None = None
    #: Why beat cannot schedule the row (rows written by plain SQL may be broken).
    schedule_error: str | None = None


@dataclass(frozen=True, slots=True)
class RunView:
    """One ``execute_task`` row."""

    id: int
    task_id: int
    status: str
    trace_id: str | None
    scheduled_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    duration_seconds: float | None
    result: str | None
    error: str | None
    worker: str | None
    attempt: int
    celery_id: str | None


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a listing and the total number of matches."""

    items: list[T]
    total: int
    limit: int
    offset: int


@dataclass(frozen=True, slots=True)
class RunStarted:
    """A run dispatched by :meth:`TaskService.run_task`."""

    run_id: int
    trace_id: str
    celery_id: str
    task_key: str
    scheduled_at: datetime


@dataclass(frozen=True, slots=True)
class Health:
    """Reachability of the database and the broker (``None`` error = reachable)."""

    database_error: str | None
    broker_error: str | None

    @property
    def ok(self) -> bool:
        return self.database_error is None and self.broker_error is None


def task_view(task: Any, next_fire_times: list[datetime], schedule_error: str | None) -> TaskView:
    """The view of a ``models.Task`` row."""
    return TaskView(
        id=task.id,
        task_key=task.task_key,
        desc=task.desc or "",
        execute_func=task.execute_func,
        trigger=task.trigger,
        spec=task.spec,
        args=task.args or "",
        kwargs=_json_or_text(task.kwargs),
        timezone=task.timezone,
        queue=task.queue,
        max_instances=task.max_instances,
        misfire_grace_seconds=task.misfire_grace_seconds,
        expires_seconds=task.expires_seconds,
        is_valid=task.is_valid == 1,
        status=task.status,
        extra=_json_or_text(task.extra),
        create_at=task.create_at,
        update_at=task.update_at,
        next_run_at=task.next_run_at,
        last_run_at=task.last_run_at,
        last_status=task.last_status,
        last_error=task.last_error,
        next_fire_times=next_fire_times,
        trigger_args=_json_or_text(task.trigger_args) if task.trigger_args else None,
        start_date=task.start_date,
        end_date=task.end_date,
        jitter_seconds=task.jitter_seconds,
        cron_year=task.cron_year,
        cron_week=task.cron_week,
        schedule_error=schedule_error,
    )


def run_view(row: Any) -> RunView:
    """The view of a ``models.ExecuteTask`` row."""
    duration = None
    if row.started_at is not None and row.finished_at is not None:
        duration = round((row.finished_at - row.started_at).total_seconds(), 6)
    return RunView(
        id=int(row.id),
        task_id=row.task_id,
        status=row.status,
        trace_id=row.trace_id,
        scheduled_at=row.scheduled_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
        duration_seconds=duration,
        result=row.result,
        error=row.error,
        worker=row.worker,
        attempt=row.attempt,
        celery_id=row.celery_id,
    )


def _json_or_text(value: str | None) -> Any:
    """Decoded JSON for display; the raw text when a plain-SQL edit stored something else."""
    if not value:
        return {}
    try:
        return json.loads(value)
    except ValueError:
        return value

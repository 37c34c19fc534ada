"""Request and response bodies of the REST API (they shape the OpenAPI docs).

Requests are checked only for shape here; what a value means (a cron expression, a job
name, a zone) is validated by the service layer, so the CLI gets the same messages.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

T = TypeVar("T")

_SCHEDULE_DOC = (
    "Give the schedule as `trigger` + `spec` (cron `*/5 * * * *`, interval `90s`, date "
    "`2030-04-24 18:08:00`), or as APScheduler-style `trigger_args` "
    '(`{"hour": "9", "minute": "0", "day_of_week": "mon-fri"}`, `{"hours": 1}`, `{"run_date": "2030-12-31"}`); '
    "`spec` is stored normalised."
)


class _TaskFields(BaseModel):
    model_config = ConfigDict(extra="forbid")

    desc: str | None = Field(None, description="Free-text description.")
    trigger: str | None = Field(None, description="`cron`, `interval` or `date`.", examples=["cron"])
    spec: str | None = Field(None, description="The schedule in the trigger's syntax.", examples=["0 9 * * mon-fri"])
    trigger_args: dict[str, Any] | None = Field(
        None, description="APScheduler-style schedule, instead of `spec`.", examples=[{"hours": 1}]
    )
    args: str | list[Any] | None = Field(
        None, description='Positional args: `1,2,3`, `"a","b"` or a JSON array.', examples=[[1, 2, 3]]
    )
    kwargs: dict[str, Any] | str | None = Field(None, description="Keyword args (a JSON object).")
    timezone: str | None = Field(None, description="IANA zone of cron and naive dates.", examples=["Asia/Shanghai"])
    queue: str | None = Field(None, description="Celery queue to route runs to.")
    max_instances: int | None = Field(None, description="Most runs at once (0 = unlimited).")
    misfire_grace_seconds: int | None = Field(None, description="How late a fire may still run.")
    expires_seconds: int | None = Field(None, description="A message not started within this expires.")
    is_valid: bool | None = Field(None, description="Enabled (true) or paused (false).")
    extra: dict[str, Any] | str | None = Field(None, description="Free JSON metadata.")


class TaskCreate(_TaskFields):
    __doc__ = f"A new task (POST), or the whole of a task (PUT). {_SCHEDULE_DOC}"

    task_key: str = Field(description="Unique name of the task.", examples=["nightly-report"])
    execute_func: str = Field(description="Name of a registered job.", examples=["test_interval"])


class TaskPatch(_TaskFields):
    __doc__ = f"The fields to change (PATCH); the others keep their values. {_SCHEDULE_DOC}"

    task_key: str | None = None
    execute_func: str | None = None


class TaskOut(BaseModel):
    """A task, with its next fire times."""

    model_config = ConfigDict(from_attributes=True)

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
    status: str = Field(description="ready, doing, paused, completed or error (written by the system).")
    extra: Any
    create_at: datetime | None
    update_at: datetime | None
    next_run_at: datetime | None
    last_run_at: datetime | None
    last_status: str | None
    last_error: str | None
    next_fire_times: list[datetime] = Field(description="The next 5 fire instants (UTC); empty when paused or done.")
    trigger_args: Any = Field(None, description="APScheduler-style trigger arguments as given, next to trigger/spec.")
    start_date: datetime | None = Field(None, description="No fire before this instant (UTC).")
    end_date: datetime | None = Field(None, description="No fire after this instant (UTC).")
    jitter_seconds: int | None = Field(None, description="Each fire up to this many seconds late.")
    cron_year: str | None = Field(None, description="APScheduler cron `year` expression.")
    cron_week: str | None = Field(None, description="APScheduler cron `week` (ISO week) expression.")
    schedule_error: str | None = Field(description="Why beat cannot schedule the row, if it cannot.")


class RunOut(BaseModel):
    """One run of a task (an `execute_task` row)."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    task_id: int
    status: str = Field(description="pending, running, success, failed, retrying, skipped, lost or expired.")
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


class PageOut(BaseModel, Generic[T]):
    """One page of results and the total number of matches."""

    model_config = ConfigDict(from_attributes=True)

    items: list[T]
    total: int
    limit: int
    offset: int


class RunStartedOut(BaseModel):
    """The run that `POST /tasks/{ref}/run` dispatched."""

    model_config = ConfigDict(from_attributes=True)

    run_id: int
    trace_id: str
    celery_id: str
    task_key: str
    scheduled_at: datetime


class ReachabilityOut(BaseModel):
    """Whether one service answered."""

    ok: bool
    error: str | None = None


class HealthOut(BaseModel):
    """Reachability of the database and the broker; the details only with credentials."""

    status: str = Field(description="`ok`, or `degraded` when the database or the broker is unreachable.")
    database: ReachabilityOut | None = Field(None, description="Only with the bearer token (or a console session).")
    broker: ReachabilityOut | None = Field(None, description="Only with the bearer token (or a console session).")


class ErrorOut(BaseModel):
    """Every 4xx/5xx body: `detail` is `<field>: <reason>` when a field is at fault."""

    detail: str
    field: str | None = None
    errors: list[dict[str, Any]] | None = None

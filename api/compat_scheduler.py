"""004's REST API at its own paths: ``/api/scheduler/task/…`` over the one service layer.

Same bearer token, validation and sub-second pickup as ``/tasks``; 004's field names and the
``sys_scheduler_task`` shape (``status`` 1 = on, 0 = paused). ``{id}`` is the task's numeric id
(``tablebeat db import`` keeps 004's ids).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path
from pydantic import BaseModel, ConfigDict, Field

from api.auth import require_token
from api.schemas import ErrorOut
from api.tasks import Service
from service import compat
from service.errors import ValidationFailed

TAG = "scheduler (004)"
_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorOut, "description": "Missing or wrong bearer token"},
    404: {"model": ErrorOut, "description": "No task with that id"},
    422: {"model": ErrorOut, "description": "A field is invalid; `detail` names it (004's name) and the reason"},
}
TaskId = Annotated[int, Path(description="The task's id.")]

router = APIRouter(prefix="/api/scheduler/task", tags=[TAG], dependencies=[Depends(require_token)], responses=_ERRORS)


class SchedulerTaskAdd(BaseModel):
    """004's ``add`` body."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="Task name.", examples=["每日数据同步"])
    func: str = Field(description="`pkg.mod:func` in a TABLEBEAT_JOB_MODULES module.")
    trigger: str = Field(description="cron, interval or date.")
    trigger_args: dict[str, Any] = Field(description="APScheduler trigger arguments.")
    job_id: str | None = Field(None, description="Unique id; generated when left out.")
    status: int | None = Field(None, description="1 = on (default), 0 = paused.")


class SchedulerTaskOut(BaseModel):
    """A task as 004's ``sys_scheduler_task`` row."""

    id: int
    name: str
    job_id: str
    func: str | None
    trigger: str | None
    trigger_args: Any
    status: int = Field(description="1 = on, 0 = paused.")
    last_run: datetime | None
    next_run: datetime | None


class SchedulerRunOut(BaseModel):
    """The run started by ``run``."""

    id: int
    run_id: int
    trace_id: str


def _out(task: Any) -> SchedulerTaskOut:
    return SchedulerTaskOut.model_validate(compat.scheduler_task_view(task))


@router.get("/list", response_model=list[SchedulerTaskOut])
def list_tasks(service: Service) -> list[SchedulerTaskOut]:
    """Every task, by id (the first 1000)."""
    return [_out(task) for task in service.list_tasks(limit=1000).items]


@router.post("/add", response_model=SchedulerTaskOut)
def add_task(body: SchedulerTaskAdd, service: Service) -> SchedulerTaskOut:
    """Create a task; beat schedules it within a second."""
    try:
        fields = compat.scheduler_task_fields(body.model_dump())
        return _out(service.create_task(fields, accept_missed_date=True))
    except ValidationFailed as exc:
        raise compat.renamed(exc, compat.SCHEDULER_TASK_FIELD) from None


@router.post("/pause/{id}", response_model=SchedulerTaskOut)
def pause_task(id: TaskId, service: Service) -> SchedulerTaskOut:
    """Stop firing."""
    return _out(service.pause_task(id))


@router.post("/resume/{id}", response_model=SchedulerTaskOut)
def resume_task(id: TaskId, service: Service) -> SchedulerTaskOut:
    """Fire again."""
    return _out(service.resume_task(id))


@router.post("/run/{id}", response_model=SchedulerRunOut)
def run_task(id: TaskId, service: Service) -> SchedulerRunOut:
    """Run the task now; ``last_run`` says so."""
    try:
        started = service.run_task(id)
    except ValidationFailed as exc:
        raise compat.renamed(exc, compat.SCHEDULER_TASK_FIELD) from None
    return SchedulerRunOut(id=id, run_id=started.run_id, trace_id=started.trace_id)

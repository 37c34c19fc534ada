"""003's REST API at its own paths: ``/task-manage/…`` over the one service layer.

Same bearer token, validation and sub-second pickup as ``/tasks``; 003's field names, status
names (pending/running/paused/completed/failed; logs running/completed/failed) and shapes.
Task ids are 003's string ids (a task's ``task_key``); tablebeat's numeric ids work too.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from api.auth import require_token
from api.schemas import ErrorOut
from api.tasks import Service
from service import compat
from service.errors import ValidationFailed
from service.views import TaskView

TAG = "task-manage (003)"
_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorOut, "description": "Missing or wrong bearer token"},
    404: {"model": ErrorOut, "description": "No task with that id"},
    422: {"model": ErrorOut, "description": "A field is invalid; `detail` names it (003's name) and the reason"},
}
TaskId = Annotated[str, Path(description="The task's id: 003's string id (task_key) or tablebeat's numeric id.")]

router = APIRouter(prefix="/task-manage", tags=[TAG], dependencies=[Depends(require_token)], responses=_ERRORS)


class TaskManageCreate(BaseModel):
    """003's create body (``POST /task-manage/``)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="Task name.", examples=["定时通知任务"])
    task_type: str = Field(description="Free-form category.", examples=["notification"])
    trigger_type: str = Field(description="date, interval or cron.", examples=["cron"])
    trigger_args: dict[str, Any] | None = Field(None, description="APScheduler trigger arguments.")
    func_path: str = Field(description="Import path of a function in a TABLEBEAT_JOB_MODULES module.")
    func_args: dict[str, Any] | list[Any] | None = Field(None, description="Keyword (object) or positional (list).")
    max_instances: int | None = Field(1, description="Most runs at once.")
    description: str | None = None


class TaskManageUpdate(BaseModel):
    """003's update body (``PUT /task-manage/{id}``): the fields given change."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = None
    task_type: str | None = None
    trigger_type: str | None = None
    trigger_args: dict[str, Any] | None = None
    func_path: str | None = None
    func_args: dict[str, Any] | list[Any] | None = None
    max_instances: int | None = None
    description: str | None = None


class TaskManageOut(BaseModel):
    """A task as 003's ``task_manage`` row."""

    id: str
    name: str
    task_type: str | None
    status: str = Field(description="pending, running, paused, completed or failed.")
    trigger_type: str | None
    trigger_args: Any
    func_path: str | None
    func_args: Any
    next_run_time: datetime | None
    max_instances: int
    description: str | None
    create_time: datetime | None
    update_time: datetime | None


class ExecutionLogOut(BaseModel):
    """A run as 003's ``task_execution_log`` row."""

    id: str
    task_id: str
    start_time: datetime | None
    end_time: datetime | None
    status: str = Field(description="running, completed or failed.")
    result: str | None
    error: str | None
    trace_id: str | None


class TriggeredOut(BaseModel):
    """The run started by ``trigger``."""

    message: str
    task_id: str
    log_id: str
    trace_id: str


def _out(service: Any, task: TaskView) -> TaskManageOut:
    running = task.id in compat.running_task_ids(service.engine, [task.id])
    return TaskManageOut.model_validate(compat.task_manage_view(task, running))


def _renamed(call: Any) -> Any:
    try:
        return call()
    except ValidationFailed as exc:
        raise compat.renamed(exc, compat.TASK_MANAGE_FIELD) from None


def _paged(call: Any) -> Any:
    try:
        return call()
    except ValidationFailed as exc:  # this API calls the offset "skip"
        raise compat.renamed(exc, {"offset": "skip"}) from None


@router.post("/", response_model=TaskManageOut, status_code=200)
def create_task(body: TaskManageCreate, service: Service) -> TaskManageOut:
    """Create a task; beat schedules it within a second."""
    fields = compat.task_manage_fields(body.model_dump(exclude_unset=True) | {"name": body.name})
    # 003 (APScheduler) accepted a date already past and recorded it missed; so do we.
    return _out(service, _renamed(lambda: service.create_task(fields, accept_missed_date=True)))


@router.get("/", response_model=list[TaskManageOut])
def list_tasks(
    service: Service,
    skip: int = Query(0, description="Rows to skip."),
    limit: int = Query(100, description="Most rows returned (1-1000)."),
) -> list[TaskManageOut]:
    """Every task, by id."""
    page = _paged(lambda: service.list_tasks(limit=limit, offset=skip))
    running = compat.running_task_ids(service.engine, [t.id for t in page.items])
    return [TaskManageOut.model_validate(compat.task_manage_view(t, t.id in running)) for t in page.items]


@router.get("/{task_id}", response_model=TaskManageOut)
def get_task(task_id: TaskId, service: Service) -> TaskManageOut:
    """One task."""
    return _out(service, service.get_task(task_id))


@router.put("/{task_id}", response_model=TaskManageOut)
def update_task(task_id: TaskId, body: TaskManageUpdate, service: Service) -> TaskManageOut:
    """Change the given fields; beat honours the edit within a second."""
    current = service.get_task(task_id)
    fields = compat.task_manage_fields(body.model_dump(exclude_unset=True), current)
    return _out(service, _renamed(lambda: service.update_task(current.id, fields)))


@router.delete("/{task_id}", response_model=TaskManageOut)
def delete_task(task_id: TaskId, service: Service) -> TaskManageOut:
    """Delete the task and its execution logs (003 cascades)."""
    task = service.delete_task(task_id, with_runs=True)
    return TaskManageOut.model_validate(compat.task_manage_view(task, False))


@router.post("/{task_id}/pause", response_model=TaskManageOut)
def pause_task(task_id: TaskId, service: Service) -> TaskManageOut:
    """Stop firing."""
    return _out(service, service.pause_task(task_id))


@router.post("/{task_id}/resume", response_model=TaskManageOut)
def resume_task(task_id: TaskId, service: Service) -> TaskManageOut:
    """Fire again."""
    return _out(service, service.resume_task(task_id))


@router.post("/{task_id}/trigger", response_model=TriggeredOut)
def trigger_task(task_id: TaskId, service: Service) -> TriggeredOut:
    """Run the task now (paused tasks too)."""
    started = _renamed(lambda: service.run_task(task_id))
    return TriggeredOut(
        message="task triggered", task_id=started.task_key, log_id=str(started.run_id), trace_id=started.trace_id
    )


@router.get("/{task_id}/logs", response_model=list[ExecutionLogOut])
def task_logs(
    task_id: TaskId,
    service: Service,
    skip: int = Query(0, description="Rows to skip."),
    limit: int = Query(100, description="Most rows returned (1-1000)."),
) -> list[ExecutionLogOut]:
    """The task's execution logs, newest first."""
    task = service.get_task(task_id)
    page = _paged(lambda: service.list_runs(task.id, limit=limit, offset=skip))
    return [ExecutionLogOut.model_validate(compat.execution_log_view(run, task.task_key)) for run in page.items]

"""``/tasks`` endpoints: thin HTTP wrappers around :class:`service.tasks.TaskService`."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response, status

from api.auth import require_token
from api.guard import require_json
from api.schemas import ErrorOut, PageOut, RunOut, RunStartedOut, TaskCreate, TaskOut, TaskPatch
from service.tasks import TaskService

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorOut, "description": "Missing or wrong bearer token"},
    404: {"model": ErrorOut, "description": "No task with that id or task_key"},
    415: {"model": ErrorOut, "description": "POST, PUT, PATCH and DELETE need `Content-Type: application/json`"},
    422: {"model": ErrorOut, "description": "A field is invalid; `detail` names it and the reason"},
}
Ref = Annotated[str, Path(description="The task's numeric id or its task_key.")]


router = APIRouter(
    prefix="/tasks", tags=["tasks"], dependencies=[Depends(require_token), Depends(require_json)], responses=_ERRORS
)


def get_service(request: Request) -> TaskService:
    """The app's one :class:`TaskService` (also for routers added later, e.g. the console)."""
    service: TaskService = request.app.state.service
    return service


Service = Annotated[TaskService, Depends(get_service)]


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=TaskOut,
    responses={409: {"model": ErrorOut, "description": "task_key already exists"}},
)
def create_task(body: TaskCreate, service: Service) -> TaskOut:
    """Create a task; beat schedules it within a second."""
    return TaskOut.model_validate(service.create_task(body.model_dump(exclude_unset=True)))


@router.get("", response_model=PageOut[TaskOut])
def list_tasks(
    service: Service,
    status_filter: str | None = Query(None, alias="status", description="ready, doing, paused, completed, error"),
    trigger: str | None = Query(None, description="cron, interval or date"),
    q: str | None = Query(None, description="Text searched in task_key and desc."),
    limit: int = Query(50, description="Page size (1-1000)."),
    offset: int = Query(0, description="Rows to skip."),
) -> PageOut[TaskOut]:
    """List tasks by id, filtered and paged; each with its next 5 fire times."""
    page = service.list_tasks(status=status_filter, trigger=trigger, text_filter=q, limit=limit, offset=offset)
    return PageOut[TaskOut].model_validate(page)


@router.get("/{ref}", response_model=TaskOut)
def get_task(ref: Ref, service: Service) -> TaskOut:
    """One task, by id or task_key."""
    return TaskOut.model_validate(service.get_task(ref))


@router.put(
    "/{ref}",
    response_model=TaskOut,
    responses={409: {"model": ErrorOut, "description": "the new task_key already exists"}},
)
def replace_task(ref: Ref, body: TaskCreate, service: Service) -> TaskOut:
    """Replace a task; fields left out take their defaults."""
    return TaskOut.model_validate(service.replace_task(ref, body.model_dump(exclude_unset=True)))


@router.patch(
    "/{ref}",
    response_model=TaskOut,
    responses={409: {"model": ErrorOut, "description": "the new task_key already exists"}},
)
def update_task(ref: Ref, body: TaskPatch, service: Service) -> TaskOut:
    """Change the given fields; beat honours the edit within a second."""
    return TaskOut.model_validate(service.update_task(ref, body.model_dump(exclude_unset=True)))


@router.delete("/{ref}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response)
def delete_task(ref: Ref, service: Service) -> Response:
    """Delete a task; its past runs stay in `execute_task`."""
    service.delete_task(ref)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/{ref}/pause", response_model=TaskOut)
def pause_task(ref: Ref, service: Service) -> TaskOut:
    """Stop firing (`is_valid = 0`)."""
    return TaskOut.model_validate(service.pause_task(ref))


@router.post("/{ref}/resume", response_model=TaskOut)
def resume_task(ref: Ref, service: Service) -> TaskOut:
    """Fire again (`is_valid = 1`)."""
    return TaskOut.model_validate(service.resume_task(ref))


@router.post(
    "/{ref}/run",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=RunStartedOut,
    responses={503: {"model": ErrorOut, "description": "broker unreachable; the run is kept for beat to publish"}},
)
def run_task(ref: Ref, service: Service) -> RunStartedOut:
    """Dispatch a run now; returns the run's id and trace ID."""
    return RunStartedOut.model_validate(service.run_task(ref))


@router.get("/{ref}/logs", response_model=PageOut[RunOut])
def task_logs(
    ref: Ref,
    service: Service,
    status_filter: str | None = Query(None, alias="status", description="Only runs of this status."),
    limit: int = Query(20, description="Page size (1-1000)."),
    offset: int = Query(0, description="Rows to skip."),
) -> PageOut[RunOut]:
    """The task's runs, newest first."""
    return PageOut[RunOut].model_validate(service.list_runs(ref, status=status_filter, limit=limit, offset=offset))

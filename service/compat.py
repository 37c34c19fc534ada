"""The earlier systems' request and response shapes over the one service layer.

- 003 (``/task-manage/…``): ``task_manage`` rows: a string id (the task_key), name, task_type,
  status pending/running/paused/completed/failed, trigger_type + trigger_args, func_path +
  func_args, max_instances, description; ``task_execution_log`` rows with status
  running/completed/failed.
- 004 (``/api/scheduler/task/…``): ``sys_scheduler_task`` rows: id, name, job_id, func, trigger,
  trigger_args, status 1 (on) / 0 (paused), last_run, next_run.

Only shapes live here: every request becomes ordinary task fields validated by
:class:`service.tasks.TaskService`, so validation, auth and pickup are the same as ``/tasks``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import Engine, func, select

from models import ExecuteTask, RunStatus, TaskStatus
from service.errors import ValidationFailed
from service.views import RunView, TaskView

# --- 003 ---------------------------------------------------------------------------------

#: tablebeat field -> 003 field, for error messages that name what the client sent.
TASK_MANAGE_FIELD = {
    "execute_func": "func_path",
    "kwargs": "func_args",
    "args": "func_args",
    "desc": "name",
    "trigger": "trigger_type",
    "max_instances": "max_instances",
    "task_key": "id",
}
#: run status -> 003 log status.
LOG_STATUS = {
    RunStatus.PENDING.value: "running",
    RunStatus.RUNNING.value: "running",
    RunStatus.RETRYING.value: "running",
    RunStatus.SUCCESS.value: "completed",
}


def renamed(exc: ValidationFailed, names: Mapping[str, str]) -> ValidationFailed:
    """``exc`` naming the client's field instead of tablebeat's."""
    head, dot, rest = (exc.field or "").partition(".")
    if head not in names:
        return exc
    return ValidationFailed(names[head] + dot + rest, exc.reason)


def task_manage_fields(body: Mapping[str, Any], current: TaskView | None = None) -> dict[str, Any]:
    """Task fields of a 003 create (``current`` None) or update body (only the given fields)."""
    fields: dict[str, Any] = {}
    if current is None:
        fields["task_key"] = str(body.get("id") or uuid.uuid4())
    if "func_path" in body:
        fields["execute_func"] = body["func_path"]
    if "trigger_type" in body or "trigger_args" in body:
        fields["trigger"] = body.get("trigger_type") or (current.trigger if current else None)
        args = body.get("trigger_args")
        if args is None and current is not None:
            args = current.trigger_args
        fields["trigger_args"] = args if args is not None else {}
    if "func_args" in body:
        value = body["func_args"]
        if isinstance(value, list):
            fields["args"], fields["kwargs"] = value, {}
        else:
            fields["args"], fields["kwargs"] = "", value or {}
    if body.get("max_instances") is not None:
        fields["max_instances"] = body["max_instances"]
    own = {k: body[k] for k in ("name", "task_type", "description") if k in body}
    if own or current is None:
        extra = dict(current.extra) if current is not None and isinstance(current.extra, dict) else {}
        extra["task_manage"] = {**extra.get("task_manage", {}), **own}
        fields["extra"] = extra
    if "name" in body:
        fields["desc"] = (body["name"] or "")[:255]
    return fields


def task_manage_status(task: TaskView, running: bool) -> str:
    """003's status of a task: running while a run is running, else from tablebeat's status."""
    if running:
        return "running"
    if not task.is_valid or task.status == TaskStatus.PAUSED.value:
        return "paused"
    if task.status == TaskStatus.COMPLETED.value:
        return "completed"
    if task.status == TaskStatus.ERROR.value or task.last_status in ("failed", "lost", "expired"):
        return "failed"
    return "pending"


def task_manage_view(task: TaskView, running: bool) -> dict[str, Any]:
    """A task as a ``task_manage`` row."""
    own = task.extra.get("task_manage", {}) if isinstance(task.extra, dict) else {}
    func_args: Any = task.kwargs
    if task.args and not task.kwargs:
        func_args = task.args
    return {
        "id": task.task_key,
        "name": own.get("name") or task.desc or task.task_key,
        "task_type": own.get("task_type"),
        "status": task_manage_status(task, running),
        "trigger_type": task.trigger,
        "trigger_args": task.trigger_args,
        "func_path": task.execute_func,
        "func_args": func_args,
        "next_run_time": task.next_fire_times[0] if task.next_fire_times else None,
        "max_instances": task.max_instances,
        "description": own.get("description"),
        "create_time": task.create_at,
        "update_time": task.update_at,
    }


def execution_log_view(run: RunView, task_key: str) -> dict[str, Any]:
    """A run as a ``task_execution_log`` row (its trace ID alongside)."""
    return {
        "id": str(run.id),
        "task_id": task_key,
        "start_time": run.started_at or run.scheduled_at,
        "end_time": run.finished_at,
        "status": LOG_STATUS.get(run.status, "failed"),
        "result": run.result,
        "error": run.error,
        "trace_id": run.trace_id,
    }


def running_task_ids(engine: Engine, task_ids: Iterable[int]) -> set[int]:
    """Which of these tasks have a run ``running`` now."""
    ids = sorted(set(task_ids))
    if not ids:
        return set()
    with engine.connect() as conn:
        rows = conn.execute(
            select(ExecuteTask.task_id, func.count())
            .where(ExecuteTask.status == RunStatus.RUNNING.value, ExecuteTask.task_id.in_(ids))
            .group_by(ExecuteTask.task_id)
        )
        return {int(task_id) for task_id, _ in rows}


# --- 004 ----------------------------------------------------------------------------------

SCHEDULER_TASK_FIELD = {"execute_func": "func", "desc": "name", "task_key": "job_id"}


def scheduler_task_fields(body: Mapping[str, Any]) -> dict[str, Any]:
    """Task fields of a 004 ``add`` body."""
    fields: dict[str, Any] = {
        "task_key": str(body.get("job_id") or uuid.uuid4().hex),
        "desc": (body.get("name") or "")[:255],
        "execute_func": body.get("func"),
        "trigger": body.get("trigger"),
        "trigger_args": body.get("trigger_args") if body.get("trigger_args") is not None else {},
        "extra": {"sys_scheduler_task": {"name": body.get("name")}},
    }
    if body.get("status") is not None:
        fields["is_valid"] = body["status"] == 1
    return fields


def scheduler_task_view(task: TaskView) -> dict[str, Any]:
    """A task as a ``sys_scheduler_task`` row."""
    own = task.extra.get("sys_scheduler_task", {}) if isinstance(task.extra, dict) else {}
    return {
        "id": task.id,
        "name": own.get("name") or task.desc or task.task_key,
        "job_id": task.task_key,
        "func": task.execute_func,
        "trigger": task.trigger,
        "trigger_args": task.trigger_args,
        "status": 1 if task.is_valid else 0,
        "last_run": task.last_run_at,
        "next_run": task.next_fire_times[0] if task.next_fire_times else None,
    }

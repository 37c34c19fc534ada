"""``tablebeat db import``: copy 003's and 004's tables into tablebeat's, mapping fields and statuses.

- 003 ``task_manage`` -> ``task``: its string id becomes ``task_key`` (so ``/task-manage/{id}``
  keeps answering), ``func_path``/``func_args``/``trigger_type``/``trigger_args`` become the
  job, kwargs and schedule; name, task_type and description are kept in ``extra.task_manage``.
  ``task_execution_log`` -> ``execute_task`` (log id as ``trace_id``; running -> lost,
  completed -> success, failed -> failed).
- 004 ``sys_scheduler_task`` -> ``task``: ``job_id`` becomes ``task_key`` and the row keeps its id
  when tablebeat has not used it (so ``/api/scheduler/task/run/{id}`` keeps answering);
  ``status`` 1 -> enabled, anything else -> paused; ``last_run`` -> ``last_run_at``.

Naive legacy datetimes are read in ``timezone`` (the zone the old server wrote them in).
Rows already imported are recognised (task_key; run trace_id) and skipped, so running the
import twice copies nothing twice. A schedule that does not convert is still copied: beat
marks the row ``error`` with the reason, and the import reports it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy import Connection, Engine, insert, select

from models import ExecuteTask, Task
from service.errors import ValidationFailed
from service.trigger_args import from_trigger_args, option_columns

#: 003 log statuses -> run statuses (a run still "running" never finishes under tablebeat).
LOG_STATUS = {"running": "lost", "completed": "success", "failed": "failed"}
#: 003 task statuses -> (is_valid, status, last_status).
TASK_STATUS = {
    "pending": (1, "ready", None),
    "running": (1, "ready", None),
    "paused": (0, "paused", None),
    "completed": (1, "completed", "success"),
    "failed": (1, "ready", "failed"),
}


@dataclass
class ImportReport:
    """What one import copied, skipped (already there) and could not convert."""

    copied: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def count(self, table: str, copied: bool) -> None:
        target = self.copied if copied else self.skipped
        target[table] = target.get(table, 0) + 1


def import_legacy(target: Engine, source: Engine | None = None, timezone: str = "UTC") -> ImportReport:
    """Copy every 003/004 table found in ``source`` (default: the target database) into ``target``."""
    source = source or target
    tz = ZoneInfo(timezone)
    report = ImportReport()
    tables = set(sa.inspect(source).get_table_names())
    with source.connect() as src, target.begin() as dst:
        if "task_manage" in tables:
            _import_task_manage(src, dst, tz, report)
            if "task_execution_log" in tables:
                _import_execution_log(src, dst, tz, report)
        if "sys_scheduler_task" in tables:
            _import_sys_scheduler_task(src, dst, tz, report)
            if dst.dialect.name == "postgresql":  # rows inserted with their own ids: move the sequence on
                dst.execute(sa.text("SELECT setval(pg_get_serial_sequence('task', 'id'), (SELECT MAX(id) FROM task))"))
    return report


def _rows(conn: Connection, table: str) -> Iterator[dict[str, Any]]:
    result = conn.execute(sa.text(f"SELECT * FROM {conn.dialect.identifier_preparer.quote(table)}"))
    for row in result.mappings():
        yield dict(row)


def _aware(value: Any, tz: ZoneInfo) -> datetime | None:
    if not isinstance(value, datetime):
        return None
    return (value.replace(tzinfo=tz) if value.tzinfo is None else value).astimezone(UTC)


def _json(value: Any) -> Any:
    if isinstance(value, (bytes, str)):
        try:
            return json.loads(value) if value else None
        except ValueError:
            return value
    return value


def _schedule(trigger: str | None, trigger_args: Any, tz: ZoneInfo, what: str, report: ImportReport) -> dict[str, Any]:
    """trigger/spec/timezone and the option columns; on failure the raw arguments, for beat to report."""
    args = _json(trigger_args)
    try:
        if not isinstance(args, dict):
            raise ValidationFailed("trigger_args", f"must be a JSON object, got {args!r}")
        schedule = from_trigger_args(trigger, args)
        columns = option_columns(schedule, args, schedule.timezone or tz.key)
        # APScheduler evaluated triggers in the scheduler's zone: the one the old server ran in.
        zone = schedule.timezone or tz.key
        return {"trigger": schedule.trigger, "spec": schedule.spec, "timezone": zone, **columns}
    except ValidationFailed as exc:
        report.problems.append(f"{what}: {exc}; copied, beat will mark it error")
        return {"trigger": trigger, "spec": "", "trigger_args": json.dumps(args, ensure_ascii=False, default=str)}


def _task_id(dst: Connection, task_key: str) -> int | None:
    return dst.scalar(select(Task.id).where(Task.task_key == task_key))


def _import_task_manage(src: Connection, dst: Connection, tz: ZoneInfo, report: ImportReport) -> None:
    for row in _rows(src, "task_manage"):
        key = str(row["id"])
        if _task_id(dst, key) is not None:
            report.count("task_manage", False)
            continue
        func_args = _json(row.get("func_args"))
        is_valid, status, last_status = TASK_STATUS.get(str(row.get("status") or "pending"), (1, "ready", None))
        values = {
            "task_key": key,
            "desc": str(row.get("name") or "")[:255],
            "execute_func": row.get("func_path"),
            **_schedule(row.get("trigger_type"), row.get("trigger_args"), tz, f"task_manage {key}", report),
            "args": json.dumps(func_args, ensure_ascii=False) if isinstance(func_args, list) else "",
            "kwargs": json.dumps(func_args if isinstance(func_args, dict) else {}, ensure_ascii=False),
            "max_instances": int(row.get("max_instances") or 1),
            "is_valid": is_valid,
            "status": status,
            "last_status": last_status,
            "extra": json.dumps(
                {
                    "task_manage": {
                        "name": row.get("name"),
                        "task_type": row.get("task_type"),
                        "description": row.get("description"),
                    }
                },
                ensure_ascii=False,
            ),
            "create_at": _aware(row.get("create_time"), tz),
            "update_at": _aware(row.get("update_time"), tz),
        }
        dst.execute(insert(Task).values(**{k: v for k, v in values.items() if v is not None}))
        report.count("task_manage", True)


def _import_execution_log(src: Connection, dst: Connection, tz: ZoneInfo, report: ImportReport) -> None:
    for row in _rows(src, "task_execution_log"):
        task_id = _task_id(dst, str(row["task_id"]))
        trace_id = str(row["id"])
        if task_id is None:
            report.problems.append(f"task_execution_log {trace_id}: task {row['task_id']} not found; not copied")
            continue
        exists = dst.scalar(
            select(ExecuteTask.id).where(ExecuteTask.task_id == task_id, ExecuteTask.trace_id == trace_id)
        )
        if exists is not None:
            report.count("task_execution_log", False)
            continue
        started = _aware(row.get("start_time"), tz) or datetime(1970, 1, 1, tzinfo=UTC)
        scheduled = started
        # Two logs of one task in the same second: the later gets a microsecond offset (unique fire).
        while dst.scalar(
            select(ExecuteTask.id).where(ExecuteTask.task_id == task_id, ExecuteTask.scheduled_at == scheduled)
        ):
            scheduled += timedelta(microseconds=1)
        dst.execute(
            insert(ExecuteTask).values(
                task_id=task_id,
                status=LOG_STATUS.get(str(row.get("status")), "lost"),
                trace_id=trace_id,
                scheduled_at=scheduled,
                started_at=started,
                finished_at=_aware(row.get("end_time"), tz),
                result=row.get("result"),
                error=row.get("error"),
                attempt=1,
                extra=json.dumps({"imported_from": "task_execution_log"}),
                create_at=started,
                update_at=_aware(row.get("end_time"), tz) or started,
            )
        )
        report.count("task_execution_log", True)


def _import_sys_scheduler_task(src: Connection, dst: Connection, tz: ZoneInfo, report: ImportReport) -> None:
    for row in _rows(src, "sys_scheduler_task"):
        key = str(row.get("job_id") or f"sys_scheduler_task-{row['id']}")
        if _task_id(dst, key) is not None:
            report.count("sys_scheduler_task", False)
            continue
        enabled = str(row.get("status")) == "1"
        values: dict[str, Any] = {
            "task_key": key,
            "desc": str(row.get("name") or "")[:255],
            "execute_func": row.get("func"),
            **_schedule(row.get("trigger"), row.get("trigger_args"), tz, f"sys_scheduler_task {row['id']}", report),
            "is_valid": 1 if enabled else 0,
            "status": "ready" if enabled else "paused",
            "last_run_at": _aware(row.get("last_run"), tz),
            "extra": json.dumps({"sys_scheduler_task": {"id": row["id"]}}),
        }
        if dst.scalar(select(Task.id).where(Task.id == row["id"])) is None:
            values["id"] = int(row["id"])  # 004 clients address tasks by this id
        dst.execute(insert(Task).values(**{k: v for k, v in values.items() if v is not None}))
        report.count("sys_scheduler_task", True)

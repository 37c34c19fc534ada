"""The one service layer of tablebeat's operations: the REST API and the CLI both call it.

It validates a task exactly as beat will (``scheduler.rows.compile_row``), writes the row,
and lets the database triggers tell beat (``task_change``, polled every 0.5 s), so an edit
made here takes effect within a second.  Errors are typed (``scheduler.service_errors``)
and name the field and the reason.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace
from typing import Any, Generic, TypeVar

from sqlalchemy import Engine, delete, func, or_, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from models import ExecuteTask, RunStatus, Task, TaskStatus, TriggerKind, make_engine, make_sessionmaker
from models.execution import FINAL_STATUSES
from scheduler.dispatch import BrokerUnavailable, Dispatch, Publisher
from scheduler.errors import RowError
from scheduler.rows import ScheduledJob, compile_row
from scheduler.service_errors import BrokerUnreachable, DuplicateTask, TaskNotFound, ValidationFailed
from scheduler.specs import parse_extra, parse_kwargs, parse_timezone, parse_trigger, normalise_spec
from scheduler.trigger_args import from_trigger_args
from scheduler.triggers import next_fires

T = TypeVar("T")

#: Fields a create / replace / update request may carry.
TASK_FIELDS = (
    "task_key", "desc", "execute_func", "trigger", "spec", "trigger_args", "args", "kwargs",
    "timezone", "queue", "max_instances", "misfire_grace_seconds", "expires_seconds", "is_valid", "extra",
)
#: Required by create and replace (PUT); the schedule is ``trigger`` + ``spec`` or ``trigger_args``.
REQUIRED_FIELDS = ("task_key", "execute_func")
NEXT_FIRES_SHOWN = 5
MAX_PAGE = 1000
#: Rows deleted per statement by :meth:`TaskService.prune_runs`.
PRUNE_BATCH_ROWS = 5000
_DEFAULTS: dict[str, Any] = {
    "desc": "", "args": "", "kwargs": "{}", "timezone": None, "queue": None, "max_instances": 1,
    "misfire_grace_seconds": None, "expires_seconds": None, "is_valid": 1, "extra": "{}",
}


def utcnow() -> datetime:
    """The current instant, UTC-aware."""
    return datetime.now(timezone.utc)


@dataclass(frozen=True, slots=True)
class ServiceSettings:
    """Where the service finds the database and the broker, and the scheduling defaults."""

    database_url: str
    broker_url: str
    default_timezone: str = "UTC"
    misfire_grace_seconds: int = 60

    @classmethod
    def from_env(cls) -> ServiceSettings:
        """Environment variables first, then the loaded Celery settings (profile, defaults)."""
        # Importing ``workers`` loads celeryconfig the way beat and workers do.
        from workers import app

        conf = app.conf
        return cls(
            database_url=os.environ.get("TABLEBEAT_DATABASE_URL") or conf.tablebeat_database_url,
            broker_url=os.environ.get("TABLEBEAT_BROKER_URL") or conf.broker_url,
            default_timezone=os.environ.get("TABLEBEAT_TIMEZONE") or conf.timezone or "UTC",
            misfire_grace_seconds=int(
                os.environ.get("TABLEBEAT_MISFIRE_GRACE_SECONDS") or conf.tablebeat_misfire_grace_seconds
            ),
        )


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


class TaskService:
    """Operations on tasks and their runs; one instance per process, safe across threads."""

    def __init__(self, settings: ServiceSettings, *, registered: frozenset[str] | None = None) -> None:
        self.settings = settings
        self.engine: Engine = make_engine(settings.database_url)
        self._sessions = make_sessionmaker(self.engine)
        self._registered = registered
        self._celery: Any = None

    @property
    def registered(self) -> frozenset[str]:
        """Registered job names (importing ``workers`` loads the job modules)."""
        if self._registered is None:
            import workers

            self._registered = workers.registered_names()
        return self._registered

    @property
    def celery_app(self) -> Any:
        """A Celery app publishing to ``settings.broker_url`` (built on first use)."""
        if self._celery is None:
            from celery import Celery

            app = Celery("tablebeat", set_as_current=False)
            app.config_from_object("celeryconfig")
            app.conf.broker_url = self.settings.broker_url
            self._celery = app
        return self._celery

    def close(self) -> None:
        """Release database connections and the broker pool."""
        self.engine.dispose()
        if self._celery is not None:
            self._celery.close()

    # --- tasks --------------------------------------------------------------------------

    def create_task(self, fields: Mapping[str, Any]) -> TaskView:
        """Validate and insert a task. :raises ValidationFailed, DuplicateTask:"""
        values = self._prepare({**_DEFAULTS}, fields, required=REQUIRED_FIELDS)
        values["status"] = TaskStatus.READY.value if values["is_valid"] else TaskStatus.PAUSED.value
        with self._sessions() as session:
            self._check_key_free(session, values["task_key"], None)
            task = Task(**values)
            session.add(task)
            self._commit(session, values["task_key"])
            return self._view(session, task.id)

    def list_tasks(
        self,
        *,
        status: str | None = None,
        trigger: str | None = None,
        text_filter: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> Page[TaskView]:
        """Tasks by id, filtered by status, trigger and a substring of task_key or desc."""
        _check_page(limit, offset)
        conditions = []
        if status:
            conditions.append(Task.status == _choice("status", status, TaskStatus))
        if trigger:
            conditions.append(Task.trigger == _choice("trigger", trigger, TriggerKind))
        if text_filter:
            pattern = "%" + text_filter.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            conditions.append(or_(Task.task_key.like(pattern, escape="\\"), Task.desc.like(pattern, escape="\\")))
        with self._sessions() as session:
            total = session.scalar(select(func.count()).select_from(Task).where(*conditions)) or 0
            rows = session.scalars(select(Task).where(*conditions).order_by(Task.id).limit(limit).offset(offset))
            now = utcnow()
            items = [self._to_view(row, now) for row in rows]
        return Page(items, int(total), limit, offset)

    def get_task(self, ref: str | int) -> TaskView:
        """The task with this id or task_key. :raises TaskNotFound:"""
        with self._sessions() as session:
            return self._to_view(self._find(session, ref), utcnow())

    def replace_task(self, ref: str | int, fields: Mapping[str, Any]) -> TaskView:
        """PUT: every field from ``fields``, defaults for the ones left out."""
        return self._edit(ref, fields, replace=True)

    def update_task(self, ref: str | int, fields: Mapping[str, Any]) -> TaskView:
        """PATCH: only the fields given change; the result is validated as a whole."""
        return self._edit(ref, fields, replace=False)

    def delete_task(self, ref: str | int) -> TaskView:
        """Delete the task (its runs stay in ``execute_task``); returns what was deleted."""
        with self._sessions() as session:
            task = self._find(session, ref)
            view = self._to_view(task, utcnow())
            session.delete(task)
            session.commit()
        return view

    def pause_task(self, ref: str | int) -> TaskView:
        """``is_valid = 0``: beat stops firing it within a second."""
        return self._set_enabled(ref, False)

    def resume_task(self, ref: str | int) -> TaskView:
        """``is_valid = 1``: beat schedules it again within a second."""
        return self._set_enabled(ref, True)

    def run_task(self, ref: str | int) -> RunStarted:
        """Record a run of the task now and publish it at once (paused tasks too).

        :raises ValidationFailed: when the row cannot be run (e.g. an unregistered job).
        :raises BrokerUnreachable: the run is recorded and left for beat's outbox sweep.
        """
        now = utcnow()
        trace_id, celery_id = _new_trace_id(), str(uuid.uuid4())
        with self._sessions() as session:
            task = self._find(session, ref)
            job = self._compile(task)
            run = ExecuteTask(
                task_id=task.id, status=RunStatus.PENDING.value, scheduled_at=now, trace_id=trace_id,
                celery_id=celery_id, extra=json.dumps({"manual": True}), attempt=1,
                claimed_by="manual", create_at=now, update_at=now,
            )
            session.add(run)
            session.commit()
            run_id = int(run.id)
        expires_at = now + timedelta(seconds=job.expires_seconds) if job.expires_seconds else None
        dispatch = Dispatch(
            run_id=run_id, task_key=job.task_key, job_name=job.job_name, args=job.args, kwargs=job.kwargs,
            queue=job.queue, trace_id=trace_id, celery_id=celery_id, scheduled_at=now, expires_at=expires_at,
        )
        try:
            Publisher(self.celery_app).publish([dispatch])
        except BrokerUnavailable as exc:
            raise BrokerUnreachable(run_id, trace_id, str(exc)) from exc
        with self.engine.begin() as conn:
            conn.execute(update(ExecuteTask).where(ExecuteTask.id == run_id).values(published_at=utcnow()))
        return RunStarted(run_id, trace_id, celery_id, job.task_key, now)

    # --- runs ------------------------------------------------------------------------------

    def list_runs(
        self, ref: str | int, *, status: str | None = None, limit: int = 20, offset: int = 0
    ) -> Page[RunView]:
        """Runs of a task, newest first, optionally of one status."""
        _check_page(limit, offset)
        with self._sessions() as session:
            task_id = self._find(session, ref).id
            conditions = [ExecuteTask.task_id == task_id]
            if status:
                conditions.append(ExecuteTask.status == _choice("status", status, RunStatus))
            total = session.scalar(select(func.count()).select_from(ExecuteTask).where(*conditions)) or 0
            rows = session.scalars(
                select(ExecuteTask)
                .where(*conditions)
                .order_by(ExecuteTask.scheduled_at.desc(), ExecuteTask.id.desc())
                .limit(limit)
                .offset(offset)
            )
            items = [_run_view(row) for row in rows]
        return Page(items, int(total), limit, offset)

    def prune_runs(self, older_than: timedelta, batch_rows: int = PRUNE_BATCH_ROWS) -> int:
        """Delete finished runs created more than ``older_than`` ago, in batches; returns how many."""
        if older_than <= timedelta(0):
            raise ValidationFailed("older_than", "must be a positive duration")
        if batch_rows < 1:
            raise ValidationFailed("batch_size", "must be at least 1")
        cutoff = utcnow() - older_than
        finished = [s.value for s in FINAL_STATUSES]
        deleted = 0
        while True:
            # One short transaction per batch: workers keep writing runs meanwhile.
            with self.engine.begin() as conn:
                ids = list(
                    conn.scalars(
                        select(ExecuteTask.id)
                        .where(ExecuteTask.create_at < cutoff, ExecuteTask.status.in_(finished))
                        .order_by(ExecuteTask.id)
                        .limit(batch_rows)
                    )
                )
                if ids:
                    conn.execute(delete(ExecuteTask).where(ExecuteTask.id.in_(ids)))
            deleted += len(ids)
            if len(ids) < batch_rows:
                return deleted

    # --- health -------------------------------------------------------------------------------

    def health(self, timeout_s: float = 3.0) -> Health:
        """Probe the database (``SELECT 1``) and the broker (a connection)."""
        database_error = broker_error = None
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except Exception as exc:  # any failure means unreachable; report it, never raise
            database_error = f"{type(exc).__name__}: {exc}".splitlines()[0]
        try:
            with self.celery_app.connection_for_write() as connection:
                connection.ensure_connection(max_retries=1, interval_start=0, interval_step=0.2, timeout=timeout_s)
        except Exception as exc:  # same: a report, not an error
            broker_error = f"{type(exc).__name__}: {exc}".splitlines()[0]
        return Health(database_error, broker_error)

    # --- internals ------------------------------------------------------------------------------

    def _edit(self, ref: str | int, fields: Mapping[str, Any], *, replace: bool) -> TaskView:
        with self._sessions() as session:
            task = self._find(session, ref)
            base = {**_DEFAULTS} if replace else {name: getattr(task, name) for name in _COLUMNS}
            values = self._prepare(base, fields, required=REQUIRED_FIELDS if replace else ())
            if values["task_key"] != task.task_key:
                self._check_key_free(session, values["task_key"], task.id)
            for name, value in values.items():
                if getattr(task, name) != value:
                    setattr(task, name, value)
            task.status = _status_after_edit(task.status, bool(values["is_valid"]))
            if task.status != TaskStatus.ERROR.value:
                task.last_error = None
            self._commit(session, values["task_key"])
            return self._view(session, task.id)

    def _set_enabled(self, ref: str | int, enabled: bool) -> TaskView:
        with self._sessions() as session:
            task = self._find(session, ref)
            task.is_valid = 1 if enabled else 0
            task.status = _status_after_edit(task.status, enabled)
            if not enabled:
                task.next_run_at = None
            session.commit()
            return self._view(session, task.id)

    def _prepare(
        self, base: dict[str, Any], fields: Mapping[str, Any], *, required: Sequence[str]
    ) -> dict[str, Any]:
        """Merge ``fields`` into ``base`` column values, normalise and validate the result."""
        unknown = sorted(set(fields) - set(TASK_FIELDS))
        if unknown:
            raise ValidationFailed(unknown[0], f"is not a task field; fields are {', '.join(TASK_FIELDS)}")
        for name in required:
            if fields.get(name) in (None, ""):
                raise ValidationFailed(name, "is required")
        values = dict(base)
        for name, value in fields.items():
            if name != "trigger_args":
                values[name] = _COERCE.get(name, _text)(name, value)
        schedule_field = "spec"
        if fields.get("trigger_args") is not None:
            if fields.get("spec") is not None:
                raise ValidationFailed("trigger_args", "give either trigger_args or spec, not both")
            schedule = from_trigger_args(fields.get("trigger"), fields["trigger_args"])
            values["trigger"], values["spec"] = schedule.trigger, schedule.spec
            if schedule.timezone:
                if fields.get("timezone") not in (None, schedule.timezone):
                    raise ValidationFailed("trigger_args.timezone", "differs from the timezone field")
                values["timezone"] = schedule.timezone
            schedule_field = "trigger_args"
        elif required:
            for name in ("trigger", "spec"):
                if not values.get(name):
                    raise ValidationFailed(name, "is required (or give the schedule as trigger_args)")
        try:
            self._validate(values)
        except ValidationFailed as exc:
            if exc.field == "spec" and schedule_field != "spec":
                raise ValidationFailed(schedule_field, exc.reason) from None
            raise
        return {name: values[name] for name in _COLUMNS}

    def _validate(self, values: dict[str, Any]) -> None:
        """Normalise ``trigger``/``spec`` in place and check the row exactly as beat will."""
        try:
            values["trigger"] = parse_trigger(values.get("trigger"))
            tz = parse_timezone(values.get("timezone"), self.settings.default_timezone)
            values["spec"] = normalise_spec(values["trigger"], values.get("spec") or "", tz)
            parse_extra(values.get("extra"))
        except RowError as exc:
            raise ValidationFailed(exc.column, exc.reason) from None
        self._compile(SimpleNamespace(**values, id=0, create_at=None, update_at=None, status=None,
                                      last_run_at=None, next_run_at=None, last_error=None))

    def _compile(self, row: Any) -> ScheduledJob:
        try:
            return compile_row(
                row,
                registered=self.registered,
                default_timezone=self.settings.default_timezone,
                default_grace_seconds=self.settings.misfire_grace_seconds,
            )
        except RowError as exc:
            raise ValidationFailed(exc.column, exc.reason) from None

    def _find(self, session: Session, ref: str | int) -> Task:
        ref_text = str(ref).strip()
        task = session.get(Task, int(ref_text)) if ref_text.isdigit() else None
        if task is None:
            task = session.scalar(select(Task).where(Task.task_key == ref_text))
        if task is None:
            raise TaskNotFound(ref)
        return task

    def _check_key_free(self, session: Session, task_key: str, own_id: int | None) -> None:
        other = session.scalar(select(Task.id).where(Task.task_key == task_key))
        if other is not None and other != own_id:
            raise DuplicateTask(task_key)

    def _commit(self, session: Session, task_key: str) -> None:
        try:
            session.commit()
        except IntegrityError as exc:  # a concurrent insert of the same key won the race
            session.rollback()
            raise DuplicateTask(task_key) from exc

    def _view(self, session: Session, task_id: int) -> TaskView:
        # Re-read: create_at / update_at / status are written by the database.
        session.expire_all()
        task = session.get(Task, task_id)
        if task is None:
            raise TaskNotFound(task_id)
        return self._to_view(task, utcnow())

    def _to_view(self, task: Task, now: datetime) -> TaskView:
        fires: list[datetime] = []
        error = None
        try:
            job = self._compile(task)
        except ValidationFailed as exc:
            error = str(exc)
        else:
            if task.is_valid == 1 and task.status != TaskStatus.COMPLETED.value:
                floor = max(d for d in (now, job.anchor, task.last_run_at) if d is not None)
                fires = list(next_fires(job.trigger, floor, NEXT_FIRES_SHOWN))
        return TaskView(
            id=task.id, task_key=task.task_key, desc=task.desc or "", execute_func=task.execute_func,
            trigger=task.trigger, spec=task.spec, args=task.args or "", kwargs=_json_or_text(task.kwargs),
            timezone=task.timezone, queue=task.queue, max_instances=task.max_instances,
            misfire_grace_seconds=task.misfire_grace_seconds, expires_seconds=task.expires_seconds,
            is_valid=task.is_valid == 1, status=task.status, extra=_json_or_text(task.extra),
            create_at=task.create_at, update_at=task.update_at, next_run_at=task.next_run_at,
            last_run_at=task.last_run_at, last_status=task.last_status, last_error=task.last_error,
            next_fire_times=fires, schedule_error=error,
        )


# --- helpers ------------------------------------------------------------------------------------

_COLUMNS = tuple(name for name in TASK_FIELDS if name != "trigger_args")


def _new_trace_id() -> str:
    from workers.tracing import new_trace_id

    return new_trace_id()


def _status_after_edit(current: str, enabled: bool) -> str:
    """What ``status`` says right after an operator edit; beat refines it within a second."""
    if not enabled:
        return TaskStatus.PAUSED.value
    if current in (TaskStatus.PAUSED.value, TaskStatus.ERROR.value):
        return TaskStatus.READY.value
    return current


def _check_page(limit: int, offset: int) -> None:
    if not 1 <= limit <= MAX_PAGE:
        raise ValidationFailed("limit", f"must be between 1 and {MAX_PAGE}, got {limit}")
    if offset < 0:
        raise ValidationFailed("offset", f"must not be negative, got {offset}")


def _choice(name: str, value: str, enum_type: Any) -> str:
    allowed = [member.value for member in enum_type]
    if value not in allowed:
        raise ValidationFailed(name, f"unknown value {value!r}; use one of {', '.join(allowed)}")
    return value


def _run_view(row: ExecuteTask) -> RunView:
    duration = None
    if row.started_at is not None and row.finished_at is not None:
        duration = round((row.finished_at - row.started_at).total_seconds(), 6)
    return RunView(
        id=int(row.id), task_id=row.task_id, status=row.status, trace_id=row.trace_id,
        scheduled_at=row.scheduled_at, started_at=row.started_at, finished_at=row.finished_at,
        duration_seconds=duration, result=row.result, error=row.error, worker=row.worker,
        attempt=row.attempt, celery_id=row.celery_id,
    )


def _json_or_text(value: str | None) -> Any:
    """Decoded JSON for display; the raw text when a plain-SQL edit stored something else."""
    if not value:
        return {}
    try:
        return json.loads(value)
    except ValueError:
        return value


# --- coercion of request values into column values ----------------------------------------


def _text(name: str, value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValidationFailed(name, f"must be a string, got {value!r}")
    value = value.strip()
    if len(value) > 255:
        raise ValidationFailed(name, f"is {len(value)} characters; the limit is 255")
    return value


def _required_text(name: str, value: Any) -> str:
    result = _text(name, value)
    if not result:
        raise ValidationFailed(name, "must not be empty")
    return result


def _optional_text(name: str, value: Any) -> str | None:
    return _text(name, value) or None


def _args(name: str, value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        return json.dumps(list(value), ensure_ascii=False)
    if not isinstance(value, str):
        raise ValidationFailed(name, f'must be a list or text such as 1,2,3 or "a","b", got {value!r}')
    return value.strip()


def _json_object(name: str, value: Any) -> str:
    if value is None:
        return "{}"
    if isinstance(value, Mapping):
        return json.dumps(dict(value), ensure_ascii=False)
    if not isinstance(value, str):
        raise ValidationFailed(name, f"must be a JSON object, got {value!r}")
    try:
        parsed = parse_kwargs(value) if name == "kwargs" else parse_extra(value)
    except RowError as exc:
        raise ValidationFailed(name, exc.reason) from None
    return json.dumps(parsed, ensure_ascii=False)


def _integer(name: str, value: Any, minimum: int) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationFailed(name, f"must be an integer, got {value!r}")
    if value < minimum:
        raise ValidationFailed(name, f"must be at least {minimum}, got {value}")
    return value


def _flag(name: str, value: Any) -> int:
    if value in (True, 1, "1", "true"):
        return 1
    if value in (False, 0, "0", "false"):
        return 0
    raise ValidationFailed(name, f"must be true or false, got {value!r}")


_COERCE = {
    "task_key": _required_text,
    "execute_func": _required_text,
    "trigger": _optional_text,
    "spec": _optional_text,
    "desc": lambda n, v: _text(n, v) or "",
    "timezone": _optional_text,
    "queue": _optional_text,
    "args": _args,
    "kwargs": _json_object,
    "extra": _json_object,
    "max_instances": lambda n, v: 1 if v is None else _integer(n, v, 0),
    "misfire_grace_seconds": lambda n, v: _integer(n, v, 0),
    "expires_seconds": lambda n, v: _integer(n, v, 1),
    "is_valid": _flag,
}

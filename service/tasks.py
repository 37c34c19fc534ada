"""The one service layer of tablebeat's operations: the REST API and the CLI both call it.

It validates a task exactly as beat will (``scheduler.rows.compile_row``), writes the row,
and lets the database triggers tell beat (``task_change``, polled every 0.5 s), so an edit
made here takes effect within a second.  Errors are typed (``service.errors``)
and name the field and the reason.

One class, :class:`TaskService`, holds every operation (its length is the number of them);
request shapes live in ``service.fields`` and views in ``service.views``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from types import SimpleNamespace
from typing import Any

from kombu.exceptions import OperationalError as KombuOperationalError
from sqlalchemy import Engine, delete, func, or_, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from conf.celery import celery_config
from conf.settings import Settings
from models import ExecuteTask, RunStatus, Task, TaskStatus, TriggerKind, make_engine, make_sessionmaker
from models.base import utcnow
from models.execution import FINAL_STATUSES
from protocol.signing import enable_signing
from protocol.trace import new_celery_id, new_trace_id
from scheduler.dispatch import BrokerUnavailable, Dispatch, Publisher
from scheduler.rows import ScheduledJob, compile_row
from scheduler.specs import parse_extra, parse_timezone, parse_trigger
from scheduler.triggers import next_fires
from service.errors import BrokerUnreachable, DuplicateTask, RunNotFound, TaskNotFound, ValidationFailed, rows_checked
from service.fields import (
    COLUMNS,
    DEFAULTS,
    PRUNE_MAX_WEEKS,
    REQUIRED_FIELDS,
    SCHEDULE_OPTION_COLUMNS,
    TASK_FIELDS,
    coerce_field,
    normalise_spec,
)
from service.missed_dates import refuse_missed_date, stored_date
from service.paging import check_page
from service.trigger_args import ScheduleArgs, from_trigger_args, option_columns
from service.views import Health, Page, RunStarted, RunView, TaskView, run_view, task_view

NEXT_FIRES_SHOWN = 5
#: ``task.id`` is INTEGER: 32-bit signed on MariaDB and PostgreSQL.
MAX_TASK_ID = 2**31 - 1
#: Rows deleted per statement by :meth:`TaskService.prune_runs`.
PRUNE_BATCH_ROWS = 5000


class TaskService:
    """Operations on tasks and their runs; one instance per process, safe across threads."""

    def __init__(self, settings: Settings, *, registered: frozenset[str] | None = None) -> None:
        self.settings = settings
        self.engine: Engine = make_engine(settings.database_url)
        self._sessions = make_sessionmaker(self.engine)
        self._registered = registered
        #: Publishes run-now messages; built here so request threads never race to build it.
        self.celery_app = _publishing_app(settings)

    @property
    def registered(self) -> frozenset[str]:
        """Registered job names (the configured job modules are imported on first use)."""
        if self._registered is None:
            import workers

            self._registered = workers.load_job_modules(self.settings.job_modules)
        return self._registered

    def close(self) -> None:
        """Release database connections and the broker pool."""
        self.engine.dispose()
        self.celery_app.close()

    # --- tasks --------------------------------------------------------------------------

    def create_task(self, fields: Mapping[str, Any], *, accept_missed_date: bool = False) -> TaskView:
        """Validate and insert a task. :raises ValidationFailed, DuplicateTask:

        ``accept_missed_date``: keep a date job whose date is past (APScheduler's add_job did; beat
        records the fire ``skipped`` and the task ``completed``), for the earlier systems' APIs.
        """
        values = self._prepare(
            {**DEFAULTS}, fields, required=REQUIRED_FIELDS, stored=None, accept_missed_date=accept_missed_date
        )
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
        check_page(limit, offset)
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

    def delete_task(self, ref: str | int, *, with_runs: bool = False) -> TaskView:
        """Delete the task; its runs stay in ``execute_task`` unless ``with_runs`` (003's cascade)."""
        with self._sessions() as session:
            task = self._find(session, ref)
            view = self._to_view(task, utcnow())
            if with_runs:
                session.execute(delete(ExecuteTask).where(ExecuteTask.task_id == task.id))
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
        trace_id, celery_id = new_trace_id(), new_celery_id()
        with self._sessions() as session:
            task = self._find(session, ref)
            job = self._compile(task)
            run = ExecuteTask(
                task_id=task.id,
                status=RunStatus.PENDING.value,
                scheduled_at=now,
                trace_id=trace_id,
                celery_id=celery_id,
                extra=json.dumps({"manual": True}),
                attempt=1,
                claimed_by="manual",
                create_at=now,
                update_at=now,
            )
            session.add(run)
            # Run now is a run: last_run_at says so (never moved back; update_at kept, not an edit).
            session.execute(
                update(Task)
                .where(Task.id == task.id, or_(Task.last_run_at.is_(None), Task.last_run_at < now))
                .values(last_run_at=now, update_at=Task.update_at)
                .execution_options(synchronize_session=False)
            )
            session.commit()
            run_id = int(run.id)
        dispatch = Dispatch.for_job(job, run_id, trace_id, celery_id, now)
        try:
            Publisher(self.celery_app).publish([dispatch])
        except (BrokerUnavailable, KombuOperationalError) as exc:
            raise BrokerUnreachable(run_id, trace_id, str(exc)) from exc
        with self.engine.begin() as conn:
            conn.execute(update(ExecuteTask).where(ExecuteTask.id == run_id).values(published_at=utcnow()))
        return RunStarted(run_id, trace_id, celery_id, job.task_key, now)

    # --- runs ------------------------------------------------------------------------------

    def list_runs(
        self, ref: str | int, *, status: str | None = None, limit: int = 20, offset: int = 0
    ) -> Page[RunView]:
        """Runs of a task, newest first, optionally of one status."""
        check_page(limit, offset)
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
            items = [run_view(row) for row in rows]
        return Page(items, int(total), limit, offset)

    def get_run(self, run_id: int | str) -> tuple[RunView, TaskView | None]:
        """One run and its task (None when the task was deleted). :raises RunNotFound:"""
        text_id = str(run_id).strip()
        with self._sessions() as session:
            row = session.get(ExecuteTask, int(text_id)) if text_id.isdigit() else None
            if row is None:
                raise RunNotFound(run_id)
            run = run_view(row)
            task = session.get(Task, row.task_id)
            return run, (self._to_view(task, utcnow()) if task is not None else None)

    def prune_runs(self, older_than: timedelta, batch_rows: int = PRUNE_BATCH_ROWS) -> int:
        """Delete finished runs created more than ``older_than`` ago, in batches; returns how many."""
        if older_than <= timedelta(0):
            raise ValidationFailed("older_than", "must be a positive duration")
        if older_than > timedelta(weeks=PRUNE_MAX_WEEKS):
            raise ValidationFailed("older_than", f"must be at most {PRUNE_MAX_WEEKS}w (about 1000 years)")
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
            base = {**DEFAULTS} if replace else {name: getattr(task, name) for name in COLUMNS}
            stored = stored_date(task.trigger, task.spec, task.timezone, self.settings.default_timezone)
            values = self._prepare(base, fields, required=REQUIRED_FIELDS if replace else (), stored=stored)
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
        self,
        base: dict[str, Any],
        fields: Mapping[str, Any],
        *,
        required: Sequence[str],
        stored: datetime | None,
        accept_missed_date: bool = False,
    ) -> dict[str, Any]:
        """Merge ``fields`` into ``base`` column values, normalise and validate the result.

        ``stored`` is the date the row names now (an edit may keep a date long past).
        """
        unknown = sorted(set(fields) - set(TASK_FIELDS))
        if unknown:
            raise ValidationFailed(unknown[0], f"is not a task field; fields are {', '.join(TASK_FIELDS)}")
        for name in required:
            if fields.get(name) in (None, ""):
                raise ValidationFailed(name, "is required")
        values = dict(base)
        for name, value in fields.items():
            if name != "trigger_args":
                values[name] = coerce_field(name, value)
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
            values.update(self._schedule_options(schedule, fields["trigger_args"], values.get("timezone")))
            schedule_field = "trigger_args"
        elif fields.get("spec") is not None or fields.get("trigger") is not None:
            # A schedule given as trigger + spec replaces the one trigger_args described.
            values.update(dict.fromkeys(SCHEDULE_OPTION_COLUMNS))
        if schedule_field == "spec" and required:
            for name in ("trigger", "spec"):
                if not values.get(name):
                    raise ValidationFailed(name, "is required (or give the schedule as trigger_args)")
        try:
            job = self._validate(values)
            if not accept_missed_date:
                refuse_missed_date(job, stored, utcnow())
        except ValidationFailed as exc:
            if exc.field == "spec" and schedule_field != "spec":
                raise ValidationFailed(schedule_field, exc.reason) from None
            raise
        return {name: values[name] for name in COLUMNS}

    def _schedule_options(
        self, schedule: ScheduleArgs, given: Mapping[str, Any], timezone: str | None
    ) -> dict[str, Any]:
        """The option columns of a ``trigger_args`` schedule; dates read in the task's zone."""
        return option_columns(schedule, given, timezone or self.settings.default_timezone)

    def _validate(self, values: dict[str, Any]) -> ScheduledJob:
        """Normalise ``trigger``/``spec`` in place and check the row exactly as beat will."""
        with rows_checked():
            values["trigger"] = parse_trigger(values.get("trigger"))
            tz = parse_timezone(values.get("timezone"), self.settings.default_timezone)
            values["spec"] = normalise_spec(values["trigger"], values.get("spec") or "", tz)
            parse_extra(values.get("extra"))
        try:
            return self._compile(values)
        except ValidationFailed as exc:
            if exc.field in ("start_date", "end_date", "jitter_seconds", "cron_year", "cron_week"):
                name = {"jitter_seconds": "jitter", "cron_year": "year", "cron_week": "week"}.get(exc.field, exc.field)
                raise ValidationFailed(f"trigger_args.{name}", exc.reason) from None
            raise

    def _compile(self, row: Task | Mapping[str, Any]) -> ScheduledJob:
        """Compile a stored task, or the column values of one about to be written, as beat does."""
        values = row if isinstance(row, Mapping) else {name: getattr(row, name) for name in _ROW_COLUMNS}
        anchor = values.get("update_at") or values.get("create_at")
        # The shape of a ``store.ROW_COLUMNS`` result row, which is what compile_row reads.
        beat_row = SimpleNamespace(**{name: values.get(name) for name in _ROW_COLUMNS}, anchor=anchor)
        if beat_row.id is None:
            beat_row.id = 0
        with rows_checked():
            return compile_row(
                beat_row,
                registered=self.registered,
                default_timezone=self.settings.default_timezone,
                default_grace_seconds=self.settings.misfire_grace_seconds,
            )

    def _find(self, session: Session, ref: str | int) -> Task:
        ref_text = str(ref).strip()
        # Only numbers the id column can hold are looked up as ids (a larger one is a driver error).
        as_id = ref_text.isascii() and ref_text.isdigit() and len(ref_text) <= 10 and int(ref_text) <= MAX_TASK_ID
        task = session.get(Task, int(ref_text)) if as_id else None
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
        return task_view(task, fires, error)


# --- helpers ------------------------------------------------------------------------------------


#: Task columns beat reads to schedule a row (``scheduler.store.ROW_COLUMNS``).
_ROW_COLUMNS = (*COLUMNS, "id", "status", "create_at", "update_at", "last_run_at", "next_run_at", "last_error")


def _publishing_app(settings: Settings) -> Any:
    """A Celery app with tablebeat's Celery configuration, publishing to ``settings.broker_url``."""
    from celery import Celery

    app = Celery("tablebeat", set_as_current=False)
    app.conf.update(celery_config(settings))
    # A request must not hang while kombu retries an unreachable broker: fail fast,
    # the run stays recorded and beat's outbox sweep publishes it later.
    app.conf.broker_transport_options = {**(app.conf.broker_transport_options or {}), "max_retries": 1}
    enable_signing(app)  # run-now messages signed like beat's, when TABLEBEAT_SIGNING_* are set
    return app


def _status_after_edit(current: str, enabled: bool) -> str:
    """What ``status`` says right after an operator edit; beat refines it within a second."""
    if not enabled:
        return TaskStatus.PAUSED.value
    if current in (TaskStatus.PAUSED.value, TaskStatus.ERROR.value):
        return TaskStatus.READY.value
    return current


def _choice(name: str, value: str, enum_type: Any) -> str:
    allowed = [member.value for member in enum_type]
    if value not in allowed:
        raise ValidationFailed(name, f"unknown value {value!r}; use one of {', '.join(allowed)}")
    return value

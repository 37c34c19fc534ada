"""Does a delivered message own the run row it names, and does the row's task still want it?

A message names its run by ``sub_task_id``; anyone who can publish to the broker can write
any number there.  The worker's guarded start therefore also matches, in the same UPDATE,
the row's trace ID and task id and the task's job name against the message (issue 10 item 5),
and, for fires beat scheduled, that the task still exists, is enabled and has the config the
fire was claimed with (issue 9 item 3: a change wins over a claim).  Only when that UPDATE
moves nothing does the worker read the row to say why: forged, changed, or already taken.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Integer, String, bindparam, exists, func, or_, select

from models import UTCDateTime
from models.tables import execute_task_table, task_table

_RUNS = execute_task_table
_TASKS = task_table

#: Config stamps are compared with this tolerance: SQLite keeps milliseconds (and none at all
#: for a row's default ``CURRENT_TIMESTAMP``), MySQL/PostgreSQL microseconds.
STAMP_TOLERANCE = timedelta(milliseconds=1)


@dataclass(frozen=True, slots=True)
class RunMessage:
    """What a delivered message says about the run it wants to start."""

    run_id: int
    #: The trace ID the message carries (kwarg or header); None when it carries none.
    trace_id: str | None
    #: The Celery task name, i.e. the job.
    job_name: str
    #: ``tablebeat_task_id`` header (beat and run-now set it).
    task_id: int | None = None
    #: The task's config stamp (``coalesce(update_at, create_at)``) when beat claimed the fire;
    #: None for runs nobody scheduled (run now, ``.delay()``), which no later edit cancels.
    config_at: datetime | None = None
    #: A run this worker created itself for a message without a run (``.delay()``, Flower).
    manual: bool = False


class Refusal(enum.Enum):
    """Why a start was refused after the guarded UPDATE moved nothing."""

    FORGED = "forged"
    DELETED = "deleted"
    PAUSED = "paused"
    RESCHEDULED = "rescheduled"


def config_stamp() -> ColumnElement[Any]:
    """The task column a fire's config stamp is read from (beat: ``ScheduledJob.anchor``)."""
    return func.coalesce(_TASKS.c.update_at, _TASKS.c.create_at)


#: The run's task, running this job: the conditions on ``task`` of every guard (as EXISTS or as a join).
_TASK_RUNS_JOB = (_TASKS.c.id == _RUNS.c.task_id, _TASKS.c.execute_func == bindparam("m_job", type_=String()))


def _task_wants(*more: ColumnElement[bool]) -> ColumnElement[bool]:
    """EXISTS: the run's task still exists and runs this job (and ``more``)."""
    return exists(select(_TASKS.c.id).where(*_TASK_RUNS_JOB, *more))


_MINE = _RUNS.c.trace_id == bindparam("m_trace", type_=String())
_OF_TASK = _RUNS.c.task_id == bindparam("m_task", type_=Integer())
_UNCHANGED = (
    _TASKS.c.is_valid == 1,
    or_(
        config_stamp().between(bindparam("m_lo", type_=UTCDateTime()), bindparam("m_hi", type_=UTCDateTime())),
        # Edited only after the fire's instant: the fire belonged to the config it was claimed with.
        config_stamp() > _RUNS.c.scheduled_at,
    ),
)
#: Prebuilt guards (bound per message by :func:`guard_params`): no statement is built per run.
GUARDS_MANUAL: tuple[ColumnElement[bool], ...] = (_MINE,)
GUARDS_RUN_NOW: tuple[ColumnElement[bool], ...] = (_MINE, _OF_TASK, _task_wants())
GUARDS_SCHEDULED: tuple[ColumnElement[bool], ...] = (_MINE, _OF_TASK, _task_wants(*_UNCHANGED))
#: GUARDS_RUN_NOW and GUARDS_SCHEDULED with the task's conditions as a join: a statement using them
#: reads ``task`` beside ``execute_task`` (a multi-table UPDATE); the task is the run's, by primary
#: key, so the same rows match as with the EXISTS.
JOINED_GUARDS_RUN_NOW: tuple[ColumnElement[bool], ...] = (_MINE, _OF_TASK, *_TASK_RUNS_JOB)
JOINED_GUARDS_SCHEDULED: tuple[ColumnElement[bool], ...] = (*JOINED_GUARDS_RUN_NOW, *_UNCHANGED)
_GUARDS_NO_TASK_ID = (_MINE, _task_wants())
_GUARDS_NO_TASK_ID_SCHEDULED = (_MINE, _task_wants(*_UNCHANGED))


def row_guards(message: RunMessage) -> tuple[ColumnElement[bool], ...]:
    """WHERE conditions of the start UPDATE on ``execute_task``: the row is this message's, and
    (for scheduled fires) its task is still the one the fire was claimed for.  Bind them with
    :func:`guard_params`."""
    if message.manual:
        return GUARDS_MANUAL
    if message.task_id is None:
        return _GUARDS_NO_TASK_ID if message.config_at is None else _GUARDS_NO_TASK_ID_SCHEDULED
    return GUARDS_RUN_NOW if message.config_at is None else GUARDS_SCHEDULED


def guard_params(message: RunMessage) -> dict[str, Any]:
    """Values of the guards' bound parameters."""
    params: dict[str, Any] = {"m_trace": message.trace_id, "m_task": message.task_id, "m_job": message.job_name}
    if message.config_at is not None:
        params["m_lo"] = message.config_at - STAMP_TOLERANCE
        params["m_hi"] = message.config_at + STAMP_TOLERANCE
    return params


@dataclass(frozen=True, slots=True)
class RowFacts:
    """The run row and its task, read after a refused start to explain it."""

    task_id: int
    trace_id: str | None
    status: str
    attempt: int
    scheduled_at: datetime | None
    task_exists: bool
    execute_func: str | None
    is_valid: int | None
    stamp: datetime | None


def refusal(message: RunMessage, row: RowFacts, *, fresh: bool) -> tuple[Refusal, str] | None:
    """Why ``row`` must not be started by ``message``; None when it may be (as far as identity goes).

    ``fresh``: the row is a pending first attempt (a change since the claim cancels it; a retry
    or a redelivery of a started run is not cancelled by an edit).
    """
    if message.trace_id is None or row.trace_id != message.trace_id:
        return Refusal.FORGED, f"its trace ID {message.trace_id!r} is not the run's"
    if message.manual:
        return None
    if message.task_id is not None and row.task_id != message.task_id:
        return Refusal.FORGED, f"it names task {message.task_id}, the run belongs to task {row.task_id}"
    if not row.task_exists:
        return Refusal.DELETED, "deleted: the task was deleted after this fire was claimed"
    changed = (
        message.config_at is not None
        and (row.stamp is None or abs(row.stamp - message.config_at) > STAMP_TOLERANCE)
        # An edit after the fire's instant does not cancel it (the fire belonged to the old config).
        and not (row.stamp is not None and row.scheduled_at is not None and row.stamp > row.scheduled_at)
    )
    if fresh and message.config_at is not None:
        if row.is_valid != 1:
            return Refusal.PAUSED, "paused: the task was paused after this fire was claimed"
        if changed:
            return Refusal.RESCHEDULED, "rescheduled: the task was edited after this fire was claimed"
    if row.execute_func != message.job_name:
        if changed:
            return Refusal.RESCHEDULED, "rescheduled: the task was edited after this fire was claimed"
        return Refusal.FORGED, f"job {message.job_name!r} is not the task's job {row.execute_func!r}"
    return None


def read_facts(conn: Any, run_id: int) -> RowFacts | None:
    """The run row and its task (None when the run does not exist)."""
    row = conn.execute(
        select(
            _RUNS.c.task_id,
            _RUNS.c.trace_id,
            _RUNS.c.status,
            _RUNS.c.attempt,
            _RUNS.c.scheduled_at,
            _TASKS.c.id.label("tid"),
            _TASKS.c.execute_func,
            _TASKS.c.is_valid,
            config_stamp().label("stamp"),
        )
        .select_from(_RUNS.outerjoin(_TASKS, _TASKS.c.id == _RUNS.c.task_id))
        .where(_RUNS.c.id == run_id)
    ).first()
    if row is None:
        return None
    return RowFacts(
        task_id=int(row.task_id),
        trace_id=row.trace_id,
        status=row.status,
        attempt=int(row.attempt or 1),
        scheduled_at=row.scheduled_at,
        task_exists=row.tid is not None,
        execute_func=row.execute_func,
        is_valid=row.is_valid,
        stamp=row.stamp,
    )

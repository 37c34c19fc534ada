"""The console's read queries: every one bounded by an index and a LIMIT.

Writes go through :class:`service.tasks.TaskService`; these reads only shape pages.
With 100,000 tasks the jobs page costs a count, one ordered index scan of one page,
and one lookup of the page's last runs on ``uq_execute_task_fire (task_id, scheduled_at)``.
"""

from __future__ import annotations

import enum
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    and_,
    cast,
    func,
    literal_column,
    or_,
    select,
)
from sqlalchemy.types import Integer

from models import ExecuteTask, RunStatus, Task, TaskStatus
from service.paging import check_page_number

#: Run outcomes from worst to best: a timeline bucket takes the colour of its worst run.
SEVERITY = (
    RunStatus.FAILED.value,
    RunStatus.LOST.value,
    RunStatus.EXPIRED.value,
    RunStatus.RETRYING.value,
    RunStatus.SKIPPED.value,
    RunStatus.RUNNING.value,
    RunStatus.PENDING.value,
    RunStatus.SUCCESS.value,
)
FAILURES = frozenset({RunStatus.FAILED.value, RunStatus.LOST.value, RunStatus.EXPIRED.value})
PAGE_SIZES = (20, 50, 100)


class JobSort(str, enum.Enum):
    """Orders of the jobs page."""

    NEXT = "next"  # soonest next fire first; jobs with none (paused, done, broken) last
    KEY = "key"
    NEWEST = "newest"


_JOB_COLUMNS = (
    Task.id,
    Task.task_key,
    Task.desc,
    Task.execute_func,
    Task.trigger,
    Task.spec,
    Task.timezone,
    Task.is_valid,
    Task.status,
    Task.last_error,
    Task.next_run_at,
    Task.last_run_at,
    Task.last_status,
    Task.create_at,
    Task.update_at,
)


@dataclass(frozen=True, slots=True)
class JobFilter:
    """What the jobs page shows: a status, a text in task_key or desc, an order, a page."""

    status: str | None = None
    text: str | None = None
    sort: JobSort = JobSort.NEXT
    page: int = 1
    per_page: int = 50

    @classmethod
    def from_query(cls, params: Any) -> JobFilter:
        """Lenient parsing of query parameters: anything unknown falls back to the default.

        :raises ValidationFailed: naming ``page`` when its offset is beyond what the database takes.
        """
        status = params.get("status") or None
        if status not in {s.value for s in TaskStatus}:
            status = None
        text = (params.get("q") or "").strip()[:255] or None
        try:
            sort = JobSort(params.get("sort") or JobSort.NEXT.value)
        except ValueError:
            sort = JobSort.NEXT
        page = _positive_int(params.get("page"), 1)
        per_page = _positive_int(params.get("per_page"), 50)
        per_page = per_page if per_page in PAGE_SIZES else 50
        check_page_number("page", page, per_page)  # the one value not defaulted: a 422 naming it
        return cls(status, text, sort, page, per_page)

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.per_page

    def query(self, **changes: Any) -> dict[str, Any]:
        """Query parameters of this filter (with ``changes``), for links and polling URLs."""
        values = {
            "status": self.status or "",
            "q": self.text or "",
            "sort": self.sort.value,
            "page": self.page,
            "per_page": self.per_page,
            **changes,
        }
        return {k: v for k, v in values.items() if v not in ("", None)}


@dataclass(frozen=True, slots=True)
class LastRun:
    """The latest run of a task with an outcome, and whether a newer one is under way."""

    status: str
    scheduled_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    #: Status of a newer run still pending or running, if there is one.
    in_flight: str | None = None

    @property
    def duration_seconds(self) -> float | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()


@dataclass(frozen=True, slots=True)
class JobsPage:
    rows: list[Any]
    total: int
    last_runs: dict[int, LastRun]

    def pages(self, per_page: int) -> int:
        return max(1, -(-self.total // per_page))


def jobs_page(conn: Connection, flt: JobFilter) -> JobsPage:
    """One page of tasks under ``flt``, the total count, and each row's last run."""
    conditions = _conditions(flt)
    total = conn.scalar(select(func.count()).select_from(Task).where(*conditions)) or 0
    if flt.sort is JobSort.NEXT:
        rows = _by_next_fire(conn, conditions, flt.per_page, flt.offset)
    else:
        order = (Task.task_key,) if flt.sort is JobSort.KEY else (Task.id.desc(),)
        query = select(*_JOB_COLUMNS).where(*conditions).order_by(*order).limit(flt.per_page).offset(flt.offset)
        rows = list(conn.execute(query))
    return JobsPage(rows, int(total), last_runs(conn, [row.id for row in rows]))


def _conditions(flt: JobFilter) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if flt.status:
        conditions.append(Task.status == flt.status)
    if flt.text:
        pattern = "%" + flt.text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        conditions.append(or_(Task.task_key.like(pattern, escape="\\"), Task.desc.like(pattern, escape="\\")))
    return conditions


def _by_next_fire(conn: Connection, conditions: list[ColumnElement[bool]], limit: int, offset: int) -> list[Any]:
    """Rows with a next fire by (next_run_at, id), then the rest by id.

    Two queries instead of ``ORDER BY next_run_at IS NULL, ...``: each walks an index in
    order and stops after one page, where the expression would sort every matching row.
    """
    scheduled = list(
        conn.execute(
            select(*_JOB_COLUMNS)
            .where(*conditions, Task.next_run_at.is_not(None))
            .order_by(Task.next_run_at, Task.id)
            .limit(limit)
            .offset(offset)
        )
    )
    if len(scheduled) == limit:
        return scheduled
    if scheduled:
        rest_offset = 0
    else:
        with_next = conn.scalar(
            select(func.count()).select_from(Task).where(*conditions, Task.next_run_at.is_not(None))
        )
        rest_offset = offset - int(with_next or 0)
    rest = conn.execute(
        select(*_JOB_COLUMNS)
        .where(*conditions, Task.next_run_at.is_(None))
        .order_by(Task.id)
        .limit(limit - len(scheduled))
        .offset(max(0, rest_offset))
    )
    return scheduled + list(rest)


def last_runs(conn: Connection, task_ids: Sequence[int]) -> dict[int, LastRun]:
    """The latest run of each task, all probes of the ``(task_id, scheduled_at)`` key.

    When the latest run is still pending or running, the one before it gives the outcome
    (one more probe per such task) and the newer one is reported as ``in_flight``.
    """
    if not task_ids:
        return {}
    latest = conn.execute(
        select(ExecuteTask.task_id, func.max(ExecuteTask.scheduled_at))
        .where(ExecuteTask.task_id.in_(task_ids))
        .group_by(ExecuteTask.task_id)
    ).all()
    pairs = [and_(ExecuteTask.task_id == tid, ExecuteTask.scheduled_at == at) for tid, at in latest if at]
    if not pairs:
        return {}
    found = {row.task_id: _last_run(row) for row in conn.execute(select(*_RUN_COLUMNS).where(or_(*pairs)))}
    for task_id, run in list(found.items()):
        if run.status in _IN_FLIGHT:
            before = conn.execute(
                select(*_RUN_COLUMNS)
                .where(ExecuteTask.task_id == task_id, ExecuteTask.scheduled_at < run.scheduled_at)
                .order_by(ExecuteTask.scheduled_at.desc())
                .limit(1)
            ).first()
            if before is not None and before.status not in _IN_FLIGHT:
                found[task_id] = _last_run(before, in_flight=run.status)
    return found


_RUN_COLUMNS = (
    ExecuteTask.task_id,
    ExecuteTask.status,
    ExecuteTask.scheduled_at,
    ExecuteTask.started_at,
    ExecuteTask.finished_at,
)
_IN_FLIGHT = frozenset({RunStatus.PENDING.value, RunStatus.RUNNING.value})


def _last_run(row: Any, in_flight: str | None = None) -> LastRun:
    return LastRun(row.status, row.scheduled_at, row.started_at, row.finished_at, in_flight)


def job_row(conn: Connection, task_id: int) -> Any | None:
    """One task's columns as the jobs page reads them."""
    return conn.execute(select(*_JOB_COLUMNS).where(Task.id == task_id)).first()


# --- time buckets --------------------------------------------------------------------------


def _bucket_of(conn: Connection, column: Any, start: datetime, bucket_s: int) -> ColumnElement[Any]:
    """SQL for ``floor((column - start) / bucket_s)``, in whole buckets, per dialect."""
    dialect = conn.dialect.name
    start_epoch = int(start.timestamp())
    seconds: ColumnElement[Any]
    if dialect in ("mysql", "mariadb"):
        # Values are naive UTC DATETIMEs: a difference from the epoch is zone-free.
        seconds = func.timestampdiff(literal_column("SECOND"), literal_column("'1970-01-01 00:00:00'"), column)
    elif dialect == "postgresql":
        seconds = cast(func.extract("epoch", column), Integer)
    else:
        seconds = cast(func.strftime("%s", column), Integer)
    return func.floor((seconds - start_epoch) / bucket_s)


def run_buckets(
    conn: Connection, task_ids: Sequence[int], start: datetime, end: datetime, bucket_s: int
) -> dict[int, dict[int, Counter[str]]]:
    """Runs of ``task_ids`` fired in [start, end): task id -> bucket number -> count by status."""
    if not task_ids:
        return {}
    inner = (
        select(
            ExecuteTask.task_id.label("task_id"),
            _bucket_of(conn, ExecuteTask.scheduled_at, start, bucket_s).label("bucket"),
            ExecuteTask.status.label("status"),
        )
        .where(
            ExecuteTask.task_id.in_(task_ids),
            ExecuteTask.scheduled_at >= start,
            ExecuteTask.scheduled_at < end,
        )
        .subquery()
    )
    rows = conn.execute(
        select(inner.c.task_id, inner.c.bucket, inner.c.status, func.count()).group_by(
            inner.c.task_id, inner.c.bucket, inner.c.status
        )
    )
    found: dict[int, dict[int, Counter[str]]] = {}
    for task_id, bucket, status, count in rows:
        found.setdefault(task_id, {}).setdefault(int(bucket), Counter())[status] += int(count)
    return found


def system_minutes(conn: Connection, start: datetime, minutes: int) -> list[tuple[int, int]]:
    """(runs, failures) recorded in each minute since ``start``, oldest first (``create_at`` index)."""
    inner = (
        select(
            _bucket_of(conn, ExecuteTask.create_at, start, 60).label("minute"),
            ExecuteTask.status.label("status"),
        )
        .where(ExecuteTask.create_at >= start, ExecuteTask.create_at < start + timedelta(minutes=minutes))
        .subquery()
    )
    counts = [[0, 0] for _ in range(minutes)]
    rows = conn.execute(select(inner.c.minute, inner.c.status, func.count()).group_by(inner.c.minute, inner.c.status))
    for minute, status, count in rows:
        index = int(minute)
        if 0 <= index < minutes:
            counts[index][0] += int(count)
            if status in FAILURES:
                counts[index][1] += int(count)
    return [(runs, failures) for runs, failures in counts]


def worst(statuses: Counter[str]) -> str:
    """The worst outcome among ``statuses`` (see :data:`SEVERITY`)."""
    for status in SEVERITY:
        if statuses.get(status):
            return status
    return next(iter(statuses), "pending")


def _positive_int(raw: Any, default: int) -> int:
    try:
        value = int(raw)
    except (TypeError, ValueError):
        return default
    return value if value >= 1 else default

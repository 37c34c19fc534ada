"""Every SQL statement of the beat side, in bulk where it matters.

Functions take an open ``Connection`` so the caller decides the transaction.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import Connection, Row, and_, bindparam, case, delete, exists, func, or_, select, update
from sqlalchemy.dialects import mysql, postgresql, sqlite

from models import ExecuteTask, RunStatus, Task, TaskChange, TaskStatus, WorkerHeartbeat

_RUNS = ExecuteTask.__table__
_TASKS = Task.__table__

#: Rows per statement for bulk writes: well inside every backend's parameter limit.
CHUNK_ROWS = 500

T = TypeVar("T")

#: Columns the beat needs to schedule a row.
ROW_COLUMNS = (
    Task.id,
    Task.task_key,
    Task.execute_func,
    Task.trigger,
    Task.spec,
    Task.args,
    Task.kwargs,
    Task.timezone,
    Task.queue,
    Task.max_instances,
    Task.misfire_grace_seconds,
    Task.expires_seconds,
    Task.start_date,
    Task.end_date,
    Task.jitter_seconds,
    Task.cron_year,
    Task.cron_week,
    Task.is_valid,
    Task.extra,
    Task.status,
    # Interval fires count from the last config edit; rows that never had one, from creation.
    func.coalesce(Task.update_at, Task.create_at).label("anchor"),
    Task.last_run_at,
    Task.next_run_at,
    Task.last_error,
)


def chunks(items: Sequence[T], size: int = CHUNK_ROWS) -> Iterator[Sequence[T]]:
    """Consecutive slices of at most ``size`` items."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


# --- reading the schedule -----------------------------------------------------------------


def load_enabled_rows(conn: Connection) -> Iterator[Row[Any]]:
    """Every row not paused (``is_valid`` other than 0 is compiled, so 2 or -1 becomes an error),
    with the columns of :data:`ROW_COLUMNS`, streamed in batches.

    Streaming keeps only one batch of result rows in memory while 100,000 are compiled.
    """
    result = conn.execute(select(*ROW_COLUMNS).where(Task.is_valid != 0).execution_options(yield_per=2000))
    yield from result


def load_rows(conn: Connection, task_ids: Iterable[int]) -> list[Row[Any]]:
    """The rows with these ids (enabled or not); missing ids were deleted."""
    rows: list[Row[Any]] = []
    for chunk in chunks(sorted(task_ids)):
        rows.extend(conn.execute(select(*ROW_COLUMNS).where(Task.id.in_(chunk))))
    return rows


def change_cursor(conn: Connection) -> int:
    """Id of the newest change-log row (0 when empty)."""
    return int(conn.scalar(select(func.coalesce(func.max(TaskChange.id), 0))) or 0)


@dataclass(slots=True)
class ChangeCursor:
    """Where a beat is in the change log, including ids it has not seen commit yet.

    Auto-increment ids are handed out at INSERT and become visible at COMMIT, so a long
    transaction can commit an id *below* one already read.  Ids skipped over are kept as
    ``gaps`` and probed again until ``GAP_WAIT_S`` has passed (rolled-back inserts leave
    permanent gaps; the periodic fingerprint check and full reload cover the rest).
    """

    last_id: int = 0
    gaps: dict[int, float] = field(default_factory=dict)
    #: Commit times (``changed_at``) of the changes the last read returned: edit pickup, for metrics.
    changed_at: list[datetime] = field(default_factory=list)


#: How long an unseen change-log id is waited for (an open transaction that long is rare).
GAP_WAIT_S = 600.0
#: At most this many gaps are tracked (a burst of rolled-back inserts must not grow memory).
MAX_GAPS = 10000


def read_changes(conn: Connection, cursor: ChangeCursor, now_m: float) -> set[int]:
    """Task ids changed since ``cursor`` (which is advanced in place).

    A primary-key range probe: costs the same for 100 or 100,000 tasks.
    """
    condition = TaskChange.id > cursor.last_id
    if cursor.gaps:
        condition = or_(condition, TaskChange.id.in_(list(cursor.gaps)))
    rows = conn.execute(
        select(TaskChange.id, TaskChange.task_id, TaskChange.changed_at).where(condition).order_by(TaskChange.id)
    ).all()
    cursor.changed_at = [row.changed_at for row in rows]
    changed: set[int] = set()
    for row in rows:
        change_id = int(row.id)
        changed.add(int(row.task_id))
        if cursor.gaps.pop(change_id, None) is not None:
            continue
        for missing in range(cursor.last_id + 1, change_id):
            if len(cursor.gaps) < MAX_GAPS:
                cursor.gaps[missing] = now_m
        cursor.last_id = max(cursor.last_id, change_id)
    for gap_id, since in list(cursor.gaps.items()):
        if now_m - since > GAP_WAIT_S:
            del cursor.gaps[gap_id]
    return changed


def fingerprint(conn: Connection, with_count: bool = True) -> tuple[Any, ...]:
    """A cheap summary of the table that moves with any insert, delete or config edit.

    ``MAX()`` alone is an index lookup (~0.1 ms); ``COUNT(*)`` walks an index (~6 ms at
    100,000 rows) and is only needed to notice deletes the change log missed (TRUNCATE,
    dropped triggers), so callers ask for it less often.  Two statements on purpose:
    combined with COUNT(*), MariaDB scans the table for the MAX() too.
    """
    newest = conn.execute(select(func.max(Task.update_at), func.max(Task.id))).one()
    count = conn.scalar(select(func.count()).select_from(Task)) if with_count else None
    return (count, *newest)


def prune_changes(conn: Connection, before: datetime) -> int:
    """Delete change-log rows older than ``before``, always keeping the newest; returns how many.

    Keeping the newest row stops a MySQL restart from reusing ids below a beat's cursor.
    """
    newest = change_cursor(conn)
    return conn.execute(delete(TaskChange).where(TaskChange.changed_at < before, TaskChange.id < newest)).rowcount or 0


# --- writing row state ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RowState:
    """System-written columns of one task row."""

    task_id: int
    status: str
    next_run_at: datetime | None
    last_error: str | None = None


def write_row_states(conn: Connection, states: Sequence[RowState]) -> None:
    """Write status / next_run_at / last_error of many rows in few statements."""
    _write_task_columns(
        conn,
        ((r.task_id, {"status": r.status, "next_run_at": r.next_run_at, "last_error": r.last_error}) for r in states),
    )


def _write_task_columns(conn: Connection, rows: Iterable[tuple[int, dict[str, Any]]]) -> None:
    """Set system-written columns of many task rows in few statements.

    Rows sharing their values (one spec, one anchor, one burst) get one ``WHERE id IN``
    update per chunk; the rest go as one executemany per set of columns.  ``update_at``
    is assigned to itself, which stops MySQL's ON UPDATE: system writes are not edits.
    """
    groups: dict[tuple[tuple[str, Any], ...], list[int]] = defaultdict(list)
    for task_id, values in rows:
        groups[tuple(sorted(values.items()))].append(task_id)
    singles: dict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
    for items, ids in groups.items():
        values = dict(items)
        if len(ids) == 1:
            singles[tuple(values)].append({"b_id": ids[0], **{f"b_{k}": v for k, v in values.items()}})
            continue
        if "status" in values:
            values["status"] = truthful_status(values["status"])
        for chunk in chunks(ids, 1000):
            conn.execute(update(_TASKS).where(_TASKS.c.id.in_(chunk)).values(**values, update_at=_TASKS.c.update_at))
    for columns, params in singles.items():
        assigned: dict[str, Any] = {c: bindparam(f"b_{c}") for c in columns}
        if "status" in assigned:
            assigned["status"] = truthful_status(assigned["status"])
        conn.execute(
            update(_TASKS)
            .where(_TASKS.c.id == bindparam("b_id"))
            .values({**assigned, "update_at": _TASKS.c.update_at}),
            params,
        )


def truthful_status(status: Any) -> Any:
    """``status`` as written, except ``ready`` reads ``doing`` while a run of the task is running.

    Claiming the next fire must not make a task with a run in progress look idle.
    """
    running = exists().where(_RUNS.c.status == RunStatus.RUNNING.value, _RUNS.c.task_id == _TASKS.c.id)
    if isinstance(status, str):
        return case((running, TaskStatus.DOING.value), else_=status) if status == TaskStatus.READY.value else status
    return case((and_(status == TaskStatus.READY.value, running), TaskStatus.DOING.value), else_=status)


def write_next_run_at(conn: Connection, pairs: Sequence[tuple[int, datetime | None]]) -> None:
    """Set ``next_run_at`` of many rows."""
    _write_task_columns(conn, ((task_id, {"next_run_at": next_run_at}) for task_id, next_run_at in pairs))


def mark_disabled_paused(conn: Connection) -> int:
    """Set ``status='paused'`` on every paused row (``is_valid = 0``) that does not say so yet."""
    return (
        conn.execute(
            update(Task)
            .where(Task.is_valid == 0, Task.status != TaskStatus.PAUSED.value)
            .values(status=TaskStatus.PAUSED.value, next_run_at=None, update_at=Task.update_at)
        ).rowcount
        or 0
    )


# --- claiming fires -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FireClaim:
    """One fire to claim: becomes one ``execute_task`` row if no other beat has it."""

    task_id: int
    scheduled_at: datetime
    trace_id: str
    celery_id: str
    next_run_at: datetime | None
    task_status: str
    skip_reason: str | None = None
    #: ``last_error`` for the task row: set when the task ends without running (a date job missed).
    task_error: str | None = None


def _insert_ignoring_duplicates(conn: Connection) -> Any:
    dialect = conn.dialect.name
    if dialect in ("mysql", "mariadb"):
        # A no-op assignment: the duplicate row stays as the winning beat wrote it.
        return mysql.insert(_RUNS).on_duplicate_key_update(claimed_by=_RUNS.c.claimed_by)
    if dialect == "postgresql":
        return postgresql.insert(_RUNS).on_conflict_do_nothing(index_elements=["task_id", "scheduled_at"])
    return sqlite.insert(_RUNS).on_conflict_do_nothing(index_elements=["task_id", "scheduled_at"])


def claim_fires(conn: Connection, claims: Sequence[FireClaim], token: str, now: datetime) -> dict[str, int]:
    """Insert the run rows of ``claims``; return ``trace_id -> run id`` for those this beat won.

    The unique ``(task_id, scheduled_at)`` makes the insert the claim: a fire another beat
    already inserted is silently kept as it is.  ``last_run_at``/``next_run_at`` of the
    won tasks are written in the same transaction.  One statement is compiled and
    executed many times (the driver batches it into multi-row inserts).
    """
    if not claims:
        return {}
    ordered = sorted(claims, key=lambda c: (c.task_id, c.scheduled_at))  # one lock order for every beat
    conn.execute(
        _insert_ignoring_duplicates(conn),
        [
            {
                "task_id": c.task_id,
                "scheduled_at": c.scheduled_at,
                "status": RunStatus.SKIPPED.value if c.skip_reason else RunStatus.PENDING.value,
                "result": c.skip_reason,
                "finished_at": now if c.skip_reason else None,
                "trace_id": c.trace_id,
                "celery_id": c.celery_id,
                "claimed_by": token,
                "extra": "{}",
                "attempt": 1,
                "create_at": now,
                "update_at": now,
            }
            for c in ordered
        ],
    )
    won: dict[str, int] = {}
    for chunk in chunks([c.trace_id for c in ordered], 1000):
        for row in conn.execute(select(_RUNS.c.id, _RUNS.c.trace_id).where(_RUNS.c.trace_id.in_(chunk))):
            won[row.trace_id] = int(row.id)
    write_fire_states(conn, [c for c in ordered if c.trace_id in won])
    return won


def write_fire_states(conn: Connection, claims: Sequence[FireClaim]) -> None:
    """Write last_run_at / next_run_at / status / last_status (and last_error) of the tasks whose fires were claimed."""
    _write_task_columns(conn, ((c.task_id, _fire_state(c)) for c in claims))


def _fire_state(claim: FireClaim) -> dict[str, Any]:
    values: dict[str, Any] = {
        "last_run_at": claim.scheduled_at,
        "next_run_at": claim.next_run_at,
        "status": claim.task_status,
        "last_status": RunStatus.SKIPPED.value if claim.skip_reason else RunStatus.PENDING.value,
    }
    if claim.task_error is not None:
        values["last_error"] = claim.task_error
    return values


def mark_published(conn: Connection, run_ids: Sequence[int], now: datetime) -> None:
    """Record that these runs' messages reached the broker."""
    for chunk in chunks(run_ids, 1000):
        conn.execute(
            update(ExecuteTask)
            .where(ExecuteTask.id.in_(chunk), ExecuteTask.published_at.is_(None))
            .values(published_at=now)
        )


@dataclass(frozen=True, slots=True)
class UnpublishedRun:
    """A claimed fire whose message never reached the broker."""

    run_id: int
    task_id: int
    scheduled_at: datetime
    trace_id: str
    celery_id: str


def take_unpublished(
    conn: Connection, older_than: datetime, token: str, now: datetime, limit: int = 5000
) -> list[UnpublishedRun]:
    """Re-claim ``pending`` runs left unpublished (beat crashed or broker down) for republishing.

    Each row is taken with a compare-and-set on ``claimed_by`` so two beats sweeping at
    the same time never both republish it.
    """
    candidates = conn.execute(
        select(ExecuteTask.id, ExecuteTask.claimed_by)
        .where(
            ExecuteTask.status == RunStatus.PENDING.value,
            ExecuteTask.published_at.is_(None),
            ExecuteTask.update_at < older_than,
        )
        .limit(limit)
    ).all()
    taken: list[int] = []
    for row in candidates:
        owner_matches = (
            ExecuteTask.claimed_by.is_(None) if row.claimed_by is None else ExecuteTask.claimed_by == row.claimed_by
        )
        moved = conn.execute(
            update(ExecuteTask)
            .where(ExecuteTask.id == row.id, ExecuteTask.published_at.is_(None), owner_matches)
            .values(claimed_by=token, update_at=now)
        ).rowcount
        if moved:
            taken.append(int(row.id))
    if not taken:
        return []
    rows = conn.execute(
        select(
            ExecuteTask.id, ExecuteTask.task_id, ExecuteTask.scheduled_at, ExecuteTask.trace_id, ExecuteTask.celery_id
        ).where(ExecuteTask.id.in_(taken))
    )
    return [UnpublishedRun(int(r.id), int(r.task_id), r.scheduled_at, r.trace_id, r.celery_id) for r in rows]


def unpublish_pending(conn: Connection, published_before: datetime) -> int:
    """Clear ``published_at`` of runs still ``pending`` that were published before ``published_before``.

    Used after a broker outage (a Redis restart without persistence drops its queues): the
    outbox sweep then publishes them again. Returns how many rows it touched.
    """
    return (
        conn.execute(
            update(ExecuteTask)
            .where(
                ExecuteTask.status == RunStatus.PENDING.value,
                ExecuteTask.published_at.is_not(None),
                ExecuteTask.published_at < published_before,
            )
            .values(published_at=None)
        ).rowcount
        or 0
    )


def skip_unpublished(conn: Connection, run_ids: Sequence[int], reason: str, now: datetime) -> None:
    """Record claimed, never-published runs as ``skipped`` with ``reason`` (their task is gone or paused)."""
    for chunk in chunks(run_ids, 1000):
        conn.execute(
            update(ExecuteTask)
            .where(
                ExecuteTask.id.in_(chunk),
                ExecuteTask.status == RunStatus.PENDING.value,
                ExecuteTask.published_at.is_(None),
            )
            .values(status=RunStatus.SKIPPED.value, result=reason, finished_at=now)
        )


def still_claimed(conn: Connection, run_ids: Sequence[int], token: str) -> set[int]:
    """Which of ``run_ids`` are still this beat's and unpublished (after a stall, others may have taken them)."""
    held: set[int] = set()
    for chunk in chunks(run_ids, 1000):
        held.update(
            int(r.id)
            for r in conn.execute(
                select(ExecuteTask.id).where(
                    ExecuteTask.id.in_(chunk), ExecuteTask.claimed_by == token, ExecuteTask.published_at.is_(None)
                )
            )
        )
    return held


# --- lost runs --------------------------------------------------------------------------------------


def mark_lost_runs(conn: Connection, dead_before: datetime, now: datetime) -> list[Row[Any]]:
    """Runs ``running`` on a worker whose heartbeat stopped before ``dead_before`` become ``lost``."""
    dead = select(WorkerHeartbeat.hostname).where(WorkerHeartbeat.seen_at < dead_before)
    alive = select(WorkerHeartbeat.hostname)
    # The worker restarted (same hostname) after the run began: the run died with the old process.
    restarted = (
        select(WorkerHeartbeat.hostname)
        .where(WorkerHeartbeat.hostname == ExecuteTask.worker, WorkerHeartbeat.started_at > ExecuteTask.started_at)
        .exists()
    )
    stuck = conn.execute(
        select(ExecuteTask.id, ExecuteTask.task_id, ExecuteTask.trace_id, ExecuteTask.worker).where(
            ExecuteTask.status == RunStatus.RUNNING.value,
            or_(
                ExecuteTask.worker.in_(dead),
                and_(
                    ExecuteTask.worker.not_in(alive),
                    ExecuteTask.started_at < dead_before,
                ),
                restarted,
            ),
        )
    ).all()
    marked: list[Row[Any]] = []
    for run in stuck:  # one guarded write each (rare): a run that finished meanwhile is not reported lost
        if conn.execute(
            update(ExecuteTask)
            .where(ExecuteTask.id == run.id, ExecuteTask.status == RunStatus.RUNNING.value)
            .values(
                status=RunStatus.LOST.value,
                running_slot=None,
                finished_at=now,
                error="worker stopped sending heartbeats while the run was in progress",
            )
        ).rowcount:
            marked.append(run)
    return marked


def release_idle_doing(conn: Connection) -> int:
    """Tasks shown ``doing`` with no run ``running`` go back to ``ready``.

    Workers write ``doing``/``ready`` behind the run rows; a worker killed in between would
    otherwise leave a task ``doing`` for ever.
    """
    running = select(_RUNS.c.task_id).where(_RUNS.c.status == RunStatus.RUNNING.value)
    return (
        conn.execute(
            update(_TASKS)
            .where(_TASKS.c.status == TaskStatus.DOING.value, _TASKS.c.id.not_in(running))
            .values(status=TaskStatus.READY.value, update_at=_TASKS.c.update_at)
        ).rowcount
        or 0
    )


def heartbeat_cutoff(now: datetime, dead_seconds: float) -> datetime:
    """The instant before which a silent worker counts as dead."""
    return now - timedelta(seconds=dead_seconds)

"""Every SQL statement of the beat side, in bulk where it matters.

Functions take an open ``Connection`` so the caller decides the transaction.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Connection, Row, and_, bindparam, case, delete, exists, func, or_, select, update

from models import RunStatus, TaskStatus
from models.tables import execute_task_table, task_change_table, task_table
from models.worker_liveness import dead_before, run_worker_died
from scheduler import claim_arrays, claim_literals

_RUNS = execute_task_table
_TASKS = task_table

#: Rows (or ids of an IN list) per statement: well inside every backend's parameter limit
#: (SQLite's is 32766), large enough that a burst of 10,000 fires takes ten statements.
CHUNK_ROWS = 1000

T = TypeVar("T")

#: Columns the beat needs to schedule a row.
ROW_COLUMNS = (
    task_table.c.id,
    task_table.c.task_key,
    task_table.c.execute_func,
    task_table.c.trigger,
    task_table.c.spec,
    task_table.c.args,
    task_table.c.kwargs,
    task_table.c.timezone,
    task_table.c.queue,
    task_table.c.max_instances,
    task_table.c.misfire_grace_seconds,
    task_table.c.expires_seconds,
    task_table.c.start_date,
    task_table.c.end_date,
    task_table.c.jitter_seconds,
    task_table.c.cron_year,
    task_table.c.cron_week,
    task_table.c.is_valid,
    task_table.c.extra,
    task_table.c.status,
    # Interval fires count from the last config edit; rows that never had one, from creation.
    func.coalesce(task_table.c.update_at, task_table.c.create_at).label("anchor"),
    task_table.c.last_run_at,
    task_table.c.next_run_at,
    task_table.c.last_error,
)


def chunks(items: Sequence[T], size: int = CHUNK_ROWS) -> Iterator[Sequence[T]]:
    """Consecutive slices of at most ``size`` items."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


# --- reading the schedule -----------------------------------------------------------------


def load_rows(conn: Connection, task_ids: Iterable[int]) -> list[Row[Any]]:
    """The rows with these ids (enabled or not); missing ids were deleted."""
    rows: list[Row[Any]] = []
    for chunk in chunks(sorted(task_ids)):
        rows.extend(conn.execute(select(*ROW_COLUMNS).where(task_table.c.id.in_(chunk))))
    return rows


def change_cursor(conn: Connection) -> int:
    """Id of the newest change-log row (0 when empty)."""
    return int(conn.scalar(select(func.coalesce(func.max(task_change_table.c.id), 0))) or 0)


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
    #: The last read stopped at its limit: more changes are waiting.
    more: bool = False

    def settled_upto(self) -> int:
        """Every id at or below this one has been read (ids still awaited are above it)."""
        return min(self.gaps) - 1 if self.gaps else self.last_id


#: The idle probe (also run as SQL text on a raw cursor by scheduler/idle_poll.py).
CHANGES_AFTER = (
    select(task_change_table.c.id, task_change_table.c.task_id, task_change_table.c.changed_at)
    .where(task_change_table.c.id > bindparam("after"))
    .order_by(task_change_table.c.id)
    .limit(bindparam("lim"))
)

#: The idle poll's probe: is there any change after ``after``? (one column, one row: the reader
#: parses less than for :data:`CHANGES_AFTER`, whose rows only the full poll needs).  ``ORDER BY``
#: keeps it on the primary key: without it PostgreSQL chose a sequential scan for ``LIMIT 1``, which
#: read the whole log (50 ms with 1,000,000 changes) whenever nothing had changed.
ANY_CHANGE_AFTER = (
    select(task_change_table.c.id)
    .where(task_change_table.c.id > bindparam("after"))
    .order_by(task_change_table.c.id)
    .limit(1)
)

#: How long an unseen change-log id is waited for (an open transaction that long is rare).
GAP_WAIT_S = 600.0
#: At most this many gaps are tracked (a burst of rolled-back inserts must not grow memory).
MAX_GAPS = 10000


def read_changes(conn: Connection, cursor: ChangeCursor, now_m: float, limit: int | None = None) -> set[int]:
    """Task ids changed since ``cursor`` (which is advanced in place), at most ``limit`` log rows.

    A primary-key range probe: costs the same for 100 or 1,000,000 tasks.
    """
    if cursor.gaps:
        condition = or_(task_change_table.c.id > cursor.last_id, task_change_table.c.id.in_(list(cursor.gaps)))
        stmt = (
            select(task_change_table.c.id, task_change_table.c.task_id, task_change_table.c.changed_at)
            .where(condition)
            .order_by(task_change_table.c.id)
        )
        rows = conn.execute(stmt if limit is None else stmt.limit(limit)).all()
    else:  # the idle poll: one prebuilt statement (its cache key is computed once, not every 0.5 s)
        rows = conn.execute(CHANGES_AFTER, {"after": cursor.last_id, "lim": limit or 2**31 - 1}).all()
    cursor.changed_at = [row.changed_at for row in rows]
    cursor.more = limit is not None and len(rows) >= limit
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


def prune_changes(conn: Connection, before: datetime, settled: int) -> int:
    """Delete settled change-log rows older than ``before``, always keeping the newest; returns how many.

    Keeping the newest row stops a MySQL restart from reusing ids below a beat's cursor;
    rows above ``settled`` are kept until applied (a beat starting later reads them).
    """
    newest = min(change_cursor(conn), settled + 1)
    return (
        conn.execute(
            delete(task_change_table).where(task_change_table.c.changed_at < before, task_change_table.c.id < newest)
        ).rowcount
        or 0
    )


# --- writing row state ------------------------------------------------------------------------


def write_task_columns(conn: Connection, rows: Iterable[tuple[int, dict[str, Any], dict[str, Any]]]) -> int:
    """Set system-written columns of many task rows, each guarded, in few statements; returns rows written.

    Each item is ``(task_id, guard, values)``: the row is written only while every ``guard``
    column still holds the value the write was computed from (NULL matches NULL), so a write
    based on a stale read never undoes a concurrent claim.  Rows sharing guard and values (one
    burst, one anchor) get one ``WHERE id IN`` update per chunk; the rest one executemany per
    shape.  ``update_at`` is assigned to itself, which stops MySQL's ON UPDATE: system writes
    are not edits.
    """
    groups: dict[tuple[tuple[tuple[str, Any], ...], tuple[tuple[str, Any], ...]], list[int]] = defaultdict(list)
    for task_id, guard, values in rows:
        if values:
            groups[(tuple(sorted(guard.items())), tuple(sorted(values.items())))].append(task_id)
    written = 0
    singles: dict[tuple[tuple[str, ...], tuple[str, ...]], list[dict[str, Any]]] = defaultdict(list)
    for (guard_items, value_items), ids in groups.items():
        guard, values = dict(guard_items), dict(value_items)
        if len(ids) == 1:
            params = {"b_id": ids[0], **{f"g_{k}": v for k, v in guard.items()}}
            params.update({f"b_{k}": v for k, v in values.items()})
            singles[(tuple(guard), tuple(values))].append(params)
            continue
        conditions = [_TASKS.c[k].is_not_distinct_from(v) for k, v in guard.items()]
        if "status" in values:
            values["status"] = truthful_status(values["status"])
        for chunk in chunks(ids):
            written += (
                conn.execute(
                    update(_TASKS)
                    .where(_TASKS.c.id.in_(chunk), *conditions)
                    .values(**values, update_at=_TASKS.c.update_at)
                ).rowcount
                or 0
            )
    for (guard_cols, columns), batch in singles.items():
        conditions = [_TASKS.c[k].is_not_distinct_from(bindparam(f"g_{k}")) for k in guard_cols]
        assigned: dict[str, Any] = {c: bindparam(f"b_{c}") for c in columns}
        if "status" in assigned:
            assigned["status"] = truthful_status(assigned["status"])
        written += (
            conn.execute(
                update(_TASKS)
                .where(_TASKS.c.id == bindparam("b_id"), *conditions)
                .values({**assigned, "update_at": _TASKS.c.update_at}),
                batch,
            ).rowcount
            or 0
        )
    return written


def truthful_status(status: Any) -> Any:
    """``status`` as written, except ``ready`` reads ``doing`` while a run of the task is running.

    Claiming the next fire must not make a task with a run in progress look idle.
    """
    running = exists().where(_RUNS.c.status == RunStatus.RUNNING.value, _RUNS.c.task_id == _TASKS.c.id)
    if isinstance(status, str):
        return case((running, TaskStatus.DOING.value), else_=status) if status == TaskStatus.READY.value else status
    return case((and_(status == TaskStatus.READY.value, running), TaskStatus.DOING.value), else_=status)


# --- claiming fires -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FireClaim:
    """One fire to claim: becomes one ``execute_task`` row if no other beat has it."""

    task_id: int
    scheduled_at: datetime
    trace_id: str
    celery_id: str
    skip_reason: str | None = None


def _insert_ignoring_duplicates(conn: Connection) -> Any:
    # Each dialect's module is imported here, when used: only the one the engine loaded (importing
    # all three cost ~0.1 s of beat's start).
    dialect = conn.dialect.name
    if dialect in ("mysql", "mariadb"):
        from sqlalchemy.dialects import mysql

        # A no-op assignment: the duplicate row stays as the winning beat wrote it.
        return mysql.insert(_RUNS).on_duplicate_key_update(claimed_by=_RUNS.c.claimed_by)
    if dialect == "postgresql":
        from sqlalchemy.dialects import postgresql

        return postgresql.insert(_RUNS).on_conflict_do_nothing(index_elements=["task_id", "scheduled_at"])
    from sqlalchemy.dialects import sqlite

    return sqlite.insert(_RUNS).on_conflict_do_nothing(index_elements=["task_id", "scheduled_at"])


def claim_fires(conn: Connection, claims: Sequence[FireClaim], token: str, now: datetime) -> dict[str, int]:
    """Insert the run rows of ``claims``; return ``trace_id -> run id`` for those this beat won.

    The unique ``(task_id, scheduled_at)`` makes the insert the claim: a fire another beat
    already inserted is silently kept as it is.  The caller writes the task rows' new
    ``last_run_at``/``next_run_at`` in the same transaction.  The run ids come back from the
    insert itself (``RETURNING``, batched into multi-row inserts): a duplicate returns nothing
    (PostgreSQL, SQLite) or the other beat's row with its own trace id (MariaDB), so only this
    beat's trace ids count as won.
    """
    if not claims:
        return {}
    ordered = sorted(claims, key=lambda c: (c.task_id, c.scheduled_at))  # one lock order for every beat
    ours = {c.trace_id for c in ordered}
    bulk = _bulk_statements(conn)
    if bulk is not None:
        returned = bulk.insert_claims(conn, ordered, token, now)
        return {trace_id: run_id for run_id, trace_id in returned if trace_id in ours}
    rows = conn.execute(
        _insert_ignoring_duplicates(conn).returning(_RUNS.c.id, _RUNS.c.trace_id),
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
    return {trace_id: int(run_id) for run_id, trace_id in rows if trace_id in ours}


def _bulk_statements(conn: Connection) -> Any:
    """The claim's bulk statements for this driver (``claim_literals``: PyMySQL, ``claim_arrays``:
    psycopg), or None: SQLAlchemy's statements (SQLite, other drivers)."""
    for module in (claim_literals, claim_arrays):
        if module.applies(conn):
            return module
    return None


def mark_published(conn: Connection, run_ids: Sequence[int], now: datetime) -> None:
    """Record that these runs' messages reached the broker."""
    bulk = _bulk_statements(conn)
    if bulk is not None:
        bulk.mark_published(conn, run_ids, now)
        return
    for chunk in chunks(run_ids):
        conn.execute(
            update(execute_task_table)
            .where(execute_task_table.c.id.in_(chunk), execute_task_table.c.published_at.is_(None))
            .values(published_at=now)
        )


#: ``claimed_by`` of a run recorded by run-now (API, CLI, console) rather than claimed by a beat.
MANUAL_CLAIM = "manual"


@dataclass(frozen=True, slots=True)
class UnpublishedRun:
    """A claimed fire whose message never reached the broker."""

    run_id: int
    task_id: int
    scheduled_at: datetime
    trace_id: str
    celery_id: str
    #: A run asked for by run-now (``claimed_by`` was :data:`MANUAL_CLAIM`): it runs whatever the row's state.
    manual: bool = False


def take_unpublished(
    conn: Connection, older_than: datetime, token: str, now: datetime, limit: int = 5000
) -> list[UnpublishedRun]:
    """Re-claim ``pending`` runs left unpublished (beat crashed or broker down) for republishing.

    Each row is taken with a compare-and-set on ``claimed_by`` so two beats sweeping at
    the same time never both republish it.
    """
    candidates = conn.execute(
        select(execute_task_table.c.id, execute_task_table.c.claimed_by)
        .where(
            execute_task_table.c.status == RunStatus.PENDING.value,
            execute_task_table.c.published_at.is_(None),
            execute_task_table.c.update_at < older_than,
            # A claim made far ahead of a burst is not stale before its instant has passed.
            execute_task_table.c.scheduled_at < older_than,
        )
        .limit(limit)
    ).all()
    taken: list[int] = []
    manual = {int(row.id) for row in candidates if row.claimed_by == MANUAL_CLAIM}
    for row in candidates:
        owner_matches = (
            execute_task_table.c.claimed_by.is_(None)
            if row.claimed_by is None
            else execute_task_table.c.claimed_by == row.claimed_by
        )
        moved = conn.execute(
            update(execute_task_table)
            .where(execute_task_table.c.id == row.id, execute_task_table.c.published_at.is_(None), owner_matches)
            .values(claimed_by=token, update_at=now)
        ).rowcount
        if moved:
            taken.append(int(row.id))
    if not taken:
        return []
    rows = conn.execute(
        select(
            execute_task_table.c.id,
            execute_task_table.c.task_id,
            execute_task_table.c.scheduled_at,
            execute_task_table.c.trace_id,
            execute_task_table.c.celery_id,
        ).where(execute_task_table.c.id.in_(taken))
    )
    return [
        UnpublishedRun(int(r.id), int(r.task_id), r.scheduled_at, r.trace_id, r.celery_id, int(r.id) in manual)
        for r in rows
    ]


def take_claims_of(conn: Connection, owners: Sequence[str], token: str, now: datetime) -> list[UnpublishedRun]:
    """Take over the unpublished ``pending`` runs claimed by the beats ``owners`` (dead or frozen).

    Each row moves with a compare-and-set on ``claimed_by``, so of several beats taking over
    at once each run goes to one.
    """
    taken: list[int] = []
    for owner in owners:
        ids = list(
            conn.scalars(
                select(execute_task_table.c.id).where(
                    execute_task_table.c.claimed_by == owner,
                    execute_task_table.c.published_at.is_(None),
                    execute_task_table.c.status == RunStatus.PENDING.value,
                )
            )
        )
        for chunk in chunks(ids):
            conn.execute(
                update(execute_task_table)
                .where(
                    execute_task_table.c.id.in_(chunk),
                    execute_task_table.c.claimed_by == owner,
                    execute_task_table.c.published_at.is_(None),
                )
                .values(claimed_by=token, update_at=now)
            )
        taken.extend(ids)
    if not taken:
        return []
    runs: list[UnpublishedRun] = []
    for chunk in chunks(taken):
        rows = conn.execute(
            select(
                execute_task_table.c.id,
                execute_task_table.c.task_id,
                execute_task_table.c.scheduled_at,
                execute_task_table.c.trace_id,
                execute_task_table.c.celery_id,
            ).where(
                execute_task_table.c.id.in_(chunk),
                execute_task_table.c.claimed_by == token,
                execute_task_table.c.published_at.is_(None),
            )
        )
        runs.extend(UnpublishedRun(int(r.id), int(r.task_id), r.scheduled_at, r.trace_id, r.celery_id) for r in rows)
    return runs


def unpublish_pending(conn: Connection, published_before: datetime) -> int:
    """Clear ``published_at`` of runs still ``pending`` that were published before ``published_before``.

    Used after a broker outage (a Redis restart without persistence drops its queues): the
    outbox sweep then publishes them again. Returns how many rows it touched.
    """
    return (
        conn.execute(
            update(execute_task_table)
            .where(
                execute_task_table.c.status == RunStatus.PENDING.value,
                execute_task_table.c.published_at.is_not(None),
                execute_task_table.c.published_at < published_before,
            )
            .values(published_at=None)
        ).rowcount
        or 0
    )


def skip_unpublished(conn: Connection, run_ids: Sequence[int], reason: str, now: datetime) -> None:
    """Record claimed, never-published runs as ``skipped`` with ``reason`` (their task is gone or paused)."""
    for chunk in chunks(run_ids):
        conn.execute(
            update(execute_task_table)
            .where(
                execute_task_table.c.id.in_(chunk),
                execute_task_table.c.status == RunStatus.PENDING.value,
                execute_task_table.c.published_at.is_(None),
            )
            .values(status=RunStatus.SKIPPED.value, result=reason, finished_at=now)
        )


#: Run ids re-checked per statement after a stall, as one primary-key range when they are dense.
RECHECK_ROWS = 5000


def still_claimed(conn: Connection, run_ids: Sequence[int], token: str) -> set[int]:
    """Which of ``run_ids`` are still this beat's and unpublished (after a stall, others may have taken them).

    A burst's runs have nearly consecutive ids: each block of them is read as one primary-key range
    (``id BETWEEN``, two parameters, compiled once) instead of an ``IN`` list of 1,000 ids per
    statement, whose compiling and parameter conversion took most of a 100,000-fire burst's publish
    on PostgreSQL. Sparse ids (the range would read more than twice the rows asked about) keep ``IN``.
    """
    held: set[int] = set()
    for block in chunks(sorted(run_ids), RECHECK_ROWS):
        lo, hi = block[0], block[-1]
        if hi - lo + 1 <= 2 * len(block):
            wanted = set(block)
            rows = conn.execute(_RECHECK_RANGE, {"lo": lo, "hi": hi})
            held.update(int(r.id) for r in rows if r.id in wanted and r.claimed_by == token and r.published_at is None)
            continue
        for chunk in chunks(block):
            rows = conn.execute(_RECHECK.where(execute_task_table.c.id.in_(chunk)))
            held.update(int(r.id) for r in rows if r.claimed_by == token and r.published_at is None)
    return held


# Looked up by primary key alone, the rest checked in Python: with the owner and published_at in the
# WHERE clause, PostgreSQL (statistics not yet analysed after a burst's claims) scanned the
# (claimed_by, published_at) index, every run of the burst per chunk of 1,000: minutes for 100,000.
_RECHECK = select(execute_task_table.c.id, execute_task_table.c.claimed_by, execute_task_table.c.published_at)
_RECHECK_RANGE = _RECHECK.where(execute_task_table.c.id.between(bindparam("lo"), bindparam("hi")))


# --- lost runs --------------------------------------------------------------------------------------


def mark_lost_runs(conn: Connection, dead_before: datetime, now: datetime) -> list[Row[Any]]:
    """Runs ``running`` on a dead worker (``models.workers.run_worker_died``) become ``lost``."""
    stuck = conn.execute(
        select(
            execute_task_table.c.id,
            execute_task_table.c.task_id,
            execute_task_table.c.trace_id,
            execute_task_table.c.worker,
        ).where(execute_task_table.c.status == RunStatus.RUNNING.value, run_worker_died(dead_before))
    ).all()
    marked: list[Any] = []
    for run in stuck:  # one guarded write each (rare): a run that finished meanwhile is not reported lost
        if conn.execute(
            update(execute_task_table)
            .where(execute_task_table.c.id == run.id, execute_task_table.c.status == RunStatus.RUNNING.value)
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


#: The instant before which a silent worker counts as dead.
heartbeat_cutoff = dead_before

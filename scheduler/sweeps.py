"""The run invariant's beat-side sweeps: no ``execute_task`` row stays ``pending`` for ever.

Every run is final (``success``, ``failed``, ``skipped``, ``lost``, ``expired``) within a bound,
whatever happens to its message (docs/reliability.md, "The run invariant"):

- a run still ``pending`` ``pending_republish_seconds`` after its publish (its message lost to a
  broker restart or ``FLUSHDB``, or not taken yet) is published once more; the worker's guarded
  start keeps it a single run if both copies arrive;
- a run still ``pending`` ``pending_expire_seconds`` after its instant is closed ``expired`` with
  the reason, and alerted; a copy of its message that turns up later finds it final and is dropped.

Each function is one or two indexed statements; beat calls them from housekeeping.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, exists, literal_column, or_, select, update

from models import RunStatus, TaskStatus
from models.tables import execute_task_table, task_table, worker_heartbeat_table
from scheduler.store import chunks

#: ``extra`` of a run beat claimed, and of one this sweep has republished (at most once).
CLAIMED_EXTRA = "{}"
REPUBLISHED_EXTRA = '{"republished": true}'


def republish_stale(conn: Connection, published_before: datetime, limit: int = 5000) -> int:
    """Mark ``pending`` runs published before ``published_before`` (and never republished) unpublished,
    so the outbox sweep publishes them again; returns how many."""
    ids = [
        int(r.id)
        for r in conn.execute(
            select(execute_task_table.c.id)
            .where(
                execute_task_table.c.status == RunStatus.PENDING.value,
                # Implied (a fire is published at its instant or later), and what bounds the read to
                # the old runs of ix_execute_task_status_scheduled (status, scheduled_at, published_at).
                execute_task_table.c.scheduled_at < published_before,
                execute_task_table.c.published_at < published_before,
                execute_task_table.c.extra == CLAIMED_EXTRA,
            )
            .limit(limit)
        )
    ]
    if not ids:
        return 0
    return (
        conn.execute(
            update(execute_task_table)
            .where(execute_task_table.c.id.in_(ids), execute_task_table.c.status == RunStatus.PENDING.value)
            .values(published_at=None, extra=REPUBLISHED_EXTRA)
        ).rowcount
        or 0
    )


@dataclass(frozen=True, slots=True)
class ExpiredRun:
    """A run closed because it never started."""

    run_id: int
    task_id: int
    trace_id: str | None
    task_key: str | None
    queue: str | None


def expire_unstarted(
    conn: Connection, scheduled_before: datetime, now: datetime, limit: int = 5000
) -> list[ExpiredRun]:
    """Close ``pending`` runs whose instant is before ``scheduled_before``: ``expired`` with the reason."""
    rows = conn.execute(
        select(
            execute_task_table.c.id,
            execute_task_table.c.task_id,
            execute_task_table.c.trace_id,
            task_table.c.task_key,
            task_table.c.queue,
        )
        .join(task_table, task_table.c.id == execute_task_table.c.task_id, isouter=True)
        .where(
            execute_task_table.c.status == RunStatus.PENDING.value, execute_task_table.c.scheduled_at < scheduled_before
        )
        .limit(limit)
    ).all()
    closed: list[ExpiredRun] = []
    for row in rows:  # one guarded write each (rare): a run a worker started meanwhile keeps running
        reason = (
            f"expired: not started by {now.isoformat(timespec='seconds')}: its message was lost, no live worker "
            f"consumes queue {row.queue or 'celery'!r}, or the workers were busy for that long"
        )
        if conn.execute(
            update(execute_task_table)
            .where(execute_task_table.c.id == row.id, execute_task_table.c.status == RunStatus.PENDING.value)
            .values(status=RunStatus.EXPIRED.value, result=reason, finished_at=now)
        ).rowcount:
            closed.append(ExpiredRun(int(row.id), int(row.task_id), row.trace_id, row.task_key, row.queue))
    return closed


NO_CONSUMER_PREFIX = "runs wait on queue "
#: Rows noted so: the pattern is literal SQL, the predicate of the partial index ``ix_task_queue_note``
#: (migration 0009; a bound parameter would not match it), so finding notes reads only noted rows.
NOTED = task_table.c.last_error.like(literal_column(f"'{NO_CONSUMER_PREFIX}%'"))


def no_consumer_message(queue: str) -> str:
    """``last_error`` of a task whose runs wait on a queue no live worker consumes."""
    return f"{NO_CONSUMER_PREFIX}{queue!r}, which no live worker consumes (start a worker with -Q {queue})"


def _queue_name(queue: str | None, default_queue: str) -> str:
    """The queue a task's runs go to: its ``queue`` column, or the default when blank."""
    return (queue or "").strip() or default_queue


@dataclass(frozen=True, slots=True)
class UnconsumedQueue:
    """A task whose runs wait on a queue no live worker consumes."""

    task_id: int
    task_key: str
    queue: str


def mark_unconsumed_queues(
    conn: Connection, alive_after: datetime, waiting_before: datetime, default_queue: str
) -> list[UnconsumedQueue]:
    """Say on each task row (``last_error``) when its runs wait on a queue no live worker consumes, once;
    clear that note when a worker consumes the queue again.  Returns the tasks newly noted.

    Workers record their queues with their heartbeat; a live worker that recorded none (an older
    version) might consume anything, so then nothing is said.
    """
    live = [
        r.queues
        for r in conn.execute(
            select(worker_heartbeat_table.c.queues).where(worker_heartbeat_table.c.seen_at >= alive_after)
        )
    ]
    if any(q is None for q in live):
        return []
    consumed = {name for queues in live for name in queues.split(",") if name}
    # The tasks first, from the pending runs alone (``ix_execute_task_status_scheduled``). As one semi-join,
    # MariaDB walked every run of each task through the (task_id, ...) index: O(run history), 0.17 s
    # at 325,000 runs and growing by the fire rate.
    task_ids = list(
        conn.scalars(
            select(execute_task_table.c.task_id)
            .where(
                execute_task_table.c.status == RunStatus.PENDING.value,
                execute_task_table.c.scheduled_at < waiting_before,
            )
            .distinct()
            .limit(1000)
        )
    )
    waiting = (
        conn.execute(
            select(task_table.c.id, task_table.c.task_key, task_table.c.queue, task_table.c.last_error).where(
                task_table.c.id.in_(task_ids)
            )
        ).all()
        if task_ids
        else []
    )
    noted: list[UnconsumedQueue] = []
    by_queue: dict[str, list[int]] = {}
    for row in waiting:
        queue = _queue_name(row.queue, default_queue)
        if queue in consumed or row.last_error == no_consumer_message(queue):
            continue
        by_queue.setdefault(queue, []).append(int(row.id))
        noted.append(UnconsumedQueue(int(row.id), row.task_key, queue))
    # One statement per queue, not per task: a sweep noting 1,000 tasks one UPDATE each held beat
    # for 0.3-0.7 s, and the fires due meanwhile went out that late.
    for queue, ids in by_queue.items():
        conn.execute(
            update(task_table)
            .where(task_table.c.id.in_(ids))
            .values(last_error=no_consumer_message(queue), update_at=task_table.c.update_at)
        )
    stale = conn.execute(select(task_table.c.id, task_table.c.queue).where(NOTED)).all()
    cleared = [int(t.id) for t in stale if _queue_name(t.queue, default_queue) in consumed]
    for chunk in chunks(cleared):
        conn.execute(
            update(task_table)
            .where(task_table.c.id.in_(chunk), NOTED)
            .values(last_error=None, update_at=task_table.c.update_at)
        )
    return noted


#: What every sweep of housekeeping acts on: a run ``pending`` or ``running``, a task row shown
#: ``doing``, a no-consumer note.  Three index lookups (``ix_execute_task_status``, ``ix_task_status``,
#: ``ix_task_queue_note``).  No expanding ``IN``: the idle beat runs it compiled once on a raw cursor
#: (``scheduler/idle_poll.py``).
ANYTHING_OPEN = select(
    or_(
        exists().where(
            or_(
                execute_task_table.c.status == RunStatus.PENDING.value,
                execute_task_table.c.status == RunStatus.RUNNING.value,
            )
        ),
        exists().where(task_table.c.status == TaskStatus.DOING.value),
        exists().where(NOTED),
    )
)


def anything_to_sweep(conn: Connection) -> bool:
    """Whether any sweep has something to act on; when not (an idle scheduler), housekeeping is
    this one statement instead of eight."""
    return bool(conn.scalar(ANYTHING_OPEN))

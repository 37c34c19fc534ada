"""The ``task`` table as the timeline: due rows found through the index on ``next_run_at``.

Beat holds no copy of the schedule.  Every row carries its next instant in ``next_run_at``
(written by beat when the row is created or edited, and when a fire is claimed); what is
due is an index range scan, locked with ``FOR UPDATE SKIP LOCKED`` on MariaDB/MySQL and
PostgreSQL so several beats divide the due rows instead of all trying each one.  Also here:
the settled-change-log cursor and the beat liveness table.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, bindparam, delete, exists, func, insert, select, update

from models import RunStatus
from models.tables import beat_node_table, execute_task_table, schedule_cursor_table, task_table
from scheduler.store import ANY_CHANGE_AFTER, ROW_COLUMNS

SETTLED = "settled"


def due_rows(conn: Connection, horizon: datetime, limit: int) -> list[Row[Any]]:
    """Up to ``limit`` enabled rows whose ``next_run_at`` is at or before ``horizon``, earliest first.

    The rows are locked until the transaction ends; rows another beat has locked are skipped
    (SQLite has a single writer and no row locks: the unique run key still decides).
    """
    stmt = (
        select(*ROW_COLUMNS)
        .where(task_table.c.next_run_at <= horizon, task_table.c.is_valid == 1)
        .order_by(task_table.c.next_run_at)
        .limit(limit)
    )
    if conn.dialect.name != "sqlite":
        stmt = stmt.with_for_update(skip_locked=True)
    return list(conn.execute(stmt))


# Statements of the idle path are built once: their cache keys are computed once, and
# scheduler/idle_poll.py compiles STAMP and DEAD once to SQL text for its raw cursor.
_NEXT_DUE = (
    select(task_table.c.next_run_at)
    .where(task_table.c.next_run_at.is_not(None), task_table.c.is_valid == 1)
    .order_by(task_table.c.next_run_at)
    .limit(1)
)
STAMP = (
    update(beat_node_table).where(beat_node_table.c.token == bindparam("b_token")).values(seen_at=bindparam("b_now"))
)
#: Other beats silent since ``b_since`` that hold claimed, unpublished fires (what a take-over takes:
#: ``store.take_claims_of``).  A beat holding none stamps rarely (``scheduler/liveness.py``): its
#: silence loses nothing.  One index lookup per silent beat (``ix_execute_task_claimed``).
DEAD = select(beat_node_table.c.token).where(
    beat_node_table.c.seen_at < bindparam("b_since"),
    beat_node_table.c.token != bindparam("b_token"),
    exists().where(
        execute_task_table.c.claimed_by == beat_node_table.c.token,
        execute_task_table.c.published_at.is_(None),
        execute_task_table.c.status == RunStatus.PENDING.value,
    ),
)
#: The idle poll as one statement: the first change-log id after ``after`` and one silent beat
#: holding claims (each NULL when there is none).
PROBE_AND_DEAD = select(ANY_CHANGE_AFTER.scalar_subquery(), DEAD.limit(1).scalar_subquery())


def next_due_at(conn: Connection) -> datetime | None:
    """The earliest ``next_run_at`` of an enabled row (the first entry of the index)."""
    return conn.scalar(_NEXT_DUE)


def count_due_until(conn: Connection, horizon: datetime, cap: int) -> int:
    """How many enabled rows are due at or before ``horizon`` (an index range, counted up to ``cap``)."""
    due = (
        select(task_table.c.id)
        .where(task_table.c.next_run_at <= horizon, task_table.c.is_valid == 1)
        .limit(cap)
        .subquery()
    )
    return int(conn.scalar(select(func.count()).select_from(due)) or 0)


def count_scheduled(conn: Connection) -> int:
    """Enabled rows with a next instant (an index range scan: for the metric, not for scheduling)."""
    return int(
        conn.scalar(
            select(func.count())
            .select_from(task_table)
            .where(task_table.c.next_run_at.is_not(None), task_table.c.is_valid == 1)
        )
        or 0
    )


def rows_for_update(conn: Connection, task_ids: Sequence[int]) -> list[Row[Any]]:
    """The rows with these ids, locked (waiting for a claim in progress) so a settle never undoes a claim."""
    stmt = select(*ROW_COLUMNS).where(task_table.c.id.in_(sorted(task_ids))).order_by(task_table.c.id)
    if conn.dialect.name != "sqlite":
        stmt = stmt.with_for_update()
    return list(conn.execute(stmt))


def rows_after(conn: Connection, after_id: int, batch: int = 5000) -> list[Any]:
    """The next ``batch`` rows above ``after_id`` in id order (the one-time settle of a never-settled
    table reads one batch per short transaction: a reader held open while the batches are settled
    sits idle in its transaction, and beat's sessions are ended by the server after the dead time)."""
    return list(
        conn.execute(select(*ROW_COLUMNS).where(task_table.c.id > after_id).order_by(task_table.c.id).limit(batch))
    )


def rows_edited_since(conn: Connection, since: datetime | None, after_id: int, limit: int) -> list[Any]:
    """Rows with a config edit after ``since`` or an id above ``after_id`` (index range scans).

    The safety net for edits the change log did not name (triggers dropped): normally empty.
    """
    rows = list(
        conn.execute(select(*ROW_COLUMNS).where(task_table.c.id > after_id).order_by(task_table.c.id).limit(limit))
    )
    if since is not None:
        seen = {int(r.id) for r in rows}
        edited = conn.execute(select(*ROW_COLUMNS).where(task_table.c.update_at > since).limit(limit))
        rows.extend(r for r in edited if int(r.id) not in seen)
    return rows


#: ``MAX(update_at)`` and ``MAX(id)`` of ``task``: the safety net's marks.
NEWEST_MARKS = select(func.max(task_table.c.update_at), func.max(task_table.c.id))


def newest_marks(conn: Connection) -> tuple[datetime | None, int]:
    """``MAX(update_at)`` and ``MAX(id)``: two index lookups."""
    newest, top = conn.execute(NEWEST_MARKS).one()
    return newest, int(top or 0)


# --- the settled cursor ----------------------------------------------------------------------


def settled_change_id(conn: Connection) -> int | None:
    """Every change-log id up to this one has been applied; None: the table was never settled."""
    row = conn.execute(select(schedule_cursor_table.c.change_id).where(schedule_cursor_table.c.name == SETTLED)).first()
    return None if row is None or row.change_id is None else int(row.change_id)


def advance_settled(conn: Connection, change_id: int) -> None:
    """Move the settled cursor forward to ``change_id`` (never back)."""
    moved = conn.execute(
        update(schedule_cursor_table)
        .where(
            schedule_cursor_table.c.name == SETTLED,
            (schedule_cursor_table.c.change_id.is_(None)) | (schedule_cursor_table.c.change_id < change_id),
        )
        .values(change_id=change_id)
    ).rowcount
    if (
        not moved
        and conn.scalar(
            select(func.count()).select_from(schedule_cursor_table).where(schedule_cursor_table.c.name == SETTLED)
        )
        == 0
    ):
        conn.execute(insert(schedule_cursor_table).values(name=SETTLED, change_id=change_id))


# --- beat liveness ---------------------------------------------------------------------------


def stamp_beat(conn: Connection, token: str, now: datetime) -> None:
    """Record that beat ``token`` is alive at ``now``."""
    if not conn.execute(STAMP, {"b_token": token, "b_now": now}).rowcount:
        conn.execute(insert(beat_node_table).values(token=token, seen_at=now, started_at=now))


def dead_beats(conn: Connection, silent_since: datetime, token: str) -> list[str]:
    """Tokens of other beats that have not stamped since ``silent_since`` and hold unpublished claims."""
    return list(conn.scalars(DEAD, {"b_since": silent_since, "b_token": token}))


def forget_beats(conn: Connection, tokens: Sequence[str], silent_since: datetime) -> None:
    """Remove these beats' rows, unless one stamped again meanwhile (it was frozen, not dead)."""
    if tokens:
        conn.execute(
            delete(beat_node_table).where(
                beat_node_table.c.token.in_(list(tokens)), beat_node_table.c.seen_at < silent_since
            )
        )


def prune_beats(conn: Connection, silent_since: datetime) -> None:
    """Remove the rows of beats silent since ``silent_since`` (stopped without claims: nothing to take)."""
    conn.execute(delete(beat_node_table).where(beat_node_table.c.seen_at < silent_since))


def mark_stopped(conn: Connection, token: str, epoch: datetime) -> None:
    """A beat stopping cleanly: others take over its claims at once instead of after the silence."""
    conn.execute(update(beat_node_table).where(beat_node_table.c.token == token).values(seen_at=epoch))

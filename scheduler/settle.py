"""Settling rows: writing the ``next_run_at``/``status`` a row's configuration implies.

Beat settles the rows the change log names (and, once, every row of a table never settled);
after that a row's ``next_run_at`` is its place on the timeline and nothing about it is kept
in memory.  Each write is guarded by the ``last_run_at`` it was computed from, so it never
undoes a claim that committed in between.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from models import TaskStatus
from scheduler import store
from scheduler.errors import RowError
from scheduler.planning import first_pending_instant
from scheduler.rows import ScheduledJob, compile_row

logger = logging.getLogger("tablebeat.beat")


@dataclass(frozen=True, slots=True)
class Settled:
    """What settling one row decided (for callers that act on changes, such as cancelling claims)."""

    task_id: int
    task_key: str
    status: str
    next_run_at: datetime | None
    error: str | None = None


class Settler:
    """Compiles rows with the registry and defaults of this beat, and writes what they imply."""

    def __init__(self, registered: frozenset[str], default_timezone: str, default_grace_seconds: int) -> None:
        self.registered = registered
        self.default_timezone = default_timezone
        self.default_grace_seconds = default_grace_seconds

    def compile(self, row: Any) -> ScheduledJob:
        """A row as a :class:`ScheduledJob`; :raises RowError: naming the bad column."""
        return compile_row(
            row,
            registered=self.registered,
            default_timezone=self.default_timezone,
            default_grace_seconds=self.default_grace_seconds,
        )

    def decide(self, row: Any, announce: bool = False) -> Settled:
        """The status and next instant ``row`` implies (logging what an operator should know)."""
        task_id, key = int(row.id), str(row.task_key)
        if row.is_valid == 0:
            # Also when the API or CLI already wrote status 'paused': beat's log shows every pause.
            if announce:
                logger.info("tablebeat: task %r (%s) paused", key, task_id)
            return Settled(task_id, key, TaskStatus.PAUSED.value, None)
        try:
            job = self.compile(row)
            nxt = first_pending_instant(job)
        except (RowError, ArithmeticError, ValueError) as exc:
            # ArithmeticError/ValueError: date maths beyond what datetime holds, from values no check
            # foresaw; the row goes to 'error' like any bad row, and beat keeps serving the others.
            error = exc if isinstance(exc, RowError) else RowError("spec", f"cannot compute the next fire: {exc}")
            if announce or row.status != TaskStatus.ERROR.value or row.last_error != str(error):
                logger.error("tablebeat: task %r (id %s) cannot be scheduled: %s", key, task_id, error)
            return Settled(task_id, key, TaskStatus.ERROR.value, None, str(error))
        if nxt is None:  # a date job that has fired: remembered, not scheduled
            return Settled(task_id, key, TaskStatus.COMPLETED.value, None)
        if announce:
            logger.info("tablebeat: task %r scheduled, next fire %s", key, nxt)
        return Settled(task_id, key, TaskStatus.READY.value, nxt)

    def settle(self, conn: Connection, rows: Iterable[Any], announce: bool = False) -> list[Settled]:
        """Decide every row and write the ones whose columns disagree; returns the decisions."""
        decided: list[Settled] = []
        writes: list[tuple[int, dict[str, Any], dict[str, Any]]] = []
        for row in rows:
            settled = self.decide(row, announce)
            decided.append(settled)
            values = row_state(row, settled)
            if values:
                writes.append((settled.task_id, {"last_run_at": row.last_run_at}, values))
        store.write_task_columns(conn, writes)
        return decided


def row_state(row: Any, settled: Settled) -> dict[str, Any]:
    """The system columns to write so ``row`` says what ``settled`` decided (empty: it already does)."""
    values: dict[str, Any] = {}
    status_ok = row.status == settled.status or (
        row.status == TaskStatus.DOING.value and settled.status == TaskStatus.READY.value
    )
    if not status_ok:
        values["status"] = settled.status
    if row.next_run_at != settled.next_run_at:
        values["next_run_at"] = settled.next_run_at
    # A completed job keeps its last_error: it says why it ended without running (a missed date).
    if row.last_error != settled.error and settled.status != TaskStatus.COMPLETED.value:
        values["last_error"] = settled.error
    return values

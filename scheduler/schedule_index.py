"""The in-memory schedule: every enabled row compiled, and when each fires next.

Rows come in from the full load and from the change log; what the system must write
back to a row (status, next_run_at, last_error) is queued here and flushed by beat.
"""

from __future__ import annotations

import logging
import math
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection

from models import TaskStatus
from scheduler import store
from scheduler.errors import RowError
from scheduler.planning import first_pending_instant
from scheduler.rows import ScheduledJob, compile_row, config_revision
from scheduler.timeline import Timeline

logger = logging.getLogger("tablebeat.beat")


class ScheduleIndex:
    """Compiled jobs by task id, parked rows, the fire timeline and the row writes owed."""

    def __init__(self, registered: frozenset[str], default_timezone: str, default_grace_seconds: int) -> None:
        self.registered = registered
        self.default_timezone = default_timezone
        self.default_grace_seconds = default_grace_seconds
        self.jobs: dict[int, ScheduledJob] = {}
        #: Rows known but not scheduled (in error, or a date job done): id -> config revision.
        self.parked: dict[int, int] = {}
        self.timeline = Timeline()
        #: Status changes to write (error, paused, completed, ready again).
        self.row_states: dict[int, store.RowState] = {}
        #: Tasks whose next_run_at column must be set to their job's ``next_at``.
        self.next_runs: set[int] = set()

    def load_all(self, conn: Connection, now: datetime) -> None:
        """Apply every enabled row; forget tasks that are gone or disabled."""
        seen: set[int] = set()
        for row in store.load_enabled_rows(conn):
            seen.add(row.id)
            self.apply_row(row, now)
        for task_id in [tid for tid in self.jobs if tid not in seen]:
            self.drop(task_id)
        for task_id in [tid for tid in self.parked if tid not in seen]:
            del self.parked[task_id]

    def apply_changed(self, conn: Connection, task_ids: set[int]) -> None:
        """Re-read the rows the change log named: reschedule, pause or forget each."""
        now = datetime.now(UTC)
        found = {int(row.id): row for row in store.load_rows(conn, task_ids)}
        for task_id in task_ids:
            row = found.get(task_id)
            if row is None:
                if self.drop(task_id):
                    logger.info("tablebeat: task %s deleted; unscheduled", task_id)
            elif row.is_valid == 0:
                if self.drop(task_id):
                    logger.info("tablebeat: task %s (%s) paused", row.task_key, task_id)
                if row.status != TaskStatus.PAUSED.value:
                    self.row_states[task_id] = store.RowState(task_id, TaskStatus.PAUSED.value, None, None)
            else:
                self.apply_row(row, now, announce=True)

    def apply_row(self, row: Any, now: datetime, announce: bool = False) -> None:
        """Compile an enabled row and (re)schedule it, or park it with its error; queue the row's new state."""
        task_id = row.id
        current = self.jobs.get(task_id)
        if current is not None and current.matches(row):
            return
        if task_id in self.parked and self.parked[task_id] == config_revision(row):
            return
        try:
            job = compile_row(
                row,
                registered=self.registered,
                default_timezone=self.default_timezone,
                default_grace_seconds=self.default_grace_seconds,
            )
        except RowError as exc:
            self.drop(task_id)
            self.parked[task_id] = config_revision(row)
            logger.error("tablebeat: task %r (id %s) cannot be scheduled: %s", row.task_key, task_id, exc)
            if row.status != TaskStatus.ERROR.value or row.last_error != str(exc):
                self.row_states[task_id] = store.RowState(task_id, TaskStatus.ERROR.value, None, str(exc))
            return
        self.parked.pop(task_id, None)
        nxt = first_pending_instant(job)
        if nxt is None:
            # A date job that has fired: remembered, not scheduled.
            self.drop(task_id)
            self.parked[task_id] = config_revision(row)
            status = TaskStatus.COMPLETED.value
        else:
            self.jobs[task_id] = job
            self.schedule_next(job, nxt)
            status = TaskStatus.READY.value
        if announce:
            logger.info("tablebeat: task %r scheduled, next fire %s", job.task_key, nxt)
        status_ok = row.status == status or (row.status == TaskStatus.DOING.value and status == TaskStatus.READY.value)
        # A completed job keeps its last_error: it says why it ended without running (a missed date).
        if not status_ok or (row.last_error is not None and status != TaskStatus.COMPLETED.value):
            self.row_states[task_id] = store.RowState(task_id, status, nxt, None)
        elif row.next_run_at != nxt:
            self.next_runs.add(task_id)

    def schedule_next(self, job: ScheduledJob, nxt: datetime | None) -> None:
        """Set the job's next instant and file it in the timeline."""
        job.next_at = nxt
        if nxt is not None:
            self.timeline.add(job.task_id, nxt.timestamp())

    def drop(self, task_id: int) -> bool:
        """Unschedule a task; returns whether it was scheduled."""
        self.parked.pop(task_id, None)
        return self.jobs.pop(task_id, None) is not None

    def pop_due(self, horizon: float) -> list[ScheduledJob]:
        """Take every job whose next instant is at or before epoch time ``horizon``."""
        due: list[ScheduledJob] = []
        taken: set[int] = set()
        for second, task_id in self.timeline.take_until(horizon):
            job = self.jobs.get(task_id)
            if job is None or job.next_at is None or task_id in taken:
                continue  # deleted, paused or done, or a duplicate entry
            fire_ts = job.next_at.timestamp()
            if math.floor(fire_ts) != second:
                continue  # stale: the job was rescheduled into another second
            taken.add(task_id)
            if fire_ts <= horizon:
                due.append(job)
            else:
                self.timeline.add(task_id, fire_ts)  # later within the horizon's second
        return due

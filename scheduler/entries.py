"""Celery ``ScheduleEntry`` views of scheduled tasks, for readers of ``scheduler.schedule``.

Dispatch does not go through them: they exist so tools that list a beat's schedule
(and Celery's own API) see every task with its trigger.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from celery import beat, schedules

from scheduler.triggers import Trigger


class TableSchedule(schedules.BaseSchedule):  # type: ignore[misc]
    """A Celery schedule view of a tablebeat trigger (for ``scheduler.schedule`` readers)."""

    def __init__(self, trigger: Trigger, app: Any = None) -> None:
        super().__init__(app=app)
        self.trigger = trigger

    def remaining_estimate(self, last_run_at: datetime) -> timedelta:
        nxt = self.trigger.next_after(last_run_at)
        return timedelta(days=36500) if nxt is None else max(nxt - datetime.now(UTC), timedelta(0))

    def is_due(self, last_run_at: datetime) -> schedules.schedstate:
        remaining = self.remaining_estimate(last_run_at).total_seconds()
        return schedules.schedstate(remaining <= 0, max(remaining, 0.0))

    def __repr__(self) -> str:
        return f"<TableSchedule: {self.trigger.describe()}>"


class TableEntry(beat.ScheduleEntry):  # type: ignore[misc]
    """A read-only ``ScheduleEntry`` for one task row; dispatch does not go through it."""

    def __init__(self, *args: Any, task_id: int | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.task_id = task_id

    def __iter__(self) -> Any:
        yield from super().__iter__()
        yield "task_id", self.task_id

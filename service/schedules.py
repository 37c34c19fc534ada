"""A task row's schedule as the console shows it: its trigger, in words, and its next fires.

Read-only and forgiving: a row beat cannot schedule has no next fires and shows its raw spec.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from models import TaskStatus
from models.base import utcnow
from scheduler.errors import RowError
from scheduler.specs import parse_timezone
from scheduler.triggers import Trigger, build_trigger, next_fires


def row_trigger(row: Any, default_timezone: str) -> Trigger:
    """The trigger a task row (or view) describes. :raises RowError: when the row cannot be scheduled."""
    tz = parse_timezone(row.timezone, default_timezone)
    anchor = row.update_at or row.create_at or utcnow()
    return build_trigger(row.trigger, row.spec or "", tz, anchor)


def schedule_words(row: Any, default_timezone: str) -> str:
    """``every 5 minutes``, ``at 09:00 Mon-Fri (Asia/Shanghai)``; the raw spec when it cannot be read."""
    try:
        return row_trigger(row, default_timezone).describe()
    except (RowError, ValueError):
        return f"{row.trigger or '?'} {row.spec or ''}".strip()


def upcoming_fires(row: Any, default_timezone: str, now: datetime, count: int) -> list[datetime]:
    """The next ``count`` fires after ``now`` (and after the last run); none for a paused, done or broken row."""
    if not row.is_valid or row.status in (TaskStatus.COMPLETED.value, TaskStatus.ERROR.value):
        return []
    try:
        trigger = row_trigger(row, default_timezone)
    except (RowError, ValueError):
        return []
    floor = max(d for d in (now, row.last_run_at) if d is not None)
    return list(next_fires(trigger, floor, count))

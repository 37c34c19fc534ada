"""Building compiled jobs from row-shaped values, as beat reads them (``store.ROW_COLUMNS``)."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

from scheduler.rows import ScheduledJob, compile_row, registered_set

ANCHOR = datetime(2026, 1, 1, tzinfo=UTC)
REGISTERED = registered_set({"job"})


def row(**columns: Any) -> SimpleNamespace:
    """A ``task`` row as beat's query returns it; ``columns`` override the defaults."""
    values: dict[str, Any] = {
        "id": 1,
        "task_key": "t",
        "execute_func": "job",
        "trigger": "interval",
        "spec": "60",
        "args": "",
        "kwargs": "{}",
        "timezone": None,
        "queue": None,
        "max_instances": 1,
        "misfire_grace_seconds": None,
        "expires_seconds": None,
        "is_valid": 1,
        "extra": "{}",
        "status": "ready",
        "anchor": ANCHOR,
        "last_run_at": None,
        "next_run_at": None,
        "last_error": None,
    }
    values.update(columns)
    return SimpleNamespace(**values)


def job(**columns: Any) -> ScheduledJob:
    """The compiled job of :func:`row` (default zone UTC, default grace 60 s)."""
    return compile_row(row(**columns), registered=REGISTERED, default_timezone="UTC", default_grace_seconds=60)

"""Turning a ``task`` row into a schedulable job, or a clear per-column error."""

from __future__ import annotations

import functools
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timezone
from types import MappingProxyType
from typing import Any, Mapping

from scheduler.errors import RowError
from scheduler.specs import parse_args, parse_kwargs, parse_timezone, validate_job_name
from scheduler.triggers import Trigger, build_trigger

@dataclass(slots=True, eq=False)
class ScheduledJob:
    """An enabled, valid row, compiled for the scheduler. Mutable only in ``next_at``/``last_run_at``."""

    task_id: int
    task_key: str
    job_name: str
    trigger_kind: str
    trigger: Trigger
    args: tuple[Any, ...]
    kwargs: Mapping[str, Any]
    queue: str | None
    expires_seconds: int | None
    grace_seconds: int
    anchor: datetime
    last_run_at: datetime | None
    next_at: datetime | None = None
    stored_next_run_at: datetime | None = None
    stored_status: str | None = None
    stored_error: str | None = None
    #: Bumped whenever ``next_at`` changes; heap entries carrying an older value are stale.
    heap_seq: int = 0


@functools.lru_cache(maxsize=4096)
def _cached_args(text: str | None) -> tuple[Any, ...]:
    return parse_args(text)


@functools.lru_cache(maxsize=4096)
def _cached_kwargs(text: str | None) -> Mapping[str, Any]:
    # Read-only view: one parsed dict is shared by every row with the same text.
    return MappingProxyType(parse_kwargs(text))


def _positive_or_none(column: str, value: Any) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or value < 0:
        raise RowError(column, f"must be a non-negative integer, got {value!r}")
    return value


def compile_row(
    row: Any, *, registered: Collection[str], default_timezone: str, default_grace_seconds: int
) -> ScheduledJob:
    """Validate one row (a result row of ``store.ROW_COLUMNS``) into a :class:`ScheduledJob`.

    :raises RowError: naming the first column that is not acceptable.
    """
    if not row.task_key:
        raise RowError("task_key", "must not be empty")
    job_name = validate_job_name(row.execute_func, registered)
    tz = parse_timezone(row.timezone, default_timezone)
    anchor = row.update_at or row.create_at or datetime.now(timezone.utc)
    trigger_kind = (row.trigger or "").strip().lower()
    trigger = build_trigger(trigger_kind, row.spec or "", tz, anchor)
    args = _cached_args(row.args)
    kwargs = _cached_kwargs(row.kwargs)
    grace = _positive_or_none("misfire_grace_seconds", row.misfire_grace_seconds)
    expires = _positive_or_none("expires_seconds", row.expires_seconds)
    if expires == 0:
        raise RowError("expires_seconds", "must be positive (or NULL for no expiry)")
    max_instances = row.max_instances
    if max_instances is not None and (not isinstance(max_instances, int) or max_instances < 0):
        raise RowError("max_instances", f"must be a non-negative integer, got {max_instances!r}")
    queue = (row.queue or "").strip() or None
    return ScheduledJob(
        task_id=int(row.id),
        task_key=str(row.task_key),
        job_name=job_name,
        trigger_kind=trigger_kind,
        trigger=trigger,
        args=args,
        kwargs=kwargs,
        queue=queue,
        expires_seconds=expires,
        grace_seconds=default_grace_seconds if grace is None else grace,
        anchor=anchor,
        last_run_at=row.last_run_at,
        stored_next_run_at=row.next_run_at,
        stored_status=row.status,
        stored_error=row.last_error,
    )

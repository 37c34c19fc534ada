"""Turning a ``task`` row into a schedulable job, or a clear per-column error.

Rows that share a configuration (same job, trigger, spec, args, zone...) share one
compiled :class:`JobConfig`; only the identity and the anchor are per row.  That keeps
100,000 rows cheap to load and small in memory.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any
from zoneinfo import ZoneInfo

from scheduler.errors import RowError
from scheduler.specs import parse_args, parse_extra, parse_interval, parse_kwargs, parse_timezone, validate_job_name
from scheduler.trigger_window import TriggerWindow, WindowedTrigger, make_window
from scheduler.triggers import Trigger, build_trigger


@dataclass(frozen=True, slots=True, eq=False)
class JobConfig:
    """The validated, shared part of a row: everything but its identity and anchor.

    Compared by identity: equal rows get the very same object from the compile cache.
    """

    #: The raw column values this config was compiled from (see :func:`config_key`).
    key: tuple[Any, ...]
    job_name: str
    trigger_kind: str
    spec: str
    tz: ZoneInfo
    args: tuple[Any, ...]
    kwargs: Mapping[str, Any]
    queue: str | None
    expires_seconds: int | None
    grace_seconds: int
    max_instances: int
    #: start_date / end_date / jitter / year / week (``scheduler.trigger_window``); empty for most rows.
    window: TriggerWindow = TriggerWindow()


@dataclass(slots=True, eq=False)
class ScheduledJob:
    """An enabled, valid row, compiled for the scheduler."""

    task_id: int
    task_key: str
    config: JobConfig
    trigger: Trigger
    anchor: datetime
    last_run_at: datetime | None
    next_at: datetime | None = None

    def matches(self, row: Any) -> bool:
        """Whether ``row`` still describes this job (nothing to recompile)."""
        return self.task_key == row.task_key and self.anchor == row.anchor and self.config.key == config_key(row)

    @property
    def job_name(self) -> str:
        return self.config.job_name

    @property
    def trigger_kind(self) -> str:
        return self.config.trigger_kind

    @property
    def args(self) -> tuple[Any, ...]:
        return self.config.args

    @property
    def kwargs(self) -> Mapping[str, Any]:
        return self.config.kwargs

    @property
    def queue(self) -> str | None:
        return self.config.queue

    @property
    def expires_seconds(self) -> int | None:
        return self.config.expires_seconds

    @property
    def grace_seconds(self) -> int:
        return self.config.grace_seconds


def _non_negative(column: str, value: Any) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or value < 0:
        raise RowError(column, f"must be a non-negative integer, got {value!r}")
    return value


@functools.lru_cache(maxsize=8192)
def compile_config(
    execute_func: str | None,
    trigger: str | None,
    spec: str | None,
    args: str | None,
    kwargs: str | None,
    tz_name: str | None,
    queue: str | None,
    max_instances: Any,
    misfire_grace_seconds: Any,
    expires_seconds: Any,
    start_date: datetime | None,
    end_date: datetime | None,
    jitter_seconds: Any,
    cron_year: str | None,
    cron_week: str | None,
    registered: frozenset[str],
    default_timezone: str,
    default_grace_seconds: int,
) -> JobConfig:
    """Validate the shared columns of a row (cached: equal rows compile once).

    :raises RowError: naming the first column that is not acceptable.
    """
    job_name = sys.intern(validate_job_name(execute_func, registered))
    tz = parse_timezone(tz_name, default_timezone)
    trigger_kind = sys.intern((trigger or "").strip().lower())
    # Validate the spec now, with a fixed anchor; the row's own trigger is built per row.
    build_trigger(trigger_kind, spec or "", tz, datetime(2000, 1, 1, tzinfo=UTC))
    window = make_window(start_date, end_date, jitter_seconds, cron_year, cron_week)
    if (window.years or window.weeks) and trigger_kind != "cron":
        raise RowError("cron_year" if window.years else "cron_week", "applies to cron triggers only")
    grace = _non_negative("misfire_grace_seconds", misfire_grace_seconds)
    expires = _non_negative("expires_seconds", expires_seconds)
    if expires == 0:
        raise RowError("expires_seconds", "must be positive (or NULL for no expiry)")
    instances = _non_negative("max_instances", max_instances)
    return JobConfig(
        key=(
            execute_func,
            trigger,
            spec,
            args,
            kwargs,
            tz_name,
            queue,
            max_instances,
            misfire_grace_seconds,
            expires_seconds,
            start_date,
            end_date,
            jitter_seconds,
            cron_year,
            cron_week,
        ),
        job_name=job_name,
        trigger_kind=trigger_kind,
        spec=spec or "",
        tz=tz,
        args=parse_args(args),
        # Read-only view: one parsed dict is shared by every row with the same text.
        kwargs=MappingProxyType(parse_kwargs(kwargs)),
        queue=(queue or "").strip() or None,
        expires_seconds=expires,
        grace_seconds=default_grace_seconds if grace is None else grace,
        max_instances=1 if instances is None else instances,
        window=window,
    )


@functools.lru_cache(maxsize=65536)
def _trigger_for(config: JobConfig, anchor: datetime, seed: int = 0) -> Trigger:
    # Rows inserted by one statement share their anchor, so many share the trigger too.
    window = config.window
    if not window or config.trigger_kind == "date":
        return build_trigger(config.trigger_kind, config.spec, config.tz, anchor)
    if config.trigger_kind == "interval" and window.start is not None:
        # APScheduler: an interval with a start_date fires at start_date + k * interval, k >= 0.
        anchor = window.start - timedelta(seconds=parse_interval(config.spec))
    inner = build_trigger(config.trigger_kind, config.spec, config.tz, anchor)
    return WindowedTrigger(inner, window, config.tz, seed)


def compile_row(
    row: Any, *, registered: frozenset[str], default_timezone: str, default_grace_seconds: int
) -> ScheduledJob:
    """Validate one row (a result row of ``store.ROW_COLUMNS``) into a :class:`ScheduledJob`.

    :raises RowError: naming the first column that is not acceptable.
    """
    if not row.task_key:
        raise RowError("task_key", "must not be empty")
    if row.is_valid not in (0, 1):  # anything else would silently mean paused
        raise RowError("is_valid", f"must be 1 (enabled) or 0 (paused), got {row.is_valid!r}")
    _check_extra(row.extra)
    config = compile_config(*config_key(row), registered, default_timezone, default_grace_seconds)
    anchor = row.anchor or datetime.now(UTC)
    return ScheduledJob(
        task_id=int(row.id),
        task_key=str(row.task_key),
        config=config,
        # Jitter differs per task (seeded by its id); other rows share one trigger object.
        trigger=_trigger_for(config, anchor, int(row.id) if config.window.jitter_s else 0),
        anchor=anchor,
        last_run_at=row.last_run_at,
    )


@functools.lru_cache(maxsize=4096)
def _check_extra(text: str | None) -> None:
    # Cached: nearly every row holds '{}' or one of a few shapes; only validity matters to beat.
    parse_extra(text)


def config_key(row: Any) -> tuple[Any, ...]:
    """The raw config columns of ``row``, in :func:`compile_config`'s order."""
    return (
        row.execute_func,
        row.trigger,
        row.spec,
        row.args,
        row.kwargs,
        row.timezone,
        row.queue,
        row.max_instances,
        row.misfire_grace_seconds,
        row.expires_seconds,
        # Window columns (migration 0006); a row read before it has none.
        getattr(row, "start_date", None),
        getattr(row, "end_date", None),
        getattr(row, "jitter_seconds", None),
        getattr(row, "cron_year", None),
        getattr(row, "cron_week", None),
    )


def config_revision(row: Any) -> int:
    """Hash of everything whose change means the row must be recompiled."""
    return hash((row.task_key, row.anchor, row.is_valid, row.extra, config_key(row)))


def registered_set(names: Collection[str]) -> frozenset[str]:
    """The registry as a hashable set (it is part of the compile cache key)."""
    return frozenset(names)

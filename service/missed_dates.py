"""Refusing a date job whose date is already past by more than its misfire grace.

Beat would only record such a fire ``skipped`` (``docs/reliability.md``), so the API and
the CLI say so at once, naming ``spec``.  An edit that keeps the stored date (a new
description of a date job that ran long ago) is not refused.
"""

from __future__ import annotations

from datetime import datetime

from scheduler.errors import RowError
from scheduler.rows import ScheduledJob
from scheduler.specs import parse_date, parse_timezone, parse_trigger
from scheduler.triggers import DateTrigger
from service.errors import ValidationFailed


def stored_date(trigger: str | None, spec: str | None, timezone: str | None, default_tz: str) -> datetime | None:
    """The instant a stored row's date trigger names (None for other triggers or unreadable rows)."""
    try:
        if parse_trigger(trigger) != "date":
            return None
        return parse_date(spec, parse_timezone(timezone, default_tz))
    except RowError:
        return None


def refuse_missed_date(job: ScheduledJob, stored: datetime | None, now: datetime) -> None:
    """:raises ValidationFailed: naming ``spec`` if ``job`` names a new date past by more than its grace."""
    trigger = job.trigger
    if not isinstance(trigger, DateTrigger) or trigger.run_at == stored:
        return
    late_s = (now - trigger.run_at).total_seconds()
    if late_s > job.grace_seconds:
        raise ValidationFailed(
            "spec",
            f"{trigger.run_at:%Y-%m-%d %H:%M:%S} UTC is already past by {late_s:.0f}s, more than "
            f"misfire_grace_seconds={job.grace_seconds}; the job would never run "
            "(give a later date, or a misfire_grace_seconds that covers it)",
        )

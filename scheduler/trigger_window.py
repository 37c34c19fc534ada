"""APScheduler's trigger options on top of any trigger: ``start_date``, ``end_date``, ``jitter``,
and the cron fields the table's cron has no room for, ``year`` and ``week`` (ISO week).

Pure maths like :mod:`scheduler.triggers`. Jitter is deterministic (a hash of the task and the
fire's nominal instant, 0..jitter seconds late as APScheduler 3 delays): every beat computes the
same instant, so a fire is still claimed exactly once.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from scheduler.errors import RowError
from scheduler.triggers import Trigger

_TINY = timedelta(microseconds=1)
#: start_date values beat can compute fires from (year 1 or 9999 overflow datetime arithmetic).
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9998, 12, 31, 23, 59, 59, tzinfo=UTC)
#: Most jitter a row may ask for: the task table's INTEGER column.
MAX_JITTER_S = 2**31 - 1
#: Fires examined per call before giving up (a window or calendar nothing matches).
_MAX_STEPS = 20000
_FIELD_ITEM = re.compile(r"(\*|[0-9]+)(?:-([0-9]+))?(?:/([0-9]+))?")
_RANGES = {"year": (1970, 9999), "week": (1, 53)}


def parse_field(column: str, text: str | None) -> frozenset[int] | None:
    """An APScheduler ``year``/``week`` expression (``2025``, ``2025-2027``, ``*/2``, ``1,3``), or None for any.

    :raises RowError: naming ``column`` and the reason.
    """
    raw = (text or "").strip().lower()
    if raw in ("", "*"):
        return None
    lo, hi = _RANGES[column.removeprefix("cron_")]
    values: set[int] = set()
    for item in raw.split(","):
        match = _FIELD_ITEM.fullmatch(item.strip())
        if not match:
            raise RowError(column, f"{item!r} is not a {column.removeprefix('cron_')} expression like 5, 1-9 or */2")
        first, last, step = match.groups()
        start = lo if first == "*" else int(first)
        end = (hi if first == "*" or step else start) if last is None else int(last)
        if not lo <= start <= end <= hi:
            raise RowError(column, f"{item!r} is outside {lo}-{hi}")
        values.update(range(start, end + 1, int(step or 1)))
    if not values:
        raise RowError(column, f"{raw!r} matches nothing")
    return frozenset(values)


@dataclass(frozen=True, slots=True)
class TriggerWindow:
    """The options of one row; all optional."""

    start: datetime | None = None
    end: datetime | None = None
    jitter_s: int = 0
    years: frozenset[int] | None = None
    weeks: frozenset[int] | None = None

    def __bool__(self) -> bool:
        return bool(self.start or self.end or self.jitter_s or self.years or self.weeks)

    def describe(self) -> str:
        parts = []
        if self.years:
            parts.append(f"in {_span(self.years)}")
        if self.weeks:
            parts.append(f"in ISO week {_span(self.weeks)}")
        if self.start:
            parts.append(f"from {self.start:%Y-%m-%d %H:%M} UTC")
        if self.end:
            parts.append(f"until {self.end:%Y-%m-%d %H:%M} UTC")
        if self.jitter_s:
            parts.append(f"up to {self.jitter_s}s late (jitter)")
        return ", ".join(parts)


def _span(values: frozenset[int]) -> str:
    ordered = sorted(values)
    if len(ordered) > 2 and ordered == list(range(ordered[0], ordered[-1] + 1)):
        return f"{ordered[0]}-{ordered[-1]}"
    return ",".join(map(str, ordered[:8])) + ("..." if len(ordered) > 8 else "")


def make_window(
    start: datetime | None, end: datetime | None, jitter: int | None, year: str | None, week: str | None
) -> TriggerWindow:
    """Validate the window columns of a row. :raises RowError:"""
    if jitter is not None and (isinstance(jitter, bool) or not isinstance(jitter, int) or jitter < 0):
        raise RowError("jitter_seconds", f"must be a non-negative integer, got {jitter!r}")
    if jitter is not None and jitter > MAX_JITTER_S:
        raise RowError("jitter_seconds", f"must be at most {MAX_JITTER_S}, got {jitter}")
    for column, value in (("start_date", start), ("end_date", end)):
        if value is not None and (not isinstance(value, datetime) or value.tzinfo is None):
            raise RowError(column, f"must be a UTC instant, got {value!r}")
    # Fires are searched from just before start_date (end_date is only compared with, so any date
    # will do, 9999-12-31 for "never" included).
    if start is not None and not EARLIEST <= start <= LATEST:
        raise RowError("start_date", f"must be between 1970-01-01 and 9998-12-31 (UTC), got {start.isoformat(sep=' ')}")
    if start and end and end < start:
        raise RowError("end_date", f"{end:%Y-%m-%d %H:%M:%S} is before start_date {start:%Y-%m-%d %H:%M:%S}")
    return TriggerWindow(
        start.astimezone(UTC) if start else None,
        end.astimezone(UTC) if end else None,
        jitter or 0,
        parse_field("cron_year", year),
        parse_field("cron_week", week),
    )


@dataclass(frozen=True, slots=True)
class WindowedTrigger:
    """``inner``'s fires inside the window, in the allowed years/weeks, each delayed by its jitter."""

    inner: Trigger
    window: TriggerWindow
    tz: ZoneInfo
    seed: int = 0

    def _jitter(self, fire: datetime) -> timedelta:
        if not self.window.jitter_s:
            return timedelta(0)
        digest = hashlib.blake2b(f"{self.seed}:{fire.timestamp()}".encode(), digest_size=4).digest()
        return timedelta(seconds=int.from_bytes(digest, "big") % (self.window.jitter_s + 1))

    def _skip(self, fire: datetime) -> datetime | None:
        """None if ``fire`` is allowed; else the instant to search on from (or ``datetime.max``: never)."""
        local = fire.astimezone(self.tz)
        years, weeks = self.window.years, self.window.weeks
        if years is not None and local.year not in years:
            later = [y for y in years if y > local.year]
            if not later:
                return datetime.max.replace(tzinfo=UTC)
            return datetime(min(later), 1, 1, tzinfo=self.tz).astimezone(UTC) - _TINY
        if weeks is not None and local.isocalendar().week not in weeks:
            monday = (local - timedelta(days=local.weekday())).replace(hour=0, minute=0, second=0, microsecond=0)
            return (monday + timedelta(days=7)).replace(tzinfo=self.tz).astimezone(UTC) - _TINY
        return None

    def next_after(self, after: datetime) -> datetime | None:
        cursor = after - timedelta(seconds=self.window.jitter_s)
        if self.window.start is not None and cursor < self.window.start - _TINY:
            cursor = self.window.start - _TINY
        for _ in range(_MAX_STEPS):
            fire = self.inner.next_after(cursor)
            if fire is None or (self.window.end is not None and fire > self.window.end):
                return None
            skip = self._skip(fire)
            if skip is not None:
                if skip.year == datetime.max.year:
                    return None
                cursor = max(skip, fire)
                continue
            actual = fire + self._jitter(fire)
            if actual > after:
                return actual
            cursor = fire
        return None

    def previous_at_or_before(self, at: datetime) -> datetime | None:
        # The latest allowed nominal fire at or before ``at`` (jitter only ever delays).
        cursor: datetime | None = at
        for _ in range(_MAX_STEPS):
            fire = self.inner.previous_at_or_before(cursor) if cursor is not None else None
            if fire is None or (self.window.start is not None and fire < self.window.start):
                return None
            if (self.window.end is None or fire <= self.window.end) and self._skip(fire) is None:
                actual = fire + self._jitter(fire)
                if actual <= at:
                    return actual
            cursor = fire - _TINY
        return None

    def describe(self) -> str:
        return f"{self.inner.describe()}, {self.window.describe()}"

"""Fire-time maths for the three trigger kinds: pure, no I/O, no clock.

All instants in and out are timezone-aware; results are UTC. Cron is evaluated
in the row's zone with Vixie-cron DST rules (see :class:`CronTrigger`).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

from croniter import CroniterBadDateError, croniter

from scheduler.specs import UNIT_SECONDS, CronSpec, parse_cron, parse_date, parse_interval, parse_trigger

UTC = UTC
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SECOND = timedelta(seconds=1)
_MAX_PREV_SPAN_S = 400 * 366 * 86400  # croniter's own search gives up long before this
_MEMO_SIZE = 65536


class Trigger(Protocol):
    """When a task fires. Implementations are immutable and cheap to compare."""

    def next_after(self, after: datetime) -> datetime | None:
        """First fire instant strictly after `after` (UTC-aware), or None when there are no more.

        :raises ValueError: if `after` is naive.
        """

    def previous_at_or_before(self, at: datetime) -> datetime | None:
        """Latest fire instant <= `at` (UTC-aware), or None if there is none."""

    def describe(self) -> str:
        """Human words, e.g. 'every 5 minutes', 'at 09:00 Mon-Fri (Asia/Shanghai)'."""


def _require_aware(name: str, value: datetime) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got {value!r}")


def _floor_ts(value: datetime) -> int:
    """Whole UTC seconds, floored (cron fires on whole seconds, so this loses nothing)."""
    return (value - _EPOCH) // _SECOND


def _from_ts(ts: int) -> datetime:
    return _EPOCH + timedelta(seconds=ts)


# --- cron --------------------------------------------------------------------------


def _fold_repeat_end(tz: ZoneInfo, ts: int) -> int | None:
    """If `ts` lies in the repeated hour after a DST fall-back, the instant that repeat ends."""
    local = datetime.fromtimestamp(ts, tz)
    if not local.fold:  # fromtimestamp sets fold=1 only on the second pass of a wall time
        return None
    first_offset = local.replace(fold=0).utcoffset()
    second_offset = local.utcoffset()
    assert first_offset is not None and second_offset is not None  # ZoneInfo always has one
    repeat_s = int((first_offset - second_offset).total_seconds())
    # The second pass began at some T in (ts - repeat_s, ts]; bisect for it on the offset.
    lo, hi = ts - repeat_s, ts
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if datetime.fromtimestamp(mid, tz).utcoffset() == second_offset:
            hi = mid
        else:
            lo = mid
    return hi + repeat_s


@functools.lru_cache(maxsize=_MEMO_SIZE)
def _cron_next_ts(spec: CronSpec, tz: ZoneInfo, after_ts: int) -> int | None:
    """Memoised core of CronTrigger.next_after, on whole UTC seconds.

    Rows sharing a spec ask about the same instants, so one croniter call (~100 us)
    serves them all.
    """
    start_ts = after_ts
    for _ in range(4):
        try:
            start = datetime.fromtimestamp(start_ts, tz)
            found = croniter(spec.expanded, start, day_or=spec.day_or).get_next(datetime)
        except (CroniterBadDateError, OverflowError, ValueError, OSError):
            return None  # past the end of the calendar, or never again
        ts = int(found.timestamp())
        if ts <= after_ts:  # not seen with croniter 7, but never hand back a step backwards
            start_ts = max(start_ts, after_ts) + 1
            continue
        repeat_end = _fold_repeat_end(tz, ts) if spec.has_fixed_hour else None
        if repeat_end is None:
            return ts
        # Vixie cron: a fixed-hour job fires in the first pass of a repeated hour only.
        start_ts = repeat_end - 1
    raise RuntimeError(f"cron {spec.expression!r} ({tz.key}) found no next fire after {after_ts}")


@functools.lru_cache(maxsize=_MEMO_SIZE)
def _cron_prev_ts(spec: CronSpec, tz: ZoneInfo, at_ts: int) -> int | None:
    """Memoised core of CronTrigger.previous_at_or_before, on whole UTC seconds."""

    def after(ts: int) -> int | None:
        return _cron_next_ts(spec, tz, ts)

    # croniter's get_prev gets stuck around DST with ZoneInfo, so its answer is only a
    # guess: accept it when the forward maths agrees, else bisect using next fires.
    try:
        start = datetime.fromtimestamp(at_ts + 1, tz)
        guess: int | None = int(croniter(spec.expanded, start, day_or=spec.day_or).get_prev(datetime).timestamp())
    except (CroniterBadDateError, OverflowError, ValueError, OSError):
        guess = None
    if guess is not None and guess <= at_ts and after(guess - 1) == guess:
        following = after(guess)
        if following is None or following > at_ts:
            return guess
    span = 3600
    while (first := after(at_ts - span)) is None or first > at_ts:
        if span > _MAX_PREV_SPAN_S:
            return None
        span *= 8
    # Invariant: after(lo) <= at_ts < after(hi) (None counts as beyond).
    lo, hi = at_ts - span, at_ts
    while hi - lo > 1:
        mid = (lo + hi) // 2
        found = after(mid)
        if found is not None and found <= at_ts:
            lo = mid
        else:
            hi = mid
    return hi


@dataclass(frozen=True, slots=True)
class CronTrigger:
    """A cron expression evaluated in `tz`, with Vixie-cron DST behaviour.

    Spring-forward: a wall time inside the gap fires once, at the first instant after it.
    Fall-back: a job with a fixed hour (`30 1 * * *`) fires once, in the first pass; a job
    whose hour is `*` or `*/n` fires at every real instant, so in both passes.
    """

    expression: str
    tz: ZoneInfo
    has_fixed_hour: bool = field(init=False)
    _spec: CronSpec = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        spec = parse_cron(self.expression)  # cached; raises RowError
        object.__setattr__(self, "expression", spec.expression)
        object.__setattr__(self, "has_fixed_hour", spec.has_fixed_hour)
        object.__setattr__(self, "_spec", spec)

    def next_after(self, after: datetime) -> datetime | None:
        _require_aware("after", after)
        found = _cron_next_ts(self._spec, self.tz, _floor_ts(after))
        return None if found is None else _from_ts(found)

    def previous_at_or_before(self, at: datetime) -> datetime | None:
        _require_aware("at", at)
        found = _cron_prev_ts(self._spec, self.tz, _floor_ts(at))
        return None if found is None else _from_ts(found)

    def describe(self) -> str:
        return _describe_cron(self.expression, self.tz)


_DAY_NAMES = ("Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTH_NAMES = ("", "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _named(raw: str, names: tuple[str, ...]) -> str:
    """`1-5` -> `Mon-Fri`, `jan,jul` -> `Jan,Jul`; anything with steps stays as written."""

    def one(token: str) -> str:
        return names[int(token)] if token.isdigit() else token.capitalize()

    if "/" in raw or "#" in raw:
        return raw
    return ",".join("-".join(one(end) for end in item.split("-")) for item in raw.split(","))


def _describe_days(dom: str, month: str, dow: str) -> str:
    days = [f"on day {'last' if dom == 'l' else dom}"] if dom != "*" else []
    if dow != "*":
        days.append(_named(dow, _DAY_NAMES))
    words = " or ".join(days) or "every day"  # cron ORs day-of-month and day-of-week
    return words if month == "*" else f"{words} in {_named(month, _MONTH_NAMES)}"


def _describe_seconds(second: str) -> str | None:
    """Words for a seconds field under an every-minute cron; None when it needs the raw spec."""
    if second == "*":
        return "every second"
    if second.startswith("*/") and second[2:].isdigit():
        step = int(second[2:])
        return "every second" if step == 1 else f"every {step} seconds"
    if all(part.isdigit() for part in second.split(",")):
        return f"every minute at second {second.replace(',', ', ')}"
    return None


def _describe_cron(expression: str, tz: ZoneInfo) -> str:
    minute, hour, dom, month, dow, *rest = expression.split()
    second = rest[0] if rest else "0"
    raw = f"cron '{expression}' ({tz.key})"
    if (hour, dom, month, dow) == ("*", "*", "*", "*"):
        if minute == "*" and second != "0":
            return _describe_seconds(second) or raw
        if not second.isdigit():
            return raw
        at_second = "" if second == "0" else f", second {int(second)}"
        if minute == "*":
            return "every minute"
        if minute.startswith("*/"):
            return f"every {minute[2:]} minutes" + (f" at second {int(second)}" if at_second else "")
        if minute.isdigit():
            return f"every hour at minute {minute}{at_second}"
    if not second.isdigit():
        return raw
    hours = hour.split(",")
    if minute.isdigit() and all(h.isdigit() for h in hours):
        seconds = "" if second == "0" else f":{int(second):02d}"
        times = ", ".join(f"{int(h):02d}:{int(minute):02d}{seconds}" for h in hours)
        return f"at {times} {_describe_days(dom, month, dow)} ({tz.key})"
    return raw


# --- interval and date ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class IntervalTrigger:
    """Fires at `anchor + k * every_s` for k >= 1 (the anchor itself does not fire)."""

    every_s: int
    anchor: datetime

    def __post_init__(self) -> None:
        if self.every_s <= 0:
            raise ValueError(f"every_s must be positive, got {self.every_s}")
        _require_aware("anchor", self.anchor)
        object.__setattr__(self, "anchor", self.anchor.astimezone(UTC))

    def next_after(self, after: datetime) -> datetime | None:
        _require_aware("after", after)
        every = timedelta(seconds=self.every_s)
        # timedelta // timedelta is exact integer floor division: no float drift, no loop.
        k = max(1, (after - self.anchor) // every + 1)
        try:
            return self.anchor + k * every
        except OverflowError:
            return None

    def previous_at_or_before(self, at: datetime) -> datetime | None:
        _require_aware("at", at)
        every = timedelta(seconds=self.every_s)
        k = (at - self.anchor) // every
        return self.anchor + k * every if k >= 1 else None

    def describe(self) -> str:
        for unit, size in (("day", UNIT_SECONDS["d"]), ("hour", UNIT_SECONDS["h"]), ("minute", 60), ("second", 1)):
            count, rest = divmod(self.every_s, size)
            if rest == 0 and (count < 60 or size == 60):
                return f"every {unit}" if count == 1 else f"every {count} {unit}s"
        parts, left = [], self.every_s
        for unit in "dhms":
            count, left = divmod(left, UNIT_SECONDS[unit])
            if count:
                parts.append(f"{count}{unit}")
        return "every " + " ".join(parts)


@dataclass(frozen=True, slots=True)
class DateTrigger:
    """Fires once, at `run_at`."""

    run_at: datetime

    def __post_init__(self) -> None:
        _require_aware("run_at", self.run_at)
        object.__setattr__(self, "run_at", self.run_at.astimezone(UTC))

    def next_after(self, after: datetime) -> datetime | None:
        _require_aware("after", after)
        return self.run_at if self.run_at > after else None

    def previous_at_or_before(self, at: datetime) -> datetime | None:
        _require_aware("at", at)
        return self.run_at if self.run_at <= at else None

    def describe(self) -> str:
        shown = self.run_at.strftime("%Y-%m-%d %H:%M:%S" if self.run_at.second else "%Y-%m-%d %H:%M")
        return f"once at {shown} UTC"


# --- building ---------------------------------------------------------------------


@functools.lru_cache(maxsize=4096)
def _cron_trigger(expression: str, tz: ZoneInfo) -> CronTrigger:
    """One shared, immutable CronTrigger per (expression, zone)."""
    return CronTrigger(expression, tz)


def build_trigger(trigger: str, spec: str, tz: ZoneInfo, anchor: datetime) -> Trigger:
    """Build the trigger a row describes.

    :param trigger: the row's `trigger` column (`cron`, `interval` or `date`).
    :param spec: the row's `spec` column.
    :param tz: the row's zone: cron is evaluated in it and naive dates are read in it.
    :param anchor: aware instant interval fires count from (the row's last config edit).
    :raises RowError: naming `trigger` or `spec` when the row cannot be scheduled.
    """
    kind = parse_trigger(trigger)
    if kind == "cron":
        return _cron_trigger(parse_cron(spec).expression, tz)
    if kind == "interval":
        return IntervalTrigger(parse_interval(spec), anchor)
    return DateTrigger(parse_date(spec, tz))


def next_fires(trigger: Trigger, after: datetime, count: int) -> list[datetime]:
    """Up to `count` successive fire instants after `after` (fewer if the trigger ends)."""
    fires: list[datetime] = []
    current: datetime | None = after
    while len(fires) < count and current is not None:
        current = trigger.next_after(current)
        if current is not None:
            fires.append(current)
    return fires

"""APScheduler-style ``trigger_args`` turned into the ``trigger`` + ``spec`` the table stores.

``{"hour": "9", "minute": "0", "day_of_week": "mon-fri"}`` -> ``("cron", "0 9 * * mon-fri")``,
``{"hours": 1}`` -> ``("interval", "3600")``, ``{"run_date": "2024-12-31"}`` -> ``("date", "2024-12-31")``.
The service validates and normalises the result like any other spec.  Errors name
``trigger_args`` (or ``trigger_args.<key>``) and the reason.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from models import TriggerKind
from scheduler.specs import UNIT_SECONDS, parse_date, parse_timezone
from service.errors import ValidationFailed, rows_checked

__all__ = ["CRON_KEYS", "DATE_KEYS", "INTERVAL_KEYS", "ScheduleArgs", "from_trigger_args"]

#: APScheduler's cron fields, most significant first (its order decides the defaults).
_CRON_ORDER = ("year", "month", "day", "week", "day_of_week", "hour", "minute", "second")
_CRON_SUPPORTED = ("month", "day", "day_of_week", "hour", "minute", "second")
#: What APScheduler gives a field left out after the least significant given one.
_CRON_DEFAULTS = {"month": "*", "day": "*", "day_of_week": "*", "hour": "0", "minute": "0", "second": "0"}
_INTERVAL_UNITS = {name: UNIT_SECONDS[name[0]] for name in ("weeks", "days", "hours", "minutes", "seconds")}
_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")  # APScheduler numbers them 0-6 from Monday
_CRON_DAY_ORDER = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")  # cron numbers them 0-6 from Sunday

CRON_KEYS = frozenset(_CRON_ORDER)
INTERVAL_KEYS = frozenset(_INTERVAL_UNITS)
DATE_KEYS = frozenset({"run_date"})
#: Keys any trigger may carry; the options (start_date, end_date, jitter) are cron/interval only.
_COMMON_KEYS = frozenset({"timezone"})
OPTION_KEYS = frozenset({"start_date", "end_date", "jitter"})


@dataclass(frozen=True, slots=True)
class ScheduleArgs:
    """A schedule read from ``trigger_args``; ``timezone`` is None unless it named one."""

    trigger: str
    spec: str
    timezone: str | None = None
    #: start_date / end_date as given (read in the task's zone by the service), jitter in seconds.
    start_date: str | None = None
    end_date: str | None = None
    jitter: int | None = None
    #: APScheduler cron ``year`` / ``week`` expressions.
    year: str | None = None
    week: str | None = None


def _fail(key: str | None, reason: str) -> ValidationFailed:
    return ValidationFailed("trigger_args" if key is None else f"trigger_args.{key}", reason)


def _infer_trigger(keys: set[str]) -> str:
    by_kind = ((TriggerKind.CRON, CRON_KEYS), (TriggerKind.INTERVAL, INTERVAL_KEYS), (TriggerKind.DATE, DATE_KEYS))
    kinds = [kind.value for kind, known in by_kind if keys & known]
    if len(kinds) == 1:
        return kinds[0]
    if not kinds:
        raise _fail(
            None,
            "gives no schedule; use cron fields (hour, minute, ...), "
            "interval units (weeks, days, hours, minutes, seconds) or run_date",
        )
    raise _fail(None, f"mixes keys of the {' and '.join(kinds)} triggers; give one kind")


def from_trigger_args(trigger: str | None, trigger_args: Mapping[str, Any]) -> ScheduleArgs:
    """Convert ``trigger_args`` (with ``trigger`` if given, else inferred from the keys).

    :raises ValidationFailed: naming ``trigger_args[.key]`` and the reason.
    """
    if not isinstance(trigger_args, Mapping):
        raise _fail(None, 'must be a JSON object such as {"hours": 1}')
    keys = set(trigger_args) - _COMMON_KEYS - OPTION_KEYS
    kind = (trigger or "").strip().lower() or _infer_trigger(keys)
    allowed = {"cron": CRON_KEYS, "interval": INTERVAL_KEYS, "date": DATE_KEYS}.get(kind)
    if allowed is None:
        raise ValidationFailed("trigger", f"unknown trigger {trigger!r}; use cron, interval or date")
    unknown = sorted(keys - allowed)
    if unknown:
        raise _fail(unknown[0], f"is not a {kind} trigger argument; use {', '.join(sorted(allowed))}")
    timezone = trigger_args.get("timezone")
    if timezone is not None and not isinstance(timezone, str):
        raise _fail("timezone", "must be an IANA zone name such as 'Asia/Shanghai'")
    if kind == "cron":
        spec = _cron_spec(trigger_args)
    elif kind == "interval":
        spec = _interval_spec(trigger_args)
    else:
        spec = _date_spec(trigger_args)
        given = sorted(OPTION_KEYS & set(trigger_args))
        if given:
            raise _fail(given[0], "applies to cron and interval triggers only")
    return ScheduleArgs(
        kind,
        spec,
        timezone,
        start_date=_instant_text("start_date", trigger_args.get("start_date")),
        end_date=_instant_text("end_date", trigger_args.get("end_date")),
        jitter=_jitter(trigger_args.get("jitter")),
        year=_cron_text("year", trigger_args["year"]) if "year" in trigger_args else None,
        week=_cron_text("week", trigger_args["week"]) if "week" in trigger_args else None,
    )


def option_columns(schedule: ScheduleArgs, given: Mapping[str, Any], timezone: str) -> dict[str, Any]:
    """The ``task`` option columns of a schedule: ``trigger_args`` as given, dates read in ``timezone``.

    :raises ValidationFailed: naming ``trigger_args.<key>`` (or ``timezone``) and the reason.
    """
    with rows_checked():
        tz = parse_timezone(timezone, "UTC")
    dates: dict[str, datetime | None] = {}
    for key in ("start_date", "end_date"):
        text = getattr(schedule, key)
        with rows_checked(f"trigger_args.{key}"):
            dates[key] = parse_date(text, tz) if text else None
    return {
        "trigger_args": json.dumps(dict(given), ensure_ascii=False, default=str),
        **dates,
        "jitter_seconds": schedule.jitter,
        "cron_year": schedule.year,
        "cron_week": schedule.week,
    }


def _instant_text(key: str, value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, date):
        return value.isoformat()
    if not isinstance(value, str) or not value.strip():
        raise _fail(key, f"must be a date text such as '2025-01-01 09:00:00', got {value!r}")
    return value.strip()


def _jitter(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 or value != int(value):
        raise _fail("jitter", f"must be a whole number of seconds, 0 or more, got {value!r}")
    return int(value)


# --- cron -----------------------------------------------------------------------------


def _cron_spec(args: Mapping[str, Any]) -> str:
    # year and week have no place in the table's cron: they go to their own columns.
    given = {k: args[k] for k in _CRON_ORDER if k in args and k not in ("year", "week")}
    if not given and ("year" in args or "week" in args):
        given = (
            {"minute": "0", "hour": "0"} if "week" in args else {"minute": "0", "hour": "0", "day": "1", "month": "1"}
        )
    if not given:
        raise _fail(None, "gives no cron field; use month, day, day_of_week, hour, minute or second")
    remaining = set(given)
    fields: dict[str, str] = {}
    for key in _CRON_SUPPORTED:
        if key in given:
            fields[key] = _cron_text(key, given[key])
            remaining.discard(key)
        elif not remaining:  # after the least significant given field: APScheduler's minimums
            fields[key] = _CRON_DEFAULTS[key]
        else:
            fields[key] = "*"
    fields["day_of_week"] = _cron_weekdays(fields["day_of_week"])
    parts = [fields["minute"], fields["hour"], fields["day"], fields["month"], fields["day_of_week"]]
    if fields["second"] != "0":
        parts.append(fields["second"])
    return " ".join(parts)


def _cron_text(key: str, value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise _fail(key, f"must be a number or a cron expression string, got {value!r}")
    text = str(value).strip().lower()
    if not text or any(c.isspace() for c in text):
        raise _fail(key, f"{str(value)!r} is not a single cron field")
    return text


def _weekday_index(key: str, token: str) -> int:
    if token in _WEEKDAYS:
        return _WEEKDAYS.index(token)
    if token.isdigit() and int(token) <= 6:
        return int(token)
    raise _fail(key, f"{token!r} is not a weekday (mon-sun, or 0-6 counting from Monday as APScheduler does)")


def _cron_weekdays(text: str) -> str:
    """APScheduler counts weekdays from Monday = 0, cron from Sunday = 0: go through names."""
    if text == "*":
        return text
    days: set[int] = set()
    for item in text.split(","):
        base, slash, step_text = item.partition("/")
        step = 1
        if slash:
            if not step_text.isdigit() or not 1 <= int(step_text) <= 6:
                raise _fail("day_of_week", f"step {step_text!r} must be 1-6")
            step = int(step_text)
        if base == "*":
            first, last = 0, 6
        elif "-" in base:
            start, _, end = base.partition("-")
            first, last = _weekday_index("day_of_week", start), _weekday_index("day_of_week", end)
            if first > last:
                raise _fail("day_of_week", f"range {base!r} runs backwards (weeks start on Monday)")
        else:
            first = last = _weekday_index("day_of_week", base)
        days.update(range(first, last + 1, step))
    if len(days) == 7:
        return "*"
    cron_days = sorted(_CRON_DAY_ORDER.index(_WEEKDAYS[d]) for d in days)
    return ",".join(_compress_runs(cron_days))


def _compress_runs(numbers: list[int]) -> list[str]:
    """``[1, 2, 3, 4, 5]`` -> ``["mon-fri"]``; runs of three or more become ranges."""
    groups: list[list[int]] = []
    for n in numbers:
        if groups and n == groups[-1][-1] + 1:
            groups[-1].append(n)
        else:
            groups.append([n])
    out: list[str] = []
    for group in groups:
        names = [_CRON_DAY_ORDER[n] for n in group]
        out.extend([f"{names[0]}-{names[-1]}"] if len(names) >= 3 else names)
    return out


# --- interval / date ---------------------------------------------------------------------


def _interval_spec(args: Mapping[str, Any]) -> str:
    total = 0.0
    for key, unit_s in _INTERVAL_UNITS.items():
        if key not in args:
            continue
        value = args[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _fail(key, f"must be a number, got {value!r}")
        total += value * unit_s
    if total <= 0:
        raise _fail(None, f"interval must be positive, got {total:g} seconds")
    if total != int(total):
        raise _fail(None, f"interval must be a whole number of seconds, got {total:g}")
    return str(int(total))


def _date_spec(args: Mapping[str, Any]) -> str:
    if "run_date" not in args:
        raise _fail(None, "a date trigger needs run_date")
    value = args["run_date"]
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, date):
        return value.isoformat()
    if not isinstance(value, str) or not value.strip():
        raise _fail("run_date", f"must be a date text such as '2024-12-31T23:59:59', got {value!r}")
    return value.strip()

"""The fields of a task request, and their coercion into ``task`` column values.

Shape only (types, lengths, JSON text); what a value means is checked by
``scheduler.rows.compile_row`` in the service layer. :func:`normalise_spec` gives the
canonical ``spec`` text the service stores.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

from scheduler.specs import (
    UNIT_SECONDS,
    parse_cron,
    parse_date,
    parse_extra,
    parse_interval,
    parse_kwargs,
    parse_trigger,
    read_date,
    spec_text,
    unit_seconds,
)
from service.errors import ValidationFailed, rows_checked

#: Fields a create / replace / update request may carry.
TASK_FIELDS = (
    "task_key",
    "desc",
    "execute_func",
    "trigger",
    "spec",
    "trigger_args",
    "args",
    "kwargs",
    "timezone",
    "queue",
    "max_instances",
    "misfire_grace_seconds",
    "expires_seconds",
    "is_valid",
    "extra",
)
#: Required by create and replace (PUT); the schedule is ``trigger`` + ``spec`` or ``trigger_args``.
REQUIRED_FIELDS = ("task_key", "execute_func")
#: Column values of a new task for the fields a request leaves out.
DEFAULTS: dict[str, Any] = {
    "desc": "",
    "args": "",
    "kwargs": "{}",
    "timezone": None,
    "queue": None,
    "max_instances": 1,
    "misfire_grace_seconds": None,
    "expires_seconds": None,
    "is_valid": 1,
    "extra": "{}",
}
#: Columns set from ``trigger_args`` (stored as given, and its options); NULL when a request gives ``spec``.
SCHEDULE_OPTION_COLUMNS = ("trigger_args", "start_date", "end_date", "jitter_seconds", "cron_year", "cron_week")
DEFAULTS.update(dict.fromkeys(SCHEDULE_OPTION_COLUMNS))
#: The ``task`` columns a request sets (``trigger_args`` becomes ``trigger`` + ``spec`` and the options).
COLUMNS = (*(name for name in TASK_FIELDS if name != "trigger_args"), *SCHEDULE_OPTION_COLUMNS)


def coerce_field(name: str, value: Any) -> Any:
    """The column value of request field ``name``. :raises ValidationFailed:"""
    return _COERCE.get(name, _text)(name, value)


def _text(name: str, value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValidationFailed(name, f"must be a string, got {value!r}")
    text: str = value.strip()
    if len(text) > 255:
        raise ValidationFailed(name, f"is {len(text)} characters; the limit is 255")
    return text


def _required_text(name: str, value: Any) -> str:
    result = _text(name, value)
    if not result:
        raise ValidationFailed(name, "must not be empty")
    return result


def _optional_text(name: str, value: Any) -> str | None:
    return _text(name, value) or None


def _args(name: str, value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        return json.dumps(list(value), ensure_ascii=False)
    if not isinstance(value, str):
        raise ValidationFailed(name, f'must be a list or text such as 1,2,3 or "a","b", got {value!r}')
    return value.strip()


def _json_object(name: str, value: Any) -> str:
    if value is None:
        return "{}"
    if isinstance(value, Mapping):
        return json.dumps(dict(value), ensure_ascii=False)
    if not isinstance(value, str):
        raise ValidationFailed(name, f"must be a JSON object, got {value!r}")
    with rows_checked(name):
        parsed = parse_kwargs(value) if name == "kwargs" else parse_extra(value)
    return json.dumps(parsed, ensure_ascii=False)


#: The largest value of the task table's integer columns (32-bit INTEGER on every database).
INT_COLUMN_MAX = 2**31 - 1


def _integer(name: str, value: Any, minimum: int) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationFailed(name, f"must be an integer, got {value!r}")
    if value < minimum:
        raise ValidationFailed(name, f"must be at least {minimum}, got {value}")
    if value > INT_COLUMN_MAX:
        raise ValidationFailed(name, f"must be at most {INT_COLUMN_MAX}, got {value}")
    return value


def _flag(name: str, value: Any) -> int:
    if value in (True, 1, "1", "true"):
        return 1
    if value in (False, 0, "0", "false"):
        return 0
    raise ValidationFailed(name, f"must be true or false, got {value!r}")


_COERCE = {
    "task_key": _required_text,
    "execute_func": _required_text,
    "trigger": _optional_text,
    "spec": _optional_text,
    "desc": lambda n, v: _text(n, v) or "",
    "timezone": _optional_text,
    "queue": _optional_text,
    "args": _args,
    "kwargs": _json_object,
    "extra": _json_object,
    "max_instances": lambda n, v: 1 if v is None else _integer(n, v, 0),
    "misfire_grace_seconds": lambda n, v: _integer(n, v, 0),
    "expires_seconds": lambda n, v: _integer(n, v, 1),
    "is_valid": _flag,
}


def normalise_spec(trigger: str, spec: str, tz: ZoneInfo | None = None) -> str:
    """Canonical text for `spec` under `trigger`: what the API stores in the column.

    Cron becomes its validated expression (macros expanded), an interval becomes
    whole seconds, a date becomes `YYYY-MM-DD HH:MM:SS[+HH:MM]`. A date without an
    offset stays naive (the row's zone applies); pass `tz` to also check it exists.
    """
    kind = parse_trigger(trigger)
    if kind == "cron":
        return parse_cron(spec).expression
    if kind == "interval":
        return str(parse_interval(spec))
    value = read_date(spec_text(spec, "a date like '2020-04-24 18:08:00'"))
    if tz is not None:
        parse_date(spec, tz)
    return value.isoformat(sep=" ")


#: The longest age runs may be pruned by (about 1000 years): the cut-off must stay a representable date.
PRUNE_MAX_WEEKS = 52000


def parse_duration(text: str) -> timedelta:
    """``30d``, ``12h``, ``90m``, ``1d12h``, ``2w`` -> timedelta (an age to prune runs older than).

    :raises ValueError: saying what is wrong.
    """
    spec = (text or "").strip()
    longest = PRUNE_MAX_WEEKS * UNIT_SECONDS["w"]
    # More digits than the longest age has seconds: refused before int() meets thousands of digits.
    if any(len(part.lstrip("0")) > len(str(longest)) for part in re.findall(r"[0-9]+", spec)):
        raise ValueError(f"{text!r} is longer than the maximum of {PRUNE_MAX_WEEKS}w (about 1000 years)")
    seconds = unit_seconds(spec)
    if seconds is None:
        raise ValueError(f"cannot read {text!r}; use a number and a unit (w, d, h, m, s) such as 30d, 12h or 90m")
    if seconds <= 0:
        raise ValueError(f"{text!r} must be longer than zero")
    if seconds > longest:
        raise ValueError(f"{text!r} is longer than the maximum of {PRUNE_MAX_WEEKS}w (about 1000 years)")
    return timedelta(seconds=seconds)

"""Parse and validate the text columns of a `task` row.

Every function raises :class:`~scheduler.errors.RowError` naming the column and
the reason, so the beat can write `str(exc)` into `last_error` and move on.
Nothing here evaluates or imports what a row says: args are read by a small
tokenizer, JSON by :mod:`json`, and job names are only looked up.

Longer than most modules on purpose: it is the one parser of everything an operator writes
into a row (args, kwargs, extra, names, zones, cron, intervals, dates), kept together so
the messages read alike.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadDateError, croniter

from models.states import TriggerKind
from protocol.message import RESERVED_KWARGS
from scheduler.errors import RowError

MAX_ARGS_CHARS = 65536
MAX_NAME_CHARS = 255
MAX_SPEC_CHARS = 1024
MAX_INTERVAL_S = 366 * 86400
#: The values ``task.trigger`` may hold (``models.TriggerKind``, their one home).
TRIGGERS = tuple(kind.value for kind in TriggerKind)


def _show(text: str, limit: int = 40) -> str:
    """repr() of user text, shortened so one bad row cannot flood `last_error`."""
    return repr(text if len(text) <= limit else text[: limit - 3] + "...")


_WS = re.compile(r"\s*")


def _skip_ws(text: str, pos: int) -> int:
    match = _WS.match(text, pos)
    return match.end() if match else pos


def _check_size(column: str, text: str, limit: int) -> None:
    if len(text) > limit:
        raise RowError(column, f"text is {len(text)} characters; the limit is {limit}")


# --- args ------------------------------------------------------------------

_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_STRING = {q: re.compile(rf"{q}([^{q}\\]*(?:\\.[^{q}\\]*)*){q}", re.S) for q in "\"'"}
_ESCAPE = re.compile(r"\\(x[0-9A-Fa-f]{2}|u[0-9A-Fa-f]{4}|U[0-9A-Fa-f]{8}|[0-7]{1,3}|.)", re.S)
_SIMPLE_ESCAPES = {
    "\\": "\\",
    "'": "'",
    '"': '"',
    "/": "/",
    "n": "\n",
    "t": "\t",
    "r": "\r",
    "b": "\b",
    "f": "\f",
    "a": "\a",
    "v": "\v",
    "\n": "",
}
_LITERALS: dict[str, Any] = {"True": True, "False": False, "None": None, "true": True, "false": False, "null": None}


class _NotFinite(ValueError):
    """Raised from json hooks so NaN/Infinity never reach a job."""


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _NotFinite(f"number {_show(text)} is not finite")
    return value


_DECODER = json.JSONDecoder(parse_float=_finite_float, parse_constant=_finite_float)


def _decode_json(column: str, text: str, pos: int) -> tuple[Any, int]:
    """Decode one JSON value starting at `pos`; return it and the end index."""
    try:
        return _DECODER.raw_decode(text, pos)
    except _NotFinite as exc:
        raise RowError(column, str(exc)) from None
    except RecursionError:
        raise RowError(column, "JSON is nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, or int() refusing a huge number
        raise RowError(column, f"invalid JSON: {exc}") from None


def _unescape(match: re.Match[str]) -> str:
    code = match.group(1)
    if code in _SIMPLE_ESCAPES:
        return _SIMPLE_ESCAPES[code]
    if code in ("x", "u", "U"):
        raise RowError("args", f"truncated \\{code} escape in a string")
    if code[0] in "xuU":
        if int(code[1:], 16) > 0x10FFFF:
            raise RowError("args", f"escape \\{code} is beyond U+10FFFF")
        return chr(int(code[1:], 16))
    if code[0] in "01234567":
        return chr(int(code, 8))
    return match.group()  # Python keeps unknown escapes such as '\d' as written


def _read_string(text: str, start: int) -> tuple[str, int]:
    """Read a quoted string (Python or JSON escapes) whose quote is at `start`."""
    match = _STRING[text[start]].match(text, start)
    if not match:
        raise RowError("args", f"unclosed quote at position {start + 1}")
    body = _ESCAPE.sub(_unescape, match.group(1))
    # JSON spells non-BMP characters as a surrogate pair (\ud83d\ude00); join them.
    return body.encode("utf-16", "surrogatepass").decode("utf-16", "surrogatepass"), match.end()


def _read_item(text: str, pos: int) -> tuple[Any, int]:
    """Read one comma-format item starting at `pos` (whitespace already skipped)."""
    if pos >= len(text) or text[pos] == ",":
        raise RowError("args", f"empty item at position {pos + 1} (stray or trailing comma?)")
    char = text[pos]
    if char in "\"'":
        return _read_string(text, pos)
    if char in "[{":
        return _decode_json("args", text, pos)
    if number := _NUMBER.match(text, pos):
        token = number.group()
        try:
            value = _finite_float(token) if any(c in token for c in ".eE") else int(token)
        except _NotFinite as exc:
            raise RowError("args", str(exc)) from None
        except ValueError:  # int() refuses more than 4300 digits
            raise RowError("args", f"number {_show(token)} is too long") from None
        return value, number.end()
    if word := _WORD.match(text, pos):
        name = word.group()
        if name in _LITERALS:
            return _LITERALS[name], word.end()
        if name.lower() in ("inf", "infinity", "nan"):
            raise RowError("args", f"{name!r} is not allowed; numbers must be finite")
        raise RowError("args", f"bare word {_show(name)} at position {pos + 1}; quote strings")
    raise RowError("args", f"unexpected character {char!r} at position {pos + 1}")


def parse_args(text: str | None) -> tuple[Any, ...]:
    """Parse positional args: `1,2,3`, `"a",'b'`, literals, or a JSON array."""
    if text is None:
        return ()
    _check_size("args", text, MAX_ARGS_CHARS)
    pos = _skip_ws(text, 0)
    if pos == len(text):
        return ()
    if text[pos] == "[":
        value, end = _decode_json("args", text, pos)
        end = _skip_ws(text, end)
        if end != len(text):
            raise RowError("args", f"unexpected text after the JSON array at position {end + 1}")
        return tuple(value)
    items: list[Any] = []
    while True:
        value, pos = _read_item(text, pos)
        items.append(value)
        pos = _skip_ws(text, pos)
        if pos == len(text):
            return tuple(items)
        if text[pos] != ",":
            raise RowError("args", f"expected ',' at position {pos + 1}, found {text[pos]!r}")
        pos = _skip_ws(text, pos + 1)


# --- JSON objects ------------------------------------------------------------


def parse_object(column: str, text: str | None) -> dict[str, Any]:
    if text is None or not text.strip():
        return {}
    _check_size(column, text, MAX_ARGS_CHARS)
    start = _skip_ws(text, 0)
    if text[start] != "{":
        raise RowError(column, 'must be a JSON object like {"key": 1}')
    value, end = _decode_json(column, text, start)
    if _skip_ws(text, end) != len(text):
        raise RowError(column, f"unexpected text after the JSON object at position {end + 1}")
    return value  # type: ignore[no-any-return]


def parse_kwargs(text: str | None) -> dict[str, Any]:
    """Parse the `kwargs` column: a JSON object with identifier keys."""
    value = parse_object("kwargs", text)
    for key in value:
        if not key.isidentifier():
            raise RowError("kwargs", f"key {_show(key)} is not a valid Python identifier")
        if key in RESERVED_KWARGS:
            raise RowError(
                "kwargs",
                f"key {key!r} is reserved: the call of every job uses it "
                f"(reserved: {', '.join(sorted(RESERVED_KWARGS))})",
            )
    return value


def parse_extra(text: str | None) -> dict[str, Any]:
    """Parse the `extra` column: a JSON object, empty meaning {}."""
    return parse_object("extra", text)


# --- names -------------------------------------------------------------------

#: A registered name: ``name``, ``pkg.mod.func`` or ``pkg.mod:func``.
_JOB_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*(?::[A-Za-z_][A-Za-z0-9_]*)?")
_TZ_KEY = re.compile(r"[A-Za-z][A-Za-z0-9_+\-]*(?:/[A-Za-z0-9_+\-]+)*")


def validate_job_name(name: str | None, registered: Collection[str]) -> str:
    """Return `name` stripped if it is a registered job; never import anything."""
    name = (name or "").strip()
    if not name:
        raise RowError("execute_func", "is empty; name a registered job")
    if len(name) > MAX_NAME_CHARS:
        raise RowError("execute_func", f"name is longer than {MAX_NAME_CHARS} characters")
    if not _JOB_NAME.fullmatch(name) or name not in registered:
        known = sorted(registered)
        listing = ", ".join(known[:10]) + (f" (and {len(known) - 10} more)" if len(known) > 10 else "")
        tail = f"registered jobs: {listing}" if known else "no jobs are registered"
        raise RowError("execute_func", f"{_show(name)} is not a registered job; {tail}")
    return name


def parse_timezone(name: str | None, default: str) -> ZoneInfo:
    """Return the row's IANA zone, or `default` when the column is empty."""
    key = (name or "").strip() or default
    # Checked first so a row can never make ZoneInfo open an arbitrary path.
    if len(key) > 64 or not _TZ_KEY.fullmatch(key):
        raise RowError("timezone", f"{_show(key)} is not an IANA time zone name like 'Asia/Shanghai'")
    try:
        return ZoneInfo(key)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise RowError("timezone", f"unknown IANA time zone {key!r}") from None


def parse_trigger(text: str | None) -> str:
    """Return `cron`, `interval` or `date`."""
    kind = (text or "").strip().lower()
    if kind not in TRIGGERS:
        raise RowError("trigger", f"unknown trigger {_show((text or '').strip())}; use cron, interval or date")
    return kind


# --- interval ------------------------------------------------------------------

#: Seconds of each unit letter a written duration may use (``1h30m``, ``2w``): the one table of them.
UNIT_SECONDS = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}
_UNIT_PARTS = re.compile(r"(?:[0-9]+\s*[wdhms]\s*)+")
_UNIT_PART = re.compile(r"([0-9]+)\s*([wdhms])")
_DECIMAL = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:e[+-]?[0-9]+)?", re.I)


def spec_text(text: str | None, what: str) -> str:
    spec = (text or "").strip()
    if not spec:
        raise RowError("spec", f"is empty; give {what}")
    _check_size("spec", spec, MAX_SPEC_CHARS)
    return spec


def unit_seconds(text: str, units: str = "wdhms") -> int | None:
    """Seconds of ``text`` written as numbers with unit letters (``90s``, ``1h30m``, ``2w``).

    None when it is not written so, or uses a letter outside ``units``.
    :raises ValueError: a unit given twice (the message says which).
    """
    if not _UNIT_PARTS.fullmatch(text):
        return None
    parts = _UNIT_PART.findall(text)
    if any(unit not in units for _, unit in parts):
        return None
    seconds, seen = 0, set()
    for amount, unit in parts:
        if unit in seen:
            raise ValueError(f"gives unit '{unit}' twice")
        seen.add(unit)
        seconds += int(amount) * UNIT_SECONDS[unit]
    return seconds


def _units_or_none(spec: str) -> int | None:
    """An interval's d/h/m/s form (weeks are not an interval unit), as a RowError of ``spec``."""
    try:
        return unit_seconds(spec, "dhms")
    except ValueError as exc:
        raise RowError("spec", f"interval {_show(spec)} {exc}") from None


def parse_interval(text: str | None) -> int:
    """Parse an interval (`5`, `90s`, `5m`, `1h30m`, `2d`) into whole seconds."""
    spec = spec_text(text, "seconds like '5' or units like '1h30m'")
    if re.fullmatch(r"[+-]?[0-9]+", spec):
        seconds = int(spec)
    elif (in_units := _units_or_none(spec)) is not None:
        seconds = in_units
    elif _DECIMAL.fullmatch(spec):
        raise RowError("spec", f"interval must be a whole number of (integer) seconds, got {_show(spec)}")
    else:
        raise RowError("spec", f"cannot read interval {_show(spec)}; use seconds like '5' or d/h/m/s like '1h30m'")
    if seconds <= 0:
        raise RowError("spec", f"interval must be positive, got {_show(spec)}")
    if seconds > MAX_INTERVAL_S:
        raise RowError("spec", f"interval {_show(spec)} is longer than the maximum of 366 days")
    return seconds


# --- date ----------------------------------------------------------------------

_DATE = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})"
    r"(?:[Tt ]([0-9]{2}):([0-9]{2})(?::([0-9]{2})(?:[.,]([0-9]{1,6}))?)?"
    r"\s*(Z|z|[+-][0-9]{2}(?::?[0-9]{2})?)?)?"
)


def read_date(spec: str) -> datetime:
    """Read the date text into a datetime: aware if it had an offset, else naive."""
    match = _DATE.fullmatch(spec)
    if not match:
        raise RowError("spec", f"cannot read date {_show(spec)}; use 'YYYY-MM-DD HH:MM:SS' or ISO 8601 with an offset")
    year, month, day, hour, minute, second, fraction, offset = match.groups()
    tzinfo: timezone | None = None
    if offset in ("Z", "z"):
        tzinfo = UTC
    elif offset:
        digits = offset[1:].replace(":", "")
        hours, minutes = int(digits[:2]), int(digits[2:] or 0)
        if hours > 23 or minutes > 59:
            raise RowError("spec", f"offset {offset!r} is out of range")
        sign = -1 if offset[0] == "-" else 1
        tzinfo = timezone(sign * timedelta(hours=hours, minutes=minutes))
    try:
        return datetime(
            int(year),
            int(month),
            int(day),
            int(hour or 0),
            int(minute or 0),
            int(second or 0),
            int((fraction or "0").ljust(6, "0")),
            tzinfo=tzinfo,
        )
    except ValueError as exc:
        raise RowError("spec", f"{_show(spec)} is not a valid date ({exc})") from None


def _localise(wall: datetime, tz: ZoneInfo) -> datetime:
    """Attach `tz` to a naive wall time, refusing gaps and folds instead of guessing."""
    first, second = wall.replace(tzinfo=tz, fold=0), wall.replace(tzinfo=tz, fold=1)
    shown = wall.isoformat(sep=" ")
    if first.astimezone(UTC).astimezone(tz).replace(tzinfo=None) != wall:
        raise RowError("spec", f"{shown} does not exist in {tz.key} (DST spring-forward gap)")
    if first.utcoffset() != second.utcoffset():
        raise RowError("spec", f"{shown} is ambiguous in {tz.key} (DST fall-back); give an offset")
    return first


def parse_date(text: str | None, tz: ZoneInfo) -> datetime:
    """Parse a date spec; naive values are wall time in `tz`. Returns UTC-aware."""
    value = read_date(spec_text(text, "a date like '2020-04-24 18:08:00'"))
    try:
        if value.tzinfo is None:
            value = _localise(value, tz)
        return value.astimezone(UTC)
    except OverflowError:  # e.g. 0001-01-01 with a positive offset
        raise RowError("spec", f"{_show(text or '')} is out of the supported range") from None


# --- cron ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CronSpec:
    """A validated cron expression (5 fields, or 6 with seconds last)."""

    expression: str  # normalised for storage and display: lower case, macros expanded
    has_fixed_hour: bool  # False for `*`/`*/n` hours: those fire in both passes of a DST fold
    expanded: str  # explicit value lists, the only form handed to croniter (see _parse_cron)
    day_or: bool  # Vixie: day of month OR day of week, unless either field starts with `*`


@dataclass(frozen=True, slots=True)
class _Field:
    name: str
    low: int
    high: int
    names: tuple[str, ...] = ()  # names[i] means low + i


_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_FIELDS = (
    _Field("minute", 0, 59),
    _Field("hour", 0, 23),
    _Field("day of month", 1, 31),
    _Field("month", 1, 12, _MONTHS),
    _Field("day of week", 0, 7, _DAYS),
    _Field("second", 0, 59),
)
_MACROS = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}
_REFERENCE = datetime(2000, 1, 1, tzinfo=UTC)


def _cron_value(field: _Field, token: str) -> int:
    if token.isascii() and token.isdigit() and len(token) <= 4:
        value = int(token)
    elif token in field.names:
        value = field.low + field.names.index(token)
    else:
        raise RowError("spec", f"cron field '{field.name}' has invalid value {_show(token)}")
    if not field.low <= value <= field.high:
        raise RowError("spec", f"cron field '{field.name}' value {value} is out of range {field.low}-{field.high}")
    return value


def _cron_item(field: _Field, item: str) -> set[int | str]:
    """Validate one list item; return its values (or a special token such as `l`)."""
    base, slash, step_text = item.partition("/")
    step = 1
    if slash:
        if not (step_text.isascii() and step_text.isdigit() and len(step_text) <= 4):
            raise RowError("spec", f"cron field '{field.name}' step {_show(step_text)} must be 1-{field.high}")
        step = int(step_text)
        if not 1 <= step <= field.high:
            raise RowError("spec", f"cron field '{field.name}' step {_show(step_text)} must be 1-{field.high}")
        if base != "*" and "-" not in base:
            raise RowError("spec", f"cron field '{field.name}' step needs '*' or a range before '/', e.g. '*/{step}'")
    if base == "l" and field.name == "day of month":
        return {"l"}
    if "#" in base and field.name == "day of week":
        day, _, nth = base.partition("#")
        if nth not in ("1", "2", "3", "4", "5"):
            raise RowError("spec", f"cron field 'day of week' {_show(item)}: the number after '#' must be 1-5")
        return {f"{_cron_value(field, day) % 7}#{nth}"}
    if base == "*":
        start, end = field.low, field.high
    elif "-" in base:
        start_text, _, end_text = base.partition("-")
        start, end = _cron_value(field, start_text), _cron_value(field, end_text)
        if start > end:
            raise RowError("spec", f"cron field '{field.name}' range {_show(base)} runs backwards")
    else:
        start = end = _cron_value(field, base)
    return set(range(start, end + 1, step))


def _expand_field(field: _Field, raw: str) -> str:
    """Validate one field; return it as `*` or an explicit list for croniter.

    croniter 7 misreads some ranges (`5-5` is every minute to it, `1-1/3` is `*/3`),
    so it only ever sees `*` or plain values.
    """
    values: set[int | str] = set()
    for item in raw.split(","):
        if not item:
            raise RowError("spec", f"cron field '{field.name}' has an empty item in {_show(raw)}")
        values |= _cron_item(field, item)
    every = set(range(field.low, field.high + 1))
    if field.name == "day of week":  # 7 is Sunday too
        values = {v % 7 if isinstance(v, int) else v for v in values}
        every = {v % 7 for v in every}
    if raw.startswith("*") and values == every:
        return "*"
    numbers = sorted(v for v in values if isinstance(v, int))
    return ",".join([*map(str, numbers), *sorted(str(v) for v in values if isinstance(v, str))])


def parse_cron(text: str | None) -> CronSpec:
    """Validate a cron spec (`m h dom mon dow [sec]` or a macro like `@daily`)."""
    spec = spec_text(text, "a cron expression like '*/5 * * * *'")
    return _parse_cron(spec)


@functools.lru_cache(maxsize=4096)
def _parse_cron(spec: str) -> CronSpec:
    spec = spec.lower()
    if spec.startswith("@"):
        if spec not in _MACROS:
            raise RowError("spec", f"unknown cron macro {_show(spec)}; use one of {', '.join(_MACROS)}")
        spec = _MACROS[spec]
    fields = spec.split()
    if len(fields) not in (5, 6):
        raise RowError("spec", f"cron expression {_show(spec)}: expected 5 or 6 fields, got {len(fields)}")
    # Quartz-style `?` ("no specific value") in a day field means `*`.
    fields = ["*" if raw == "?" and index in (2, 4) else raw for index, raw in enumerate(fields)]
    expanded = [_expand_field(field, raw) for field, raw in zip(_FIELDS, fields, strict=False)]
    expression, croniter_form = " ".join(fields), " ".join(expanded)
    day_or = not (fields[2].startswith("*") or fields[4].startswith("*"))
    try:
        croniter(croniter_form, _REFERENCE, day_or=day_or).get_next(datetime)
    except CroniterBadDateError:
        raise RowError("spec", f"cron expression {expression!r} never fires (no such date)") from None
    except Exception as exc:  # croniter's errors share no useful base; any failure means unusable
        raise RowError("spec", f"cron expression {expression!r} rejected: {exc}") from None
    return CronSpec(expression, not fields[1].startswith("*"), croniter_form, day_or)

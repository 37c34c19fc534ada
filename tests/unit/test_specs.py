"""Parsing of task-row columns: accepted and rejected inputs, and fuzzing."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scheduler.errors import RowError
from scheduler.specs import (
    MAX_ARGS_CHARS,
    parse_args,
    parse_cron,
    parse_date,
    parse_interval,
    parse_kwargs,
    parse_timezone,
    validate_job_name,
)
from service.fields import normalise_spec, parse_extra

UTC = UTC
NEW_YORK = ZoneInfo("America/New_York")


def test_row_error_shape() -> None:
    exc = RowError("spec", "bad")
    assert (exc.column, exc.reason, str(exc)) == ("spec", "bad", "spec: bad")
    assert isinstance(exc, ValueError)


# --- args ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (None, ()),
        ("", ()),
        ("   \t", ()),
        ("1,2,3", (1, 2, 3)),
        ('"guess","hello"', ("guess", "hello")),
        ("'a', 2.5, true, null, None, True", ("a", 2.5, True, None, None, True)),
        ("False, false", (False, False)),
        ("-1, +2, .5, 1e3, 1.5E-2", (-1, 2, 0.5, 1000.0, 0.015)),
        ("  7  ", (7,)),
        ('[1, "a", {"k": 1}, [2]]', (1, "a", {"k": 1}, [2])),
        ("  []  ", ()),
        ('"a,b", \'c"d\'', ("a,b", 'c"d')),
        (r"'it\'s', " + r'"q\"t"', ("it's", 'q"t')),
        (r'"\n\t\\\x41\u00e9\U0001F600"', ("\n\t\\Aé\U0001f600",)),
        (r'"\ud83d\ude00"', ("\U0001f600",)),
        (r"'C:\dir'", ("C:\\dir",)),
        ('"中文", 1', ("中文", 1)),
        ('1, {"k": [1, 2]}', (1, {"k": [1, 2]})),
    ],
)
def test_parse_args_accepts(text: str | None, expected: tuple[Any, ...]) -> None:
    assert parse_args(text) == expected


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("hello", r"bare word 'hello' at position 1; quote strings"),
        ("1, hello", r"bare word 'hello' at position 4"),
        ("1,", r"empty item at position 3"),
        ("1,,2", r"empty item at position 3"),
        (",1", r"empty item at position 1"),
        ('"abc', r"unclosed quote at position 1"),
        ("1, 'ab", r"unclosed quote at position 4"),
        ("__import__('os').system('id')", r"bare word '__import__'"),
        ("1e309", r"number '1e309' is not finite"),
        ("inf", r"'inf' is not allowed; numbers must be finite"),
        ("NaN", r"numbers must be finite"),
        ("[NaN]", r"NaN' is not finite"),
        ("[1e999]", r"'1e999' is not finite"),
        ("[1, 2", r"invalid JSON"),
        ("[1] 2", r"unexpected text after the JSON array"),
        ("1 2", r"expected ',' at position 3, found '2'"),
        ("(1, 2)", r"unexpected character '\('"),
        (r'"\x4"', r"truncated \\x escape"),
        ("9" * 5000, r"too long"),
        ("[" * 100_000, r"limit is 65536"),
        ("[" * 60_000, r"nested too deeply|invalid JSON"),
        ("1" * (MAX_ARGS_CHARS + 1), r"limit is 65536"),
    ],
)
def test_parse_args_rejects(text: str, reason: str) -> None:
    with pytest.raises(RowError, match=reason) as info:
        parse_args(text)
    assert info.value.column == "args"


_ARG_VALUES = st.one_of(
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
    st.booleans(),
    st.none(),
)


@given(st.lists(_ARG_VALUES, max_size=8), st.data())
def test_parse_args_round_trips_the_original_format(values: list[Any], data: st.DataObject) -> None:
    render = data.draw(st.lists(st.sampled_from([repr, json.dumps]), min_size=len(values), max_size=len(values)))
    separator = data.draw(st.sampled_from([",", ", ", " , "]))
    text = separator.join(fn(value) for fn, value in zip(render, values, strict=False))
    parsed = parse_args(text)
    assert parsed == tuple(values)
    assert [type(v) for v in parsed] == [type(v) for v in values]


@given(st.lists(_ARG_VALUES, max_size=8))
def test_parse_args_reads_json_arrays(values: list[Any]) -> None:
    assert parse_args(json.dumps(values)) == tuple(values)


_ARGS_ALPHABET = st.sampled_from(list("\"'\\,[]{}:0123456789.eE+-xuU ntTrueFalsNo_(") + ["\ud83d"])


@given(st.one_of(st.text(max_size=60), st.text(_ARGS_ALPHABET, max_size=60)))
def test_parse_args_only_ever_raises_row_error(text: str) -> None:
    try:
        result = parse_args(text)
    except RowError as exc:
        assert exc.column == "args"
    else:
        assert isinstance(result, tuple)
        assert not any(isinstance(v, float) and not math.isfinite(v) for v in result)


@pytest.mark.parametrize(
    "text", ['"' + "a" * 65000, "'" + "\\'" * 30000, "1," * 30000, "[" + "1," * 30000, '"\\' * 30000]
)
@pytest.mark.timeout(30)  # a parser that backtracks on these would not finish; their speed is not judged here
def test_parse_args_large_inputs_finish(text: str) -> None:
    try:
        parsed = parse_args(text)
    except RowError as exc:
        assert "args" in str(exc)
    else:
        assert isinstance(parsed, tuple)


# --- kwargs / extra ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [(None, {}), ("", {}), ("  ", {}), ('{"a": 1, "b": [1, "x"]}', {"a": 1, "b": [1, "x"]}), ('{"名": 1}', {"名": 1})],
)
def test_parse_kwargs_accepts(text: str | None, expected: dict[str, Any]) -> None:
    assert parse_kwargs(text) == expected


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("[1]", r"must be a JSON object"),
        ("a=1", r"must be a JSON object"),
        ('{"a": 1', r"invalid JSON"),
        ('{"a": 1} x', r"unexpected text after the JSON object"),
        ('{"not valid": 1}', r"key 'not valid' is not a valid Python identifier"),
        ('{"1a": 1}', r"not a valid Python identifier"),
        ('{"sub_task_id": 1}', r"key 'sub_task_id' is reserved"),
        ('{"__unique_trace_id__": "x"}', r"'__unique_trace_id__' is reserved"),
        ('{"a": NaN}', r"not finite"),
        ('{"a": "' + "x" * MAX_ARGS_CHARS + '"}', r"limit is 65536"),
    ],
)
def test_parse_kwargs_rejects(text: str, reason: str) -> None:
    with pytest.raises(RowError, match=reason) as info:
        parse_kwargs(text)
    assert info.value.column == "kwargs"


def test_parse_extra() -> None:
    assert parse_extra(None) == {} and parse_extra("") == {} and parse_extra("{}") == {}
    assert parse_extra('{"any key": [1]}') == {"any key": [1]}
    with pytest.raises(RowError, match="must be a JSON object") as info:
        parse_extra("[]")
    assert info.value.column == "extra"


# --- execute_func / timezone -----------------------------------------------------------------

REGISTERED = ["test_interval", "jobs.report", "b_job", "a_job"]


@pytest.mark.parametrize(("name", "expected"), [("test_interval", "test_interval"), (" jobs.report ", "jobs.report")])
def test_validate_job_name_accepts(name: str, expected: str) -> None:
    assert validate_job_name(name, REGISTERED) == expected


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        (None, r"is empty"),
        ("  ", r"is empty"),
        ("x" * 256, r"longer than 255"),
        (
            "os.system",
            r"'os.system' is not a registered job; registered jobs: a_job, b_job, jobs.report, test_interval",
        ),
        ("__import__('os')", r"is not a registered job"),
        ("1job", r"is not a registered job"),
    ],
)
def test_validate_job_name_rejects(name: str | None, reason: str) -> None:
    with pytest.raises(RowError, match=reason) as info:
        validate_job_name(name, REGISTERED)
    assert info.value.column == "execute_func"


def test_validate_job_name_lists_at_most_ten() -> None:
    with pytest.raises(RowError, match=r"j00, .*, j09 \(and 5 more\)$"):
        validate_job_name("nope", [f"j{i:02d}" for i in range(15)])
    with pytest.raises(RowError, match="no jobs are registered"):
        validate_job_name("nope", [])


@pytest.mark.parametrize(
    ("name", "key"),
    [
        (None, "UTC"),
        ("", "UTC"),
        ("Asia/Shanghai", "Asia/Shanghai"),
        (" Europe/Berlin ", "Europe/Berlin"),
        ("Etc/GMT+5", "Etc/GMT+5"),
    ],
)
def test_parse_timezone_accepts(name: str | None, key: str) -> None:
    assert parse_timezone(name, "UTC").key == key


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("Mars/Base", r"unknown IANA time zone 'Mars/Base'"),
        ("America", r"unknown IANA time zone 'America'"),
        ("../etc/passwd", r"is not an IANA time zone name"),
        ("/etc/localtime", r"is not an IANA time zone name"),
        ("x" * 100, r"is not an IANA time zone name"),
    ],
)
def test_parse_timezone_rejects(name: str, reason: str) -> None:
    with pytest.raises(RowError, match=reason) as info:
        parse_timezone(name, "UTC")
    assert info.value.column == "timezone"


# --- interval ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("5", 5),
        ("90s", 90),
        ("5m", 300),
        ("1h30m", 5400),
        ("2d", 172800),
        ("1h 30m 10s", 5410),
        (" 10 ", 10),
        ("366d", 366 * 86400),
    ],
)
def test_parse_interval_accepts(text: str, seconds: int) -> None:
    assert parse_interval(text) == seconds


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("0", r"must be positive"),
        ("0m", r"must be positive"),
        ("-5", r"must be positive, got '-5'"),
        ("abc", r"cannot read interval 'abc'"),
        ("1e309", r"whole number of \(integer\) seconds"),
        ("1.5", r"whole number of \(integer\) seconds, got '1.5'"),
        ("", r"is empty"),
        (None, r"is empty"),
        ("367d", r"longer than the maximum of 366 days"),
        ("1m 2m", r"gives unit 'm' twice"),
        ("5 minutes", r"cannot read interval"),
        ("9" * 2000, r"limit is 1024"),
    ],
)
def test_parse_interval_rejects(text: str | None, reason: str) -> None:
    with pytest.raises(RowError, match=reason) as info:
        parse_interval(text)
    assert info.value.column == "spec"


# --- date ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2020-04-24 18:08:00", datetime(2020, 4, 24, 22, 8, tzinfo=UTC)),
        ("2020-04-24T18:08:00", datetime(2020, 4, 24, 22, 8, tzinfo=UTC)),
        ("2020-04-24 18:08", datetime(2020, 4, 24, 22, 8, tzinfo=UTC)),
        ("2020-04-24", datetime(2020, 4, 24, 4, 0, tzinfo=UTC)),
        ("2023-12-31T23:59:59+08:00", datetime(2023, 12, 31, 15, 59, 59, tzinfo=UTC)),
        ("2023-12-31T23:59:59Z", datetime(2023, 12, 31, 23, 59, 59, tzinfo=UTC)),
        ("2023-12-31 23:59:59.25-0130", datetime(2024, 1, 1, 1, 29, 59, 250000, tzinfo=UTC)),
        ("2024-03-10 03:00", datetime(2024, 3, 10, 7, 0, tzinfo=UTC)),
        ("2024-11-03 01:30-05:00", datetime(2024, 11, 3, 6, 30, tzinfo=UTC)),
    ],
)
def test_parse_date_accepts(text: str, expected: datetime) -> None:
    parsed = parse_date(text, NEW_YORK)
    assert parsed == expected and parsed.utcoffset() == expected.utcoffset() and parsed.tzinfo is UTC


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("2024-03-10 02:30:00", r"2024-03-10 02:30:00 does not exist in America/New_York"),
        ("2024-11-03 01:30:00", r"is ambiguous in America/New_York \(DST fall-back\); give an offset"),
        ("2023-02-30", r"'2023-02-30' is not a valid date \(day is out of range for month\)"),
        ("2023-13-01", r"is not a valid date"),
        ("2023-01-01 24:00", r"is not a valid date"),
        ("2023-01-01T10:00+25:00", r"offset '\+25:00' is out of range"),
        ("tomorrow", r"cannot read date 'tomorrow'"),
        ("2023/01/01", r"cannot read date"),
        ("", r"is empty"),
        ("0001-01-01 00:00+01:00", r"out of the supported range"),
    ],
)
def test_parse_date_rejects(text: str, reason: str) -> None:
    with pytest.raises(RowError, match=reason) as info:
        parse_date(text, NEW_YORK)
    assert info.value.column == "spec"


# --- cron -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expression", "fixed_hour"),
    [
        ("*/5 * * * *", "*/5 * * * *", False),
        ("  0   9 * * MON-FRI ", "0 9 * * mon-fri", True),
        ("30 1 * * *", "30 1 * * *", True),
        ("0 1-5/2 * * *", "0 1-5/2 * * *", True),
        ("0 */2 * * *", "0 */2 * * *", False),
        ("* * * * * 30", "* * * * * 30", False),
        ("@hourly", "0 * * * *", False),
        ("@daily", "0 0 * * *", True),
        ("@weekly", "0 0 * * 0", True),
        ("@monthly", "0 0 1 * *", True),
        ("@yearly", "0 0 1 1 *", True),
        ("0 0 L * *", "0 0 l * *", True),
        ("0 0 ? * 5#3", "0 0 * * 5#3", True),
        ("0 0 29 2 *", "0 0 29 2 *", True),
        ("0 0 * jan,jul 7", "0 0 * jan,jul 7", True),
    ],
)
def test_parse_cron_accepts(text: str, expression: str, fixed_hour: bool) -> None:
    spec = parse_cron(text)
    assert (spec.expression, spec.has_fixed_hour) == (expression, fixed_hour)


@pytest.mark.parametrize(
    ("text", "expanded"),
    [
        ("5-5 * * * *", "5 * * * *"),  # croniter 7 reads `5-5` as `*`
        ("0 0 * * 1-1/3", "0 0 * * 1"),  # ... and `1-1/3` as `*/3`
        ("*/15 * * * *", "0,15,30,45 * * * *"),
        ("0 9 * * mon-fri,7", "0 9 * * 0,1,2,3,4,5"),
        ("0 0 1,L * *", "0 0 1,l * *"),
        ("0 0 * * FRI#2", "0 0 * * 5#2"),
    ],
)
def test_parse_cron_expands_for_croniter(text: str, expanded: str) -> None:
    assert parse_cron(text).expanded == expanded


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("61 * * * *", r"cron field 'minute' value 61 is out of range 0-59"),
        ("0 24 * * *", r"cron field 'hour' value 24 is out of range 0-23"),
        ("0 0 0 * *", r"cron field 'day of month' value 0 is out of range 1-31"),
        ("0 0 * 13 *", r"cron field 'month' value 13 is out of range 1-12"),
        ("0 0 * * 8", r"cron field 'day of week' value 8 is out of range 0-7"),
        ("* * * * * 60", r"cron field 'second' value 60 is out of range 0-59"),
        ("* * *", r"expected 5 or 6 fields, got 3"),
        ("* * * * * * *", r"expected 5 or 6 fields, got 7"),
        ("every tuesday", r"expected 5 or 6 fields, got 2"),
        ("", r"is empty"),
        ("@reboot", r"unknown cron macro '@reboot'"),
        ("*/0 * * * *", r"cron field 'minute' step '0' must be 1-59"),
        ("5/10 * * * *", r"step needs '\*' or a range"),
        ("0 0 * * 5-1", r"cron field 'day of week' range '5-1' runs backwards"),
        ("1,,2 * * * *", r"cron field 'minute' has an empty item"),
        ("a * * * *", r"cron field 'minute' has invalid value 'a'"),
        ("0 0 * * tue#9", r"number after '#' must be 1-5"),
        ("H * * * *", r"invalid value 'h'"),
        ("0 0 30 2 *", r"never fires"),
        ("0 0 31 4,6 *", r"never fires"),
    ],
)
def test_parse_cron_rejects(text: str, reason: str) -> None:
    with pytest.raises(RowError, match=reason) as info:
        parse_cron(text)
    assert info.value.column == "spec"


# --- normalise_spec ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("trigger", "spec", "expected"),
    [
        ("cron", "@daily", "0 0 * * *"),
        (" CRON ", "0  9 * * MON", "0 9 * * mon"),
        ("interval", "1h30m", "5400"),
        ("date", "2020-04-24T18:08", "2020-04-24 18:08:00"),
        ("date", "2023-12-31T23:59:59Z", "2023-12-31 23:59:59+00:00"),
        ("date", "2023-12-31 23:59:59+08:00", "2023-12-31 23:59:59+08:00"),
    ],
)
def test_normalise_spec(trigger: str, spec: str, expected: str) -> None:
    assert normalise_spec(trigger, spec) == expected


@pytest.mark.parametrize(
    ("trigger", "spec", "column", "reason"),
    [
        ("weekly", "x", "trigger", r"unknown trigger 'weekly'; use cron, interval or date"),
        ("", "x", "trigger", r"unknown trigger ''"),
        ("interval", "soon", "spec", r"cannot read interval"),
        ("cron", "* *", "spec", r"expected 5 or 6 fields"),
    ],
)
def test_normalise_spec_rejects(trigger: str, spec: str, column: str, reason: str) -> None:
    with pytest.raises(RowError, match=reason) as info:
        normalise_spec(trigger, spec)
    assert info.value.column == column


def test_normalise_spec_checks_dates_against_a_zone() -> None:
    assert normalise_spec("date", "2024-03-10 02:30") == "2024-03-10 02:30:00"
    with pytest.raises(RowError, match="does not exist"):
        normalise_spec("date", "2024-03-10 02:30", NEW_YORK)


# --- fuzzing: only RowError, and quickly ------------------------------------------------------------------

_CRON_ALPHABET = st.sampled_from(list("0123456789*/,-#? @LlHjanmofriue\t"))
_DATE_ALPHABET = st.sampled_from(list("0123456789-:T Z+.,"))
_INTERVAL_ALPHABET = st.sampled_from(list("0123456789dhms .e+-"))


@settings(max_examples=300)
@given(st.one_of(st.text(max_size=40), st.text(_CRON_ALPHABET, max_size=40)))
def test_parse_cron_fuzz(text: str) -> None:
    try:
        spec = parse_cron(text)
    except RowError as exc:
        assert exc.column == "spec"
    else:
        assert len(spec.expression.split()) in (5, 6)


@settings(max_examples=300)
@given(st.one_of(st.text(max_size=40), st.text(_DATE_ALPHABET, max_size=40)))
def test_parse_date_fuzz(text: str) -> None:
    try:
        parsed = parse_date(text, NEW_YORK)
    except RowError as exc:
        assert exc.column == "spec"
    else:
        assert parsed.tzinfo is UTC


@settings(max_examples=300)
@given(st.one_of(st.text(max_size=40), st.text(_INTERVAL_ALPHABET, max_size=40)))
def test_parse_interval_fuzz(text: str) -> None:
    try:
        seconds = parse_interval(text)
    except RowError as exc:
        assert exc.column == "spec"
    else:
        assert 0 < seconds <= 366 * 86400

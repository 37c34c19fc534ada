"""Trigger maths: interval grid, cron in a zone, DST behaviour (checked by brute force)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scheduler.errors import RowError
from scheduler.triggers import CronTrigger, DateTrigger, IntervalTrigger, build_trigger, next_fires

UTC = UTC
MINUTE = timedelta(minutes=1)
DST_ZONES = ["America/New_York", "Europe/Berlin", "Australia/Sydney"]
ZONES = [*DST_ZONES, "UTC", "Asia/Shanghai", "Asia/Kolkata", "Australia/Lord_Howe", "America/Havana"]
ANCHOR = datetime(2024, 1, 1, tzinfo=UTC)

aware = st.datetimes(
    min_value=datetime(2000, 1, 1),
    max_value=datetime(2035, 1, 1),
    timezones=st.sampled_from([UTC, ZoneInfo("Asia/Kolkata")]),
)


# --- a tiny reference cron matcher (numbers, *, ranges, steps, lists) -------------------------------


def _values(raw: str, low: int, high: int) -> set[int]:
    out: set[int] = set()
    for item in raw.split(","):
        base, _, step = item.partition("/")
        start, end = (low, high) if base == "*" else (int(base.split("-")[0]), int(base.split("-")[-1]))
        out.update(range(start, end + 1, int(step or 1)))
    return out


def _matches(expression: str, local: datetime) -> bool:
    minute, hour, dom, month, dow = expression.split()[:5]
    days = {d % 7 for d in _values(dow, 0, 7)}
    dom_ok, dow_ok = local.day in _values(dom, 1, 31), (local.isoweekday() % 7) in days
    day_ok = (dom_ok or dow_ok) if "*" not in (dom[0], dow[0]) else (dom_ok and dow_ok)
    return (
        local.minute in _values(minute, 0, 59)
        and local.hour in _values(hour, 0, 23)
        and local.month in _values(month, 1, 12)
        and day_ok
        and local.second == 0
    )


def _is_transition(instant: datetime, tz: ZoneInfo) -> bool:
    return instant.astimezone(tz).utcoffset() != (instant - timedelta(seconds=1)).astimezone(tz).utcoffset()


def _expected_fires(expression: str, tz: ZoneInfo, start: datetime, end: datetime) -> list[datetime]:
    """Vixie-cron semantics by brute force over every real minute in (start, end]."""
    fixed_hour = not expression.split()[1].startswith("*")
    fires: list[datetime] = []
    instant = start + MINUTE
    while instant <= end:
        local = instant.astimezone(tz)
        if (
            _is_transition(instant, tz)
            and fixed_hour
            and local.utcoffset() > (instant - MINUTE).astimezone(tz).utcoffset()
        ):
            # Spring-forward: fixed-time jobs inside the skipped wall span run right after it.
            wall = (instant - MINUTE).astimezone(tz).replace(tzinfo=None) + MINUTE
            while wall < local.replace(tzinfo=None):
                if _matches(expression, wall):
                    fires.append(instant)
                    break
                wall += MINUTE
        if _matches(expression, local) and not (fixed_hour and local.fold) and instant not in fires[-1:]:
            fires.append(instant)
        instant += MINUTE
    return fires


def _transition_days(tz: ZoneInfo, years: range) -> list[date]:
    days, day = [], date(years.start, 1, 1)
    while day.year < years.stop:
        noon = datetime(day.year, day.month, day.day, 12, tzinfo=tz)
        if noon.utcoffset() != (noon - timedelta(days=1)).utcoffset():
            days.append(day)
        day += timedelta(days=1)
    return days


TRANSITIONS = {key: _transition_days(ZoneInfo(key), range(2024, 2028)) for key in ZONES}


def test_transition_days_found() -> None:
    assert all(len(TRANSITIONS[key]) == 8 for key in DST_ZONES)
    assert TRANSITIONS["UTC"] == []


# --- build_trigger ----------------------------------------------------------------------------------


def test_build_trigger_kinds() -> None:
    tz = ZoneInfo("Asia/Shanghai")
    cron = build_trigger("cron", "0 9 * * mon-fri", tz, ANCHOR)
    assert cron == CronTrigger("0 9 * * mon-fri", tz) and cron is build_trigger(" Cron ", "0 9 * * MON-FRI", tz, ANCHOR)
    assert build_trigger("interval", "5m", tz, ANCHOR) == IntervalTrigger(300, ANCHOR)
    assert build_trigger("date", "2024-01-01 08:00", tz, ANCHOR) == DateTrigger(datetime(2024, 1, 1, tzinfo=UTC))


@pytest.mark.parametrize(
    ("trigger", "spec", "column", "reason"),
    [
        ("weekly", "1", "trigger", r"unknown trigger 'weekly'; use cron, interval or date"),
        ("cron", "61 * * * *", "spec", r"cron field 'minute' value 61 is out of range 0-59"),
        ("interval", "0", "spec", r"must be positive"),
        ("date", "2023-02-30", "spec", r"not a valid date"),
    ],
)
def test_build_trigger_rejects(trigger: str, spec: str, column: str, reason: str) -> None:
    with pytest.raises(RowError, match=reason) as info:
        build_trigger(trigger, spec, ZoneInfo("UTC"), ANCHOR)
    assert info.value.column == column


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        IntervalTrigger(5, datetime(2024, 1, 1))
    with pytest.raises(ValueError, match="timezone-aware"):
        CronTrigger("* * * * *", ZoneInfo("UTC")).next_after(datetime(2024, 1, 1))


@pytest.mark.parametrize(
    ("trigger", "spec", "tz", "words"),
    [
        ("cron", "0 9 * * 1-5", "Asia/Shanghai", "at 09:00 Mon-Fri (Asia/Shanghai)"),
        ("cron", "*/5 * * * *", "UTC", "every 5 minutes"),
        ("cron", "* * * * *", "UTC", "every minute"),
        ("cron", "30 8,20 1 jan *", "UTC", "at 08:30, 20:30 on day 1 in Jan (UTC)"),
        ("cron", "*/10 1-5 * * *", "UTC", "cron '*/10 1-5 * * *' (UTC)"),
        # The sixth field is seconds.
        ("cron", "* * * * * */2", "UTC", "every 2 seconds"),
        ("cron", "* * * * * */10", "UTC", "every 10 seconds"),
        ("cron", "* * * * * *", "UTC", "every second"),
        ("cron", "* * * * * 0,30", "UTC", "every minute at second 0, 30"),
        ("cron", "* * * * * 0", "UTC", "every minute"),
        ("cron", "*/5 * * * * 30", "UTC", "every 5 minutes at second 30"),
        ("cron", "15 * * * * 5", "UTC", "every hour at minute 15, second 5"),
        ("cron", "0 9 * * 1-5 30", "Asia/Shanghai", "at 09:00:30 Mon-Fri (Asia/Shanghai)"),
        ("cron", "0 9 * * 1-5 0", "UTC", "at 09:00 Mon-Fri (UTC)"),
        ("cron", "* 9 * * * */10", "UTC", "cron '* 9 * * * */10' (UTC)"),
        ("cron", "*/5 * * * * */10", "UTC", "cron '*/5 * * * * */10' (UTC)"),
        ("interval", "300", "UTC", "every 5 minutes"),
        ("interval", "3600", "UTC", "every hour"),
        ("interval", "3661", "UTC", "every 1h 1m 1s"),
        ("date", "2024-01-01", "UTC", "once at 2024-01-01 00:00 UTC"),
    ],
)
def test_describe(trigger: str, spec: str, tz: str, words: str) -> None:
    assert build_trigger(trigger, spec, ZoneInfo(tz), ANCHOR).describe() == words


# --- interval and date ------------------------------------------------------------------------------


@given(st.integers(1, 366 * 86400), aware, aware)
def test_interval_next_after_is_on_the_grid(every_s: int, anchor: datetime, after: datetime) -> None:
    trigger, every = IntervalTrigger(every_s, anchor), timedelta(seconds=every_s)
    fire = trigger.next_after(after)
    assert fire is not None and fire.tzinfo is UTC
    steps, rest = divmod(fire - anchor, every)
    assert rest == timedelta(0) and steps >= 1
    assert after < fire <= max(after, anchor) + every
    previous = trigger.previous_at_or_before(after)
    if previous is None:
        assert fire == anchor + every
    else:
        assert previous <= after and trigger.next_after(previous) == fire
        assert trigger.previous_at_or_before(previous) == previous


def test_interval_examples() -> None:
    trigger = IntervalTrigger(5, ANCHOR)
    assert trigger.next_after(ANCHOR - timedelta(days=1)) == ANCHOR + timedelta(seconds=5)
    assert trigger.next_after(ANCHOR + timedelta(seconds=5)) == ANCHOR + timedelta(seconds=10)
    assert trigger.next_after(ANCHOR + timedelta(seconds=5, microseconds=-1)) == ANCHOR + timedelta(seconds=5)
    assert trigger.previous_at_or_before(ANCHOR + timedelta(seconds=4)) is None
    assert next_fires(trigger, ANCHOR, 3) == [ANCHOR + timedelta(seconds=s) for s in (5, 10, 15)]


def test_date_trigger() -> None:
    run_at = datetime(2024, 1, 1, 8, tzinfo=ZoneInfo("Asia/Shanghai"))
    trigger = DateTrigger(run_at)
    assert trigger.run_at.tzinfo is UTC
    assert trigger.next_after(run_at - MINUTE) == run_at and trigger.next_after(run_at) is None
    assert trigger.previous_at_or_before(run_at) == run_at and trigger.previous_at_or_before(run_at - MINUTE) is None
    assert next_fires(trigger, run_at - MINUTE, 5) == [run_at]


# --- cron ---------------------------------------------------------------------------------------------


def _field(low: int, high: int) -> st.SearchStrategy[str]:
    number = st.integers(low, high).map(str)
    span = st.tuples(st.integers(low, high), st.integers(low, high)).map(lambda p: f"{min(p)}-{max(p)}")
    step = st.integers(1, max(1, high // 2)).map(lambda s: f"*/{s}")
    item = st.one_of(number, span, step, span.flatmap(lambda r: st.integers(1, 5).map(lambda s: f"{r}/{s}")))
    return st.one_of(st.just("*"), item, st.lists(item, min_size=2, max_size=3).map(",".join))


cron_expressions = st.tuples(_field(0, 59), _field(0, 23), _field(1, 28), _field(1, 12), _field(0, 7)).map(" ".join)


@settings(max_examples=60, deadline=None)
@given(cron_expressions, st.sampled_from(ZONES), aware)
def test_cron_is_strictly_increasing_and_matches(expression: str, zone: str, start: datetime) -> None:
    tz = ZoneInfo(zone)
    trigger = CronTrigger(expression, tz)
    fires = next_fires(trigger, start, 200)
    assert len(fires) == 200
    assert fires[0] > start and all(a < b for a, b in zip(fires, fires[1:], strict=False))
    for fire in fires:
        assert fire.tzinfo is UTC
        assert _matches(expression, fire.astimezone(tz)) or _is_transition(fire, tz)
    for fire in fires[:5]:
        assert trigger.previous_at_or_before(fire) == fire
        earlier = trigger.previous_at_or_before(fire - timedelta(microseconds=1))
        assert earlier is None or earlier < fire


@settings(max_examples=40, deadline=None)
@given(cron_expressions, st.sampled_from(ZONES), aware)
def test_cron_previous_at_or_before(expression: str, zone: str, at: datetime) -> None:
    trigger = CronTrigger(expression, ZoneInfo(zone))
    previous = trigger.previous_at_or_before(at)
    assert previous is not None and previous <= at
    assert trigger.next_after(previous - timedelta(seconds=1)) == previous
    following = trigger.next_after(previous)
    assert following is not None and following > at


EXPRESSIONS = [
    "30 1 * * *",
    "30 2 * * *",
    "* 2 * * *",
    "0,30 1,2 * * *",
    "*/15 * * * *",
    "30 * * * *",
    "0 * * * *",
    "15 1 * * *",
    "*/20 1-3 * * *",
    "0 0 * * *",
    "45 23 * * *",
    "5 3 * * *",
]


@pytest.mark.parametrize("zone", [*DST_ZONES, "Australia/Lord_Howe", "America/Havana"])
@pytest.mark.parametrize("expression", EXPRESSIONS)
def test_cron_matches_brute_force_around_transitions(zone: str, expression: str) -> None:
    tz = ZoneInfo(zone)
    trigger = CronTrigger(expression, tz)
    for day in TRANSITIONS[zone][:4]:
        start = datetime(day.year, day.month, day.day, tzinfo=tz).astimezone(UTC) - timedelta(hours=6)
        end = start + timedelta(hours=36)
        expected = _expected_fires(expression, tz, start, end)
        actual = [fire for fire in next_fires(trigger, start, len(expected) + 1) if fire <= end]
        assert actual == expected, (day, [f.astimezone(tz).isoformat() for f in actual])
        for fire in expected:
            assert trigger.previous_at_or_before(fire + timedelta(seconds=59)) == fire


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(DST_ZONES), st.integers(0, 7), st.integers(0, 23), st.integers(0, 59), st.integers(-2, 2))
def test_fixed_hour_daily_job_fires_once_per_local_day(
    zone: str, pick: int, hour: int, minute: int, shift: int
) -> None:
    tz = ZoneInfo(zone)
    transition = TRANSITIONS[zone][pick] + timedelta(days=shift)
    first_day = transition - timedelta(days=2)
    start = datetime(first_day.year, first_day.month, first_day.day, tzinfo=tz).astimezone(UTC) - MINUTE
    trigger = CronTrigger(f"{minute} {hour} * * *", tz)
    fires = [
        fire for fire in next_fires(trigger, start, 8) if fire.astimezone(tz).date() <= transition + timedelta(days=2)
    ]
    days = [fire.astimezone(tz).date() for fire in fires]
    assert days == [first_day + timedelta(days=i) for i in range(5)]
    for fire in fires:
        local = fire.astimezone(tz)
        assert (local.hour, local.minute) == (hour, minute) or _is_transition(fire, tz)


@pytest.mark.parametrize("zone", DST_ZONES)
def test_quarter_hourly_job_fires_every_fifteen_real_minutes(zone: str) -> None:
    tz = ZoneInfo(zone)
    trigger = CronTrigger("*/15 * * * *", tz)
    for day in TRANSITIONS[zone]:
        start = datetime(day.year, day.month, day.day, tzinfo=tz).astimezone(UTC)
        fires = next_fires(trigger, start - MINUTE, 24)
        assert fires[0] == start
        assert all(b - a == timedelta(minutes=15) for a, b in zip(fires, fires[1:], strict=False))
        assert all(fire.astimezone(tz).minute % 15 == 0 for fire in fires)
        walls = [fire.astimezone(tz).replace(tzinfo=None) for fire in fires]
        fell_back = walls != sorted(walls)
        assert fell_back == (fires[0].astimezone(tz).utcoffset() > fires[-1].astimezone(tz).utcoffset())


def test_cron_trigger_is_shared_and_cached() -> None:
    tz = ZoneInfo("Europe/Berlin")
    after = datetime(2030, 5, 5, 10, 0, 30, tzinfo=UTC)
    triggers = [build_trigger("cron", "* * * * *", tz, ANCHOR) for _ in range(10_000)]
    assert len({id(t) for t in triggers}) == 1
    assert {t.next_after(after) for t in triggers} == {datetime(2030, 5, 5, 10, 1, tzinfo=UTC)}


def test_cron_with_seconds_field() -> None:
    trigger = CronTrigger("* * * * * */20", ZoneInfo("UTC"))
    assert next_fires(trigger, ANCHOR, 4) == [ANCHOR + timedelta(seconds=s) for s in (20, 40, 60, 80)]
    assert trigger.next_after(ANCHOR + timedelta(microseconds=1)) == ANCHOR + timedelta(seconds=20)

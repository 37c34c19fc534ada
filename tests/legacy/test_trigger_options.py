"""APScheduler's trigger options (start_date, end_date, jitter, year, week): stored as columns, honoured by beat."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine

from scheduler.errors import RowError
from scheduler.trigger_window import WindowedTrigger, make_window, parse_field
from scheduler.triggers import build_trigger, next_fires
from service.trigger_args import from_trigger_args
from tests.helpers import sql
from tests.processes import Cluster, wait_for

UTC_TZ = ZoneInfo("UTC")
T0 = datetime(2030, 1, 1, tzinfo=UTC)


def cron(expression: str, tz: ZoneInfo = UTC_TZ):
    return build_trigger("cron", expression, tz, T0)


def test_year_and_week_fields() -> None:
    assert parse_field("cron_year", "2031-2035/2") == {2031, 2033, 2035}
    assert parse_field("cron_week", "1,52") == {1, 52}
    assert parse_field("cron_week", "*") is None
    for bad in ("x", "0", "60", "2040-2030"):
        with pytest.raises(RowError):
            parse_field("cron_week" if bad in ("0", "60") else "cron_year", bad)
    trigger = WindowedTrigger(cron("0 9 * * *"), make_window(None, None, None, "2032", "2"), UTC_TZ)
    fires = next_fires(trigger, T0, 10)
    assert len(fires) == 7 and all(f.year == 2032 and f.isocalendar().week == 2 for f in fires)


def test_start_and_end_bound_cron_and_interval() -> None:
    start, end = T0 + timedelta(days=3), T0 + timedelta(days=5)
    trigger = WindowedTrigger(cron("0 9 * * *"), make_window(start, end, None, None, None), UTC_TZ)
    assert [f.day for f in next_fires(trigger, T0, 10)] == [4, 5]
    with pytest.raises(RowError, match="before start_date"):
        make_window(end, start, None, None, None)


@settings(max_examples=60, deadline=None)
@given(jitter=st.integers(0, 50), seed=st.integers(0, 10**6), offset=st.integers(0, 86400))
def test_jitter_delays_each_fire_at_most_jitter_and_keeps_order(jitter: int, seed: int, offset: int) -> None:
    inner = build_trigger("interval", "60", UTC_TZ, T0)
    trigger = WindowedTrigger(inner, make_window(None, None, jitter, None, None), UTC_TZ, seed)
    after = T0 + timedelta(seconds=offset)
    fires = next_fires(trigger, after, 20)
    nominal = next_fires(inner, after - timedelta(seconds=jitter), 25)
    assert all(a < b for a, b in zip(fires, fires[1:], strict=False)) and fires[0] > after
    for fire in fires:  # each is one nominal fire delayed by 0..jitter seconds
        assert any(timedelta(0) <= fire - n <= timedelta(seconds=jitter) for n in nominal)
    again = WindowedTrigger(inner, make_window(None, None, jitter, None, None), UTC_TZ, seed)
    assert next_fires(again, after, 20) == fires  # deterministic: every beat agrees


def test_trigger_args_options() -> None:
    schedule = from_trigger_args(
        "cron", {"hour": "9", "year": "2031", "week": "1-10", "start_date": "2031-01-01", "jitter": 30}
    )
    assert (schedule.spec, schedule.year, schedule.week, schedule.jitter) == ("0 9 * * *", "2031", "1-10", 30)
    assert from_trigger_args(None, {"week": "2"}).spec == "0 0 * * *"
    assert from_trigger_args(None, {"year": "2031"}).spec == "0 0 1 1 *"
    assert from_trigger_args("interval", {"hours": 1, "end_date": "2031-01-01"}).end_date == "2031-01-01"


# --------------------------------------------------------------------------- real beat + worker


@pytest.mark.integration
@pytest.mark.mariadb
def test_beat_honours_start_and_end_date_columns(legacy_cluster: Cluster, db: Engine) -> None:
    now = datetime.now(UTC).replace(tzinfo=None)
    start, end = now + timedelta(seconds=4), now + timedelta(seconds=8)
    sql(
        db,
        "INSERT INTO task (task_key, execute_func, `trigger`, spec, start_date, end_date, jitter_seconds, is_valid, "
        "status, extra) VALUES ('windowed', 'test_interval', 'interval', '1', :s, :e, 0, 1, 'ready', '{}')",
        s=start,
        e=end,
    )
    task_id = sql(db, "SELECT id FROM task WHERE task_key = 'windowed'")[0][0]

    def finished() -> bool:
        status = sql(db, "SELECT status FROM task WHERE id = :t", t=task_id)[0][0]
        return status == "completed" or datetime.now(UTC).replace(tzinfo=None) > end + timedelta(seconds=4)

    wait_for(finished, 40, what="the window to pass")
    fires = [r[0] for r in sql(db, "SELECT scheduled_at FROM execute_task WHERE task_id = :t", t=task_id)]
    assert fires, "no fire inside the window"
    assert all(start - timedelta(milliseconds=1) <= f <= end for f in fires), (start, end, fires)
    assert len(fires) == 5  # start_date + k seconds, k = 0..4 (APScheduler's interval with start_date)

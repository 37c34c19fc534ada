"""``trigger_args`` (APScheduler-style keyword arguments) -> the table's ``trigger`` and ``spec``, as a table."""

from __future__ import annotations

from typing import Any

import pytest

from service.errors import ValidationFailed
from service.trigger_args import ScheduleArgs, from_trigger_args

ACCEPTED = [
    (None, {"hours": 1}, ScheduleArgs("interval", "3600")),
    (None, {"minutes": 90}, ScheduleArgs("interval", "5400")),
    (None, {"hours": 1.5}, ScheduleArgs("interval", "5400")),
    (None, {"weeks": 1, "days": 1}, ScheduleArgs("interval", "691200")),
    ("interval", {"seconds": 30}, ScheduleArgs("interval", "30")),
    (" Interval ", {"seconds": 30}, ScheduleArgs("interval", "30")),
    (None, {"hours": 1, "timezone": "Asia/Shanghai"}, ScheduleArgs("interval", "3600", "Asia/Shanghai")),
    # Cron: fields more significant than the most significant one given are '*', less significant ones 0.
    (None, {"hour": "9", "minute": "0", "day_of_week": "mon-fri"}, ScheduleArgs("cron", "0 9 * * mon-fri")),
    (None, {"minute": "*/5"}, ScheduleArgs("cron", "*/5 * * * *")),
    (None, {"day_of_week": "sun"}, ScheduleArgs("cron", "0 0 * * sun")),
    (None, {"second": "30"}, ScheduleArgs("cron", "* * * * * 30")),
    (None, {"run_date": "2030-01-02 03:04:05"}, ScheduleArgs("date", "2030-01-02 03:04:05")),
    # year / week / start_date are kept beside the spec (option columns), as APScheduler reads them.
    (None, {"year": "2030"}, ScheduleArgs("cron", "0 0 1 1 *", year="2030")),
    (None, {"week": "1"}, ScheduleArgs("cron", "0 0 * * *", week="1")),
    (None, {"hours": 1, "start_date": "2030-01-01"}, ScheduleArgs("interval", "3600", start_date="2030-01-01")),
]

REFUSED = [
    (None, {}, "trigger_args", "gives no schedule"),
    (None, {"hour": 1, "hours": 1}, "trigger_args", "mixes keys of the cron and interval triggers"),
    ("cron", {"seconds": 5}, "trigger_args.seconds", "is not a cron trigger argument"),
    ("weekly", {"hours": 1}, "trigger", "unknown trigger 'weekly'"),
    (None, {"hours": 0}, "trigger_args", "interval must be positive, got 0 seconds"),
    (None, {"hours": -1}, "trigger_args", "interval must be positive, got -3600 seconds"),
    (None, {"hours": True}, "trigger_args.hours", "must be a number, got True"),
    (None, {"hours": 1, "timezone": 5}, "trigger_args.timezone", "must be an IANA zone name"),
    (None, [1], "trigger_args", "must be a JSON object"),
]


@pytest.mark.parametrize(("trigger", "args", "expected"), ACCEPTED, ids=[repr(c[1]) for c in ACCEPTED])
def test_accepted(trigger: str | None, args: dict[str, Any], expected: ScheduleArgs) -> None:
    assert from_trigger_args(trigger, args) == expected


@pytest.mark.parametrize(("trigger", "args", "field", "reason"), REFUSED, ids=[repr(c[1]) for c in REFUSED])
def test_refused_naming_the_field(trigger: str | None, args: Any, field: str, reason: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        from_trigger_args(trigger, args)
    assert caught.value.field == field
    assert caught.value.reason.startswith(reason), caught.value.reason

"""``plan_due``: which rows a due job claims (run or skipped) and its following instant, as a table."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from scheduler.planning import first_pending_instant, plan_due
from tests.unit.rows import ANCHOR, job

M = timedelta(minutes=1)
S = timedelta(seconds=1)


def at(minutes: float) -> datetime:
    return ANCHOR + timedelta(minutes=minutes)


# (columns, now, [(scheduled_at, skipped?)], next instant)
CASES = [
    pytest.param({}, at(1), [(at(1), False)], at(2), id="on time"),
    pytest.param({}, at(1) + 5 * S, [(at(1), False)], at(2), id="late within grace"),
    pytest.param({"spec": "600"}, at(11), [(at(10), False)], at(20), id="late exactly the grace"),
    pytest.param({"misfire_grace_seconds": 0}, at(1) + 5 * S, [(at(1), True)], at(2), id="late, no grace"),
    pytest.param({}, at(2.5), [(at(1), True), (at(2), False)], at(3), id="missed one: coalesced into the latest"),
    pytest.param({}, at(4) + 20 * S, [(at(1), True), (at(4), False)], at(5), id="missed three: one skipped row"),
    pytest.param(
        {"misfire_grace_seconds": 10}, at(2.5), [(at(1), True), (at(2), True)], at(3), id="coalesced and too late"
    ),
    pytest.param(
        {"trigger": "cron", "spec": "*/5 * * * *", "misfire_grace_seconds": 300},
        at(17),
        [(at(5), True), (at(15), False)],
        at(20),
        id="cron catching up",
    ),
    pytest.param(
        {"trigger": "date", "spec": "2026-01-01 00:01:00"}, at(1) + 5 * S, [(at(1), False)], None, id="date on time"
    ),
    pytest.param(
        {"trigger": "date", "spec": "2026-01-01 00:01:00"}, at(61), [(at(1), True)], None, id="date missed by an hour"
    ),
]


@pytest.mark.parametrize(("columns", "now", "expected", "following"), CASES)
def test_plan_due(
    columns: dict[str, object], now: datetime, expected: list[tuple[datetime, bool]], following: datetime | None
) -> None:
    scheduled = job(**columns)
    scheduled.next_at = first_pending_instant(scheduled)
    fires, nxt = plan_due(scheduled, now)
    assert [(f.scheduled_at, f.skip_reason is not None) for f in fires] == expected
    assert nxt == following
    for fire in fires:
        if fire.skip_reason is not None:
            assert fire.skip_reason.startswith("misfire: ")


def test_skip_reasons_name_what_was_missed() -> None:
    scheduled = job(misfire_grace_seconds=10)
    scheduled.next_at = first_pending_instant(scheduled)
    coalesced, too_late = (f.skip_reason for f in plan_due(scheduled, at(2.5))[0])
    assert coalesced == (
        "misfire: fires from 2026-01-01T00:01:00+00:00 to 2026-01-01T00:01:59.999999+00:00 "
        "were missed and coalesced into 2026-01-01T00:02:00+00:00"
    )
    assert too_late == "misfire: missed by 30.0s, more than misfire_grace_seconds=10"


@pytest.mark.parametrize(
    ("columns", "first"),
    [
        ({}, at(1)),
        ({"last_run_at": at(5)}, at(6)),
        ({"last_run_at": at(5), "anchor": at(7.5)}, at(8.5)),
        ({"trigger": "date", "spec": "2026-01-01 00:01:00"}, at(1)),
        ({"trigger": "date", "spec": "2026-01-01 00:01:00", "last_run_at": at(1)}, None),
        ({"trigger": "date", "spec": "2026-01-01 00:01:00", "anchor": at(30)}, at(1)),
    ],
    ids=["new", "after the last fire", "after the last edit", "date", "date done", "date edited after it"],
)
def test_first_pending_instant(columns: dict[str, object], first: datetime | None) -> None:
    assert first_pending_instant(job(**columns)) == first


def test_plan_due_needs_a_pending_instant() -> None:
    with pytest.raises(ValueError, match="no pending instant"):
        plan_due(job(), at(1))

"""Settling a row (``Settler.decide`` and ``row_state``): the status and next fire a row implies,
and the system columns beat must write so the row says so, as a table."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from scheduler.settle import Settler, row_state
from tests.unit.rows import ANCHOR, REGISTERED, row

FIRST = ANCHOR + timedelta(minutes=1)
DATE = "2026-01-01 00:05:00"
DATE_AT = ANCHOR + timedelta(minutes=5)

# (row columns, decided status, decided next_run_at, error prefix, columns to write)
CASES = [
    pytest.param({}, "ready", FIRST, None, {"next_run_at": FIRST}, id="new row: next_run_at written"),
    pytest.param({"next_run_at": FIRST}, "ready", FIRST, None, {}, id="row already right: nothing written"),
    pytest.param({"status": "doing", "next_run_at": FIRST}, "ready", FIRST, None, {}, id="running: stays doing"),
    pytest.param(
        {"status": "error", "last_error": "spec: bad", "next_run_at": None},
        "ready",
        FIRST,
        None,
        {"status": "ready", "next_run_at": FIRST, "last_error": None},
        id="fixed row: ready again, error cleared",
    ),
    pytest.param(
        {"execute_func": "nope"},
        "error",
        None,
        "execute_func: ",
        {"status": "error", "last_error": ...},
        id="unknown job: error named",
    ),
    pytest.param(
        {"spec": "soon"},
        "error",
        None,
        "spec: cannot read interval 'soon'",
        {"status": "error", "last_error": ...},
        id="bad spec: error named",
    ),
    pytest.param({"is_valid": 0}, "paused", None, None, {"status": "paused"}, id="paused"),
    pytest.param({"trigger": "date", "spec": DATE}, "ready", DATE_AT, None, {"next_run_at": DATE_AT}, id="date ahead"),
    pytest.param(
        {"trigger": "date", "spec": DATE, "last_run_at": DATE_AT, "last_error": "misfire: missed"},
        "completed",
        None,
        None,
        {"status": "completed"},
        id="date fired: completed, its last_error kept",
    ),
]


@pytest.mark.parametrize(("columns", "status", "next_run_at", "error", "writes"), CASES)
def test_settle_decides_and_writes(
    columns: dict[str, Any], status: str, next_run_at: Any, error: str | None, writes: dict[str, Any]
) -> None:
    task = row(**columns)
    settled = Settler(REGISTERED, "UTC", 60).decide(task)
    assert (settled.status, settled.next_run_at) == (status, next_run_at)
    if error is None:
        assert settled.error is None
    else:
        assert settled.error is not None and settled.error.startswith(error), settled.error
    expected = {k: (settled.error if v is ... else v) for k, v in writes.items()}
    assert row_state(task, settled) == expected


def test_an_error_already_recorded_is_not_written_again() -> None:
    settler = Settler(REGISTERED, "UTC", 60)
    settled = settler.decide(row(execute_func="nope"))
    assert row_state(row(execute_func="nope", status="error", last_error=settled.error), settled) == {}

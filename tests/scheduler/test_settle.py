"""What beat decides for one row (``Settler.decide``) and what it logs.

A row whose fires fall beyond what datetime holds goes to 'error'; it never stops beat: an
OverflowError from one row's date maths once ended beat (``beat raised exception OverflowError``)
and, the row being still there, every restart of it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest

from scheduler.settle import Settler

SETTLER = Settler(frozenset({"test_cron"}), "UTC", 60)


def row(**columns: Any) -> SimpleNamespace:
    """A task row as beat reads it (``store.ROW_COLUMNS``), a cron job at 12-31 23:59."""
    base: dict[str, Any] = dict.fromkeys(
        (
            "queue", "misfire_grace_seconds", "expires_seconds", "last_error", "last_run_at", "update_at",
            "create_at", "start_date", "end_date", "jitter_seconds", "cron_year", "cron_week", "trigger_args",
            "next_run_at", "timezone",
        )
    )  # fmt: skip
    base.update(
        id=7, task_key="far", execute_func="test_cron", trigger="cron", spec="59 23 31 12 *", args="",
        kwargs="{}", max_instances=1, is_valid=1, extra="{}", status="ready",
        anchor=datetime(2026, 11, 30, tzinfo=UTC),
    )  # fmt: skip
    return SimpleNamespace(**{**base, **columns})


def test_jitter_past_year_9999_is_an_error_row() -> None:
    settled = SETTLER.decide(row(start_date=datetime(9998, 12, 31, tzinfo=UTC), jitter_seconds=2**31 - 1))
    assert settled.status == "error" and settled.next_run_at is None
    assert settled.error is not None and settled.error.startswith("spec: cannot compute the next fire")


@pytest.mark.parametrize("start", [datetime(1, 1, 1, tzinfo=UTC), datetime(9999, 12, 31, tzinfo=UTC)])
def test_start_date_outside_the_computable_years_names_start_date(start: datetime) -> None:
    settled = SETTLER.decide(row(start_date=start))
    assert settled.status == "error"
    assert settled.error is not None and settled.error.startswith("start_date: must be between 1970-01-01")


def test_the_same_row_with_an_ordinary_start_is_scheduled() -> None:
    settled = SETTLER.decide(row(start_date=datetime(2020, 1, 1, tzinfo=UTC), jitter_seconds=60))
    assert settled.status == "ready" and settled.next_run_at is not None


@pytest.mark.parametrize("status", ["ready", "paused"])
def test_a_pause_is_logged_whoever_wrote_the_status(status: str, caplog: pytest.LogCaptureFixture) -> None:
    """SQL leaves status 'ready' for beat to settle; the API and CLI write 'paused' themselves."""
    with caplog.at_level("INFO", logger="tablebeat.beat"):
        settled = SETTLER.decide(row(is_valid=0, status=status), announce=True)
    assert settled.status == "paused"
    assert "tablebeat: task 'far' (7) paused" in caplog.text

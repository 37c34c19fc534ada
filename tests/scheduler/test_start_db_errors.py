"""Beat's start and database errors: nothing held idle in a transaction, and an error is an outage
(reported, retried on the next tick), never an exception out of the scheduler."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError

from scheduler import timeline
from scheduler.beat import SqlScheduler
from scheduler.settle import Settler
from tests.scheduler.test_sql_scheduler import add_task, engine, schedulers, sent

__all__ = ["engine", "schedulers"]  # fixtures shared with test_sql_scheduler


def test_the_first_settle_holds_no_transaction_idle(
    engine: Engine, schedulers: Callable[..., SqlScheduler], db_kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A never-settled table is settled a batch at a time; a settle slower than the server's
    idle-transaction timeout (beat_dead_seconds) must not get another connection of the start killed
    (a reader kept open across the batches was: MariaDB 2006 out of the start, on a loaded machine)."""
    if db_kind == "sqlite":
        pytest.skip("SQLite has no idle-transaction timeout")
    task_id = add_task(engine, "slow_settle", "test_interval", "interval", "1")
    original = Settler.settle
    stalls: list[float] = []

    def slow_settle(self: Settler, conn: Any, rows: Any, **kwargs: Any) -> Any:
        if not stalls:  # the start's settle: stalled past the 1 s timeout, as a starved process is
            stalls.append(time.monotonic())
            time.sleep(1.6)
        return original(self, conn, rows, **kwargs)

    monkeypatch.setattr(Settler, "settle", slow_settle)
    scheduler = schedulers(beat_dead_seconds=1.0)
    assert stalls, "the start did not settle the table"
    assert scheduler._start_began is None and scheduler._db_down_since is None, "the start failed"
    deadline = time.monotonic() + 10
    while not [d for d in sent(scheduler) if d.task_id == task_id] and time.monotonic() < deadline:
        scheduler.tick()
        time.sleep(0.01)
    assert [d for d in sent(scheduler) if d.task_id == task_id]


def test_a_database_error_at_start_is_an_outage_and_the_start_is_retried(
    engine: Engine, schedulers: Callable[..., SqlScheduler], monkeypatch: pytest.MonkeyPatch
) -> None:
    task_id = add_task(engine, "after_outage", "test_interval", "interval", "1")
    original = timeline.settled_change_id
    failures = [OperationalError("SELECT ...", {}, Exception("(2006, 'MySQL server has gone away')"))] * 3

    def flaky(conn: Any) -> Any:
        if failures:
            raise failures.pop()
        return original(conn)

    monkeypatch.setattr(timeline, "settled_change_id", flaky)
    scheduler = schedulers()  # does not raise
    assert scheduler._start_began is not None and scheduler._db_down_since is not None
    deadline = time.monotonic() + 10
    while not [d for d in sent(scheduler) if d.task_id == task_id] and time.monotonic() < deadline:
        scheduler.tick()
        time.sleep(0.01)
    assert not failures and scheduler._start_began is None and scheduler._db_down_since is None
    assert [d for d in sent(scheduler) if d.task_id == task_id], "no fire after the start succeeded"

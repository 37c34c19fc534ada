"""Several beats share the timeline: due rows are divided, a stopped beat's claims are taken over (issue 14 item 2)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import Engine, text

from scheduler import store
from scheduler.beat import SqlScheduler
from tests.scheduler.test_sql_scheduler import add_task, drain, engine, run_for, run_rows, schedulers, sent

__all__ = ["engine", "schedulers"]  # fixtures shared with test_sql_scheduler


def test_due_rows_are_divided_between_beats(
    engine: Engine, schedulers: Callable[..., SqlScheduler], db_kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = [add_task(engine, f"many{i}", "test_interval", "interval", "1") for i in range(40)]
    # A small claim batch: each beat locks a few rows at a time, the other skips them.
    first, second = schedulers(claim_batch=5), schedulers(claim_batch=5)
    holding, released = threading.Event(), threading.Event()
    if db_kind != "sqlite":  # SQLite has one writer: whoever claims first takes every due row
        real_claim = store.claim_fires

        def claim_holding(conn: Any, claims: Any, token: str, now: Any) -> dict[str, int]:
            # The first beat stops inside its first claim transaction, its batch locked: the two
            # beats overlap every time, not only when the machine's timing happens to interleave them.
            if token == first.token and not holding.is_set():
                holding.set()
                released.wait(10)
            return real_claim(conn, claims, token, now)

        monkeypatch.setattr(store, "claim_fires", claim_holding)
        worker = threading.Thread(target=run_for, args=(3.2, first))
        worker.start()
        try:
            assert holding.wait(10), "the first beat never claimed"
            deadline = time.monotonic() + 10
            while not sent(second) and not second._ready and time.monotonic() < deadline:
                second.tick()  # never blocks on the first beat's locked rows: it skips them
                time.sleep(0.01)
        finally:
            released.set()
            worker.join()
        run_for(1.0, first, second)
    else:
        run_for(3.2, first, second)
    drain(first)
    drain(second)
    published = [d.run_id for d in sent(first)] + [d.run_id for d in sent(second)]
    assert len(published) == len(set(published)) >= 40
    rows = [r for task_id in ids for r in run_rows(engine, task_id)]
    keys = [(r.task_id, r.scheduled_at) for r in rows]
    assert len(keys) == len(set(keys))
    # A fire claimed over a second late on a loaded machine is coalesced: one 'skipped' row, not a message.
    assert len([r for r in rows if r.status != "skipped"]) == len(published)
    owners = {r.claimed_by for r in rows}
    if db_kind != "sqlite":
        assert owners == {first.token, second.token}, owners


def test_a_stopped_beats_claims_are_taken_over(engine: Engine, schedulers: Callable[..., SqlScheduler]) -> None:
    task_id = add_task(engine, "handover", "test_interval", "interval", "2")
    doomed = schedulers(lookahead_seconds=1.5, beat_dead_seconds=1.0)
    survivor = schedulers(lookahead_seconds=1.5, beat_dead_seconds=1.0)
    deadline = time.monotonic() + 10
    while not doomed._ready and time.monotonic() < deadline:  # the doomed beat claims the next fire ahead
        doomed.tick()
        time.sleep(0.01)
    assert doomed._ready, "the first beat never claimed a fire"
    instant, run_id, _message = doomed._ready[0]
    assert doomed.heartbeat is not None
    doomed.heartbeat._stop.set()  # frozen: no more stamps, no more ticks (its claim stays unpublished)
    taken_at = None
    deadline = time.monotonic() + 10
    while taken_at is None and time.monotonic() < deadline:
        survivor.tick()
        if any(d.run_id == run_id for d in sent(survivor)):
            taken_at = time.time()
        time.sleep(0.01)
    assert taken_at is not None, "the claim was never taken over"
    assert taken_at - instant < 3.0  # silent 1 s + the next check; generous for a loaded machine
    assert not [d for d in sent(doomed) if d.run_id == run_id]
    with engine.begin() as conn:
        owner = conn.execute(text("SELECT claimed_by FROM execute_task WHERE id = :i"), {"i": run_id}).scalar()
    assert owner == survivor.token
    assert [r.id for r in run_rows(engine, task_id)].count(run_id) == 1


@pytest.mark.parametrize("column", ["next_run_at"])
def test_new_rows_get_next_run_at_from_beat(
    engine: Engine, schedulers: Callable[..., SqlScheduler], column: str
) -> None:
    scheduler = schedulers()
    run_for(0.2, scheduler)
    task_id = add_task(engine, "fresh", "test_interval", "interval", "3600")
    deadline = time.monotonic() + 5
    value = None
    while value is None and time.monotonic() < deadline:
        scheduler.tick()
        with engine.begin() as conn:
            value = conn.execute(text(f"SELECT {column} FROM task WHERE id = :i"), {"i": task_id}).scalar()
        time.sleep(0.02)
    assert value is not None
    with engine.begin() as conn:
        settled = conn.execute(text("SELECT change_id FROM schedule_cursor WHERE name = 'settled'")).scalar()
        newest = conn.execute(text("SELECT MAX(id) FROM task_change")).scalar()
    assert settled == newest

"""The next claim batch runs on the claim thread while the last one's messages are built (scheduler/claim_ahead.py)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, func, select, update
from sqlalchemy.exc import OperationalError

from models.tables import execute_task_table, task_table
from scheduler import store
from scheduler.beat import SqlScheduler
from tests.scheduler.test_sql_scheduler import add_task, engine, run_rows, schedulers, sent, tick_until

__all__ = ["engine", "schedulers"]  # fixtures shared with test_sql_scheduler

TASKS = 300


def _claims_by_thread(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    threads: list[str] = []
    real_claim = store.claim_fires

    def claim_noting_thread(conn: Any, claims: Any, token: str, now: Any) -> dict[str, int]:
        threads.append(threading.current_thread().name)
        return real_claim(conn, claims, token, now)

    monkeypatch.setattr(store, "claim_fires", claim_noting_thread)
    return threads


def _at_one_instant(engine: Engine, seconds_ahead: float = 2.5) -> list[int]:
    """TASKS date jobs at one instant ``seconds_ahead`` from now: claimed in batches ahead of it."""
    ids = [add_task(engine, f"ahead{i}", "test_date", "date", "2099-01-01 00:00:00+00:00") for i in range(TASKS)]
    at = (datetime.now(UTC) + timedelta(seconds=seconds_ahead)).isoformat(sep=" ")
    with engine.begin() as conn:
        conn.execute(update(task_table).where(task_table.c.id.in_(ids)).values(spec=at))
    return ids


def test_batches_after_the_first_are_claimed_on_the_claim_thread(
    engine: Engine, schedulers: Callable[..., SqlScheduler], db_kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = _at_one_instant(engine)
    threads = _claims_by_thread(monkeypatch)
    beat = schedulers(claim_batch=50, lookahead_seconds=1.0)

    def claimed_all() -> bool:
        assert not beat._claim_ahead.in_flight, "a claim pass returned with a batch in flight"
        return len(sent(beat)) + len(beat._ready) >= TASKS

    tick_until(claimed_all, beat, what=f"{TASKS} fires claimed")
    on_claim_thread = [name for name in threads if name.startswith("tablebeat-claim")]
    if db_kind == "sqlite":
        assert not on_claim_thread  # one writer: batches one after the other on the main thread
    else:
        assert on_claim_thread, threads
    held = [d.run_id for d in sent(beat)] + [run_id for _at, run_id, _msg in beat._ready]
    assert len(held) == len(set(held))
    rows = [r for task_id in ids for r in run_rows(engine, task_id)]
    assert len({(r.task_id, r.scheduled_at) for r in rows}) == len(rows)  # each fire claimed once
    assert {r.id for r in rows if r.status != "skipped"} == set(held)  # every run claimed was taken in


def test_a_failed_batch_on_the_claim_thread_is_an_outage_not_a_crash(
    engine: Engine, schedulers: Callable[..., SqlScheduler], db_kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if db_kind == "sqlite":
        pytest.skip("SQLite claims on the main thread only")
    _at_one_instant(engine)
    real_claim = store.claim_fires
    failed = threading.Event()

    def claim_failing_once(conn: Any, claims: Any, token: str, now: Any) -> dict[str, int]:
        if threading.current_thread().name.startswith("tablebeat-claim") and not failed.is_set():
            failed.set()
            raise OperationalError("INSERT ...", {}, Exception("(2013, 'Lost connection to server during query')"))
        return real_claim(conn, claims, token, now)

    monkeypatch.setattr(store, "claim_fires", claim_failing_once)
    beat = schedulers(claim_batch=50, lookahead_seconds=1.0)
    tick_until(
        lambda: failed.is_set() and len(sent(beat)) >= TASKS, beat, what="claims after the failed batch", timeout=30
    )
    with engine.connect() as conn:
        keys = conn.execute(select(execute_task_table.c.task_id, execute_task_table.c.scheduled_at)).all()
    assert len(keys) == len(set(keys))


def test_an_error_while_a_batch_is_in_flight_waits_for_it(
    engine: Engine, schedulers: Callable[..., SqlScheduler], db_kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A claim pass that raises (here: building messages) lets the batch in flight commit and stops the
    thread: its claims are held, unpublished, by this beat, for the others to take over once it stops."""
    if db_kind == "sqlite":
        pytest.skip("SQLite claims on the main thread only")
    _at_one_instant(engine)
    beat = schedulers(claim_batch=50, lookahead_seconds=1.0)
    real_accept = beat._accept_claims

    def accept_failing(*args: Any) -> None:
        if beat._claim_ahead.in_flight:
            raise RuntimeError("message building failed")
        real_accept(*args)

    monkeypatch.setattr(beat, "_accept_claims", accept_failing)
    deadline = time.monotonic() + 15
    with pytest.raises(RuntimeError, match="message building failed"):
        while time.monotonic() < deadline:  # until a pass has a batch in flight
            beat.tick()
            time.sleep(0.01)
    assert not beat._claim_ahead.in_flight
    with engine.connect() as conn:
        held = conn.scalar(
            select(func.count())
            .select_from(execute_task_table)
            .where(execute_task_table.c.claimed_by == beat.token, execute_task_table.c.published_at.is_(None))
        )
    assert held and held > 0


def test_fires_come_out_while_a_batch_is_being_claimed(
    engine: Engine, schedulers: Callable[..., SqlScheduler], db_kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A held fire whose instant comes during a claim transaction is published at its instant, not after."""
    if db_kind == "sqlite":
        pytest.skip("SQLite claims on the main thread only")
    early = add_task(engine, "early", "test_date", "date", "2099-01-01 00:00:00+00:00")
    _at_one_instant(engine, seconds_ahead=2.0)
    at = (datetime.now(UTC) + timedelta(seconds=1.2)).isoformat(sep=" ")
    with engine.begin() as conn:
        conn.execute(update(task_table).where(task_table.c.id == early).values(spec=at))
    real_claim = store.claim_fires
    blocked: list[bool] = []  # per blocked claim: whether the held fire went out meanwhile
    beat = schedulers(claim_batch=50, lookahead_seconds=1.5)

    def claim_blocking(conn: Any, claims: Any, token: str, now: Any) -> dict[str, int]:
        if threading.current_thread().name.startswith("tablebeat-claim") and beat._ready and not sent(beat):
            deadline = time.monotonic() + 10
            while not sent(beat) and time.monotonic() < deadline:
                time.sleep(0.01)  # the transaction is open, its rows locked: the main thread must not wait for it
            blocked.append(bool(sent(beat)))
        return real_claim(conn, claims, token, now)

    monkeypatch.setattr(store, "claim_fires", claim_blocking)
    tick_until(lambda: len(sent(beat)) >= TASKS + 1, beat, what="every fire published", timeout=30)
    assert blocked, "no claim ran while the early fire was held"
    assert all(blocked), "a held fire waited for a claim transaction"
    assert sent(beat)[0].task_id == early

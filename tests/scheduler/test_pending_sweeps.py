"""The sweeps of pending runs pick exactly their candidates on every database (they read them through
``ix_execute_task_status_scheduled``, migration 0011): republish, expire, take over unpublished claims."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, insert, select

from models.tables import execute_task_table
from scheduler import store, sweeps
from tests.scheduler.test_sql_scheduler import add_task, engine

__all__ = ["engine"]

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def _runs(engine: Engine, task_id: int, runs: dict[str, dict[str, Any]]) -> None:
    with engine.begin() as conn:
        for name, values in runs.items():
            conn.execute(insert(execute_task_table).values(task_id=task_id, trace_id=name, **values))


def _by_trace(engine: Engine) -> dict[str, Any]:
    with engine.connect() as conn:
        return {r.trace_id: r for r in conn.execute(select(execute_task_table))}


def _ago(seconds: float) -> datetime:
    return NOW - timedelta(seconds=seconds)


def test_republish_takes_pending_runs_published_before_the_cut_once(engine: Engine) -> None:
    task_id = add_task(engine, "republish", "test_interval", "interval", "1")
    _runs(
        engine,
        task_id,
        {
            "old": {"status": "pending", "scheduled_at": _ago(300), "published_at": _ago(300)},
            "late-published": {"status": "pending", "scheduled_at": _ago(299), "published_at": _ago(200)},
            "recent": {"status": "pending", "scheduled_at": _ago(60), "published_at": _ago(60)},
            "old-recently-published": {"status": "pending", "scheduled_at": _ago(298), "published_at": _ago(30)},
            "unpublished": {"status": "pending", "scheduled_at": _ago(297), "published_at": None},
            "running": {"status": "running", "scheduled_at": _ago(301), "published_at": _ago(301)},
            "again": {
                "status": "pending",
                "scheduled_at": _ago(302),
                "published_at": _ago(302),
                "extra": sweeps.REPUBLISHED_EXTRA,
            },
        },
    )
    with engine.begin() as conn:
        assert sweeps.republish_stale(conn, _ago(120)) == 2
    runs = _by_trace(engine)
    assert {t for t, r in runs.items() if r.extra == sweeps.REPUBLISHED_EXTRA and r.published_at is None} == {
        "old",
        "late-published",
    }
    assert runs["recent"].published_at is not None and runs["old-recently-published"].published_at is not None
    with engine.begin() as conn:
        assert sweeps.republish_stale(conn, _ago(120)) == 0  # once


def test_expire_closes_pending_runs_whose_instant_is_past_the_bound(engine: Engine) -> None:
    task_id = add_task(engine, "expire", "test_interval", "interval", "1")
    _runs(
        engine,
        task_id,
        {
            "published-long-ago": {"status": "pending", "scheduled_at": _ago(1000), "published_at": _ago(1000)},
            "republished-lately": {"status": "pending", "scheduled_at": _ago(1001), "published_at": _ago(10)},
            "never-published": {"status": "pending", "scheduled_at": _ago(1002), "published_at": None},
            "within-bound": {"status": "pending", "scheduled_at": _ago(100), "published_at": _ago(100)},
            "running": {"status": "running", "scheduled_at": _ago(1003), "published_at": _ago(1003)},
        },
    )
    with engine.begin() as conn:
        expired = sweeps.expire_unstarted(conn, _ago(900), NOW)
    runs = _by_trace(engine)
    assert {runs_trace for runs_trace, r in runs.items() if r.status == "expired"} == {
        "published-long-ago",
        "republished-lately",
        "never-published",
    }
    assert {e.trace_id for e in expired} == {"published-long-ago", "republished-lately", "never-published"}


def test_take_over_finds_only_unpublished_stale_claims(engine: Engine) -> None:
    task_id = add_task(engine, "outbox", "test_interval", "interval", "1")
    stale = {"update_at": _ago(60), "claimed_by": "dead-beat"}
    _runs(
        engine,
        task_id,
        {
            "stale": {"status": "pending", "scheduled_at": _ago(60), "published_at": None, **stale},
            "published": {"status": "pending", "scheduled_at": _ago(61), "published_at": _ago(61), **stale},
            "ahead": {"status": "pending", "scheduled_at": NOW + timedelta(seconds=30), "published_at": None, **stale},
            "fresh-claim": {
                "status": "pending",
                "scheduled_at": _ago(62),
                "published_at": None,
                "update_at": _ago(1),
                "claimed_by": "live-beat",
            },
            "skipped": {"status": "skipped", "scheduled_at": _ago(63), "published_at": None, **stale},
        },
    )
    with engine.begin() as conn:
        taken = store.take_unpublished(conn, _ago(10), "me", NOW)
    assert [run.trace_id for run in taken] == ["stale"]
    assert _by_trace(engine)["stale"].claimed_by == "me"

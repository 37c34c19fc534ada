"""``sweeps.mark_unconsumed_queues`` on every database: tasks whose runs wait on a queue no live worker
consumes are noted once (one statement per queue), and the note goes when a worker consumes it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, insert, select

from models.tables import execute_task_table, task_table, worker_heartbeat_table
from scheduler import sweeps
from tests.scheduler.test_sql_scheduler import add_task, engine

__all__ = ["engine"]

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def _sweep(engine: Engine) -> list[sweeps.UnconsumedQueue]:
    with engine.begin() as conn:
        return sweeps.mark_unconsumed_queues(conn, NOW - timedelta(seconds=10), NOW, "celery")


def _notes(engine: Engine) -> dict[str, str | None]:
    with engine.connect() as conn:
        return {r.task_key: r.last_error for r in conn.execute(select(task_table.c.task_key, task_table.c.last_error))}


def _worker(engine: Engine, queues: str) -> None:
    with engine.begin() as conn:
        conn.execute(worker_heartbeat_table.delete())
        conn.execute(insert(worker_heartbeat_table).values(hostname="w1", seen_at=NOW, started_at=NOW, queues=queues))


def test_noted_once_per_task_and_cleared_when_consumed(engine: Engine) -> None:
    queues = {"a1": "nope", "a2": "nope", "a3": " nope ", "b": "other", "c": None, "d": "celery"}
    ids = {key: add_task(engine, key, "test_interval", "interval", "1", queue=queue) for key, queue in queues.items()}
    with engine.begin() as conn:
        for key, task_id in ids.items():
            conn.execute(
                insert(execute_task_table).values(
                    task_id=task_id, scheduled_at=NOW - timedelta(minutes=1), status="pending", trace_id=key
                )
            )
    _worker(engine, "celery")
    noted = _sweep(engine)
    assert sorted((n.task_key, n.queue) for n in noted) == [
        ("a1", "nope"),
        ("a2", "nope"),
        ("a3", "nope"),
        ("b", "other"),
    ]
    notes = _notes(engine)
    assert notes["a1"] == notes["a2"] == notes["a3"] == sweeps.no_consumer_message("nope")
    assert notes["b"] == sweeps.no_consumer_message("other")
    assert notes["c"] is None and notes["d"] is None  # the default queue, consumed
    assert _sweep(engine) == []  # said once
    _worker(engine, "celery,nope")
    assert _sweep(engine) == []
    notes = _notes(engine)
    assert notes["a1"] is None and notes["a2"] is None and notes["a3"] is None
    assert notes["b"] == sweeps.no_consumer_message("other")

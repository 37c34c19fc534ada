"""A run the worker cannot start is recorded, never left ``pending`` (issue 9 item 1).

Before: kwargs ``{"self": 1}`` failed every run in ``RecordedTask.__call__`` ("got multiple values
for argument 'self'") before it was recorded, and a message for a job the worker does not have
was discarded by Celery; both runs stayed ``pending`` for ever.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from celery import Celery

from scheduler.dispatch import Dispatch, Publisher
from tests.helpers import insert_task, sql
from tests.processes import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.mariadb]


def _pending_run(db, task_id: int, trace: str) -> int:
    at = datetime.now(UTC).replace(tzinfo=None)
    sql(
        db,
        "INSERT INTO execute_task (task_id, status, trace_id, scheduled_at, published_at, attempt, extra)"
        " VALUES (:t, 'pending', :tr, :at, :at, 1, '{}')",
        t=task_id,
        tr=trace,
        at=at,
    )
    return int(sql(db, "SELECT id FROM execute_task WHERE trace_id = :tr", tr=trace)[0][0])


def _dispatch(run_id: int, task_id: int, key: str, job: str, trace: str, kwargs: dict) -> Dispatch:
    return Dispatch(
        run_id=run_id,
        task_key=key,
        job_name=job,
        args=(),
        kwargs=kwargs,
        queue=None,
        trace_id=trace,
        celery_id=f"c-{trace}",
        scheduled_at=datetime.now(UTC),
        expires_at=None,
        task_id=task_id,
        max_instances=1,
    )


def _final(db, run_id: int) -> tuple | None:
    row = sql(db, "SELECT status, error FROM execute_task WHERE id = :i", i=run_id)[0]
    return row if row[0] not in ("pending", "running") else None


def test_unstartable_runs_are_recorded(maria_url, broker_url, make_cluster, engine_for) -> None:
    db = engine_for(maria_url)
    # Rows as they could exist before kwargs were validated, and a job no worker registers.
    selfish = insert_task(db, "selfish", "always_fails", "interval", "3600")
    unknown = insert_task(db, "unknown_job", "test_interval", "interval", "3600")
    run_self = _pending_run(db, selfish, "1" * 32)
    run_unknown = _pending_run(db, unknown, "2" * 32)
    cluster = make_cluster(maria_url)
    worker = cluster.start_worker()
    worker.wait_ready()

    app = Celery("tablebeat-test", broker=broker_url, set_as_current=False)
    try:
        Publisher(app).publish(
            [
                _dispatch(run_self, selfish, "selfish", "always_fails", "1" * 32, {"self": 1}),
                _dispatch(run_unknown, unknown, "unknown_job", "job_nobody_has", "2" * 32, {}),
            ]
        )
    finally:
        app.close()
    status, error = wait_for(lambda: _final(db, run_self), 30, what="the run with kwargs 'self' recorded")
    assert status == "failed" and "failed on purpose" in error, error
    status, error = wait_for(lambda: _final(db, run_unknown), 30, what="the run of an unknown job recorded")
    assert status == "failed" and "'job_nobody_has' is not registered" in error, error


def test_undecodable_message_fails_its_run(maria_url, broker_url, make_cluster, engine_for) -> None:
    from kombu import Connection, Exchange, Producer

    db = engine_for(maria_url)
    task_id = insert_task(db, "garbled", "test_interval", "interval", "3600")
    trace = "3" * 32
    run_id = _pending_run(db, task_id, trace)
    cluster = make_cluster(maria_url)
    worker = cluster.start_worker()
    worker.wait_ready()
    with Connection(broker_url) as conn:
        Producer(conn).publish(
            b"{not json",
            exchange=Exchange("celery", type="direct"),
            routing_key="celery",
            content_type="application/json",
            content_encoding="utf-8",
            serializer=None,
            headers={"task": "test_interval", "id": "garbled-1", "trace_id": trace, "tablebeat_run_id": run_id},
        )
    status, error = wait_for(lambda: _final(db, run_id), 30, what="the run of an undecodable message recorded")
    assert status == "failed" and "could not decode its message" in error, error

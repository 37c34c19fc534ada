"""The run invariant (issue 9 item 1): every run reaches a final status within a bound, whatever
happens to its message.  Before: after a ``FLUSHDB`` of the broker the queued runs stayed
``pending`` for good, and so did every run of a task routed to a queue no worker consumes.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
import redis

from tests.helpers import insert_task, sql
from tests.processes import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.mariadb]

#: Short bounds so the test is quick; the defaults are 120 s and 900 s.
SWEEP = {"TABLEBEAT_PENDING_REPUBLISH_SECONDS": "3", "TABLEBEAT_PENDING_EXPIRE_SECONDS": "10"}


def _statuses(db, task_id: int, before: datetime | None = None) -> dict[str, int]:
    query = "SELECT status, COUNT(*) FROM execute_task WHERE task_id = :t"
    if before is not None:
        query += " AND scheduled_at <= :b"
    rows = sql(db, query + " GROUP BY status", t=task_id, b=before.replace(tzinfo=None) if before else None)
    return {status: int(n) for status, n in rows}


def _published_pending(db, task_id: int) -> int:
    query = "SELECT COUNT(*) FROM execute_task WHERE task_id = :t AND status = 'pending' AND published_at IS NOT NULL"
    return int(sql(db, query, t=task_id)[0][0])


def test_runs_whose_messages_were_flushed_are_republished_and_run(maria_url, broker_url, make_cluster, engine_for):
    db = engine_for(maria_url)
    # Republished after 8 s: the flush below comes first (three fires are out after about 3 s).
    cluster = make_cluster(maria_url, TABLEBEAT_PENDING_REPUBLISH_SECONDS="8", TABLEBEAT_PENDING_EXPIRE_SECONDS="120")
    beat = cluster.start_beat()
    beat.wait_ready()
    task_id = insert_task(db, "flushed", "test_interval", "interval", "1")
    # No worker yet: the fires wait in the broker's queue, then the broker loses them.
    wait_for(lambda: _published_pending(db, task_id) >= 3, 30, what="three queued runs")
    redis.Redis.from_url(broker_url).flushdb()
    flushed_at = datetime.now(UTC)
    lost = _statuses(db, task_id, flushed_at).get("pending", 0)
    assert lost >= 3
    cluster.start_worker().wait_ready()
    wait_for(
        lambda: not {"pending", "running"} & set(_statuses(db, task_id, flushed_at)),
        60,
        what="every run queued before the flush to be final",
    )
    final = _statuses(db, task_id, flushed_at)
    # Run (or skipped by max_instances=1 when a republished run met a new fire), none lost.
    assert set(final) <= {"success", "skipped"} and final.get("success", 0) >= 1, final
    assert "will be published again" in beat.log()


def test_runs_nobody_consumes_are_closed_with_the_reason(maria_url, broker_url, make_cluster, engine_for, webhook):
    db = engine_for(maria_url)
    cluster = make_cluster(maria_url, TABLEBEAT_ALERT_WEBHOOK=webhook.url, **SWEEP)
    cluster.start_worker()  # consumes the default queue only
    beat = cluster.start_beat()
    cluster.wait_ready()
    task_id = insert_task(db, "nowhere", "test_interval", "interval", "2", queue="nope")
    began = time.monotonic()
    expired = wait_for(
        lambda: sql(db, "SELECT result FROM execute_task WHERE task_id = :t AND status = 'expired'", t=task_id),
        60,
        what="a run nobody consumes to expire",
    )
    assert "'nope'" in expired[0][0], expired
    # Said once, in beat's log and on the task row (the console shows last_error).
    wait_for(
        lambda: (
            "no live worker consumes" in (sql(db, "SELECT last_error FROM task WHERE id = :t", t=task_id)[0][0] or "")
        ),
        30,
        what="last_error naming the queue",
    )
    assert beat.log().count("which no live worker consumes (start a worker with -Q nope)") == 1, beat.log()[-3000:]
    assert time.monotonic() - began < 60
    assert "expired: not started within" in beat.log()
    wait_for(lambda: any("expired" in str(r.body) for r in webhook.posts()), 30, what="the expiry alert")

"""Issue 4 item 1: a claimed fire whose publish was cut off by a crash is published later by
another beat's outbox sweep, never left ``pending`` -- also for a date job that has already
fired (no beat schedules it any more), and a claim of a task paused since is recorded skipped."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import Engine

from tests.helpers import insert_task, sql
from tests.processes import Cluster, wait_for
from tests.reliability.helpers import STALE_CLAIM_S, now_naive, runs

pytestmark = [pytest.mark.integration, pytest.mark.mariadb]


def orphan_claim(db: Engine, task_id: int, scheduled_at, claimed_by: str = "dead-beat:1:x", extra: str = "{}") -> None:
    """The row a beat writes when it claims a fire, from a beat killed before publishing it."""
    sql(
        db,
        "INSERT INTO execute_task (task_id, status, scheduled_at, trace_id, celery_id, claimed_by, extra, attempt, "
        "create_at, update_at) VALUES (:t, 'pending', :s, :trace, :cid, :by, :extra, 1, :old, :old)",
        t=task_id,
        s=scheduled_at,
        trace=uuid.uuid4().hex,
        cid=str(uuid.uuid4()),
        by=claimed_by,
        extra=extra,
        old=now_naive() - timedelta(seconds=STALE_CLAIM_S + 5),
    )


def test_run_now_of_a_paused_task_is_published_late_not_skipped(cluster: Cluster, db: Engine) -> None:
    """Run-now records its run, then publishes it; a CLI stalled (or killed) between the two on a busy
    machine left the run to the outbox, which skipped it as a claim of a paused task. Run-now runs
    paused tasks too: the outbox publishes it, late."""
    paused = insert_task(db, "outbox_run_now", "test_interval", "interval", "3600", "4")
    sql(db, "UPDATE task SET is_valid = 0 WHERE id = :t", t=paused)
    orphan_claim(db, paused, now_naive() - timedelta(seconds=4), claimed_by="manual", extra='{"manual": true}')
    cluster.start_worker(concurrency=1)
    cluster.start_beat()
    (done,) = wait_for(lambda: runs(db, paused, "success"), 60, what="the run-now run to be published and run")
    assert done["result"] == "'interval ok [4]'" and len(runs(db, paused)) == 1


def test_unpublished_claims_of_a_dead_beat(cluster: Cluster, db: Engine) -> None:
    fired_at = now_naive() - timedelta(seconds=5)
    date_job = insert_task(db, "outbox_date", "test_date", "date", fired_at.strftime("%Y-%m-%d %H:%M:%S"))
    # The dead beat claimed its one fire (last_run_at written with the claim) and died before publishing.
    sql(
        db,
        "UPDATE task SET last_run_at = :s, status = 'completed' WHERE id = :t",
        s=fired_at.replace(microsecond=0),
        t=date_job,
    )
    orphan_claim(db, date_job, fired_at.replace(microsecond=0))
    paused = insert_task(db, "outbox_paused", "test_interval", "interval", "3600")
    sql(db, "UPDATE task SET is_valid = 0 WHERE id = :t", t=paused)
    orphan_claim(db, paused, now_naive() - timedelta(seconds=4))
    # Claimed 5 minutes ago by the dead beat: publishing it now would run it far past its grace.
    missed = insert_task(db, "outbox_missed", "test_interval", "interval", "3600", misfire_grace_seconds=30)
    orphan_claim(db, missed, now_naive() - timedelta(minutes=5))

    cluster.start_worker(concurrency=1)
    beat = cluster.start_beat()
    done = wait_for(lambda: runs(db, date_job, "success"), 30, what="the date job's claimed fire to run")
    assert len(runs(db, date_job)) == 1 and done[0]["attempt"] == 1
    skipped = wait_for(lambda: runs(db, paused, "skipped"), 30, what="the paused task's claim to be recorded")
    assert "paused" in skipped[0]["result"]
    # The skipped run's one log line names it, as every line of a run does.
    line = wait_for(
        lambda: [ln for ln in beat.log().splitlines() if f"run {skipped[0]['id']} " in ln and "skipped" in ln],
        10,
        what="beat's line for the skipped claim",
    )
    assert f"[task_key=outbox_paused trace_id={skipped[0]['trace_id']}]" in line[0], line
    late = wait_for(lambda: runs(db, missed, "skipped"), 30, what="the claim past its grace to be recorded")
    assert late[0]["result"].startswith("misfire: not published before its misfire_grace_seconds ran out")
    assert late[0]["started_at"] is None
    assert not sql(db, "SELECT id FROM execute_task WHERE status = 'pending'")

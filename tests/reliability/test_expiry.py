"""Issue 4 item 5: a message not started within expires_seconds is not run; its row says expired."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import Engine

from tests.helpers import insert_task, sql
from tests.processes import Cluster, wait_for
from tests.reliability.helpers import all_logs, now_naive, runs

pytestmark = [pytest.mark.integration, pytest.mark.mariadb]


def test_expired_messages_are_recorded_not_run(cluster: Cluster, db: Engine) -> None:
    cluster.start_beat()
    cluster.wait_ready()  # inserted before beat is up, the first fires would be coalesced misfires
    task_id = insert_task(db, "expiring", "test_interval", "interval", "1", expires_seconds=2)
    wait_for(lambda: len(runs(db, task_id)) >= 4, 30, what="fires while no worker runs")
    sql(db, "UPDATE task SET is_valid = 0 WHERE id = :t", t=task_id)
    # Beat has taken the pause in (it writes the status): no fire is claimed after this.
    wait_for(lambda: sql(db, "SELECT status FROM task WHERE id = :t", t=task_id)[0][0] == "paused", 30, what="paused")
    last = max(r["scheduled_at"] for r in runs(db, task_id))
    # Every message is past its expiry:
    time.sleep(max((last - now_naive()).total_seconds(), 0) + 2 + 1)
    fired = runs(db, task_id)
    # A fire claimed but not yet published when the pause was applied is cancelled (skipped, 'paused: ...');
    # every published one waits, pending, for a worker.
    assert {r["status"] for r in fired} <= {"pending", "skipped"}, fired
    assert all(r["result"].startswith("paused") for r in fired if r["status"] == "skipped"), fired
    published = {r["id"] for r in fired if r["status"] == "pending"}
    assert published, fired

    cluster.start_worker(concurrency=1)
    wait_for(lambda: all(r["status"] != "pending" for r in runs(db, task_id)), 30, what="the messages to be handled")
    final = [r for r in runs(db, task_id) if r["id"] in published]
    assert {r["status"] for r in final} == {"expired"}, final
    assert all(r["result"] == "expired before start" and r["started_at"] is None for r in final)
    assert "test_interval ran" not in all_logs(cluster)

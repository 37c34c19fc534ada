"""Issue 4 item 3: max_instances is honoured across two workers; extra fires are skipped with the reason.

The limit of one runs on every backend in tests/contract; this covers a limit above one (slot numbers).
"""

from __future__ import annotations

import pytest
from sqlalchemy import Engine

from tests.helpers import insert_task, sql
from tests.processes import Cluster, wait_for
from tests.reliability.helpers import all_logs, executions, runs

pytestmark = [pytest.mark.integration, pytest.mark.mariadb]


def test_max_instances_across_two_workers(cluster: Cluster, db: Engine) -> None:
    max_instances = 2
    # Each worker alone has more slots than max_instances: only the database lock can hold the limit.
    cluster.start_worker("--prefetch-multiplier", "1", concurrency=3)
    cluster.start_worker("--prefetch-multiplier", "1", concurrency=3)
    cluster.start_beat()
    # Added only once everything is up: a fire beat comes to late would be a misfire, not a skip.
    cluster.wait_ready()
    task_id = insert_task(db, "overlap", "sleep_for", "interval", "1", "3", max_instances=max_instances)
    wait_for(
        lambda: len(runs(db, task_id, "success")) >= 3 and runs(db, task_id, "skipped"),
        60,
        what="three finished runs and a skipped fire",
    )
    sql(db, "UPDATE task SET is_valid = 0 WHERE id = :t", t=task_id)
    wait_for(
        lambda: all(r["status"] in ("success", "skipped") for r in runs(db, task_id)),
        60,
        what="every run claimed before the pause to finish",
    )
    all_runs = runs(db, task_id)
    ran = [r for r in all_runs if r["status"] == "success"]
    skipped = [r for r in all_runs if r["status"] == "skipped"]
    limited = [r for r in skipped if f"max_instances={max_instances} reached" in r["result"]]
    # Besides the limit: a fire not started when the pause came, or (a busy machine stalling beat
    # past a fire) a misfire.
    other = [r["result"] for r in skipped if r not in limited and not r["result"].startswith(("paused:", "misfire:"))]
    assert limited and not other, skipped
    # At no instant were more than max_instances runs in progress, whichever worker ran them.
    events = sorted([(r["started_at"], 1) for r in ran] + [(r["finished_at"], -1) for r in ran if r["finished_at"]])
    level = peak = 0
    for _at, step in events:
        level += step
        peak = max(peak, level)
    assert peak == max_instances, events
    print("workers that ran it:", sorted({r["worker"] for r in ran}))
    assert all(n == 1 for n in executions(all_logs(cluster)).values())

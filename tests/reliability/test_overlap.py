"""Issue 4 item 3: max_instances is honoured across two workers; extra fires are skipped with the reason."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import Engine

from tests.processes import Cluster, wait_for
from tests.reliability.helpers import all_logs, executions, insert_task, runs

pytestmark = [pytest.mark.integration, pytest.mark.mariadb]


@pytest.mark.parametrize("max_instances", [1, 2])
def test_max_instances_across_two_workers(cluster: Cluster, db: Engine, max_instances: int) -> None:
    # Each worker alone has more slots than max_instances: only the database lock can hold the limit.
    cluster.start_worker("--prefetch-multiplier", "1", concurrency=3)
    cluster.start_worker("--prefetch-multiplier", "1", concurrency=3)
    cluster.start_beat()
    task_id = insert_task(db, "overlap", "sleep_for", "interval", "1", "3", max_instances=max_instances)
    wait_for(lambda: len(runs(db, task_id, "success")) >= 3, 40, what="three finished runs")
    time.sleep(1)
    all_runs = runs(db, task_id)
    ran = [r for r in all_runs if r["started_at"] is not None and r["status"] in ("success", "running")]
    skipped = [r for r in all_runs if r["status"] == "skipped"]
    assert skipped and all(f"max_instances={max_instances} reached" in r["result"] for r in skipped), skipped
    # At no instant were more than max_instances runs in progress, whichever worker ran them.
    events = sorted([(r["started_at"], 1) for r in ran] + [(r["finished_at"], -1) for r in ran if r["finished_at"]])
    level = peak = 0
    for _at, step in events:
        level += step
        peak = max(peak, level)
    assert peak == max_instances, events
    print("workers that ran it:", sorted({r["worker"] for r in ran}))
    assert all(n == 1 for n in executions(all_logs(cluster)).values())

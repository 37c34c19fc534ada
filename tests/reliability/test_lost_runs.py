"""Issue 4 item 4: kill -9 of a worker mid-run: the run becomes ``lost`` within a bound, an
alert fires, and an ``acks_late`` job runs again under the same trace ID as attempt + 1."""

from __future__ import annotations

import os
import signal
import time
from datetime import timedelta

import pytest
from sqlalchemy import Engine

from models import RunStatus
from tests.helpers import insert_task
from tests.processes import Cluster, wait_for
from tests.reliability.conftest import WebhookReceiver
from tests.reliability.helpers import (
    HEARTBEAT_S,
    REFRESH_S,
    VISIBILITY_S,
    WORKER_DEAD_S,
    all_logs,
    executions,
    now_naive,
    runs,
)

pytestmark = [pytest.mark.integration, pytest.mark.mariadb]

#: Heartbeat-based detection: silent for WORKER_DEAD_S, seen at the next housekeeping pass
#: (every refresh), the last stamp up to one heartbeat period before the kill; 2 s for process ticks.
LOST_BOUND_S = WORKER_DEAD_S + HEARTBEAT_S + REFRESH_S + 2


def date_in(seconds: float) -> str:
    return (now_naive() + timedelta(seconds=seconds)).strftime("%Y-%m-%d %H:%M:%S")


def worker_running(cluster: Cluster, hostname: str):
    return next(p for p in cluster.processes if p.kind == "worker" and hostname.startswith(p.name + "@"))


def test_acks_late_run_is_lost_alerted_and_rerun_as_next_attempt(
    cluster: Cluster, db: Engine, webhook: WebhookReceiver
) -> None:
    cluster.env.update(TABLEBEAT_ALERT_WEBHOOK=webhook.url, TABLEBEAT_ALERT_MIN_INTERVAL_SECONDS="0")
    cluster.start_worker(concurrency=1)
    cluster.start_worker(concurrency=1)
    cluster.start_beat()
    cluster.wait_ready()
    task_id = insert_task(db, "lost_acks_late", "slow_acks_late", "date", date_in(4), "6")

    first = wait_for(lambda: runs(db, task_id, "running"), 30, what="the run to start")[0]
    victim = worker_running(cluster, first["worker"])
    victim.signal(signal.SIGKILL)  # the whole process group: main process and pool child
    killed = time.monotonic()

    lost = wait_for(lambda: runs(db, task_id, "lost"), LOST_BOUND_S + 5, what="the run to become lost")[0]
    detected_s = time.monotonic() - killed
    print(f"lost detected {detected_s:.1f}s after kill -9 (bound {LOST_BOUND_S}s)")
    assert detected_s <= LOST_BOUND_S
    assert lost["id"] == first["id"] and lost["attempt"] == 1 and "heartbeat" in lost["error"]

    alert = wait_for(
        lambda: [p for p in webhook.posts() if p.body.get("run_id") == first["id"] and p.body.get("status") == "lost"],
        15,
        what="a lost alert",
    )[0]
    assert alert.body["trace_id"] == first["trace_id"]

    # Redis redelivers the un-acked message after the visibility timeout (restored by the live
    # worker's 10 s cycle); the same row runs again, same trace ID, attempt 2.
    done = wait_for(lambda: runs(db, task_id, "success"), VISIBILITY_S + VISIBILITY_S // 4 + 6 + 15, what="the rerun")[
        0
    ]
    assert done["id"] == first["id"] and done["trace_id"] == first["trace_id"]
    assert done["attempt"] == 2 and done["worker"] != first["worker"]
    assert len(runs(db, task_id)) == 1
    counts = executions(all_logs(cluster))
    assert counts[(first["id"], 1)] == 1 and counts[(first["id"], 2)] == 1, counts
    assert f"trace_id={first['trace_id']}" in all_logs(cluster)


def group_members(pgid: int) -> set[int]:
    """PIDs of the live processes in process group ``pgid``."""
    members = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = open(f"/proc/{entry}/stat").read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid and fields[0] != "Z":
                members.add(int(entry))
    return members


def test_orphaned_pool_child_cannot_overwrite_lost(cluster: Cluster, db: Engine, mariadb_url: str) -> None:
    """Kill -9 only the worker's main process. On Linux billiard's pool children die with it
    (PR_SET_PDEATHSIG); wherever a child did survive, its late result write is guarded on the row
    still being its attempt's ``running`` row, so ``lost`` is never overwritten with ``success``."""
    cluster.start_worker(concurrency=1)
    cluster.start_beat()
    cluster.wait_ready()
    task_id = insert_task(db, "lost_orphan", "sleep_for", "date", date_in(4), str(LOST_BOUND_S + 4))

    first = wait_for(lambda: runs(db, task_id, "running"), 30, what="the run to start")[0]
    victim = worker_running(cluster, first["worker"])
    children = group_members(victim.pid) - {victim.pid}
    assert children, "no pool child found"
    os.kill(victim.pid, signal.SIGKILL)  # the main process only
    wait_for(lambda: not (group_members(victim.pid) & children), 10, what="the pool child to die with its parent")
    wait_for(lambda: runs(db, task_id, "lost"), LOST_BOUND_S + 5, what="the run to become lost")

    # An orphan that survived would now record its result: the guarded write refuses it.
    from workers.runs import RunStore

    orphan = RunStore(mariadb_url)
    try:
        assert (
            orphan.finish_run(first["id"], RunStatus.SUCCESS, result="late", attempt=1, worker=first["worker"]) is False
        )
    finally:
        orphan.engine.dispose()
    row = runs(db, task_id)[0]
    assert row["status"] == "lost" and row["attempt"] == 1 and row["result"] is None, row


def test_restarted_worker_under_same_name_marks_old_runs_lost(cluster: Cluster, db: Engine) -> None:
    """A worker that crashed and came back under the same hostname (a container restart) keeps
    its heartbeat fresh: its previous incarnation's runs are still found lost."""
    cluster.start_worker("-n", "same@%h", concurrency=1)
    cluster.start_beat()
    cluster.wait_ready()
    task_id = insert_task(db, "lost_same_name", "sleep_for", "date", date_in(4), "30")
    first = wait_for(lambda: runs(db, task_id, "running"), 30, what="the run to start")[0]
    victim = next(p for p in cluster.processes if p.kind == "worker")
    victim.signal(signal.SIGKILL)
    cluster.start_worker("-n", "same@%h", concurrency=1)
    row = wait_for(lambda: runs(db, task_id, "lost"), LOST_BOUND_S + 15, what="the run to become lost")[0]
    assert row["id"] == first["id"] and row["worker"] == first["worker"]

"""Issue 4 item 2: after beat was down, missed fires are coalesced (one skipped row with the
reason), the latest runs once late within the grace; a date job missed within its grace runs once."""

from __future__ import annotations

import time
from datetime import datetime, timedelta

import pytest
from sqlalchemy import Engine

from tests.helpers import insert_task
from tests.processes import Cluster, wait_for
from tests.reliability.helpers import now_naive, runs

pytestmark = [pytest.mark.integration, pytest.mark.mariadb]

DOWN_S = 8


def date_in(seconds: float) -> str:
    return (now_naive() + timedelta(seconds=seconds)).strftime("%Y-%m-%d %H:%M:%S")


def test_catch_up_after_beat_downtime(cluster: Cluster, db: Engine) -> None:
    cluster.start_worker(concurrency=2)
    beat = cluster.start_beat()
    cluster.wait_ready()
    graceful = insert_task(db, "mf_graceful", "test_interval", "interval", "2", misfire_grace_seconds=5)
    strict = insert_task(db, "mf_strict", "test_interval", "interval", "2", misfire_grace_seconds=0)
    wait_for(lambda: len(runs(db, graceful, "success")) >= 2, 30, what="two fires before the downtime")

    beat.stop()  # SIGTERM: beat is down; workers keep running
    down_at = now_naive()
    late_ok = insert_task(db, "mf_date_within", "test_date", "date", date_in(4), misfire_grace_seconds=60)
    late_ko = insert_task(db, "mf_date_beyond", "test_date", "date", date_in(3), misfire_grace_seconds=2)
    time.sleep(DOWN_S)
    beat = cluster.start_beat()
    wait_for(lambda: "tasks scheduled" in beat.log(), 30, what="the beat to load the table")
    up_at = now_naive()

    wait_for(lambda: runs(db, late_ok, "success"), 30, what="the missed date job to run late")
    wait_for(lambda: runs(db, late_ko), 30, what="the missed date job beyond its grace to be recorded")
    for task_id in (graceful, strict):
        wait_for(
            lambda t=task_id: len([r for r in runs(db, t, "success") if r["scheduled_at"] > up_at]) >= 2,
            30,
            what="regular fires after the restart",
        )

    (date_run,) = runs(db, late_ok)
    assert date_run["status"] == "success" and date_run["started_at"] >= down_at + timedelta(seconds=DOWN_S)
    (date_skip,) = runs(db, late_ko)
    assert date_skip["status"] == "skipped" and "more than misfire_grace_seconds=2" in date_skip["result"]

    for task_id, grace in ((graceful, 5), (strict, 0)):
        later = [r for r in runs(db, task_id) if r["scheduled_at"] > down_at]
        # One skipped row stands for every older missed fire: no storm of backlog runs.
        coalesced = [r for r in later if r["status"] == "skipped" and "coalesced into" in (r["result"] or "")]
        assert len(coalesced) == 1, later
        into = datetime.fromisoformat(coalesced[0]["result"].rsplit("coalesced into ", 1)[1]).replace(tzinfo=None)
        position = later.index(coalesced[0])
        # Before it at most the fire claimed ahead (<= 1 s) just before the stop, published late by the outbox.
        assert position <= 1, later
        late = later[position + 1]
        assert late["scheduled_at"] == into and into <= up_at, later
        assert into - coalesced[0]["scheduled_at"] >= timedelta(seconds=DOWN_S - 4), later
        if grace:  # the latest missed fire runs once, late, within the grace
            assert late["status"] == "success" and late["started_at"] > late["scheduled_at"], later
        else:
            assert late["status"] == "skipped" and "misfire_grace_seconds=0" in late["result"], later
        regular = later[position + 2 :]
        assert regular and all(r["status"] == "success" and r["scheduled_at"] > up_at for r in regular[:-1]), later

"""A real prefork worker serves /metrics: runs by outcome and job move with successes and failures."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine

from tests.helpers import free_port, insert_task
from tests.observe.scrape import total, try_scrape
from tests.processes import Cluster, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.mariadb]


def test_worker_metrics_count_runs_by_outcome_and_job(cluster: Cluster, db: Engine) -> None:
    insert_task(db, "ok", "test_interval", "interval", "1", "1,2")
    insert_task(db, "bad", "always_fails", "interval", "1", "7")
    port = free_port()
    url = f"http://127.0.0.1:{port}/metrics"
    base_env = dict(cluster.env)
    cluster.env = {**base_env, "TABLEBEAT_METRICS_PORT": str(port), "TABLEBEAT_METRICS_TASK_KEYS": "ok"}
    worker = cluster.start_worker(concurrency=2)  # prefork: runs happen in pool children
    cluster.env = base_env
    cluster.start_beat()

    def counted():
        samples = try_scrape(url)
        if samples is None:
            return None
        ok = total(samples, "tablebeat_worker_runs_finished_total", job="test_interval", outcome="success")
        bad = total(samples, "tablebeat_worker_runs_finished_total", job="always_fails", outcome="failed")
        return samples if ok >= 2 and bad >= 2 else None

    first = wait_for(counted, 60, interval=0.5, what=f"2 successes and 2 failures on {url}\n{worker.log()[-3000:]}")
    # Listed tasks get their own label; the others share the empty one.
    assert total(first, "tablebeat_worker_runs_finished_total", task="ok", outcome="success") >= 2
    assert total(first, "tablebeat_worker_runs_finished_total", task="", job="always_fails") >= 2
    assert total(first, "tablebeat_worker_run_duration_seconds_count", job="test_interval") >= 2
    assert total(first, "tablebeat_worker_starts_refused_total", reason="duplicate") == 0
    assert ("tablebeat_outages_total", frozenset({("service", "database")})) in first

    before = total(first, "tablebeat_worker_runs_finished_total", outcome="failed")
    wait_for(
        lambda: total(try_scrape(url) or {}, "tablebeat_worker_runs_finished_total", outcome="failed") > before,
        30,
        interval=0.5,
        what="the failure counter to move again",
    )

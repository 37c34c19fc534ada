"""Real beat, worker and API processes, scraped the way Prometheus does: counters move with fires and failures."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine

from tests.helpers import free_port, insert_task, sql
from tests.observe.scrape import Samples, scrape, total, try_scrape
from tests.processes import Cluster, api_server, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.mariadb]


@pytest.fixture
def api_url(env: dict[str, str], tmp_path: Path) -> Iterator[str]:
    """``uvicorn api.app:app`` on a free port (no token: loopback only)."""
    with api_server(env, tmp_path / "api.log", ready="/metrics") as base:
        yield base


def _start(cluster: Cluster, kind: str, port: int, **extra: str) -> None:
    base = dict(cluster.env)
    cluster.env = {**base, "TABLEBEAT_METRICS_PORT": str(port), **extra}
    try:
        cluster.start_beat() if kind == "beat" else cluster.start_worker(concurrency=2)
    finally:
        cluster.env = base


def test_beat_worker_and_api_metrics_move_with_fires_and_failures(cluster: Cluster, db: Engine, api_url: str) -> None:
    ok = insert_task(db, "ok", "test_interval", "interval", "1", "1,2")
    insert_task(db, "bad", "always_fails", "interval", "1", "7")
    # Anchored 10 min ago, every minute: the fires missed meanwhile are coalesced into one skipped row.
    anchor = datetime.now(UTC).replace(tzinfo=None) - timedelta(minutes=10, seconds=30)
    insert_task(db, "missed", "test_interval", "interval", "60", "3", create_at=anchor, update_at=anchor)
    beat_port, worker_port = free_port(), free_port()
    _start(cluster, "beat", beat_port, TABLEBEAT_METRICS_TASK_KEYS="ok")
    _start(cluster, "worker", worker_port)
    beat_url, worker_url = f"http://127.0.0.1:{beat_port}/metrics", f"http://127.0.0.1:{worker_port}/metrics"

    def beat_ready() -> Samples | None:
        samples = try_scrape(beat_url)
        if samples is None or total(samples, "tablebeat_beat_fires_published_total") < 4:
            return None
        return samples

    beat = wait_for(beat_ready, 60, interval=0.5, what=f"4 published fires on {beat_url}\n{cluster.logs()}")
    assert total(beat, "tablebeat_beat_fires_claimed_total", job="test_interval", task="ok") >= 1
    assert total(beat, "tablebeat_beat_fires_claimed_total", job="always_fails", task="") >= 1
    assert total(beat, "tablebeat_beat_publish_lateness_seconds_count") >= 4
    assert total(beat, "tablebeat_beat_fires_skipped_total", reason="coalesced") >= 1
    assert total(beat, "tablebeat_beat_sync_duration_seconds_count", kind="poll") >= 1
    assert total(beat, "tablebeat_beat_scheduled_tasks") == 3
    assert total(beat, "tablebeat_dependency_up", service="database") == 1
    assert total(beat, "tablebeat_beat_claim_rejections_total") == 0  # one beat: it wins every claim
    assert total(beat, "tablebeat_beat_last_tick_timestamp_seconds") > datetime.now(UTC).timestamp() - 30

    # An SQL edit is picked up and timed.
    sql(db, "UPDATE task SET spec = '2' WHERE id = :t", t=ok)
    wait_for(
        lambda: total(try_scrape(beat_url) or {}, "tablebeat_beat_edit_pickup_seconds_count") >= 1,
        20,
        what="the edit pickup histogram to count the edit",
    )

    def worker_ready() -> Samples | None:
        samples = try_scrape(worker_url)
        if samples is None:
            return None
        failed = total(samples, "tablebeat_worker_runs_finished_total", job="always_fails", outcome="failed")
        done = total(samples, "tablebeat_worker_runs_finished_total", job="test_interval", outcome="success")
        return samples if failed >= 2 and done >= 2 else None

    worker = wait_for(worker_ready, 60, interval=0.5, what=f"runs on {worker_url}")
    before = total(worker, "tablebeat_worker_runs_finished_total", outcome="failed")
    wait_for(
        lambda: total(try_scrape(worker_url) or {}, "tablebeat_worker_runs_finished_total", outcome="failed") > before,
        30,
        what="another failure to be counted",
    )

    api = scrape(f"{api_url}/metrics")
    assert total(api, "tablebeat_database_up") == 1
    assert total(api, "tablebeat_tasks") == 3
    assert total(api, "tablebeat_tasks", status="error") == 0
    assert ("tablebeat_runs", frozenset({("status", "pending")})) in api
    assert total(api, "tablebeat_runs_pending_oldest_age_seconds") >= 0
    assert total(api, "tablebeat_workers_alive") == 1
    assert httpx.get(f"{api_url}/metrics").headers["content-type"].startswith("text/plain")

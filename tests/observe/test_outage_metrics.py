"""Beat's outage metrics on private servers that the test stops (never the shared ones)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from models import make_engine
from models.migrate import upgrade
from tests.helpers import free_port, insert_task
from tests.observe.scrape import total, try_scrape
from tests.processes import READY_TIMEOUT_S, Cluster, wait_for
from tests.reliability.helpers import reliability_env
from tests.reliability.services import PrivateMariaDB, PrivateRedis

pytestmark = [pytest.mark.integration, pytest.mark.mariadb]

OUTAGE_S = 4.0


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[tuple[PrivateMariaDB, PrivateRedis]]:
    (tmp_path / "redis").mkdir()
    mariadb, broker = PrivateMariaDB(tmp_path / "mariadb"), PrivateRedis(tmp_path / "redis")
    try:
        mariadb.start()
        broker.start()
        yield mariadb, broker
    finally:
        mariadb.kill()
        broker.kill()


#: Celery's log line when kombu's Redis channel, closing after a lost connection, cannot restore unacked messages.
KOMBU_RESTORE_CRASH = "Unrecoverable error: AttributeError(\"'NoneType' object has no attribute 'hostname'\")"


def worker_broker_up(worker_url: str) -> bool:
    return total(try_scrape(worker_url) or {}, "tablebeat_dependency_up", service="broker") == 1


def test_outages_are_counted_once_each_and_up_follows(
    servers: tuple[PrivateMariaDB, PrivateRedis], tmp_path: Path
) -> None:
    mariadb, broker = servers
    url = mariadb.create_database(f"tb_obs_{uuid.uuid4().hex[:8]}")
    upgrade(url)
    engine = make_engine(url)
    insert_task(engine, "tick", "test_interval", "interval", "1", "1")
    port = free_port()
    metrics_url = f"http://127.0.0.1:{port}/metrics"
    worker_port = free_port()
    worker_url = f"http://127.0.0.1:{worker_port}/metrics"
    cluster = Cluster(reliability_env(url, broker.url, TABLEBEAT_METRICS_PORT=str(worker_port)), tmp_path)
    try:
        worker = cluster.start_worker(concurrency=1)
        worker_env = cluster.env
        cluster.env = {**cluster.env, "TABLEBEAT_METRICS_PORT": str(port)}
        cluster.start_beat()
        cluster.wait_ready()  # the worker must be consuming before the broker goes, or it sees no outage

        def beat_value(name: str, **labels: str) -> float | None:
            samples = try_scrape(metrics_url)
            return None if samples is None else total(samples, name, **labels)

        wait_for(lambda: (beat_value("tablebeat_beat_fires_published_total") or 0) >= 2, 60, what="fires")
        for server, service in ((broker, "broker"), (mariadb, "database")):
            server.stop()
            try:
                wait_for(
                    lambda s=service: beat_value("tablebeat_dependency_up", service=s) == 0,
                    OUTAGE_S + 10,
                    what=f"beat to notice the {service} outage\n{cluster.logs()}",
                )
                time.sleep(OUTAGE_S)
            finally:
                server.start()
            wait_for(
                lambda s=service: beat_value("tablebeat_dependency_up", service=s) == 1,
                READY_TIMEOUT_S,
                what=f"beat to notice the {service} is back\n{cluster.logs()}",
            )
            assert beat_value("tablebeat_outages_total", service=service) == 1  # one outage, however many errors
            if service == "broker":  # the worker's consumer lost its connection too
                wait_for(
                    lambda w=worker: worker_broker_up(worker_url) or w.proc.poll() is not None,
                    READY_TIMEOUT_S,  # Celery's consumer reconnects with a growing back-off
                    what="the worker to reconnect",
                )
                if worker.proc.poll() is None:
                    assert total(try_scrape(worker_url) or {}, "tablebeat_outages_total", service="broker") == 1
                else:
                    # kombu's Redis transport can fail while restoring unacked messages on a lost
                    # connection (its conninfo is gone): Celery exits with "Unrecoverable error" and the
                    # worker's supervisor restarts it. Only that exit is accepted; a restarted worker
                    # reports the broker up.
                    assert KOMBU_RESTORE_CRASH in worker.log(), worker.log()[-3000:]
                    beat_env, cluster.env = cluster.env, worker_env
                    worker = cluster.start_worker(concurrency=1)
                    cluster.env = beat_env
                    wait_for(lambda: worker_broker_up(worker_url), READY_TIMEOUT_S, what="the restarted worker")
        before = beat_value("tablebeat_beat_fires_published_total") or 0
        published = lambda: (beat_value("tablebeat_beat_fires_published_total") or 0) > before  # noqa: E731
        wait_for(published, READY_TIMEOUT_S, what="fires again")
    finally:
        cluster.stop_all()
        engine.dispose()

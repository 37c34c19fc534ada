"""Issue 4 item 6: MariaDB stopped, and separately Redis stopped, while beat and a worker run.

No process dies, each reconnects on its own, no run record is lost (writes retried after
recovery), fires due during the outage follow the misfire policy, and each outage is logged
once per process, not a traceback per tick. The servers stopped are private ones
(:mod:`tests.reliability.services`): the shared MariaDB/Redis other tests use are never touched.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine

from bench.chaos import check
from models import make_engine
from models.migrate import upgrade
from tests.helpers import insert_task, sql
from tests.processes import Cluster, wait_for
from tests.reliability.helpers import REFRESH_S, WORKER_DEAD_S, all_logs, count_lines, reliability_env, runs
from tests.reliability.services import PrivateMariaDB, PrivateRedis

pytestmark = [pytest.mark.integration, pytest.mark.mariadb]


@pytest.fixture(scope="module")
def private_mariadb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateMariaDB]:
    server = PrivateMariaDB(tmp_path_factory.mktemp("mariadb"))
    try:
        server.start()
        yield server
    finally:
        server.kill()


@pytest.fixture(scope="module")
def private_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path_factory.mktemp("redis"))
    try:
        server.start()
        yield server
    finally:
        server.kill()


@pytest.fixture
def stack(
    private_mariadb: PrivateMariaDB, private_redis: PrivateRedis, tmp_path: Path
) -> Iterator[tuple[Cluster, Engine]]:
    url = private_mariadb.create_database(f"tb_outage_{uuid.uuid4().hex[:8]}")
    upgrade(url)
    engine = make_engine(url)
    cluster = Cluster(reliability_env(url, private_redis.url), tmp_path)
    try:
        yield cluster, engine
    finally:
        cluster.stop_all()
        engine.dispose()
        print(f"cluster logs in {tmp_path}")


def run_through_outage(cluster: Cluster, db: Engine, server: PrivateMariaDB | PrivateRedis, outage_s: float):
    worker = cluster.start_worker(concurrency=2)
    beat = cluster.start_beat()
    cluster.wait_ready()
    tick = insert_task(db, "outage_tick", "test_interval", "interval", "1", "1,2")
    long = insert_task(db, "outage_long", "sleep_for", "interval", "4", "3")
    start = datetime.now(UTC)
    wait_for(lambda: len(runs(db, tick, "success")) >= 3, 30, what="fires before the outage")
    wait_for(lambda: runs(db, long, "running"), 15, what="a run in progress when the outage begins")

    server.stop()
    try:
        time.sleep(outage_s)
    finally:
        server.start()  # always: a test never leaves its server stopped
    recovered = datetime.now(UTC)

    # After recovery: fires resume within a few seconds, and the runs of the window settle.
    wait_for(
        lambda: [r for r in runs(db, tick, "success") if r["started_at"] > recovered.replace(tzinfo=None)],
        REFRESH_S + WORKER_DEAD_S + 20,
        what="fires after recovery",
    )
    time.sleep(REFRESH_S * 2)
    end = datetime.now(UTC) - timedelta(seconds=1)
    wait_for(
        lambda: (
            not sql(
                db,
                "SELECT id FROM execute_task WHERE status IN ('pending', 'running') AND scheduled_at <= :e",
                e=end.replace(tzinfo=None),
            )
        ),
        60,
        what="every run of the window to finish",
    )
    assert worker.proc.poll() is None and beat.proc.poll() is None, "a process died during the outage"
    report = check(db, start, end, all_logs(cluster))
    print("\n".join(report.lines()), report.examples)
    assert report.doubled == 0 and report.executed_twice == 0 and report.unexpected == 0, report.examples
    assert report.missing == 0 and report.stuck == 0, report.examples  # coalesced fires count as covered
    assert not sql(db, "SELECT id FROM execute_task WHERE status = 'lost'")  # a silent DB is not a dead worker
    return worker, beat, report, tick, start, recovered


def assert_no_traceback_storm(log: str, allowed: int = 0) -> None:
    assert count_lines(log, "Traceback") <= allowed, log[-4000:]


@pytest.mark.parametrize("outage_s", [pytest.param(10, id="10s"), pytest.param(30, id="30s", marks=pytest.mark.slow)])
def test_database_outage(stack: tuple[Cluster, Engine], private_mariadb: PrivateMariaDB, outage_s: float) -> None:
    cluster, db = stack
    worker, beat, report, tick, _start, _recovered = run_through_outage(cluster, db, private_mariadb, outage_s)
    beat_log, worker_log = beat.log(), worker.log()
    assert count_lines(beat_log, "database unavailable") == 1, beat_log[-3000:]
    assert count_lines(beat_log, "database back after") == 1
    assert_no_traceback_storm(beat_log)
    # The worker: the heartbeat thread and each pool process log one line each per outage.
    assert count_lines(worker_log, "not written (database unavailable?)") == 1, worker_log[-3000:]
    assert 1 <= count_lines(worker_log, "database unreachable while writing") <= 2, worker_log[-3000:]
    assert count_lines(worker_log, "database reachable again") == count_lines(worker_log, "database unreachable while")
    assert_no_traceback_storm(worker_log)
    # The run in progress when the database went away was recorded once it came back.
    assert set(report.statuses) <= {"success", "skipped"}, report.statuses
    assert report.skipped >= 1  # fires due during the outage were coalesced (misfire policy)


@pytest.mark.parametrize("outage_s", [pytest.param(10, id="10s"), pytest.param(30, id="30s", marks=pytest.mark.slow)])
def test_broker_outage(stack: tuple[Cluster, Engine], private_redis: PrivateRedis, outage_s: float) -> None:
    cluster, db = stack
    worker, beat, report, tick, _start, _recovered = run_through_outage(cluster, db, private_redis, outage_s)
    beat_log, worker_log = beat.log(), worker.log()
    assert count_lines(beat_log, "broker unavailable") == 1, beat_log[-3000:]
    assert count_lines(beat_log, "broker back after") == 1
    assert count_lines(beat_log, "republishing") <= 2, beat_log[-3000:]  # not a line per refresh of the outage
    assert_no_traceback_storm(beat_log)
    # Celery's consumer logs the lost connection once (with its traceback) and then one line per reconnect try.
    assert count_lines(worker_log, "Connection to broker lost") <= 1, worker_log[-3000:]
    assert_no_traceback_storm(worker_log, allowed=1)
    assert set(report.statuses) <= {"success", "skipped"}, report.statuses

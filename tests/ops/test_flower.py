"""Flower against real Redis, MariaDB, beat and worker: every run is findable through its HTTP API."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine

from tests.helpers import cluster_env, free_port, insert_task, sql
from tests.processes import CeleryProcess, Cluster, wait_for
from workers.flower_options import join_option_values, with_default_address

pytestmark = [pytest.mark.integration, pytest.mark.mariadb]

AUTH = ("ops", "flower-test-pw")


@pytest.fixture(scope="module")
def flower(
    mariadb_url: str, broker_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Cluster, str]]:
    log_dir: Path = tmp_path_factory.mktemp("flower")
    cluster = Cluster(cluster_env(mariadb_url, broker_url), log_dir)
    # Credentials from the environment, as docker-compose.yml passes them.
    flower_env = {**cluster.env, "FLOWER_BASIC_AUTH": f"{AUTH[0]}:{AUTH[1]}"}
    port = free_port()
    try:
        cluster.start_worker()
        cluster.start_beat()
        cluster.processes.append(
            # The README's line as written: "--port 5566" (tornado alone only takes "--port=5566").
            CeleryProcess("flower", ["--port", str(port), "--address", "127.0.0.1"], flower_env, log_dir, "flower")
        )
        base = f"http://127.0.0.1:{port}"
        wait_for(lambda: _healthy(base), 30, what=f"Flower on {base}")
        yield cluster, base
    finally:
        cluster.stop_all()


def _healthy(base: str) -> bool:
    try:
        return httpx.get(f"{base}/healthcheck", timeout=2).text == "OK"
    except httpx.HTTPError:
        return False


def _tasks(base: str, **params: str) -> dict:
    response = httpx.get(f"{base}/api/tasks", params=params, auth=AUTH, timeout=5)
    response.raise_for_status()
    return response.json()


def test_run_is_found_in_flower_by_celery_id_and_trace_id(flower: tuple[Cluster, str], db: Engine) -> None:
    cluster, base = flower
    task_id = insert_task(db, "flower_seen", "test_interval", "interval", "2")
    run_id, celery_id, trace_id = wait_for(
        lambda: sql(
            db,
            "SELECT id, celery_id, trace_id FROM execute_task WHERE task_id = :t AND status = 'success' "
            "ORDER BY id LIMIT 1",
            t=task_id,
        ),
        30,
        what="a successful run",
    )[0]

    # Each job is its own task name in Flower, in SUCCESS state, with the run's trace ID in its kwargs.
    found = wait_for(lambda: _tasks(base, taskname="test_interval").get(celery_id), 30, what="the run in Flower")
    assert found["name"] == "test_interval" and found["state"] == "SUCCESS"
    assert trace_id in found["kwargs"] and f"'sub_task_id': {run_id}" in found["kwargs"]
    assert "flower_seen" in found["args"]

    # Search by trace ID (what an operator pastes from a log line or execute_task).
    by_trace = _tasks(base, search=trace_id)
    assert list(by_trace) == [celery_id]

    info = httpx.get(f"{base}/api/task/info/{celery_id}", auth=AUTH, timeout=5).json()
    assert info["uuid"] == celery_id and info["worker"].startswith("worker")


def test_flower_api_needs_the_credentials(flower: tuple[Cluster, str]) -> None:
    _cluster, base = flower
    assert httpx.get(f"{base}/api/tasks", timeout=5).status_code == 401
    assert httpx.get(f"{base}/api/tasks", auth=("ops", "wrong"), timeout=5).status_code == 401
    assert httpx.get(f"{base}/healthcheck", timeout=5).status_code == 200


def test_spaced_option_values_are_joined_for_flower() -> None:
    takes_value = {"port", "address", "basic_auth"}.__contains__
    argv = ("--port", "5566", "--address", "127.0.0.1", "--debug", "--basic_auth=a:b", "--persistent")
    assert join_option_values(argv, takes_value) == (
        "--port=5566",
        "--address=127.0.0.1",
        "--debug",
        "--basic_auth=a:b",
        "--persistent",
    )
    assert join_option_values(("--port",), takes_value) == ("--port",)  # tornado names the missing value


def test_flower_listens_on_loopback_unless_told() -> None:
    assert with_default_address(("--port=5566",), {}) == ("--port=5566", "--address=127.0.0.1")
    assert with_default_address(("--address=0.0.0.0",), {}) == ("--address=0.0.0.0",)
    assert with_default_address((), {"FLOWER_ADDRESS": "10.0.0.5"}) == ()


def _listening(port: int) -> set[str]:
    """Local addresses (hex, as /proc/net/tcp writes them) listening on ``port``."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            local, state = line.split()[1], line.split()[3]
            address, _, hex_port = local.partition(":")
            if state == "0A" and int(hex_port, 16) == port:
                found.add(address)
    return found


def test_flower_without_an_address_listens_on_loopback_only(flower: tuple[Cluster, str], tmp_path: Path) -> None:
    if not Path("/proc/net/tcp").exists():
        pytest.skip("reads /proc/net/tcp")
    cluster, _base = flower
    port = free_port()
    env = {**cluster.env, "FLOWER_BASIC_AUTH": f"{AUTH[0]}:{AUTH[1]}"}
    process = CeleryProcess("flower", ["--port", str(port)], env, tmp_path, "flower-default")
    try:
        wait_for(lambda: _healthy(f"http://127.0.0.1:{port}"), 30, what="Flower with no --address")
        assert _listening(port) == {"0100007F"}  # 127.0.0.1 only, not 0.0.0.0 or ::
    finally:
        process.stop()

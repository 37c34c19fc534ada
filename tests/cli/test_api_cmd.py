"""``tablebeat api`` as a real process: binding, the no-token warning, and the token check."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.helpers import free_port
from tests.processes import READY_TIMEOUT_S, REPO, wait_for

pytestmark = pytest.mark.mariadb


class ApiProcess:
    """``python -m cli.main api ...`` with its output in a file; stopped by its PID."""

    def __init__(self, args: list[str], env: dict[str, str], log_path: Path) -> None:
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "cli.main", "api", *args],
            env=env,
            cwd=str(REPO),
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self._log.close()


@pytest.fixture
def start_api(db_url: str, broker_url: str, tmp_path: Path) -> Iterator:
    started: list[ApiProcess] = []

    def start(*args: str, token: str | None = None, **extra_env: str) -> ApiProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TABLEBEAT_")}
        env.update(TABLEBEAT_DATABASE_URL=db_url, TABLEBEAT_BROKER_URL=broker_url, PYTHONPATH=str(REPO), **extra_env)
        if token:
            env["TABLEBEAT_API_TOKEN"] = token
        process = ApiProcess(list(args), env, tmp_path / f"api{len(started)}.log")
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()


def healthy(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_without_token_binds_loopback_and_says_so(start_api) -> None:
    port = free_port()
    process = start_api("--port", str(port))
    wait_for(lambda: healthy(port), READY_TIMEOUT_S, what="the API to answer")
    assert "TABLEBEAT_API_TOKEN is not set" in process.log()
    assert f"Uvicorn running on http://127.0.0.1:{port}" in process.log()
    assert httpx.get(f"http://127.0.0.1:{port}/tasks", timeout=5).status_code == 200


def test_without_token_refuses_a_public_address(start_api) -> None:
    port = free_port()
    process = start_api("--host", "0.0.0.0", "--port", str(port))
    assert process.proc.wait(timeout=30) == 2
    lines = [line for line in process.log().splitlines() if "TABLEBEAT_API_TOKEN" in line]
    assert lines == [line for line in lines if "TABLEBEAT_ALLOW_OPEN=1" in line and f"0.0.0.0:{port}" in line]
    assert len(lines) == 1 and "refusing to serve" in lines[0]


def test_allow_open_serves_a_public_address_without_token(start_api) -> None:
    port = free_port()
    process = start_api("--host", "0.0.0.0", "--port", str(port), TABLEBEAT_ALLOW_OPEN="1")
    wait_for(lambda: healthy(port), READY_TIMEOUT_S, what="the API to answer")
    assert f"Uvicorn running on http://0.0.0.0:{port}" in process.log()
    assert "TABLEBEAT_ALLOW_OPEN=1" in process.log()
    assert httpx.get(f"http://127.0.0.1:{port}/tasks", timeout=5).status_code == 200


def test_with_token_listens_on_all_interfaces_and_checks_it(start_api) -> None:
    port = free_port()
    process = start_api("--port", str(port), token="proc-token")
    wait_for(lambda: healthy(port), READY_TIMEOUT_S, what="the API to answer")
    assert f"Uvicorn running on http://0.0.0.0:{port}" in process.log()
    assert "TABLEBEAT_API_TOKEN is not set" not in process.log()
    assert httpx.get(f"http://127.0.0.1:{port}/tasks", timeout=5).status_code == 401
    auth = {"Authorization": "Bearer proc-token"}
    task = {"task_key": "proc", "execute_func": "test_interval", "trigger": "interval", "spec": "60"}
    created = httpx.post(f"http://127.0.0.1:{port}/tasks", json=task, headers=auth, timeout=5)
    assert created.status_code == 201, created.text
    authed = httpx.get(f"http://127.0.0.1:{port}/tasks", headers=auth, timeout=5)
    assert authed.status_code == 200
    assert authed.json()["total"] == 1 and [t["task_key"] for t in authed.json()["items"]] == ["proc"]
    assert httpx.get(f"http://127.0.0.1:{port}/docs", timeout=5).status_code == 200

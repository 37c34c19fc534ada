"""Issue 10, item 2: no open API off loopback, however it is started.

``uvicorn api.app:app`` and gunicorn (uvicorn workers) as real processes, and the lifespan
check against a listening socket held by the process (how gunicorn hands sockets over).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.exposure import is_loopback, listening_addresses, off_loopback
from api.settings import ApiSettings
from service.tasks import TaskService
from tests.api.conftest import TOKEN
from tests.helpers import free_port
from tests.processes import REPO, wait_for

pytestmark = pytest.mark.mariadb


def test_loopback_names() -> None:
    for host in ("127.0.0.1", "127.8.9.1", "::1", "[::1]", "localhost", "LOCALHOST.", "app.localhost"):
        assert is_loopback(host), host
    for host in ("0.0.0.0", "::", "10.0.0.5", "example.com", "localhost.example.com", ""):
        assert not is_loopback(host), host
    assert off_loopback(("10.0.0.5", 8000)) and off_loopback(["::ffff:10.0.0.5", 8000])
    assert not off_loopback(("127.0.0.1", 8000)) and not off_loopback(("testserver", 80))
    assert not off_loopback(("/run/tablebeat.sock", None)) and not off_loopback(None)


@pytest.fixture
def public_socket() -> Iterator[socket.socket]:
    """A socket listening on every address, as gunicorn's master hands its workers."""
    with socket.socket() as sock:
        sock.bind(("0.0.0.0", 0))
        sock.listen()
        yield sock


def test_start_up_refused_on_a_held_public_socket(
    public_socket: socket.socket, settings: ApiSettings, service: TaskService
) -> None:
    port = public_socket.getsockname()[1]
    assert ("0.0.0.0", port) in listening_addresses()
    app = create_app(ApiSettings(settings.service, api_token=None), service=service)
    with pytest.raises(RuntimeError, match=f"refusing to serve the API on 0.0.0.0:{port} without TABLEBEAT_API_TOKEN"):
        with TestClient(app):
            pass
    for allowed in (ApiSettings(settings.service, api_token=TOKEN), ApiSettings(settings.service, allow_open=True)):
        with TestClient(create_app(allowed, service=service)) as client:
            assert client.get("/health").status_code == 200


class Server:
    """A server process with its output in a file; stopped by its PID."""

    def __init__(self, argv: list[str], env: dict[str, str], log: Path) -> None:
        self.log_path = log
        self._log = log.open("wb")
        self.proc = subprocess.Popen(
            argv, env=env, cwd=str(REPO), stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)  # the server and the workers it forked
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)
        self._log.close()


@pytest.fixture
def serve(db_url: str, broker_url: str, tmp_path: Path) -> Iterator:
    started: list[Server] = []

    def start(argv: list[str], **extra_env: str) -> Server:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TABLEBEAT_")}
        env.update(TABLEBEAT_DATABASE_URL=db_url, TABLEBEAT_BROKER_URL=broker_url, PYTHONPATH=str(REPO), **extra_env)
        server = Server(argv, env, tmp_path / f"server{len(started)}.log")
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def uvicorn_argv(port: int) -> list[str]:
    return [sys.executable, "-m", "uvicorn", "api.app:app", "--host", "0.0.0.0", "--port", str(port)]


def gunicorn_argv(port: int) -> list[str]:
    pytest.importorskip("gunicorn")
    return [
        sys.executable,
        "-m",
        "gunicorn",
        "api.app:app",
        "-k",
        "uvicorn.workers.UvicornWorker",
        "-w",
        "2",
        "-b",
        f"0.0.0.0:{port}",
    ]


def answers(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.mark.parametrize("argv", [uvicorn_argv, gunicorn_argv], ids=["uvicorn", "gunicorn"])
def test_server_without_token_on_all_addresses_refuses_to_start(serve, argv) -> None:
    port = free_port()
    server = serve(argv(port))
    assert server.proc.wait(timeout=60) != 0
    lines = [line for line in server.log().splitlines() if "TABLEBEAT_API_TOKEN" in line]
    assert lines and all("TABLEBEAT_ALLOW_OPEN=1" in line and f"0.0.0.0:{port}" in line for line in lines), lines
    # One line per process that tried (gunicorn: each worker), never an answer.
    assert not answers(port)


@pytest.mark.parametrize("argv", [uvicorn_argv, gunicorn_argv], ids=["uvicorn", "gunicorn"])
def test_server_serves_with_a_token_or_allow_open(serve, argv) -> None:
    port = free_port()
    serve(argv(port), TABLEBEAT_API_TOKEN=TOKEN)
    wait_for(lambda: answers(port), 60, what="the API with a token")
    assert httpx.get(f"http://127.0.0.1:{port}/tasks", timeout=5).status_code == 401
    port = free_port()
    opened = serve(argv(port), TABLEBEAT_ALLOW_OPEN="1")
    wait_for(lambda: answers(port), 60, what="the open API")
    assert "serves without authentication" in opened.log()


def test_uvicorn_without_token_on_loopback_serves(serve) -> None:
    port = free_port()
    serve([sys.executable, "-m", "uvicorn", "api.app:app", "--host", "127.0.0.1", "--port", str(port)])
    wait_for(lambda: answers(port), 60, what="the API on loopback")


def test_console_forms_work_across_api_processes_without_a_token(serve, engine) -> None:
    """Two real API processes on one database (as gunicorn -w 2 is): a form served by one is
    accepted by the other, so the CSRF key cannot be private to a process."""
    import re

    ports = [free_port(), free_port()]
    for port in ports:
        serve([sys.executable, "-m", "uvicorn", "api.app:app", "--host", "127.0.0.1", "--port", str(port)])
    for port in ports:
        wait_for(lambda port=port: answers(port), 60, what=f"the API on {port}")
    page = httpx.get(f"http://127.0.0.1:{ports[0]}/jobs/new", timeout=10)
    seed = page.cookies["tb_csrf"]  # Secure cookie: sent by hand, as a browser does to localhost
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    form = {"task_key": "twoprocs", "execute_func": "test_interval", "trigger": "interval", "spec": "5m"}
    created = httpx.post(
        f"http://127.0.0.1:{ports[1]}/jobs/new",
        data={**form, "csrf_token": token},
        headers={"Cookie": f"tb_csrf={seed}"},
        timeout=10,
    )
    assert created.status_code == 303, created.text

"""TABLEBEAT_LOG_FORMAT=json: beat, a prefork worker and the API write one JSON object per line,
and every line of a run -- Celery's own "received" line included -- names its task_key, trace_id and run_id."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine

from tests.helpers import free_port, insert_task, sql
from tests.processes import REPO, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.mariadb]


class Logged:
    """A process whose stderr (the log stream) and stdout go to separate files; killed by its group."""

    def __init__(self, argv: list[str], env: dict[str, str], folder: Path, name: str) -> None:
        self.err_path, self.out_path = folder / f"{name}.err", folder / f"{name}.out"
        with self.err_path.open("ab") as err, self.out_path.open("ab") as out:
            self.proc = subprocess.Popen(argv, env=env, cwd=str(REPO), stdout=out, stderr=err, start_new_session=True)

    def lines(self) -> list[str]:
        return [line for line in self.err_path.read_text(errors="replace").splitlines() if line.strip()]

    def records(self) -> list[dict]:
        """Every log line as JSON (fails the test on a line that is not)."""
        parsed = []
        for line in self.lines():
            try:
                parsed.append(json.loads(line))
            except ValueError:
                pytest.fail(f"not a JSON line in {self.err_path.name}: {line!r}")
        return parsed

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


@pytest.fixture
def started(env: dict[str, str], tmp_path: Path) -> Iterator[list[Logged]]:
    running: list[Logged] = []
    yield running
    for proc in running:
        proc.stop()
    print(f"logs in {tmp_path}")


def test_every_line_is_json_and_a_run_is_tagged_on_each(
    env: dict[str, str], db: Engine, tmp_path: Path, started: list[Logged]
) -> None:
    insert_task(db, "ok", "test_interval", "interval", "1", "1,2")
    json_env = {**env, "TABLEBEAT_LOG_FORMAT": "json"}
    celery = [sys.executable, "-m", "celery", "-A", "workers"]
    worker = Logged(
        [*celery, "worker", "-l", "info", "-c", "2", "-n", "json@%h", "--without-mingle", "--without-gossip"],
        json_env,
        tmp_path,
        "worker",
    )
    started.append(worker)
    beat = Logged([*celery, "beat", "-l", "info"], json_env, tmp_path, "beat")
    started.append(beat)
    port = free_port()
    api = Logged([sys.executable, "-m", "cli.main", "api", "--port", str(port)], json_env, tmp_path, "api")
    started.append(api)

    def a_run() -> tuple[int, str] | None:
        rows = sql(db, "SELECT id, trace_id FROM execute_task WHERE status = 'success' ORDER BY id LIMIT 1")
        return rows[0] if rows else None

    run_id, trace_id = wait_for(a_run, 60, what="a successful run")

    def worker_lines_of_run() -> list[dict] | None:
        mine = [r for r in worker.records() if r["trace_id"] == trace_id]
        return mine if any("succeeded" in r["message"] for r in mine) else None

    mine = wait_for(worker_lines_of_run, 20, what=f"the worker's lines of run {run_id}")
    assert all(r["task_key"] == "ok" and r["run_id"] == run_id for r in mine), mine
    messages = " | ".join(r["message"] for r in mine)
    received = next(r for r in mine if r["message"].endswith(" received"))
    assert received["logger"] == "celery.worker.strategy" and received["process"] == "MainProcess"  # no run context yet
    assert f"run {run_id} started" in messages and "test_interval ran" in messages and "succeeded" in messages
    assert all({"ts", "level", "logger", "message"} <= set(r) for r in worker.records())

    fired = [r for r in beat.records() if r["trace_id"] == trace_id]
    assert fired and fired[0]["run_id"] == run_id and fired[0]["task_key"] == "ok" and "fired" in fired[0]["message"]

    url = f"http://127.0.0.1:{port}/health"
    wait_for(lambda: _answers(url), 30, what="the API")
    api_records = wait_for(
        lambda: [r for r in api.records() if "GET /health" in r["message"]], 10, what="the API's access line"
    )
    assert api_records[0]["logger"] == "uvicorn.access" and api.records()[0]["level"] == "INFO"


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code in (200, 503)
    except httpx.TransportError:
        return False

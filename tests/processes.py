"""Starting and stopping real ``celery`` processes, and the API server, for integration tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import httpx
import redis

from tests.helpers import free_port

T = TypeVar("T")
REPO = Path(__file__).resolve().parent.parent
#: The most a process may take to start on a busy machine; a wait returns as soon as it is ready.
READY_TIMEOUT_S = 60


class CeleryProcess:
    """One ``celery -A workers ...`` child process with its own log file; killed by PID."""

    def __init__(self, kind: str, args: list[str], env: dict[str, str], log_dir: Path, name: str) -> None:
        self.kind = kind
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "workers", kind, *args],
            env=env,
            cwd=str(log_dir),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: prefork children die with it
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout: float = READY_TIMEOUT_S) -> None:
        """Wait for the process's ready line: a worker consuming, a beat with the table loaded."""
        line = " ready." if self.kind == "worker" else "tasks scheduled"
        wait_for(lambda: line in self.log() or self.proc.poll() is not None, timeout, what=f"{self.name} ready")
        if self.proc.poll() is not None:
            raise AssertionError(f"{self.name} exited with {self.proc.returncode}:\n{self.log()[-3000:]}")

    def signal(self, sig: int) -> None:
        """Send ``sig`` to the whole process group (main process and pool children)."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, then SIGKILL after ``timeout``; always reaps the group."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGCONT)
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=timeout)
            except (subprocess.TimeoutExpired, ProcessLookupError):
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=10)
        self._log.close()


class Cluster:
    """Beats and workers sharing one database and one broker; stops them all on exit."""

    def __init__(self, env: dict[str, str], log_dir: Path) -> None:
        self.env = env
        self.log_dir = log_dir
        self.processes: list[CeleryProcess] = []
        self._count = 0

    def start_beat(self, *extra: str) -> CeleryProcess:
        self._count += 1
        proc = CeleryProcess("beat", ["-l", "info", *extra], self.env, self.log_dir, f"beat{self._count}")
        self.processes.append(proc)
        return proc

    def start_worker(self, *extra: str, concurrency: int = 2) -> CeleryProcess:
        self._count += 1
        name = f"worker{self._count}"
        proc = CeleryProcess(
            "worker",
            ["-l", "info", "-c", str(concurrency), "-n", f"{name}@%h", "--without-mingle", "--without-gossip", *extra],
            self.env,
            self.log_dir,
            name,
        )
        self.processes.append(proc)
        return proc

    def wait_ready(self, timeout: float = READY_TIMEOUT_S) -> None:
        """Wait until every live process of the cluster has logged its ready line."""
        for proc in self.processes:
            if proc.proc.poll() is None:
                proc.wait_ready(timeout)

    def stop_all(self) -> None:
        for proc in self.processes:
            proc.stop()

    def logs(self) -> str:
        return "\n".join(f"===== {p.name} =====\n{p.log()[-6000:]}" for p in self.processes)


def wait_for(predicate: Callable[[], T], timeout: float, interval: float = 0.2, what: str = "condition") -> T:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: T = predicate()
    while not last:
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)
        last = predicate()
    return last


@contextmanager
def redis_broker_db() -> Iterator[str]:
    """A Redis broker URL on a database number no other test uses now; flushed before and after."""
    client = redis.Redis(host="127.0.0.1", port=6379)
    for number in range(2, 16):
        if client.set(f"tablebeat-test-lock-{number}", os.getpid(), nx=True, ex=3600):
            break
    else:
        raise RuntimeError("no free Redis database number for the test broker")
    url = f"redis://127.0.0.1:6379/{number}"
    redis.Redis.from_url(url).flushdb()
    try:
        yield url
    finally:
        redis.Redis.from_url(url).flushdb()
        client.delete(f"tablebeat-test-lock-{number}")


@contextmanager
def api_server(
    env: dict[str, str],
    log_path: Path,
    argv: tuple[str, ...] = ("-m", "uvicorn", "api.app:app"),
    ready: str = "/health",
) -> Iterator[str]:
    """The API server (``uvicorn api.app:app`` unless ``argv`` says otherwise) on a free port.

    Yields its base URL once ``ready`` answers 200; stops it (its whole process group) on exit.
    """
    port = free_port()
    with log_path.open("ab") as log:
        server = subprocess.Popen(
            [sys.executable, *argv, "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            cwd=str(REPO),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"

    def up() -> bool:
        if server.poll() is not None:
            raise AssertionError(f"the API server exited with {server.returncode}:\n{log_path.read_text()[-3000:]}")
        try:
            return httpx.get(f"{base}{ready}", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_for(up, READY_TIMEOUT_S, what="the API server")
        yield base
    finally:
        try:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=10)
        except (subprocess.TimeoutExpired, ProcessLookupError):
            pass
        try:
            os.killpg(server.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        server.wait(timeout=10)

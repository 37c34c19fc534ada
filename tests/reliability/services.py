"""Private MariaDB and Redis servers that a test may stop and start at will.

Outage tests stop *these*, never the shared servers other tests (and other sessions on the
machine) use. Each one runs in its own process group from a temporary directory and is
always killed by PID at the end.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import redis
from sqlalchemy import create_engine, text

from tests.helpers import free_port


def _wait(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.2)


class PrivateServer:
    """A server process we own: start, stop (an outage), start again, kill for good."""

    name = "server"

    def __init__(self, base: Path) -> None:
        self.base = base
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        raise NotImplementedError

    def answers(self) -> bool:
        raise NotImplementedError

    def start(self, timeout: float = 30.0) -> None:
        log = (self.base / f"{self.name}.log").open("ab")
        self.proc = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        _wait(self.answers, timeout, f"private {self.name} on port {self.port} to answer")

    def stop(self) -> None:
        """A clean server shutdown, as an operator or a crash-restarting supervisor would cause."""
        self._shutdown()
        if self.proc is not None:
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self.proc = None

    def _shutdown(self) -> None:
        if self.proc is not None:
            os.killpg(self.proc.pid, signal.SIGTERM)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(timeout=10)
        self.proc = None


class PrivateMariaDB(PrivateServer):
    name = "mariadb"

    def __init__(self, base: Path) -> None:
        super().__init__(base)
        self.datadir = base / "data"
        subprocess.run(
            [
                "mariadb-install-db",
                "--no-defaults",
                f"--datadir={self.datadir}",
                "--user=root",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
            ],
            check=True,
            capture_output=True,
        )

    @property
    def admin_url(self) -> str:
        return f"mysql+pymysql://root@127.0.0.1:{self.port}/mysql"

    def url(self, database: str) -> str:
        return f"mysql+pymysql://root@127.0.0.1:{self.port}/{database}?charset=utf8mb4"

    def command(self) -> list[str]:
        return [
            shutil.which("mariadbd") or "/usr/sbin/mariadbd",
            "--no-defaults",
            f"--datadir={self.datadir}",
            "--user=root",
            f"--port={self.port}",
            "--bind-address=127.0.0.1",
            f"--socket={self.base / 'sock'}",
            f"--pid-file={self.base / 'pid'}",
            "--skip-log-bin",
            "--innodb-buffer-pool-size=64M",
            "--skip-name-resolve",
            "--max-connections=500",
        ]

    def answers(self) -> bool:
        return (
            subprocess.run(
                ["mysqladmin", "-uroot", "-h127.0.0.1", f"-P{self.port}", "--connect-timeout=2", "ping"],
                capture_output=True,
            ).returncode
            == 0
        )

    def _shutdown(self) -> None:
        subprocess.run(["mysqladmin", "-uroot", "-h127.0.0.1", f"-P{self.port}", "shutdown"], capture_output=True)

    def create_database(self, name: str) -> str:
        engine = create_engine(self.admin_url, isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                conn.execute(text(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4"))
        finally:
            engine.dispose()
        return self.url(name)


class PrivateRedis(PrivateServer):
    name = "redis"

    def command(self) -> list[str]:
        return [
            shutil.which("redis-server") or "redis-server",
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.base),
        ]

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def answers(self) -> bool:
        try:
            return bool(redis.Redis(port=self.port, socket_connect_timeout=1).ping())
        except redis.RedisError:
            return False

    def _shutdown(self) -> None:
        try:
            redis.Redis(port=self.port, socket_connect_timeout=1).shutdown(nosave=True)
        except redis.RedisError:
            pass  # the connection drops as the server exits

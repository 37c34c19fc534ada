"""The benchmark's environment: its own MariaDB database, its own Redis DB, real celery processes."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

REPO = Path(__file__).resolve().parent.parent

DEFAULT_DB_URL = "mysql+pymysql://root@127.0.0.1:3306/tablebeat_bench?charset=utf8mb4"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/12"
JOB_MODULES = "workers.examples,bench.bare_tasks"

#: Beat writes this when it is ready to tick (rows it settled at start: those changed since the last beat).
READY_LINE = re.compile(r"tablebeat: ready in ([0-9.]+)s, tasks scheduled from the table \((\d+) rows settled")


@dataclass
class BenchEnv:
    """Where the benchmark runs: database URL, broker URL, log folder, and the processes it started."""

    db_url: str
    redis_url: str
    log_dir: Path
    extra_env: dict[str, str] = field(default_factory=dict)
    #: When set, every celery process is sampled by ``py-spy record`` into this folder (raw stacks).
    profile_dir: Path | None = None
    #: Include idle/waiting stacks (wall time: time blocked on MariaDB or Redis shows up too).
    profile_idle: bool = False
    #: How beat starts: ``lean`` = ``python -m scheduler`` (no celery CLI plugins), ``celery`` = ``celery beat``.
    beat_launcher: str = "lean"
    processes: list[CeleryProcess] = field(default_factory=list)
    _engine: Engine | None = None
    _redis: redis.Redis | None = None

    # --- database -------------------------------------------------------------------------

    def recreate_database(self) -> None:
        """Drop and create the bench database, then create the schema with ``models.migrate.upgrade``."""
        from models.migrate import upgrade

        url = make_url(self.db_url)
        name = url.database
        if not name or name in ("test", "mysql", "information_schema", "performance_schema", "sys"):
            raise ValueError(f"refusing to recreate database {name!r}; give the bench a database of its own")
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None
        admin = self._admin_engine()
        try:
            with admin.connect() as conn:
                if self.is_postgresql:
                    conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                    conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
                else:
                    conn.exec_driver_sql(f"DROP DATABASE IF EXISTS `{name}`")
                    conn.exec_driver_sql(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
        finally:
            admin.dispose()
        upgrade(self.db_url)

    @property
    def is_postgresql(self) -> bool:
        return make_url(self.db_url).get_backend_name() == "postgresql"

    def _admin_engine(self) -> Engine:
        url = make_url(self.db_url)
        admin_db = "postgres" if self.is_postgresql else ""
        return create_engine(url.set(database=admin_db), isolation_level="AUTOCOMMIT")

    def drop_database(self) -> None:
        url = make_url(self.db_url)
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None
        admin = self._admin_engine()
        try:
            with admin.connect() as conn:
                if self.is_postgresql:
                    conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)')
                else:
                    conn.exec_driver_sql(f"DROP DATABASE IF EXISTS `{url.database}`")
        finally:
            admin.dispose()

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            from models import make_engine

            self._engine = make_engine(self.db_url, pool_size=4)
        return self._engine

    def scalar(self, sql: str, **params: Any) -> Any:
        with self.engine.connect() as conn:
            return conn.execute(text(sql), params).scalar()

    def rows(self, sql: str, **params: Any) -> list[tuple[Any, ...]]:
        with self.engine.connect() as conn:
            return [tuple(r) for r in conn.execute(text(sql), params)]

    def execute(self, sql: str, **params: Any) -> int:
        with self.engine.begin() as conn:
            return conn.execute(text(sql), params).rowcount

    # --- broker -----------------------------------------------------------------------------

    @property
    def redis(self) -> redis.Redis:
        if self._redis is None:
            self._redis = redis.Redis.from_url(self.redis_url)
        return self._redis

    def new_redis(self) -> redis.Redis:
        """A separate client (one per sampling thread)."""
        return redis.Redis.from_url(self.redis_url)

    def flush_broker(self) -> None:
        self.redis.flushdb()

    # --- processes ------------------------------------------------------------------------------

    def process_env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TABLEBEAT_")}
        env.update(
            TABLEBEAT_DATABASE_URL=self.db_url,
            TABLEBEAT_BROKER_URL=self.redis_url,
            TABLEBEAT_JOB_MODULES=JOB_MODULES,
            PYTHONPATH=os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep),
        )
        env.update(self.extra_env)
        env.update(extra)
        return env

    def start_beat(self, name: str = "beat", loglevel: str = "info") -> CeleryProcess:
        proc = CeleryProcess("beat", ["-l", loglevel], self.process_env(), self.log_dir, name, self.beat_launcher)
        self.processes.append(proc)
        if self.profile_dir:
            proc.attach_profiler(self.profile_dir, subprocesses=False, idle=self.profile_idle)
        return proc

    def start_worker(self, name: str = "worker", concurrency: int = 2, loglevel: str = "info") -> CeleryProcess:
        args = ["-l", loglevel, "-c", str(concurrency), "-n", f"{name}@%h", "--without-mingle", "--without-gossip"]
        proc = CeleryProcess("worker", args, self.process_env(), self.log_dir, name)
        self.processes.append(proc)
        if self.profile_dir:
            proc.attach_profiler(self.profile_dir, subprocesses=True, idle=self.profile_idle)
        return proc

    def stop_all(self) -> None:
        for proc in self.processes:
            proc.stop()
        self.processes.clear()

    def close(self) -> None:
        self.stop_all()
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None
        if self._redis is not None:
            self._redis.close()
            self._redis = None


class CeleryProcess:
    """One ``celery -A workers <kind>`` child with its own log file, in its own process group."""

    def __init__(
        self, kind: str, args: list[str], env: dict[str, str], log_dir: Path, name: str, launcher: str = "celery"
    ) -> None:
        self.kind = kind
        self.name = name
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = log_dir / f"{name}-{int(time.time() * 1000)}.log"
        self._log = self.log_path.open("ab")
        self.started = time.time()
        self.started_perf = time.perf_counter()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "scheduler", "-A", "workers", *args]
            if kind == "beat" and launcher == "lean"
            else [sys.executable, "-m", "celery", "-A", "workers", kind, *args],
            env=env,
            cwd=str(log_dir),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

        self.profiler: subprocess.Popen[bytes] | None = None
        self.profile_path: Path | None = None

    def attach_profiler(self, folder: Path, subprocesses: bool, idle: bool = False) -> None:
        """Sample this process (and its pool children) with py-spy until it exits; raw collapsed stacks."""
        folder.mkdir(parents=True, exist_ok=True)
        self.profile_path = folder / f"{self.log_path.stem}.txt"
        cmd = [
            "py-spy",
            "record",
            "--pid",
            str(self.pid),
            "-r",
            "200",
            "--nonblocking",
            "-f",
            "raw",
            "-o",
            str(self.profile_path),
        ]
        if subprocesses:
            cmd.append("--subprocesses")
        if idle:
            cmd.append("--idle")
        self.profiler = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_line(
        self, pattern: re.Pattern[str], timeout: float, poll: float = 0.005
    ) -> tuple[float, re.Match[str]]:
        """Seconds from process start until ``pattern`` appears in the log, and the match."""
        deadline = time.monotonic() + timeout
        offset = 0
        buffer = ""
        with self.log_path.open("r", errors="replace") as fh:
            while True:
                chunk = fh.read()
                if chunk:
                    buffer = buffer[-4000:] + chunk
                    offset += len(chunk)
                    match = pattern.search(buffer)
                    if match:
                        return time.perf_counter() - self.started_perf, match
                if not self.alive():
                    raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.log()[-3000:]}")
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{self.name}: no {pattern.pattern!r} after {timeout}s:\n{self.log()[-3000:]}")
                time.sleep(poll)

    def wait_ready(self, timeout: float = 180.0) -> tuple[float, re.Match[str]]:
        """Until beat logged ``tablebeat: ready in Xs, tasks scheduled from the table (N rows settled ...``."""
        return self.wait_for_line(READY_LINE, timeout)

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM the process group, SIGKILL after ``timeout``; always reaps."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=timeout)
            except (subprocess.TimeoutExpired, ProcessLookupError):
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        self._log.close()
        if self.profiler is not None:  # py-spy writes its file when the target exits
            try:
                self.profiler.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.profiler.send_signal(signal.SIGINT)
                try:
                    self.profiler.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self.profiler.kill()
            self.profiler = None


@contextmanager
def running(env: BenchEnv, proc: CeleryProcess) -> Iterator[CeleryProcess]:
    """Stop ``proc`` on exit, whatever happens."""
    try:
        yield proc
    finally:
        proc.stop()
        if proc in env.processes:
            env.processes.remove(proc)

"""One running backend cell: a beat and two workers on one database and one broker, and the
operator's view of it (plain SQL edits, run rows, the ``tablebeat`` CLI).

Waits are for conditions, never for a fixed time. "Beat has got past instant T" is proven by the
cell's clock task (an interval job firing every second): beat claims fires in time order, so once a
clock fire scheduled after T exists, every fire of any task due before T has been claimed too.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select, text

from models import FINAL_STATUSES, ExecuteTask, Task, make_engine
from tests.contract.backends import Cell
from tests.processes import CeleryProcess, Cluster, wait_for

REPO = Path(__file__).resolve().parents[2]

#: Short knobs so lost-run detection and the outbox act within seconds.
REFRESH_S = 2
HEARTBEAT_S = 1
WORKER_DEAD_S = 5
STALE_CLAIM_S = 3
#: A run of a killed worker becomes lost within this: silent WORKER_DEAD_S, seen at the next
#: housekeeping pass (every refresh), its last stamp up to one heartbeat before the kill.
LOST_BOUND_S = WORKER_DEAD_S + HEARTBEAT_S + REFRESH_S + 2
#: Generous ceiling of any wait on a busy machine; a passing test never waits this long.
PATIENCE_S = 60
#: The queue only the cell's third worker (the one a test kills) consumes.
LOST_QUEUE = "contract-lost"

RUN_FIELDS = ("id", "status", "trace_id", "scheduled_at", "started_at", "finished_at", "worker", "attempt")
RUN_FIELDS += ("result", "error", "extra", "celery_id")


def utcnow() -> datetime:
    return datetime.now(UTC)


def cell_env(db_url: str, broker_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TABLEBEAT_") and k != "APP_ENV"}
    env.update(
        TABLEBEAT_DATABASE_URL=db_url,
        TABLEBEAT_BROKER_URL=broker_url,
        TABLEBEAT_REFRESH_SECONDS=str(REFRESH_S),
        TABLEBEAT_HEARTBEAT_SECONDS=str(HEARTBEAT_S),
        TABLEBEAT_WORKER_DEAD_SECONDS=str(WORKER_DEAD_S),
        TABLEBEAT_STALE_CLAIM_SECONDS=str(STALE_CLAIM_S),
        PYTHONPATH=str(REPO),
    )
    return env


class ContractCell:
    """The processes of one cell and what the tests do to them."""

    def __init__(self, cell: Cell, db_url: str, broker_url: str, log_dir: Path) -> None:
        self.cell = cell
        self.db_url = db_url
        self.broker_url = broker_url
        self.cluster = Cluster(cell_env(db_url, broker_url), log_dir)
        self.engine: Engine = make_engine(db_url)
        self.clock_id = 0

    # --- processes -----------------------------------------------------------------------

    def launch(self, lost_worker: bool = False) -> None:
        """Start two workers, a beat and the clock task without waiting (see :meth:`ready`).

        ``lost_worker`` adds a third worker that consumes only :data:`LOST_QUEUE`, for the test that
        kills a worker mid-run without touching the runs of the others.
        """
        for _ in range(2):
            self.cluster.start_worker("--prefetch-multiplier", "1", concurrency=2)
        if lost_worker:
            self.cluster.start_worker("-Q", LOST_QUEUE, concurrency=1)
        self.cluster.start_beat()
        self.clock_id = self.add("contract_clock", "noop", "interval", "1")

    def ready(self, patience: float = PATIENCE_S) -> None:
        """Wait until every process is up and the clock task's first run is recorded ``success``."""
        for proc in self.live("worker"):
            wait_for(lambda p=proc: " ready." in p.log(), patience, what=f"{self.cell.id}: {proc.name} ready")
        for proc in self.live("beat"):
            wait_for(lambda p=proc: "tasks scheduled" in p.log(), patience, what=f"{self.cell.id}: beat loaded")
        wait_for(lambda: self.runs(self.clock_id, "success"), patience, what=f"{self.cell.id}: a first clock run")

    def start_beat(self) -> CeleryProcess:
        beat = self.cluster.start_beat()
        wait_for(lambda: "tasks scheduled" in beat.log(), PATIENCE_S, what=f"{beat.name} to load the table")
        return beat

    def live(self, kind: str) -> list[CeleryProcess]:
        return [p for p in self.cluster.processes if p.kind == kind and p.proc.poll() is None]

    def live_on(self, queue: str) -> list[CeleryProcess]:
        """Live workers started to consume ``queue`` alone."""
        return [p for p in self.live("worker") if queue in p.proc.args]

    def stop(self) -> None:
        for proc in self.cluster.processes:  # all shut down at once, then each is reaped
            proc.signal(signal.SIGTERM)
        for proc in self.cluster.processes:
            proc.stop(timeout=5)
        self.engine.dispose()

    def logs(self) -> str:
        return "\n".join(p.log() for p in self.cluster.processes)

    def explain(self, task_id: int, task_key: str) -> str:
        """For a failure message: the task's runs not ``success``, and every log line naming it."""
        shown = ("id", "status", "scheduled_at", "started_at", "finished_at", "worker", "result", "error")
        rows = [{k: r[k] for k in shown} for r in self.runs(task_id) if r["status"] != "success"]
        lines = [
            f"{p.name}: {line}"
            for p in self.cluster.processes
            for line in p.log().splitlines()
            if task_key in line or "Traceback" in line or "ERROR" in line or "locked" in line
        ]
        return "runs not 'success':\n" + "\n".join(map(str, rows)) + "\nlog lines:\n" + "\n".join(lines[-150:])

    # --- the operator's edits --------------------------------------------------------------

    def q(self, name: str) -> str:
        """``name`` quoted as this database wants an identifier (``desc`` and ``trigger`` are reserved)."""
        return self.engine.dialect.identifier_preparer.quote_identifier(name)

    def sql(self, statement: str, **params: Any) -> list[tuple]:
        """One plain SQL statement, as an operator would type it."""
        with self.engine.begin() as conn:
            result = conn.execute(text(statement), params)
            return [tuple(r) for r in result] if result.returns_rows else []

    def add(self, key: str, func: str, trigger: str, spec: str, args: str = "", **cols: Any) -> int:
        """INSERT a task row by plain SQL; returns its id."""
        values = dict(task_key=key, desc="contract", execute_func=func, trigger=trigger, spec=spec, args=args)
        values.update(is_valid=1, status="ready", extra="{}")
        values.update(cols)
        names = list(values)
        self.sql(
            f"INSERT INTO task ({', '.join(self.q(n) for n in names)}) VALUES ({', '.join(':' + n for n in names)})",
            **values,
        )
        return int(self.sql("SELECT id FROM task WHERE task_key = :k", k=key)[0][0])

    def set(self, task_id: int, **cols: Any) -> datetime:
        """UPDATE columns of a task by plain SQL; returns the moment it committed."""
        assignments = ", ".join(f"{self.q(c)} = :{c}" for c in cols)
        self.sql(f"UPDATE task SET {assignments} WHERE id = :task_id", task_id=task_id, **cols)
        return utcnow()

    def delete(self, task_id: int) -> datetime:
        self.sql("DELETE FROM task WHERE id = :task_id", task_id=task_id)
        return utcnow()

    def cli_start(self, *args: str) -> subprocess.Popen[str]:
        """Start ``tablebeat <args>`` against this cell, as an operator would run it."""
        env = {**self.cluster.env, "COLUMNS": "250"}
        command = [sys.executable, "-c", "from cli.main import app; app()", *args]
        return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    # --- what happened -----------------------------------------------------------------------

    def runs(self, task_id: int, status: str | None = None) -> list[dict[str, Any]]:
        """Runs of a task in scheduled order, times as aware UTC datetimes."""
        columns = [getattr(ExecuteTask, f) for f in RUN_FIELDS]
        query = select(*columns).where(ExecuteTask.task_id == task_id)
        if status:
            query = query.where(ExecuteTask.status == status)
        with self.engine.connect() as conn:
            rows = conn.execute(query.order_by(ExecuteTask.scheduled_at, ExecuteTask.id)).all()
        return [dict(zip(RUN_FIELDS, row, strict=False)) for row in rows]

    def task(self, task_id: int) -> dict[str, Any] | None:
        """The columns beat writes on a task row (None once it is deleted)."""
        columns = [Task.status, Task.last_status, Task.last_error, Task.next_run_at, Task.last_run_at]
        with self.engine.connect() as conn:
            row = conn.execute(select(*columns).where(Task.id == task_id)).first()
        return dict(row._mapping) if row else None

    def task_status(self, task_id: int) -> str | None:
        with self.engine.connect() as conn:
            return conn.execute(select(Task.status).where(Task.id == task_id)).scalar()

    def wait_past(self, instant: datetime, what: str = "beat to get past the change") -> None:
        """Wait until beat has claimed a clock fire scheduled after ``instant``."""
        wait_for(
            lambda: any(r["scheduled_at"] > instant for r in self.runs(self.clock_id)[-5:]),
            PATIENCE_S,
            what=f"{self.cell.id}: {what}",
        )

    def unfinished(self, task_id: int | None = None) -> list[dict[str, Any]]:
        """Runs (of one task, or all) not in a final status yet."""
        query = select(ExecuteTask.id, ExecuteTask.task_id, ExecuteTask.status, ExecuteTask.scheduled_at)
        query = query.where(ExecuteTask.status.not_in([s.value for s in FINAL_STATUSES]))
        if task_id is not None:
            query = query.where(ExecuteTask.task_id == task_id)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query).all()]


def after(instant: datetime, seconds: float) -> datetime:
    return instant + timedelta(seconds=seconds)

"""SQL of the worker side: moving one run's ``execute_task`` row through its states."""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TypeVar

from sqlalchemy import Engine, func, insert, select, update
from sqlalchemy.exc import DBAPIError, OperationalError

from models import ExecuteTask, RunStatus, Task, TaskStatus, make_engine

logger = logging.getLogger(__name__)
T = TypeVar("T")

#: How long a worker keeps retrying a run-state write through a database outage.
OUTAGE_RETRY_SECONDS = 300.0
RESULT_MAX_CHARS = 1000
ERROR_MAX_CHARS = 20000


class StartDecision(enum.Enum):
    """What the worker should do with a delivered message."""

    RUN = "run"
    DUPLICATE = "duplicate"
    SKIPPED = "skipped"


@dataclass(frozen=True, slots=True)
class StartResult:
    """Outcome of :meth:`RunStore.start_run`."""

    decision: StartDecision
    reason: str = ""


def utcnow() -> datetime:
    """The current instant, UTC-aware."""
    return datetime.now(timezone.utc)


class RunStore:
    """Writes the run rows of one worker process; engine created lazily (after fork)."""

    def __init__(self, url: str | None = None) -> None:
        self._url = url
        self._engine: Engine | None = None
        self._outage_since: float | None = None

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            self._engine = make_engine(self._url)
        return self._engine

    def reset_after_fork(self) -> None:
        """Drop connections inherited from the parent process."""
        if self._engine is not None:
            self._engine.dispose(close=False)

    def _retrying(self, what: str, fn: Callable[[], T]) -> T:
        """Run ``fn`` and retry it through a database outage, logging one line per outage."""
        deadline = time.monotonic() + OUTAGE_RETRY_SECONDS
        delay = 0.2
        while True:
            try:
                result = fn()
            except (OperationalError, DBAPIError) as exc:
                if not _is_transient(exc) or time.monotonic() > deadline:
                    raise
                if self._outage_since is None:
                    self._outage_since = time.monotonic()
                    logger.warning("database unreachable while writing %s; retrying: %s", what, exc.orig)
                time.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            if self._outage_since is not None:
                logger.warning(
                    "database reachable again after %.1fs; %s written", time.monotonic() - self._outage_since, what
                )
                self._outage_since = None
            return result

    def create_manual_run(self, task_key: str, trace_id: str, celery_id: str) -> int:
        """Insert the row of a run nobody scheduled (``.delay()``, Flower); returns its id."""

        def write() -> int:
            with self.engine.begin() as conn:
                task_id = conn.scalar(select(Task.id).where(Task.task_key == task_key)) or 0
                now = utcnow()
                return int(
                    conn.execute(
                        insert(ExecuteTask).values(
                            task_id=task_id,
                            status=RunStatus.PENDING.value,
                            trace_id=trace_id,
                            scheduled_at=now,
                            published_at=now,
                            celery_id=celery_id,
                            extra='{"manual": true}',
                        )
                    ).inserted_primary_key[0]
                )

        return self._retrying("manual run", write)

    def start_run(self, run_id: int, celery_id: str, worker: str, attempt: int) -> StartResult:
        """Claim the run for this delivery: ``pending``/``retrying``/``lost`` -> ``running``.

        A second delivery of the same message finds the row taken and gets DUPLICATE, so
        a message published twice never runs twice.  ``max_instances`` is checked under a
        lock on the task row so two workers cannot both take the last slot.
        """

        def write() -> StartResult:
            with self.engine.begin() as conn:
                row = conn.execute(
                    select(ExecuteTask.task_id, ExecuteTask.status, ExecuteTask.celery_id).where(
                        ExecuteTask.id == run_id
                    )
                ).first()
                if row is None:
                    return StartResult(StartDecision.DUPLICATE, f"run {run_id} does not exist")
                if row.status not in _STARTABLE:
                    return StartResult(StartDecision.DUPLICATE, f"run {run_id} is already {row.status}")
                limit = conn.scalar(
                    select(Task.max_instances).where(Task.id == row.task_id).with_for_update()
                )
                if limit is not None and limit > 0:
                    running = conn.scalar(
                        select(func.count())
                        .select_from(ExecuteTask)
                        .where(ExecuteTask.task_id == row.task_id, ExecuteTask.status == RunStatus.RUNNING.value)
                    )
                    if running >= limit:
                        reason = f"max_instances={limit} reached ({running} running)"
                        conn.execute(
                            update(ExecuteTask)
                            .where(ExecuteTask.id == run_id)
                            .values(status=RunStatus.SKIPPED.value, result=reason, finished_at=utcnow(), worker=worker)
                        )
                        return StartResult(StartDecision.SKIPPED, reason)
                taken = conn.execute(
                    update(ExecuteTask)
                    .where(ExecuteTask.id == run_id, ExecuteTask.status.in_(_STARTABLE))
                    .values(
                        status=RunStatus.RUNNING.value,
                        started_at=utcnow(),
                        worker=worker,
                        celery_id=celery_id,
                        attempt=attempt,
                    )
                ).rowcount
                if not taken:
                    return StartResult(StartDecision.DUPLICATE, f"run {run_id} was taken by another delivery")
                conn.execute(
                    update(Task)
                    .where(Task.id == row.task_id, Task.status == TaskStatus.READY.value)
                    .values(status=TaskStatus.DOING.value, last_status=RunStatus.RUNNING.value, update_at=Task.update_at)
                )
                return StartResult(StartDecision.RUN)

        return self._retrying(f"start of run {run_id}", write)

    def finish_run(self, run_id: int, status: RunStatus, result: str | None = None, error: str | None = None) -> None:
        """Write the final (or ``retrying``) state of a run and the task's ``last_status``."""

        def write() -> None:
            with self.engine.begin() as conn:
                values: dict[str, object] = {"status": status.value}
                if result is not None:
                    values["result"] = result[:RESULT_MAX_CHARS]
                if error is not None:
                    values["error"] = error[-ERROR_MAX_CHARS:]
                if status is not RunStatus.RETRYING:
                    values["finished_at"] = utcnow()
                conn.execute(update(ExecuteTask).where(ExecuteTask.id == run_id).values(**values))
                task_id = select(ExecuteTask.task_id).where(ExecuteTask.id == run_id).scalar_subquery()
                task_values: dict[str, object] = {"last_status": status.value, "update_at": Task.update_at}
                conn.execute(update(Task).where(Task.id == task_id).values(**task_values))
                conn.execute(
                    update(Task)
                    .where(Task.id == task_id, Task.status == TaskStatus.DOING.value)
                    .values(status=TaskStatus.READY.value, update_at=Task.update_at)
                )

        self._retrying(f"{status.value} of run {run_id}", write)


_STARTABLE = (RunStatus.PENDING.value, RunStatus.RETRYING.value, RunStatus.LOST.value)


def _is_transient(exc: DBAPIError) -> bool:
    """Connection-level failures are worth retrying; constraint or SQL errors are not."""
    if exc.connection_invalidated:
        return True
    text = str(exc.orig).lower()
    return any(
        marker in text
        for marker in ("can't connect", "connection refused", "lost connection", "gone away", "database is locked",
                       "server closed", "connection reset", "timed out", "terminating connection", "2013", "2006", "2003")
    )

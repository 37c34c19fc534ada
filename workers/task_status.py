"""Write-behind of ``task.status`` / ``last_status``: informational, so batched off the run path.

The run row (``execute_task``) is written synchronously: it is the record and the
exactly-once guard.  The task row only mirrors "a run is in progress" (``doing``) and the
last outcome; those writes are coalesced per task and flushed by one thread per worker
process every ``FLUSH_EVERY_S``, which keeps two round trips per run off the hot path.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from collections import defaultdict
from typing import Any

from celery import signals
from sqlalchemy import Engine, case, exists, update
from sqlalchemy.exc import SQLAlchemyError

from models import RunStatus, TaskStatus
from models.db_errors import driver_error, is_deadlock
from models.tables import execute_task_table, task_table

logger = logging.getLogger(__name__)

#: Each flush is a transaction, i.e. a log flush (fsync) on the database: at 0.1 s two pool
#: processes added 20 commits a second to the runs' own, a fifth of them on a loaded disk (T6).
FLUSH_EVERY_S = 0.5
#: Attempts of one flush when the database picks it as a deadlock victim.
DEADLOCK_RETRIES = 5
_TASKS = task_table
_RUNS = execute_task_table
_STARTED = "__started__"


class TaskStatusWriter:
    """Coalesces task status events of one process and writes them in bulk from a thread."""

    def __init__(self, engine_source: Any) -> None:
        #: Anything with an ``engine`` attribute (the process's RunStore), read lazily after fork.
        self._engine_source = engine_source
        self._pending: dict[int, str] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._pid: int | None = None
        self._failing = False

    def started(self, task_id: int) -> None:
        """A run of ``task_id`` began: the task shows ``doing``."""
        self._record(task_id, _STARTED)

    def finished(self, task_id: int, status: RunStatus) -> None:
        """A run of ``task_id`` ended with ``status``: the task shows it as ``last_status``."""
        self._record(task_id, status.value)

    def _record(self, task_id: int, event: str) -> None:
        with self._lock:
            self._pending[task_id] = event  # the latest event wins: it is the current state
        self._ensure_thread()

    def _ensure_thread(self) -> None:
        if self._pid != os.getpid():  # first use in this (forked) process
            self._pid = os.getpid()
            threading.Thread(target=self._loop, name="tablebeat-task-status", daemon=True).start()

    def _loop(self) -> None:
        while True:
            self._wake.wait(FLUSH_EVERY_S)
            self._wake.clear()
            self.flush()

    def flush(self) -> None:
        """Write every pending event now (also called at process shutdown)."""
        with self._lock:
            pending, self._pending = self._pending, {}
        if not pending:
            return
        for attempt in range(1, DEADLOCK_RETRIES + 1):
            try:
                self._write(self._engine_source.engine, pending)
            except SQLAlchemyError as exc:
                if is_deadlock(exc) and attempt < DEADLOCK_RETRIES:
                    # Another worker's status write held these rows in the other order; the
                    # database rolled ours back. Nothing was written: write it again.
                    logger.warning(
                        "task status write hit a deadlock; retrying (%d/%d): %s",
                        attempt,
                        DEADLOCK_RETRIES,
                        driver_error(exc),
                    )
                    time.sleep(random.uniform(0.01, 0.05) * attempt)
                    continue
                with self._lock:  # keep them; newer events recorded meanwhile take precedence
                    self._pending = {**pending, **self._pending}
                if not self._failing:
                    if is_deadlock(exc):
                        logger.warning("task status not written yet (deadlock, will retry): %s", driver_error(exc))
                    else:
                        logger.warning("task status not written yet (database unavailable?): %s", exc)
                self._failing = True
                return
            break
        self._failing = False

    @staticmethod
    def _write(engine: Engine, pending: dict[int, str]) -> None:
        by_event: dict[str, list[int]] = defaultdict(list)
        for task_id, event in pending.items():
            by_event[event].append(task_id)
        with engine.begin() as conn:
            for event, ids in by_event.items():
                if event == _STARTED:
                    status = case(
                        (_TASKS.c.status == TaskStatus.READY.value, TaskStatus.DOING.value), else_=_TASKS.c.status
                    )
                    last_status = RunStatus.RUNNING.value
                else:
                    # ``doing`` while any other run of the task is still running (max_instances > 1,
                    # or a fire claimed meanwhile); the last run to finish sees none and says ``ready``.
                    others = exists().where(_RUNS.c.status == RunStatus.RUNNING.value, _RUNS.c.task_id == _TASKS.c.id)
                    status = case(
                        (
                            _TASKS.c.status.in_([TaskStatus.DOING.value, TaskStatus.READY.value]),
                            case((others, TaskStatus.DOING.value), else_=TaskStatus.READY.value),
                        ),
                        else_=_TASKS.c.status,
                    )
                    last_status = event
                conn.execute(
                    update(_TASKS)
                    .where(_TASKS.c.id.in_(sorted(ids)))
                    # update_at kept: these are system writes, not edits (MySQL's ON UPDATE would move it).
                    .values(status=status, last_status=last_status, update_at=_TASKS.c.update_at)
                )


def install_flush_on_shutdown(writer: TaskStatusWriter) -> None:
    """Flush ``writer`` when a pool process or the worker stops."""

    def flush(**_: Any) -> None:
        writer.flush()

    signals.worker_process_shutdown.connect(flush, weak=False)
    signals.worker_shutdown.connect(flush, weak=False)

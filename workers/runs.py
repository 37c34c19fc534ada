"""SQL of the worker side: moving one run's ``execute_task`` row through its states."""

from __future__ import annotations

import enum
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import Boolean, Connection, Engine, Text, bindparam, case, func, insert, select, update
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import IntegrityError

from conf.settings import default
from models import RunStatus, literal_statements, make_engine
from models.db_errors import driver_error, is_database_error, is_deadlock, is_outage
from models.literal_statements import LiteralStatement
from models.raw_statements import RawStatement
from models.tables import execute_task_table, task_table
from models.types import clock_now, utcnow
from models.worker_liveness import dead_before, run_worker_died
from workers import metrics
from workers.held_connection import HeldConnection
from workers.message_match import (
    GUARDS_MANUAL,
    GUARDS_RUN_NOW,
    GUARDS_SCHEDULED,
    JOINED_GUARDS_RUN_NOW,
    JOINED_GUARDS_SCHEDULED,
    Refusal,
    RunMessage,
    guard_params,
    read_facts,
    refusal,
    row_guards,
)
from workers.task_status import TaskStatusWriter, install_flush_on_shutdown

logger = logging.getLogger(__name__)
T = TypeVar("T")

#: How long a worker keeps retrying a run-state write through a database outage.
OUTAGE_RETRY_SECONDS = 300.0
#: How many times one write is run again after the database chose it as a deadlock victim.
DEADLOCK_RETRIES = 10
RESULT_MAX_CHARS = 1000
ERROR_MAX_CHARS = 20000


class StartDecision(enum.Enum):
    """What the worker should do with a delivered message."""

    RUN = "run"
    DUPLICATE = "duplicate"
    #: ``max_instances`` reached: recorded ``skipped``.
    SKIPPED = "skipped"
    #: The task was paused, deleted or edited after the fire was claimed: recorded ``skipped``.
    CANCELLED = "cancelled"
    #: The message does not own the row it names: nothing written.
    FORGED = "forged"


@dataclass(frozen=True, slots=True)
class StartResult:
    """Outcome of :meth:`RunStore.start_run`."""

    decision: StartDecision
    reason: str = ""
    #: The attempt this delivery runs as (previous attempt + 1 for a retry or a redelivery of a lost run).
    attempt: int = 1


class RunStore:
    """Writes the run rows of one worker process; engine created lazily (after fork)."""

    def __init__(self, url: str | None = None, worker_dead_seconds: float = default("worker_dead_seconds")) -> None:
        self._url = url
        #: A ``running`` row whose worker has been silent this long may be taken over by a redelivery.
        self.worker_dead_seconds = worker_dead_seconds
        self._engine: Engine | None = None
        self._autocommit: Engine | None = None
        self._outage_since: float | None = None
        self._hot: _HotStatements | None = None
        #: The connection of the two writes of every run (the autocommit pool's).
        self.held = HeldConnection(lambda: self.autocommit)
        self.task_status = TaskStatusWriter(self)
        install_flush_on_shutdown(self.task_status)

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            # No pre-ping: it would add a round trip to every run; a dead connection raises a
            # disconnect error instead, which _retrying retries on a fresh one.
            self._engine = make_engine(self._url, pool_pre_ping=False)
        return self._engine

    @property
    def autocommit(self) -> Engine:
        """A second pool whose connections commit each statement on their own.

        A pool of its own: switching a pooled connection's mode per use costs round trips.
        """
        if self._autocommit is None:
            self._autocommit = make_engine(
                self._url, pool_pre_ping=False, isolation_level="AUTOCOMMIT", skip_autocommit_rollback=True
            )
        return self._autocommit

    def reset_after_fork(self) -> None:
        """Drop connections inherited from the parent process."""
        self.held.forget_after_fork()
        for engine in (self._engine, self._autocommit):
            if engine is not None:
                engine.dispose(close=False)

    def _retrying(self, what: str, fn: Callable[[], T]) -> T:
        """Run ``fn``; retry it through a database outage (one line per outage) and after a deadlock."""
        deadline = time.monotonic() + OUTAGE_RETRY_SECONDS
        delay = 0.2
        deadlocks = 0
        while True:
            try:
                result = fn()
            except Exception as exc:
                if not is_database_error(exc):
                    raise
                if is_deadlock(exc) and deadlocks < DEADLOCK_RETRIES:
                    # The database rolled the statement back to break a lock cycle: nothing was
                    # written, the connection is fine, and running it again is the remedy.
                    deadlocks += 1
                    logger.warning(
                        "deadlock while writing %s; retrying (%d/%d): %s",
                        what,
                        deadlocks,
                        DEADLOCK_RETRIES,
                        driver_error(exc),
                    )
                    time.sleep(random.uniform(0.01, 0.05) * deadlocks)
                    continue
                # SQLAlchemy leaves a few driver errors unwrapped (setting a connection's
                # isolation/autocommit mode at checkout): a raw pymysql error from a server that
                # just went away is an outage too.
                if not is_outage(exc) or time.monotonic() > deadline:
                    raise
                for engine in (self._engine, self._autocommit):
                    if engine is not None:
                        engine.dispose()  # no dead connection goes back out of the pools
                if self._outage_since is None:
                    self._outage_since = time.monotonic()
                    metrics.outage("database", down=True)
                    logger.warning("database unreachable while writing %s; retrying: %s", what, driver_error(exc))
                time.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            if self._outage_since is not None:
                logger.warning(
                    "database reachable again after %.1fs; %s written", time.monotonic() - self._outage_since, what
                )
                self._outage_since = None
                metrics.outage("database", down=False)
            return result

    def create_manual_run(self, task_key: str, trace_id: str, celery_id: str) -> int:
        """Insert the row of a run nobody scheduled (``.delay()``, Flower); returns its id."""

        def write() -> int:
            with self.engine.begin() as conn:
                task_id = conn.scalar(select(task_table.c.id).where(task_table.c.task_key == task_key)) or 0
                now = utcnow()
                key = conn.execute(
                    insert(execute_task_table).values(
                        task_id=task_id,
                        status=RunStatus.PENDING.value,
                        trace_id=trace_id,
                        scheduled_at=now,
                        published_at=now,
                        celery_id=celery_id,
                        extra='{"manual": true}',
                    )
                ).inserted_primary_key
                assert key is not None  # a single-row INSERT always reports its key
                return int(key[0])

        return self._retrying("manual run", write)

    def start_run(
        self, message: RunMessage, celery_id: str, worker: str, *, max_instances: int | None = None
    ) -> StartResult:
        """Claim the run for this delivery: ``pending``/``retrying``/``lost`` -> ``running``.

        A second delivery of the same message finds the row taken and gets DUPLICATE, so
        a message published twice never runs twice.  A redelivery (``acks_late``) of a run
        whose worker died -- the row is ``lost``, or still ``running`` on a worker whose
        heartbeat is stale or that restarted since -- takes the row over as attempt + 1.
        ``max_instances`` is enforced by the database: a running run holds one of the
        task's slots 1..max_instances, unique per task, so two workers can never both take
        the last one.  With the task id and ``max_instances`` known (beat puts them in the
        message headers) a fresh run starts with a single UPDATE, which also checks that the
        row is the message's and its task still wants it (:mod:`workers.message_match`):
        a message naming another run is FORGED and touches nothing; a fire whose task was
        paused, deleted or edited since its claim is SKIPPED with that reason.
        """
        run_id = message.run_id

        def write() -> StartResult:
            if message.trace_id is None and not message.manual:
                # No trace ID: not a message beat or run-now made. Nothing is read or written.
                return StartResult(StartDecision.FORGED, f"run {run_id}: the message carries no trace ID")
            if message.task_id is not None and max_instances is not None and not message.manual:
                started = self._start_fresh(message, celery_id, worker, max_instances)
                if started is not None:
                    return started
            values = {
                "status": RunStatus.RUNNING.value,
                "started_at": clock_now(),
                "finished_at": None,
                "worker": worker,
                "celery_id": celery_id,
            }
            with self.engine.begin() as conn:
                return self._start_slow(conn, message, values, worker)

        return self._retrying(f"start of run {run_id}", write)

    def _start_fresh(self, message: RunMessage, celery_id: str, worker: str, max_instances: int) -> StartResult | None:
        """The hot path of every fire: one guarded autocommit UPDATE on a raw cursor.

        None when it moved nothing: the row is not a fresh one this message may start (the slow
        path says why) -- or it is, and the task's slots are full (recorded ``skipped`` here).
        """
        statements = self._statements()
        stmt = statements.start_scheduled if message.config_at is not None else statements.start_run_now
        params = {"b_id": message.run_id, "b_worker": worker, "b_celery": celery_id, **guard_params(message)}
        with self.held.connection() as raw:
            outcome = _take_slot(
                max_instances, lambda slot: stmt.execute(raw, {**params, "b_slot": slot}), transaction=None
            )
        if outcome is _Slot.TAKEN:
            assert message.task_id is not None  # the fast path needs it
            self.task_status.started(message.task_id)
            return StartResult(StartDecision.RUN, "", 1)
        if outcome is _Slot.FULL:
            fresh = (execute_task_table.c.status == RunStatus.PENDING.value, execute_task_table.c.attempt == 1)
            with self.autocommit.connect() as conn:
                guard = (*fresh, *row_guards(message))
                return self._skip_full(
                    conn, message.run_id, guard, worker, max_instances, 1, params=guard_params(message)
                )
        return None

    def _statements(self) -> _HotStatements:
        """The hot statements compiled for this process's database (once)."""
        if self._hot is None:
            self._hot = _HotStatements(self.autocommit.dialect)
        return self._hot

    def _start_slow(self, conn: Connection, message: RunMessage, values: dict[str, Any], worker: str) -> StartResult:
        """Start a run that is not a plain fresh one (a retry, a redelivery, headers missing), or say
        why the fresh start's UPDATE moved nothing."""
        run_id = message.run_id
        facts = read_facts(conn, run_id)
        if facts is None:
            return StartResult(StartDecision.DUPLICATE, f"run {run_id} does not exist")
        fresh = facts.status == RunStatus.PENDING.value and facts.attempt == 1
        refused = refusal(message, facts, fresh=fresh)
        if refused is not None:
            kind, reason = refused
            if kind is Refusal.FORGED:
                return StartResult(StartDecision.FORGED, f"run {run_id}: {reason}")
            if fresh:
                return self._skip_changed(conn, message, reason)
        row = conn.execute(
            select(execute_task_table.c.worker, execute_task_table.c.started_at, task_table.c.max_instances)
            .join(task_table, task_table.c.id == execute_task_table.c.task_id, isouter=True)
            .where(execute_task_table.c.id == run_id)
        ).first()
        status = facts.status
        if status == RunStatus.RUNNING.value and row is not None and self._worker_died(conn, run_id):
            status = RunStatus.LOST.value  # taken over below, guarded on the row still being 'running'
        if status not in _STARTABLE:
            return StartResult(StartDecision.DUPLICATE, f"run {run_id} is already {facts.status}")
        previous = facts.attempt
        next_attempt = previous if status == RunStatus.PENDING.value else previous + 1
        unchanged = (execute_task_table.c.status == facts.status, execute_task_table.c.attempt == facts.attempt)
        limit = 1 if row is None or row.max_instances is None else int(row.max_instances)
        # The task-side guards again: an edit committed since the read above still wins.
        guards = row_guards(message) if fresh else GUARDS_MANUAL
        stmt = update(execute_task_table).where(execute_task_table.c.id == run_id, *unchanged, *guards)
        retaken = {**values, "attempt": next_attempt}
        params = guard_params(message)
        outcome = _take_slot(
            limit,
            lambda slot: conn.execute(stmt.values(**retaken, running_slot=slot), params).rowcount,
            transaction=conn,
        )
        if outcome is _Slot.FULL:
            return self._skip_full(conn, run_id, (*unchanged, *guards), worker, limit, next_attempt, params)
        if outcome is _Slot.NOT_MATCHED:
            return StartResult(StartDecision.DUPLICATE, f"run {run_id} was taken by another delivery")
        self.task_status.started(facts.task_id)
        return StartResult(StartDecision.RUN, "", next_attempt)

    @staticmethod
    def _skip_changed(conn: Connection, message: RunMessage, reason: str) -> StartResult:
        """A fresh run whose task was paused, deleted or edited since its claim: ``skipped``, not run."""
        moved = conn.execute(
            update(execute_task_table)
            .where(
                execute_task_table.c.id == message.run_id,
                execute_task_table.c.status == RunStatus.PENDING.value,
                execute_task_table.c.attempt == 1,
                execute_task_table.c.trace_id == message.trace_id,
            )
            .values(status=RunStatus.SKIPPED.value, result=reason, finished_at=clock_now())
        ).rowcount
        if not moved:
            return StartResult(StartDecision.DUPLICATE, f"run {message.run_id} was taken by another delivery")
        return StartResult(StartDecision.CANCELLED, reason)

    @staticmethod
    def _skip_full(
        conn: Connection,
        run_id: int,
        guard: tuple[Any, ...],
        worker: str,
        limit: int,
        attempt: int,
        params: dict[str, Any] | None = None,
    ) -> StartResult:
        reason = f"max_instances={limit} reached ({limit} running)"
        conn.execute(
            update(execute_task_table)
            .where(execute_task_table.c.id == run_id, *guard)
            .values(status=RunStatus.SKIPPED.value, result=reason, finished_at=utcnow(), worker=worker),
            params or {},
        )
        return StartResult(StartDecision.SKIPPED, reason, attempt)

    def _worker_died(self, conn: Connection, run_id: int) -> bool:
        """Whether the worker a ``running`` row names is dead (``models.workers.run_worker_died``)."""
        cutoff = dead_before(utcnow(), self.worker_dead_seconds)
        died = select(execute_task_table.c.id).where(execute_task_table.c.id == run_id, run_worker_died(cutoff))
        return conn.scalar(died) is not None

    def finish_run(
        self,
        run_id: int,
        status: RunStatus,
        result: str | None = None,
        error: str | None = None,
        *,
        attempt: int | None = None,
        worker: str | None = None,
        from_statuses: tuple[str, ...] | None = None,
        trace_id: str | None = None,
        task_id: int | None = None,
    ) -> bool:
        """Write the final (or ``retrying``) state of a run and the task's ``last_status``.

        Guarded: with ``attempt`` (and ``worker``) given, the write lands only while the row is
        still ``running`` that attempt on that worker. A run declared ``lost`` (its worker's
        heartbeat stopped) keeps ``lost``, and a run re-started by a redelivery keeps the new
        attempt's state: the late result of an orphaned pool child is dropped (logged), never
        written over them. ``from_statuses`` restricts the write to rows in those states, ``trace_id``
        to the row of that trace (a message's own run).
        Returns whether the row was written.
        """

        final = status is not RunStatus.RETRYING

        def write() -> bool:
            params = {
                "b_id": run_id,
                "b_status": status.value,
                "b_result": None if result is None else result[:RESULT_MAX_CHARS],
                "b_error": None if error is None else error[-ERROR_MAX_CHARS:],
                "b_final": final,
            }
            # One guarded statement: no transaction needed (autocommit: durable when it returns).
            if attempt is not None and worker and from_statuses is None and trace_id is None:
                # The common case: the prebuilt statement on a raw cursor.
                params.update(b_attempt=attempt, b_worker=worker)
                stmt = self._statements().finish_mine(result is not None, error is not None, final)
                with self.held.connection() as raw:
                    moved = stmt.execute(raw, params)
            else:
                with self.autocommit.connect() as conn:
                    moved = conn.execute(_finish_statement(attempt, worker, from_statuses, trace_id), params).rowcount
            if not moved:
                return False
            if task_id is not None:
                self.task_status.finished(task_id, status)
            else:
                with self.engine.connect() as conn:
                    found = conn.scalar(select(execute_task_table.c.task_id).where(execute_task_table.c.id == run_id))
                if found is not None:
                    self.task_status.finished(int(found), status)
            return True

        written = self._retrying(f"{status.value} of run {run_id}", write)
        if not written:
            logger.warning(
                "run %s: %s not recorded: the row is no longer this attempt's (declared lost or re-run)",
                run_id,
                status.value,
            )
        return written


_STARTABLE = (RunStatus.PENDING.value, RunStatus.RETRYING.value, RunStatus.LOST.value)


_RUNS = execute_task_table

#: A fresh run (pending, first attempt) -> running in one slot: the hot path of every fire.
_START_FRESH = (
    update(_RUNS)
    .where(_RUNS.c.id == bindparam("b_id"), _RUNS.c.status == RunStatus.PENDING.value, _RUNS.c.attempt == 1)
    .values(
        status=RunStatus.RUNNING.value,
        started_at=clock_now(),
        finished_at=None,
        worker=bindparam("b_worker"),
        celery_id=bindparam("b_celery"),
        running_slot=bindparam("b_slot"),
    )
)

#: The fresh start of a run-now message: the row must be the message's (trace, task, job).
_START_FRESH_RUN_NOW = _START_FRESH.where(*GUARDS_RUN_NOW)
#: The fresh start of a fire beat scheduled: also, the task is unchanged since the claim.
_START_FRESH_SCHEDULED = _START_FRESH.where(*GUARDS_SCHEDULED)
#: The same two with the task's conditions as a join (``UPDATE execute_task, task ... WHERE``), for
#: MariaDB/MySQL: the same rows match, and the server spends ~0.05 ms less CPU on each than on the
#: correlated EXISTS (T6).
_START_FRESH_RUN_NOW_JOINED = _START_FRESH.where(*JOINED_GUARDS_RUN_NOW)
_START_FRESH_SCHEDULED_JOINED = _START_FRESH.where(*JOINED_GUARDS_SCHEDULED)

#: A run's outcome; result/error/finished_at keep their value when not given (NULL).
_FINISH_VALUES: dict[str, Any] = {
    "status": bindparam("b_status"),
    "result": func.coalesce(bindparam("b_result", type_=Text()), _RUNS.c.result),
    "error": func.coalesce(bindparam("b_error", type_=Text()), _RUNS.c.error),
    # The database clock (not the worker's): a run that takes the slot this frees starts later.
    "finished_at": case((bindparam("b_final", type_=Boolean()), clock_now()), else_=_RUNS.c.finished_at),
    "running_slot": None,
}

#: This attempt's running row.
_MINE_RUNNING = (
    _RUNS.c.id == bindparam("b_id"),
    _RUNS.c.status == RunStatus.RUNNING.value,
    _RUNS.c.attempt == bindparam("b_attempt"),
    _RUNS.c.worker == bindparam("b_worker"),
)


def _finish_mine(result: bool, error: bool, final: bool) -> Any:
    """This attempt's running row -> its outcome, for one shape of outcome: the row gets what
    :data:`_FINISH_VALUES` would give it, and the columns that would keep their value (its COALESCE
    and CASE) are left out of the statement, so the server evaluates less."""
    values: dict[str, Any] = {"status": bindparam("b_status"), "running_slot": None}
    if result:
        values["result"] = bindparam("b_result", type_=Text())
    if error:
        values["error"] = bindparam("b_error", type_=Text())
    if final:
        values["finished_at"] = clock_now()
    return update(_RUNS).where(*_MINE_RUNNING).values(values)


class _HotStatements:
    """The fresh starts and this attempt's finish, compiled for one database (once per process).

    On PyMySQL they are literal SQL (:mod:`models.literal_statements`) and the starts join the task.
    """

    def __init__(self, dialect: Dialect) -> None:
        self._dialect = dialect
        literal = literal_statements.applies(dialect)
        self._kind: type[RawStatement] = LiteralStatement if literal else RawStatement
        joined = dialect.name in ("mysql", "mariadb")
        self.start_scheduled = self._kind(_START_FRESH_SCHEDULED_JOINED if joined else _START_FRESH_SCHEDULED, dialect)
        self.start_run_now = self._kind(_START_FRESH_RUN_NOW_JOINED if joined else _START_FRESH_RUN_NOW, dialect)
        self._finishes: dict[tuple[bool, bool, bool], RawStatement] = {}

    def finish_mine(self, result: bool, error: bool, final: bool) -> RawStatement:
        """This attempt's finish writing a result (``result``), an error, and ``finished_at`` (``final``)."""
        key = (result, error, final)
        stmt = self._finishes.get(key)
        if stmt is None:
            stmt = self._finishes[key] = self._kind(_finish_mine(*key), self._dialect)
        return stmt


def _finish_statement(
    attempt: int | None, worker: str | None, from_statuses: tuple[str, ...] | None, trace_id: str | None = None
) -> Any:
    """The finish UPDATE with only the guards a caller asked for (rare paths: expiry, revocation)."""
    guards = [_RUNS.c.id == bindparam("b_id")]
    if attempt is not None:
        guards += [_RUNS.c.status == RunStatus.RUNNING.value, _RUNS.c.attempt == attempt]
        if worker:
            guards.append(_RUNS.c.worker == worker)
    if from_statuses is not None:
        guards.append(_RUNS.c.status.in_(from_statuses))
    if trace_id is not None:
        guards.append(_RUNS.c.trace_id == trace_id)
    return update(_RUNS).where(*guards).values(_FINISH_VALUES)


class _Slot(enum.Enum):
    TAKEN = "taken"
    FULL = "full"
    NOT_MATCHED = "not matched"


def _take_slot(limit: int, update_with_slot: Callable[[int | None], int], *, transaction: Connection | None) -> _Slot:
    """Move a run to ``running`` holding the first free slot 1..limit of its task.

    ``update_with_slot(slot)`` runs the caller's guarded UPDATE and returns its rowcount.
    The unique ``(task_id, running_slot)`` index turns "is a slot free?" into "did the
    UPDATE violate it?", so concurrent workers cannot over-commit.  ``limit`` 0 = no limit.
    ``transaction`` is the connection when the UPDATE runs inside a transaction, None in
    autocommit (the caller knows: the driver cannot be asked -- PostgreSQL reports ``READ
    COMMITTED`` on an autocommit connection).
    """
    if limit <= 0:
        return _Slot.TAKEN if update_with_slot(None) else _Slot.NOT_MATCHED
    # PostgreSQL aborts the whole transaction on a violation; a savepoint confines it. In
    # autocommit each statement is its own transaction and a SAVEPOINT is an error there.
    savepoints = transaction if transaction is not None and transaction.dialect.name == "postgresql" else None
    for slot in range(1, limit + 1):
        try:
            if savepoints is not None:
                with savepoints.begin_nested():
                    moved = update_with_slot(slot)
            else:
                moved = update_with_slot(slot)
        except IntegrityError:
            continue
        return _Slot.TAKEN if moved else _Slot.NOT_MATCHED
    return _Slot.FULL

"""``SqlScheduler``: the Celery beat scheduler that reads the ``task`` table.

Each tick runs four named steps: sync changes, claim due fires (in bulk, ahead of their
instant), publish the claimed fires whose instant has come, and housekeeping.
"""

from __future__ import annotations

import heapq
import logging
import os
import socket
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from celery import beat
from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from alerts.webhook import alert_run
from models import RunStatus, TaskStatus, make_engine
from models.db_errors import driver_error, is_deadlock
from protocol.message import job_names
from protocol.trace import new_celery_id, new_trace_id
from scheduler import metrics, store
from scheduler.dispatch import BrokerUnavailable, Dispatch, PreparedMessage, Publisher
from scheduler.entries import TableEntry, TableSchedule
from scheduler.errors import RowError
from scheduler.planning import PlannedFire, plan_due
from scheduler.rows import ScheduledJob, compile_row, registered_set
from scheduler.schedule_index import ScheduleIndex
from scheduler.settings import SchedulerSettings
from telemetry import otel

logger = logging.getLogger("tablebeat.beat")

#: Housekeeping that need not run every refresh.
PRUNE_EVERY_S = 600.0
CHANGE_LOG_KEEP = timedelta(hours=1)
ROW_STATE_WRITES_PER_TICK = 10000
#: The safety net's COUNT(*) (it notices deletes the change log missed) runs this often.
COUNT_EVERY_S = 60.0
#: No new claim starts this close before claimed fires are due (a claim of 2,000 fires takes
#: ~0.25 s and would delay their publish) unless unclaimed fires are due within CLAIM_URGENT_S.
CLAIM_QUIET_S = 0.3
CLAIM_URGENT_S = 1.0
#: Bursts larger than this log one summary line instead of a line per fire.
LOG_EACH_FIRE_UP_TO = 20


def utcnow() -> datetime:
    """The current instant, UTC-aware."""
    return datetime.now(UTC)


class SqlScheduler(beat.Scheduler):  # type: ignore[misc]
    """Celery beat scheduler whose schedule is the ``task`` table.

    Every beat process may run at once: a fire is claimed by inserting its unique
    ``execute_task`` row, so each fire is dispatched once whatever the number of beats.
    """

    Entry = TableEntry

    def __init__(self, app: Any, *args: Any, registered: frozenset[str] | None = None, **kwargs: Any) -> None:
        # Celery's __init__ calls setup_schedule(); everything it needs must exist first.
        #: Job names rows may use; by default the jobs registered on ``app`` (loaded at process start).
        self._registered = registered
        self.settings = SchedulerSettings.from_conf(app.conf)
        self.token = f"{socket.gethostname()[:30]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.index = ScheduleIndex(frozenset(), self.settings.default_timezone, self.settings.misfire_grace_seconds)
        self._ready: list[tuple[float, int, PreparedMessage]] = []
        self._ready_claimed_at = 0.0
        #: run id -> monotonic time of its claim, for the ready (claimed, unpublished) fires.
        self._claimed_m: dict[int, float] = {}
        self._change_cursor = store.ChangeCursor()
        self._next_full_reload = 0.0
        self._fingerprint: tuple[Any, ...] | None = None
        self._next_count = 0.0
        self._next_poll = 0.0
        self._next_refresh = 0.0
        self._next_prune = 0.0
        self._next_housekeep = 0.0
        self._next_broker_probe = 0.0
        self._db_down_since: float | None = None
        self._broker_down_since: float | None = None
        #: No lost-run detection before this (monotonic): after a database outage workers need time to stamp again.
        self._lost_check_after = 0.0
        #: Set when the broker comes back: pending runs published before it may have lost their message.
        self._requeue_published_before: datetime | None = None
        self._engine: Any = None
        self.publisher = Publisher(app, self.settings.publish_batch_size)
        kwargs.pop("schedule_filename", None)
        super().__init__(app, *args, **kwargs)

    # --- celery.beat.Scheduler API ---------------------------------------------------

    def setup_schedule(self) -> None:
        metrics.start(self.app.conf)
        otel.start(self.app.conf, "tablebeat-beat")
        self._engine = make_engine(self.settings.database_url or None)
        names = self._registered if self._registered is not None else job_names(self.app.tasks)
        self.index.registered = registered_set(names)
        started = time.monotonic()
        self._full_sync()
        self._next_refresh = time.monotonic() + self.settings.refresh_seconds
        logger.info(
            "tablebeat: %d tasks scheduled, %d parked (error or completed), loaded in %.2fs (beat %s)",
            len(self.index.jobs),
            len(self.index.parked),
            time.monotonic() - started,
            self.token,
        )

    def tick(self, *args: Any, **kwargs: Any) -> float:
        """One pass of the loop; returns seconds to sleep before the next."""
        now_m = time.monotonic()
        metrics.tick()
        # Fires due now go out before anything else: claiming the next seconds' fires or
        # syncing edits must not make them late.
        self._publish_ready()
        self._sync_changes(now_m)
        self._claim_due()
        self._publish_ready()
        self._housekeep(now_m)
        return self._sleep_seconds()

    @property
    def schedule(self) -> dict[str, TableEntry]:
        """A ``ScheduleEntry`` per scheduled task, built on request (not used to dispatch)."""
        return {
            job.task_key: TableEntry(
                name=job.task_key,
                task=job.job_name,
                schedule=TableSchedule(job.trigger, app=self.app),
                args=(job.task_key, *job.args),
                kwargs=dict(job.kwargs),
                options={"queue": job.queue} if job.queue else {},
                last_run_at=job.last_run_at,
                app=self.app,
                task_id=job.task_id,
            )
            for job in self.index.jobs.values()
        }

    def should_sync(self) -> bool:
        # Fires are persisted when claimed; there is nothing to flush periodically.
        return False

    def sync(self) -> None:
        self._flush_row_states(limit=None)

    def close(self) -> None:
        try:
            self.sync()
        except SQLAlchemyError as exc:
            logger.warning("tablebeat: could not write row states on close: %s", exc)
        if self._engine is not None:
            self._engine.dispose()

    @property
    def info(self) -> str:
        return (
            f"tablebeat {self.settings.database_url or 'default database'} (refresh {self.settings.refresh_seconds}s)"
        )

    # --- sync -----------------------------------------------------------------------

    def _sync_changes(self, now_m: float) -> None:
        if now_m < self._next_poll:
            return
        self._next_poll = now_m + self.settings.poll_seconds
        full = now_m >= self._next_refresh
        began = time.perf_counter()
        try:
            with self._engine.begin() as conn:
                changed = store.read_changes(conn, self._change_cursor, now_m)
                if changed:
                    self.index.apply_changed(conn, changed)
                    metrics.edits_applied(self._change_cursor.changed_at)
                    metrics.scheduled_tasks(len(self.index.jobs))
                    # The change log explains this movement of the fingerprint: no full reload for it.
                    self._fingerprint = store.fingerprint(conn)
                if full:
                    self._next_refresh = now_m + self.settings.refresh_seconds
                    counted = now_m >= self._next_count
                    current = store.fingerprint(conn, with_count=counted)
                    known = self._fingerprint or (None,)
                    moved = current != known if counted else current[1:] != known[1:]
                    if counted:
                        self._next_count = now_m + COUNT_EVERY_S
                    if moved or now_m >= self._next_full_reload:
                        if moved:
                            logger.info("tablebeat: table fingerprint moved; reloading every row")
                        self._full_sync_in(conn)
            self._db_recovered()
            metrics.synced("full" if full else "poll", time.perf_counter() - began)
        except SQLAlchemyError as exc:
            self._db_failed("syncing the task table", exc)

    def _full_sync(self) -> None:
        with self._engine.begin() as conn:
            self._full_sync_in(conn)

    def _full_sync_in(self, conn: Connection) -> None:
        self._change_cursor = store.ChangeCursor(store.change_cursor(conn))
        self._next_full_reload = time.monotonic() + self.settings.full_reload_seconds
        self.index.load_all(conn, utcnow())
        metrics.scheduled_tasks(len(self.index.jobs))
        store.mark_disabled_paused(conn)
        self._fingerprint = store.fingerprint(conn)

    # --- claim ------------------------------------------------------------------------

    def _claim_due(self) -> None:
        if self._broker_down_since is not None and not self._broker_back():
            return  # leave fires overdue; they are coalesced once the broker is back
        now_ts = time.time()
        first = self.index.timeline.first_second()
        if (
            self._ready
            and self._ready[0][0] - now_ts < CLAIM_QUIET_S
            and (first is None or first - now_ts > CLAIM_URGENT_S)
        ):
            return  # claimed fires are about to be due: publish them first, claim right after
        horizon = now_ts + self.settings.lookahead_seconds
        due = self.index.pop_due(horizon)
        if not due:
            return
        now = utcnow()
        planned: list[tuple[ScheduledJob, list[PlannedFire], datetime | None]] = []
        claims: list[store.FireClaim] = []
        for job in due:
            fires, nxt = plan_due(job, now)
            planned.append((job, fires, nxt))
            status = TaskStatus.READY.value if nxt is not None else TaskStatus.COMPLETED.value
            for fire in fires:
                claims.append(
                    store.FireClaim(
                        task_id=job.task_id,
                        scheduled_at=fire.scheduled_at,
                        trace_id=new_trace_id(),
                        celery_id=new_celery_id(),
                        next_run_at=nxt,
                        task_status=status,
                        skip_reason=fire.skip_reason,
                        # A job ending on a skipped fire (a date job missed) never runs: the row says why.
                        task_error=f"not run: {fire.skip_reason}" if fire.skip_reason and nxt is None else None,
                    )
                )
        try:
            with self._engine.begin() as conn:
                won = store.claim_fires(conn, claims, self.token, now)
            self._db_recovered()
        except SQLAlchemyError as exc:
            self._db_failed("claiming due fires", exc)
            for job in due:  # retry on a later tick; the misfire policy decides then
                self.index.schedule_next(job, job.next_at)
            return
        self._accept_claims(planned, claims, won)

    def _accept_claims(
        self,
        planned: list[tuple[ScheduledJob, list[PlannedFire], datetime | None]],
        claims: list[store.FireClaim],
        won: dict[str, int],
    ) -> None:
        by_key = {(c.task_id, c.scheduled_at): c for c in claims}
        for job, fires, nxt in planned:
            # The claim wrote status/next_run_at (ours or another beat's); an older pending write would undo it.
            self.index.row_states.pop(job.task_id, None)
            self.index.next_runs.discard(job.task_id)
            for fire in fires:
                claim = by_key[(job.task_id, fire.scheduled_at)]
                run_id = won.get(claim.trace_id)
                job.last_run_at = max(job.last_run_at or fire.scheduled_at, fire.scheduled_at)
                if run_id is None or fire.skip_reason:
                    if fire.skip_reason and run_id is not None:
                        logger.warning("tablebeat: task %r: %s", job.task_key, fire.skip_reason)
                        metrics.fire_skipped(fire.skip_reason)
                    elif run_id is None:
                        metrics.claims_rejected(1)
                    continue
                metrics.fire_claimed(job.job_name, job.task_key)
                dispatch = Dispatch.for_job(
                    job, run_id, claim.trace_id, claim.celery_id, fire.scheduled_at, scheduled=True
                )
                prepared = self.publisher.prepare(dispatch)  # message built ahead of the instant
                heapq.heappush(self._ready, (fire.scheduled_at.timestamp(), run_id, prepared))
                self._claimed_m[run_id] = time.monotonic()
            if nxt is None:
                self.index.drop(job.task_id)
            else:
                self.index.schedule_next(job, nxt)
        self._ready_claimed_at = time.monotonic()

    # --- publish ------------------------------------------------------------------------

    def _publish_ready(self) -> None:
        if not self._ready:
            return
        now_ts = time.time()
        batch: list[PreparedMessage] = []
        while self._ready and self._ready[0][0] <= now_ts:
            batch.append(heapq.heappop(self._ready)[2])
        if not batch:
            return
        # Per claim, not per tick: after a stall the fresh claims of the first tick back must
        # not hide the old ones, which another beat's outbox sweep may have taken over meanwhile.
        now_m = time.monotonic()
        claimed_m = [self._claimed_m.pop(item.dispatch.run_id, now_m) for item in batch]
        if any(now_m - at > self.settings.stale_claim_seconds for at in claimed_m):
            batch = self._drop_stolen(batch)
        try:
            sent = self.publisher.publish(batch)
        except BrokerUnavailable as exc:
            self._broker_failed(exc)
            return  # the claims stay unpublished; the outbox sweep republishes them
        metrics.fires_published(p.dispatch for p in batch)
        otel.fires_published(p.dispatch for p in batch)
        if len(batch) <= LOG_EACH_FIRE_UP_TO:
            for prepared in batch:
                item = prepared.dispatch
                logger.info(
                    "tablebeat: fired %s run=%s scheduled_at=%s [task_key=%s trace_id=%s]",
                    item.job_name,
                    item.run_id,
                    item.scheduled_at.isoformat(),
                    item.task_key,
                    item.trace_id,
                    extra={"task_key": item.task_key, "trace_id": item.trace_id, "run_id": item.run_id},
                )
        else:
            logger.info("tablebeat: fired %d runs in one batch", len(batch))
        self._write_published(sent)

    def _drop_stolen(self, batch: list[PreparedMessage]) -> list[PreparedMessage]:
        """After a stall, publish only claims no other beat has republished meanwhile."""
        try:
            with self._engine.begin() as conn:
                held = store.still_claimed(conn, [p.dispatch.run_id for p in batch], self.token)
        except SQLAlchemyError as exc:
            self._db_failed("re-checking claims after a stall", exc)
            return []
        if len(held) < len(batch):
            logger.warning(
                "tablebeat: %d claims were taken over by another beat during a stall", len(batch) - len(held)
            )
        return [p for p in batch if p.dispatch.run_id in held]

    def _write_published(self, run_ids: list[int]) -> None:
        try:
            with self._engine.begin() as conn:
                store.mark_published(conn, run_ids, utcnow())
        except SQLAlchemyError as exc:
            # Worst case the sweep republishes; the worker's pending->running guard drops the copy.
            self._db_failed("marking runs published", exc)

    # --- housekeeping ---------------------------------------------------------------------

    def _housekeep(self, now_m: float) -> None:
        self._flush_row_states(limit=ROW_STATE_WRITES_PER_TICK)
        if now_m < self._next_housekeep or self._db_down_since is not None:
            return
        self._next_housekeep = now_m + self.settings.refresh_seconds
        try:
            self._republish_unpublished()
            with self._engine.begin() as conn:
                now = utcnow()
                lost = []
                if now_m >= self._lost_check_after:
                    lost = store.mark_lost_runs(
                        conn, store.heartbeat_cutoff(now, self.settings.worker_dead_seconds), now
                    )
                    store.release_idle_doing(conn)
                if now_m >= self._next_prune:
                    self._next_prune = now_m + PRUNE_EVERY_S
                    store.prune_changes(conn, now - CHANGE_LOG_KEEP)
            metrics.runs_lost(len(lost))
            for run in lost:
                logger.error(
                    "tablebeat: run %s lost (worker %s stopped) [task_id=%s trace_id=%s]",
                    run.id,
                    run.worker,
                    run.task_id,
                    run.trace_id,
                    extra={"trace_id": run.trace_id, "run_id": run.id},
                )
                alert_run(run.id, RunStatus.LOST)  # issue 3 item 5: queued, sent by a background thread
        except SQLAlchemyError as exc:
            self._db_failed("housekeeping", exc)

    def _republish_unpublished(self) -> None:
        if self._broker_down_since is not None:
            return  # nothing can be published; the sweep runs again once the broker is back
        now = utcnow()
        if self._requeue_published_before is not None:
            # A broker restart may have dropped queued messages: publish them again. A copy of a
            # message that did survive is harmless: the worker's pending->running guard drops it.
            with self._engine.begin() as conn:
                count = store.unpublish_pending(conn, self._requeue_published_before)
            self._requeue_published_before = None
            if count:
                logger.warning(
                    "tablebeat: %d pending runs published before the broker outage will be republished", count
                )
        with self._engine.begin() as conn:
            runs = store.take_unpublished(
                conn, now - timedelta(seconds=self.settings.stale_claim_seconds), self.token, now
            )
        if not runs:
            return
        dispatches: list[Dispatch] = []
        # A date job that fired is no longer scheduled, but its claimed fire must still go out.
        unscheduled = self._compile_for_outbox({run.task_id for run in runs if run.task_id not in self.index.jobs})
        orphaned: list[int] = []
        for run in runs:
            job = self.index.jobs.get(run.task_id) or unscheduled.get(run.task_id)
            if job is None:
                orphaned.append(run.run_id)
                continue
            dispatches.append(
                Dispatch.for_job(job, run.run_id, run.trace_id, run.celery_id, run.scheduled_at, scheduled=True)
            )
        if orphaned:  # paused, deleted or invalid since the claim: recorded, never left pending
            reason = "not published: the task was paused, deleted or made invalid"
            with self._engine.begin() as conn:
                store.skip_unpublished(conn, orphaned, reason, now)
            metrics.fire_skipped(reason, len(orphaned))
        if not dispatches:
            return
        logger.warning("tablebeat: republishing %d claimed runs that never reached the broker", len(dispatches))
        try:
            sent = self.publisher.publish(dispatches)
        except BrokerUnavailable as exc:
            self._broker_failed(exc)
            return
        metrics.fires_republished(len(sent))
        otel.fires_published(dispatches)
        self._write_published(sent)

    def _compile_for_outbox(self, task_ids: set[int]) -> dict[int, ScheduledJob]:
        """Enabled, valid rows this beat does not schedule (a fired date job), compiled to publish a claim."""
        if not task_ids:
            return {}
        with self._engine.begin() as conn:
            rows = store.load_rows(conn, task_ids)
        jobs: dict[int, ScheduledJob] = {}
        for row in rows:
            if row.is_valid != 1:
                continue
            try:
                jobs[int(row.id)] = compile_row(
                    row,
                    registered=self.index.registered,
                    default_timezone=self.settings.default_timezone,
                    default_grace_seconds=self.settings.misfire_grace_seconds,
                )
            except RowError:
                continue
        return jobs

    def _flush_row_states(self, limit: int | None) -> None:
        if not self.index.row_states and not self.index.next_runs:
            return
        items = list(self.index.row_states.values())
        next_ids = list(self.index.next_runs)
        if limit is not None:
            items = items[:limit]
            next_ids = next_ids[: max(limit - len(items), 0)]
        next_runs = [(tid, job.next_at) for tid in next_ids if (job := self.index.jobs.get(tid)) is not None]
        try:
            with self._engine.begin() as conn:
                store.write_row_states(conn, items)
                store.write_next_run_at(conn, next_runs)
        except SQLAlchemyError as exc:
            self._db_failed("writing row states", exc)
            return
        for item in items:
            self.index.row_states.pop(item.task_id, None)
        self.index.next_runs.difference_update(next_ids)

    def _sleep_seconds(self) -> float:
        now_ts = time.time()
        # Wake for the next change-log poll on its own cadence: a tick woken early by a fire must
        # not push the poll a whole poll_seconds further out (edits would then take up to 2x).
        wake = now_ts + max(self._next_poll - time.monotonic(), 0.0)
        if self._ready:
            wake = min(wake, self._ready[0][0])
        first = self.index.timeline.first_second()
        if first is not None:
            wake = min(wake, first - self.settings.lookahead_seconds)
        if self.index.row_states or self.index.next_runs:
            wake = now_ts
        return max(wake - now_ts, 0.001)

    # --- outages ----------------------------------------------------------------------------

    def _db_failed(self, doing: str, exc: SQLAlchemyError) -> None:
        if not isinstance(exc, (DBAPIError, PoolTimeoutError)):
            # Not an outage but a statement tablebeat got wrong: say so, with the traceback.
            logger.critical("tablebeat: internal error while %s", doing, exc_info=exc)
            return
        if is_deadlock(exc):
            # Not an outage: the database rolled this transaction back; the next tick does it again.
            logger.warning("tablebeat: deadlock while %s; retried on the next tick: %s", doing, driver_error(exc))
            return
        if self._db_down_since is None:
            self._db_down_since = time.monotonic()
            metrics.outage("database", down=True)
            reason = exc.orig if isinstance(exc, DBAPIError) else exc
            logger.error("tablebeat: database unavailable while %s: %s; retrying quietly", doing, reason)

    def _db_recovered(self) -> None:
        if self._db_down_since is not None:
            logger.warning("tablebeat: database back after %.1fs", time.monotonic() - self._db_down_since)
            self._db_down_since = None
            metrics.outage("database", down=False)
            # Workers could not stamp their heartbeats either: do not call their runs lost for that.
            self._lost_check_after = time.monotonic() + self.settings.worker_dead_seconds

    def _broker_failed(self, exc: Exception) -> None:
        if self._broker_down_since is None:
            self._broker_down_since = time.monotonic()
            metrics.outage("broker", down=True)
            logger.error("tablebeat: broker unavailable: %s; fires wait and follow the misfire policy", exc)
        self._next_broker_probe = time.monotonic() + 1.0

    def _broker_back(self) -> bool:
        if time.monotonic() < self._next_broker_probe:
            return False
        try:
            with self.app.connection_for_write() as conn:
                conn.ensure_connection(max_retries=1)
        except Exception:  # any failure means still down; probe again shortly
            self._next_broker_probe = time.monotonic() + 1.0
            return False
        logger.warning("tablebeat: broker back after %.1fs", time.monotonic() - (self._broker_down_since or 0.0))
        self._broker_down_since = None
        metrics.outage("broker", down=False)
        self._requeue_published_before = utcnow()
        self._next_housekeep = 0.0  # republish now, not at the next refresh
        return True

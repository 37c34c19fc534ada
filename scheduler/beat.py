"""``SqlScheduler``: the Celery beat scheduler whose timeline is the ``task`` table.

Beat keeps no copy of the schedule: each row's ``next_run_at`` is its place on the
timeline, and what is due is an index range scan.  Each tick runs four named steps: settle
the rows the change log names, claim the rows due within the lookahead (locked, so several
beats divide them), publish the claimed fires whose instant has come, and housekeeping.
"""

from __future__ import annotations

import heapq
import logging
import math
import os
import socket
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from celery import beat
from sqlalchemy import Engine, event, select
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from alerts import webhook
from alerts.webhook import alert_run
from conf.celery import settings_of
from conf.settings import Settings
from models import RunStatus, TaskStatus, make_engine
from models.db_errors import driver_error, is_deadlock
from models.tables import task_table
from models.types import utcnow
from protocol.message import job_names
from protocol.trace import new_celery_id, new_trace_id, trace_suffix
from scheduler import claim_review, gc_freeze, metrics, store, sweeps, tick_log, timeline
from scheduler.claim_ahead import ClaimAhead, ClaimedBatch, Planned
from scheduler.dispatch import BrokerUnavailable, Dispatch, PreparedMessage, Publisher
from scheduler.entries import TableEntry, TableSchedule
from scheduler.errors import RowError
from scheduler.idle_poll import IdlePoll
from scheduler.liveness import Heartbeat
from scheduler.planning import first_pending_instant, plan_due
from scheduler.rows import ScheduledJob, registered_set
from scheduler.settle import Settler
from scheduler.stop_guard import StopGuard
from telemetry import otel

logger = logging.getLogger("tablebeat.beat")

#: Housekeeping that need not run every refresh; the first prune waits PRUNE_FIRST_S after the start
#: (its two DELETE commits made the first tick 47 ms longer, and a beat restarted in a loop pruned each time).
PRUNE_EVERY_S = 600.0
PRUNE_FIRST_S = 60.0
CHANGE_LOG_KEEP = timedelta(hours=1)
#: Rows of beats silent this long are removed (a live beat stamps every IDLE_STAMP_S at least; one
#: holding claims is taken over within seconds).
BEAT_NODE_KEEP = timedelta(minutes=10)
#: Change-log rows applied per poll (a bulk import of 1,000,000 rows is settled a slice per tick).
CHANGES_PER_POLL = 5000
#: A claim batch must end this long before the first claimed fire is due (it would delay the publish):
#: batches are sized to half the time left at the measured claim rate (a loaded machine's rate
#: varies), and none starts below CLAIM_MIN_ROWS.
PUBLISH_MARGIN_S = 0.05
CLAIM_MIN_ROWS = 50
#: Housekeeping waits while claimed fires are due within this (at most one refresh period late).
HOUSEKEEP_QUIET_S = 1.0
#: More claimed fires than this are held out of the garbage collector's full passes (gc.freeze):
#: a full pass over 40,000 prepared messages took 0.9 s on the loaded machine, and one at an instant
#: made its first message late. Held messages are freed by reference counting once published.
GC_FREEZE_ABOVE = 5000
#: While more than that stay held, cyclic garbage frozen with them is collected at least this often.
GC_COLLECT_EVERY_S = 60.0
#: Due fires: the first step of this many is checked and published before the rest (a 100,000-fire
#: burst checked as one batch sent its first message 1.2 s after the instant, a first step of 2,000
#: 53-68 ms after, one of 500 32 ms; steps of 2,000 all the way took 8.3 s instead of 5.9 s for all).
PUBLISH_STEP = 500
#: One tick claims batches for at most this long before publishing what has come due.
CLAIM_BUDGET_S = 0.25
#: A beat that finds every due row locked by another waits this long before looking again, doubling
#: while it keeps finding them locked, up to :data:`LOCKED_WAIT_MAX_S`.  Each look walks the locked
#: index entries (``SKIP LOCKED`` still visits them): three beats looking every 20 ms while one
#: claimed a 1,000-row second cost the database 1.8x one beat's CPU per fire.
LOCKED_WAIT_S = 0.02
LOCKED_WAIT_MAX_S = 0.32
#: A claim batch is sized to last about this long at the measured rate, and has at least
#: CLAIM_FLOOR_ROWS rows (fewer only right before an instant): its rows stay locked, and the server
#: ends a transaction idle for beat_dead_seconds (a loaded machine plans slowly). The rate is measured
#: on batches of CLAIM_FLOOR_ROWS or more only: each batch has a fixed cost, and sizing by the rate of
#: small batches shrank them further (T5 went down to 141-row batches).
CLAIM_BATCH_S = 1.0
CLAIM_FLOOR_ROWS = 500
#: Claim rate assumed before one is measured (rows/s), the longest lead, and the most rows counted for it.
INITIAL_CLAIM_RATE = 2000.0
MAX_LEAD_S = 60.0
MAX_EARLY_ROWS = 200_000
#: Bursts larger than this log one summary line instead of a line per fire.
LOG_EACH_FIRE_UP_TO = 20
#: Why a claimed fire that never reached the broker is recorded skipped instead of published late.
ORPHANED_CLAIM = "not published: the task was paused, deleted or made invalid"
MISSED_CLAIM = "misfire: not published before its misfire_grace_seconds ran out (the beat that claimed it stopped)"
#: ``scheduler.schedule`` (Celery's view, not used to dispatch) lists this many next fires.
SCHEDULE_VIEW_ROWS = 1000


def _ts(value: datetime | None) -> float | None:
    return None if value is None else value.timestamp()


class SqlScheduler(beat.Scheduler):  # type: ignore[misc]
    """Celery beat scheduler whose timeline is the ``task`` table.

    Every beat process may run at once: due rows are locked as they are claimed (others skip
    them), and a fire is claimed by inserting its unique ``execute_task`` row, so each fire is
    dispatched once whatever the number of beats.
    """

    Entry = TableEntry

    def __init__(
        self,
        app: Any,
        *args: Any,
        settings: Settings | None = None,
        registered: frozenset[str] | None = None,
        **kwargs: Any,
    ) -> None:
        # Celery's __init__ calls setup_schedule(); everything it needs must exist first.
        #: Job names rows may use; by default the jobs registered on ``app`` (loaded at process start).
        self._registered = registered
        #: The process's settings; by default those ``app`` was configured with (``celeryconfig``).
        self.settings = settings or settings_of(app.conf)
        webhook.configure(self.settings)
        self.token = f"{socket.gethostname()[:30]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.settler = Settler(frozenset(), self.settings.default_timezone, self.settings.misfire_grace_seconds)
        self._ready: list[tuple[float, int, PreparedMessage]] = []
        #: run id -> monotonic time of its claim, for the ready (claimed, unpublished) fires.
        self._claimed_m: dict[int, float] = {}
        self._change_cursor = store.ChangeCursor()
        #: Epoch time of the earliest next_run_at in the table (None: nothing scheduled).
        self._next_due_ts: float | None = None
        #: How far ahead of the next instant claiming starts: the lookahead, more before a big burst.
        self._lead = self.settings.lookahead_seconds
        #: Rows claimed per second (measured on full batches): how long a burst takes to claim.
        self._claim_rate = INITIAL_CLAIM_RATE
        #: Most rows per claim batch: halved when a batch fails (on a loaded machine a big batch can
        #: outlive the server's idle-transaction timeout), grown back by a quarter per batch that commits.
        self._claim_cap = self.settings.claim_batch
        #: The next instant whose burst size was counted (None: not counted yet).
        self._lead_counted_for: float | None = None
        #: No claim before this (monotonic): the due rows were all locked by other beats.
        self._claim_after = 0.0
        self._locked_wait = LOCKED_WAIT_S
        self._claim_ahead = ClaimAhead()
        #: Whether the next claim batch may run beside the last one's messages (not on SQLite: one writer).
        self._pipelined = False
        self._gc_collected_m = time.monotonic()
        #: The safety net's marks: newest config edit and highest id already looked at.
        self._marks: tuple[datetime | None, int] = (None, 0)
        # The same marks as the idle poll's raw cursor read them: the reading the last full refresh
        # covered, and the latest reading (a refresh that finds it moved runs the full poll).
        self._raw_marks_covered: tuple[Any, ...] | None = None
        self._raw_marks_read: tuple[Any, ...] | None = None
        self._next_poll = 0.0
        self._next_refresh = 0.0
        self._next_prune = time.monotonic() + PRUNE_FIRST_S
        self._next_housekeep = 0.0
        self._next_broker_probe = 0.0
        self._db_down_since: float | None = None
        self._broker_down_since: float | None = None
        #: No lost-run detection before this (monotonic): after a database outage workers need time to stamp again.
        self._lost_check_after = 0.0
        #: Set when the broker comes back: pending runs published before it may have lost their message.
        self._requeue_published_before: datetime | None = None
        self._engine: Engine | None = None
        #: When the start began, until the start has read the settled cursor (None once ready).
        self._start_began: float | None = None
        self.heartbeat: Heartbeat | None = None
        self._stop_guard = StopGuard()
        self._idle_poll: IdlePoll | None = None
        #: Whether the first tick started :meth:`_warm_up`.
        self._warming = False
        self.publisher = Publisher(app, self.settings.publish_batch_size)
        kwargs.pop("schedule_filename", None)
        super().__init__(app, *args, **kwargs)

    # --- celery.beat.Scheduler API ---------------------------------------------------

    def setup_schedule(self) -> None:
        started = time.monotonic()
        tick_log.install()  # Celery's "Waking up now." before each of the twice-a-second ticks: once a minute
        self._stop_guard.install()  # after Celery's beat installed its SIGTERM/SIGINT handler
        metrics.start(self.settings)
        otel.start(self.settings.otel, "tablebeat-beat")
        # No pre-ping: a checkout ping doubles the round trips of the idle poll; a connection the
        # server dropped fails its statement, is discarded, and the next tick gets a new one.
        self._engine = make_engine(self.settings.database_url or None, pool_pre_ping=False)
        self._pipelined = self._engine.dialect.name != "sqlite"
        _limit_idle_transactions(self._engine, self.settings.beat_dead_seconds)
        self._idle_poll = IdlePoll(self._engine)
        names = self._registered if self._registered is not None else job_names(self.app.tasks)
        self.settler.registered = registered_set(names)
        self.heartbeat = Heartbeat(
            self._engine, self.token, 2 * self.settings.poll_seconds, self.settings.beat_dead_seconds
        )
        self.heartbeat.start()
        self._start(started)
        try:
            # The connection the start just used: one connection before the first tick (each costs
            # ~40 ms of CPU, PyMySQL loading the CA store); the pool's next one is made by _warm_up.
            self._idle_poll.connect()
        except SQLAlchemyError:
            pass  # the first poll connects again and reports an outage

    def tick(self, *args: Any, **kwargs: Any) -> float:
        """One pass of the loop; returns seconds to sleep before the next."""
        if self._start_began is not None and not self._start(self._start_began):
            return self.settings.poll_seconds
        now_m = time.monotonic()
        metrics.tick()
        # Fires due now go out before anything else: claiming the next seconds' fires or
        # settling edits must not make them late.
        self._publish_ready()
        self._sync_changes(now_m)
        self._claim_due()
        self._publish_ready()
        self._housekeep(now_m)
        self._hold_claims()
        if not self._warming:
            self._warming = True
            threading.Thread(target=self._warm_up, name="tablebeat-warm-up", daemon=True).start()
        return self._sleep_seconds()

    def _warm_up(self) -> None:
        """After the first tick, beside the next ones: load the broker transport (redis-py: ~0.1 s of
        imports), first needed to publish, and make the pool's second connection, first needed to
        claim or settle while the idle poll holds the first.  A fire due sooner does either itself."""
        self.publisher.load_transport()
        assert self._engine is not None
        try:
            with self._engine.connect():
                pass
        except SQLAlchemyError:
            pass  # the next statement connects again and reports an outage

    @property
    def schedule(self) -> dict[str, TableEntry]:
        """A ``ScheduleEntry`` for each of the next :data:`SCHEDULE_VIEW_ROWS` tasks to fire (not used to dispatch)."""
        if self._engine is None:
            return {}
        with self._engine.begin() as conn:
            rows = conn.execute(
                select(*store.ROW_COLUMNS)
                .where(task_table.c.next_run_at.is_not(None), task_table.c.is_valid == 1)
                .order_by(task_table.c.next_run_at)
                .limit(SCHEDULE_VIEW_ROWS)
            ).all()
        entries: dict[str, TableEntry] = {}
        for row in rows:
            try:
                job = self.settler.compile(row)
            except RowError:
                continue
            entries[job.task_key] = TableEntry(
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
        return entries

    def should_sync(self) -> bool:
        # Fires and row states are persisted when claimed or settled; nothing to flush.
        return False

    def sync(self) -> None:
        return None

    def close(self) -> None:
        self._claim_ahead.close()
        self._stop_guard.uninstall()
        if self.heartbeat is not None:
            self.heartbeat.stop()
        if self._idle_poll is not None:
            self._idle_poll.close()
        if self._engine is not None:
            self._engine.dispose()

    @property
    def info(self) -> str:
        return (
            f"tablebeat {self.settings.database_url or 'default database'} (refresh {self.settings.refresh_seconds}s)"
        )

    # --- settle -------------------------------------------------------------------------

    def _start(self, began: float) -> bool:
        """Read the settled cursor (settling every row once if never) and say ready.

        False when the database fails meanwhile: reported as an outage, and the next tick starts
        again (a beat never dies of a database error, at its start neither).
        """
        self._start_began = began
        try:
            settled = self._start_cursor()
        except SQLAlchemyError as exc:
            self._db_failed("starting", exc)
            return False
        self._start_began = None
        gc_freeze.freeze_start_up()
        self._db_recovered()
        self._next_refresh = time.monotonic() + self.settings.refresh_seconds
        logger.info(
            "tablebeat: ready in %.2fs, tasks scheduled from the table (%d rows settled, next fire %s, beat %s)",
            time.monotonic() - began,
            settled,
            "none" if self._next_due_ts is None else datetime.fromtimestamp(self._next_due_ts, UTC).isoformat(),
            self.token,
        )
        return True

    def _start_cursor(self) -> int:
        """Start reading the change log where the table was last settled; settle every row once if never."""
        assert self._engine is not None
        with self._engine.begin() as conn:
            settled = timeline.settled_change_id(conn)
            top = store.change_cursor(conn)
            self._marks = timeline.newest_marks(conn)
        count = 0
        if settled is not None and settled > top:
            logger.warning("tablebeat: the change log restarted below the settled cursor (truncated?)")
            settled = None
        if settled is None:
            # A table never settled (first start after the upgrade): every row once, a batch per
            # transaction. Each batch is read in a transaction of its own: a reader kept open across
            # the settles sat idle in its transaction, and the server ended it after the dead time.
            last = 0
            while True:
                with self._engine.begin() as conn:
                    rows = timeline.rows_after(conn, last)
                if not rows:
                    break
                with self._engine.begin() as conn:
                    self.settler.settle(conn, rows)
                count += len(rows)
                last = int(rows[-1].id)
            with self._engine.begin() as conn:
                timeline.advance_settled(conn, top)
            settled = top
            logger.info("tablebeat: settled every row once (%d rows): the table had no settled cursor", count)
        self._change_cursor = store.ChangeCursor(settled)
        with self._engine.begin() as conn:
            self._set_next_due(conn)
            self._count_scheduled(conn)
        return count

    def _count_scheduled(self, conn: Any) -> None:
        """The scheduled-tasks gauge, counted in the table (an index scan) only when metrics are served."""
        if metrics.enabled():
            metrics.scheduled_tasks(timeline.count_scheduled(conn))

    def _sync_changes(self, now_m: float) -> None:
        if now_m < self._next_poll:
            return
        self._next_poll = now_m + self.settings.poll_seconds
        if self._poll_idle(now_m):
            return
        assert self._engine is not None
        changed: set[int] = set()
        began = time.perf_counter()
        refreshed = False
        try:
            with self._engine.begin() as conn:
                changed = store.read_changes(conn, self._change_cursor, now_m, CHANGES_PER_POLL)
                if changed:
                    rows = timeline.rows_for_update(conn, sorted(changed))
                    self.settler.settle(conn, rows, announce=len(changed) <= LOG_EACH_FIRE_UP_TO)
                    for task_id in changed - {int(r.id) for r in rows}:
                        logger.info("tablebeat: task %s deleted; unscheduled", task_id)
                    timeline.advance_settled(conn, self._change_cursor.settled_upto())
                    self._set_next_due(conn)
                    metrics.edits_applied(self._change_cursor.changed_at)
                    self._count_scheduled(conn)
                if now_m >= self._next_refresh:
                    self._next_refresh = now_m + self.settings.refresh_seconds
                    self._safety_net(conn)
                    self._count_scheduled(conn)
                    refreshed = True
                # Every poll looks for silent beats holding claims; this beat stamps when due
                # (every second while it holds claims: scheduler/liveness.py).
                silent_since = utcnow() - timedelta(seconds=self.settings.beat_dead_seconds)
                dead = timeline.dead_beats(conn, silent_since, self.token)
                heartbeat = self.heartbeat if self.heartbeat is not None and self.heartbeat.due() else None
                if heartbeat is not None:
                    heartbeat.stamp_in(conn)
            if heartbeat is not None:
                heartbeat.stamped()
            if refreshed:
                self._raw_marks_covered = self._raw_marks_read
            self._db_recovered()
            metrics.synced("full" if refreshed else "poll", time.perf_counter() - began)
        except SQLAlchemyError as exc:
            self._db_failed("settling changed rows", exc)
            return
        if self._change_cursor.more:
            self._next_poll = now_m  # more of a bulk change waits: continue on the next tick
        if changed:
            self._on_rows_changed(changed)
        if dead:
            self._take_over(dead)

    def _poll_idle(self, now_m: float) -> bool:
        """The poll when nothing changed, on a raw autocommit cursor (``scheduler/idle_poll.py``):
        the same probe, silent-beat check and stamp (when due) as the full poll below, at a tenth of
        its CPU.  Returns False when the full poll must run: the log has changes or gaps, or the safety
        net is due and the table's marks moved since it last ran (or the scheduled-tasks gauge is
        served)."""
        if self._idle_poll is None or self._change_cursor.gaps:
            return False
        refresh = now_m >= self._next_refresh
        if refresh and metrics.enabled():
            return False
        began = time.perf_counter()
        heartbeat = self.heartbeat if self.heartbeat is not None and self.heartbeat.due() else None
        now = utcnow()
        silent_since = now - timedelta(seconds=self.settings.beat_dead_seconds)
        try:
            if refresh:
                self._raw_marks_read = self._idle_poll.newest_marks()
                if self._raw_marks_read != self._raw_marks_covered:
                    return False  # rows edited or added since: the safety net looks at them
            dead = self._idle_poll.poll(
                self._change_cursor.last_id, self.token, now, silent_since, stamp=heartbeat is not None
            )
        except SQLAlchemyError as exc:
            self._db_failed("settling changed rows", exc)
            return True
        if dead is None:
            return False
        if refresh:
            self._next_refresh = now_m + self.settings.refresh_seconds
        if heartbeat is not None:
            heartbeat.stamped()
        self._db_recovered()
        metrics.synced("poll", time.perf_counter() - began)
        if dead:
            self._take_over(dead)
        return True

    def _on_rows_changed(self, task_ids: set[int]) -> None:
        """Hook after changed rows were settled: a change wins over this beat's claims of them
        (cancelled or rebuilt, ``scheduler/claim_review.py``)."""
        if not self._ready:
            return
        held = [item[2].dispatch for item in self._ready if item[2].dispatch.task_id in task_ids]
        if not held:
            return
        assert self._engine is not None
        try:
            jobs = self._compile_for_outbox({int(d.task_id or 0) for d in held})
            with self._engine.begin() as conn:
                review = claim_review.review_claims(conn, held, task_ids, jobs)
                skipped = set(claim_review.skip_claims(conn, review.cancelled, utcnow()))
                held_by = {d.run_id: int(d.task_id or 0) for d in held}
                if claim_review.rewind_last_run(conn, {held_by[r] for r in skipped}, jobs):
                    self._next_due_ts = _ts(timeline.next_due_at(conn))
        except SQLAlchemyError as exc:
            self._db_failed("cancelling claims of changed tasks", exc)
            return  # the worker's guarded start still refuses them
        if not review.cancelled and not review.rebuilt:
            return
        kept: list[tuple[float, int, PreparedMessage]] = []
        for at, run_id, prepared in self._ready:
            if run_id in review.cancelled:
                self._claimed_m.pop(run_id, None)
                if run_id in skipped:
                    d = prepared.dispatch
                    logger.warning(
                        "tablebeat: run %s at %s not published: %s%s",
                        run_id,
                        d.scheduled_at.isoformat(),
                        review.cancelled[run_id],
                        trace_suffix(d.task_key, d.trace_id),
                        extra={"trace_id": d.trace_id, "run_id": run_id},
                    )
                    metrics.fire_skipped(review.cancelled[run_id])
                continue  # not skipped here: published or taken over meanwhile; the worker's guard decides
            rebuilt = review.rebuilt.get(run_id)
            kept.append((at, run_id, self.publisher.prepare(rebuilt) if rebuilt is not None else prepared))
        heapq.heapify(kept)
        self._ready = kept

    def _safety_net(self, conn: Any) -> None:
        """Settle rows the change log did not name (triggers dropped): index range scans from the last marks."""
        newest, top = timeline.newest_marks(conn)
        if (newest, top) == self._marks:
            return
        since = self._marks[0]
        rows = timeline.rows_edited_since(conn, since, self._marks[1], CHANGES_PER_POLL)
        if rows:
            self.settler.settle(conn, rows)
            self._set_next_due(conn)
        self._marks = (newest, top)

    # --- claim ------------------------------------------------------------------------

    def _claim_due(self) -> None:
        if self._broker_down_since is not None and not self._broker_back():
            return  # leave fires overdue; they are coalesced once the broker is back
        now_ts = time.time()
        if (
            self._next_due_ts is not None
            and self._lead_counted_for != self._next_due_ts
            and self._within_longest_lead(self._next_due_ts)
        ):
            assert self._engine is not None
            try:
                with self._engine.begin() as conn:
                    self._count_burst(conn)
            except SQLAlchemyError as exc:
                self._db_failed("counting a burst", exc)
                return
        lookahead = self._lead
        if self._next_due_ts is None or self._next_due_ts - now_ts > lookahead or time.monotonic() < self._claim_after:
            return
        try:
            self._claim_batches(lookahead)
        finally:
            if self._claim_ahead.in_flight:
                self._claim_ahead.close()  # only after an exception: its claims go to the other beats

    def _claim_batches(self, lookahead: float) -> None:
        """Claim batch after batch until the timeline's due rows are all claimed, the claim budget is
        spent, or a claimed fire comes due.  On MariaDB and PostgreSQL each batch's transaction runs on
        the claim thread (scheduler/claim_ahead.py): the next one beside this one's messages, and the
        fires that come due meanwhile are published without waiting for it."""
        started = time.monotonic()
        ahead = self._claim_ahead
        while True:
            if ahead.in_flight:
                batch = self._take_publishing()
            else:
                limit = self._batch_rows()
                if not limit:
                    return  # claimed fires are about to be due: publish them first, claim right after
                if self._pipelined:
                    ahead.submit(self._claim_batch, limit, lookahead)
                    batch = self._take_publishing()
                else:
                    batch = self._claim_batch(limit, lookahead)
            if not self._took_batch(batch):
                return
            more = batch.full and time.monotonic() - started <= CLAIM_BUDGET_S
            if more and self._pipelined:
                limit = self._batch_rows(batch.earliest)
                if limit:
                    ahead.submit(self._claim_batch, limit, lookahead)
            self._accept_claims(batch.planned, batch.claims, batch.won)
            if batch.rows:
                self._locked_wait = LOCKED_WAIT_S
            if len(self._ready) > GC_FREEZE_ABOVE:
                gc_freeze.hold_burst()  # collected once housekeeping runs (the burst is out by then)
            if not batch.full:
                if not batch.rows and self._next_due_ts is not None and self._next_due_ts <= batch.horizon_ts:
                    # Due rows exist but another beat holds them: let it finish instead of spinning.
                    self._claim_after = time.monotonic() + self._locked_wait
                    self._locked_wait = min(self._locked_wait * 2, LOCKED_WAIT_MAX_S)
                return
            if not ahead.in_flight and (
                time.monotonic() - started > CLAIM_BUDGET_S or (self._ready and self._ready[0][0] <= time.time())
            ):
                return  # publish what has come due; the next tick claims the rest

    def _take_publishing(self) -> ClaimedBatch:
        """The batch in flight, once its transaction ends; held fires that come due meanwhile are published."""
        while True:
            wait = max(0.0, self._ready[0][0] - time.time()) if self._ready else None
            batch = self._claim_ahead.take(wait)
            if batch is not None:
                return batch
            self._publish_ready()

    def _claim_batch(self, limit: int, lookahead: float) -> ClaimedBatch:
        """One claim transaction of up to ``limit`` due rows (on the main or the claim thread: it reads
        the scheduler's settings and compiles rows, and changes no scheduler state)."""
        assert self._engine is not None
        batch = ClaimedBatch(limit)
        now = utcnow()
        horizon = now + timedelta(seconds=lookahead)
        batch.horizon_ts = horizon.timestamp()
        began = time.perf_counter()
        try:
            with self._engine.begin() as conn:
                rows = timeline.due_rows(conn, horizon, limit)
                batch.rows = len(rows)
                batch.planned, batch.claims, writes = self._plan(rows, now, horizon)
                # A beat holding no claims stamps rarely: its claims commit with a fresh stamp.
                stamp = self._stamp_with_claims(conn, bool(batch.claims))
                batch.won = store.claim_fires(conn, batch.claims, self.token, now)
                _note_last_status(batch.planned, batch.claims, batch.won, writes)
                store.write_task_columns(conn, writes)
                if not batch.full:
                    batch.next_due_ts, batch.due_with_it = self._read_next_due(conn)
        except SQLAlchemyError as exc:
            batch.error = exc
            return batch
        if stamp and self.heartbeat is not None:
            self.heartbeat.stamped()
        batch.seconds = time.perf_counter() - began
        return batch

    def _took_batch(self, batch: ClaimedBatch) -> bool:
        """Take a claim transaction's outcome into the scheduler's state (not its fires: those go to
        ``_accept_claims``); False when it failed."""
        if batch.error is not None:
            self._db_failed("claiming due fires", batch.error)
            self._claim_after = time.monotonic() + self.settings.poll_seconds
            self._claim_cap = max(CLAIM_MIN_ROWS, batch.limit // 2)
            return False
        self._db_recovered()
        if not batch.full:
            self._next_due_read(batch.next_due_ts, batch.due_with_it)
        self._claim_cap = min(self.settings.claim_batch, self._claim_cap + self._claim_cap // 4 + 1)
        if batch.full and batch.rows >= min(CLAIM_FLOOR_ROWS, self.settings.claim_batch):
            rate = batch.rows / max(batch.seconds, 1e-3)
            self._claim_rate = 0.7 * self._claim_rate + 0.3 * rate
        return True

    def _batch_rows(self, earliest: float | None = None) -> int:
        """Rows the next claim batch may take: what the measured claim rate does in
        :data:`CLAIM_BATCH_S`, at most ``claim_batch`` (less after a failed batch), and no more
        than it does in half the time left before the first claimed fire is due (0: publish
        first), so a publish never waits behind a claim.  ``earliest``: the first instant of a batch
        claimed but not yet taken in."""
        least = min(CLAIM_MIN_ROWS, self.settings.claim_batch)
        rows = min(self._claim_cap, max(CLAIM_FLOOR_ROWS, int(CLAIM_BATCH_S * self._claim_rate)))
        first = [t for t in (self._ready[0][0] if self._ready else None, earliest) if t is not None]
        if not first:
            return rows
        room = min(first) - time.time() - PUBLISH_MARGIN_S
        rows = min(rows, int(room * self._claim_rate / 2))
        return rows if rows >= least else 0

    def _set_next_due(self, conn: Any) -> None:
        """Read the timeline's first entry; before a burst bigger than a claim batch, start claiming earlier.

        A burst takes (rows / claim rate) to claim: claiming starts that much more ahead of its
        instant (at most :data:`MAX_LEAD_S`), so 100,000 fires at one instant are claimed, and their
        messages built, before it comes.
        """
        self._next_due_read(*self._read_next_due(conn))

    def _next_due_read(self, due_ts: float | None, due: int | None) -> None:
        """The timeline's first instant was read (and ``due`` rows due with it, when counted): the
        lead starts again from the lookahead."""
        self._next_due_ts = due_ts
        self._lead = self.settings.lookahead_seconds
        self._lead_counted_for = None
        if due is not None:
            self._burst_counted(due_ts, due)

    def _read_next_due(self, conn: Any) -> tuple[float | None, int | None]:
        """The timeline's first instant, and the rows due with it when it is within the longest lead
        (not before: a count of a burst an hour away would be repeated on every edit for nothing)."""
        due_ts = _ts(timeline.next_due_at(conn))
        if due_ts is None or not self._within_longest_lead(due_ts):
            return due_ts, None
        return due_ts, self._count_due_with(conn, due_ts)

    def _within_longest_lead(self, due_ts: float) -> bool:
        """Whether an instant is close enough that a burst due with it may be claimed early."""
        return due_ts - time.time() <= MAX_LEAD_S + self.settings.lookahead_seconds

    def _count_due_with(self, conn: Any, due_ts: float) -> int:
        horizon = datetime.fromtimestamp(due_ts + self.settings.lookahead_seconds, UTC)
        return timeline.count_due_until(conn, horizon, MAX_EARLY_ROWS)

    def _count_burst(self, conn: Any) -> None:
        """Count the rows due with the first one, once, when it is within the longest lead."""
        due_ts = self._next_due_ts
        if due_ts is None or self._lead_counted_for == due_ts or not self._within_longest_lead(due_ts):
            return
        self._burst_counted(due_ts, self._count_due_with(conn, due_ts))

    def _burst_counted(self, due_ts: float | None, due: int) -> None:
        """``due`` rows are due with the first instant ``due_ts``: claim that much earlier than the lookahead."""
        self._lead_counted_for = due_ts
        if due > self.settings.claim_batch:
            self._lead = min(MAX_LEAD_S, self.settings.lookahead_seconds + due / self._claim_rate)

    def _plan(
        self, rows: list[Any], now: datetime, horizon: datetime
    ) -> tuple[list[Planned], list[store.FireClaim], list[tuple[int, dict[str, Any], dict[str, Any]]]]:
        """Fires to claim for locked due rows, and every row's new columns.

        The next instant is computed again from the row (its config, anchor and last fire), so a
        row edited since its ``next_run_at`` was written is fired by its current configuration.
        """
        planned: list[Planned] = []
        claims: list[store.FireClaim] = []
        writes: list[tuple[int, dict[str, Any], dict[str, Any]]] = []
        for row in rows:
            task_id = int(row.id)
            guard = {"next_run_at": row.next_run_at}
            try:
                job = self.settler.compile(row)
            except RowError as exc:
                logger.error("tablebeat: task %r (id %s) cannot be scheduled: %s", row.task_key, task_id, exc)
                writes.append(
                    (task_id, guard, {"status": TaskStatus.ERROR.value, "next_run_at": None, "last_error": str(exc)})
                )
                continue
            first = first_pending_instant(job)
            if first is None or first > horizon:
                # Done, or edited to a later instant not yet settled: move the row, claim nothing.
                values: dict[str, Any] = {"next_run_at": first}
                if first is None:
                    values["status"] = TaskStatus.COMPLETED.value
                writes.append((task_id, guard, values))
                continue
            job.next_at = first
            fires, nxt = plan_due(job, now)
            planned.append((job, fires, nxt))
            for fire in fires:
                claims.append(
                    store.FireClaim(
                        task_id=task_id,
                        scheduled_at=fire.scheduled_at,
                        trace_id=new_trace_id(),
                        celery_id=new_celery_id(),
                        skip_reason=fire.skip_reason,
                    )
                )
            status = TaskStatus.READY.value if nxt is not None else TaskStatus.COMPLETED.value
            last = max(fire.scheduled_at for fire in fires)
            values = {"last_run_at": last, "next_run_at": nxt, "status": status}
            if nxt is None and fires[-1].skip_reason:
                # A job ending on a skipped fire (a date job missed) never runs: the row says why.
                values["last_error"] = f"not run: {fires[-1].skip_reason}"
            writes.append((task_id, guard, values))
        return planned, claims, writes

    def _accept_claims(self, planned: list[Planned], claims: list[store.FireClaim], won: dict[str, int]) -> None:
        by_key = {(c.task_id, c.scheduled_at): c for c in claims}
        now_m = time.monotonic()
        won_jobs: list[tuple[str, str]] = []
        for job, fires, _nxt in planned:
            for fire in fires:
                claim = by_key[(job.task_id, fire.scheduled_at)]
                run_id = won.get(claim.trace_id)
                if run_id is None or fire.skip_reason:
                    if fire.skip_reason and run_id is not None:
                        logger.warning("tablebeat: task %r: %s", job.task_key, fire.skip_reason)
                        metrics.fire_skipped(fire.skip_reason)
                    elif run_id is None:
                        metrics.claims_rejected(1)
                    continue
                won_jobs.append((job.job_name, job.task_key))
                dispatch = Dispatch.for_job(
                    job, run_id, claim.trace_id, claim.celery_id, fire.scheduled_at, scheduled=True
                )
                prepared = self.publisher.prepare(dispatch)  # message built ahead of the instant
                heapq.heappush(self._ready, (fire.scheduled_at.timestamp(), run_id, prepared))
                self._claimed_m[run_id] = now_m
        metrics.fires_claimed(won_jobs)
        self._hold_claims()

    # --- publish ------------------------------------------------------------------------

    def _publish_ready(self) -> None:
        """Publish the held fires whose instant has come: the first :data:`PUBLISH_STEP`, then the
        rest; the first messages of a big burst go out after one step's checks, not after all."""
        with self._stop_guard.holding():  # a stop waits for the published mark (scheduler/stop_guard.py)
            self._publish_due()

    def _publish_due(self) -> None:
        if not self._ready:
            return
        now_ts = time.time()
        if self._ready[0][0] > now_ts:
            return
        stalled = self.heartbeat is not None and self.heartbeat.take_stall()
        sent: list[int] = []
        step_size = PUBLISH_STEP
        while self._ready and self._ready[0][0] <= now_ts:
            batch: list[PreparedMessage] = []
            while self._ready and self._ready[0][0] <= now_ts and len(batch) < step_size:
                batch.append(heapq.heappop(self._ready)[2])
            step_size = len(self._ready)  # the rest in one step: each step costs a publish call
            step = self._publish_batch(batch, stalled)
            if step is None:
                # The broker is down: the rest due now stays claimed, unpublished, for the outbox sweep.
                while self._ready and self._ready[0][0] <= now_ts:
                    self._claimed_m.pop(heapq.heappop(self._ready)[1], None)
                break
            sent.extend(step)
        # Once for the whole burst: a statement per step made 100,000 fires take 5 s longer.
        if sent:
            self._write_published(sent)

    def _publish_batch(self, batch: list[PreparedMessage], stalled: bool) -> list[int] | None:
        """Publish one step of due fires; the run ids sent, None when the broker failed."""
        # Per claim, not per tick: after a stall the fresh claims of the first tick back must
        # not hide the old ones, which another beat may have taken over meanwhile.
        for item in batch:
            self._claimed_m.pop(item.dispatch.run_id, None)
        # Another beat's outbox sweep takes a claim only once its instant is stale_claim_seconds past.
        stale_before = time.time() - self.settings.stale_claim_seconds
        if stalled or any(p.dispatch.scheduled_at.timestamp() < stale_before for p in batch):
            batch = self._drop_stolen(batch)
        try:
            sent = self.publisher.publish(batch)
        except BrokerUnavailable as exc:
            self._broker_failed(exc)
            return None  # the claims stay unpublished; the outbox sweep republishes them
        metrics.fires_published(p.dispatch for p in batch)
        otel.fires_published(p.dispatch for p in batch)
        if len(batch) <= LOG_EACH_FIRE_UP_TO:
            for prepared in batch:
                fired = prepared.dispatch
                logger.info(
                    "tablebeat: fired %s run=%s scheduled_at=%s%s",
                    fired.job_name,
                    fired.run_id,
                    fired.scheduled_at.isoformat(),
                    trace_suffix(fired.task_key, fired.trace_id),
                    extra={"task_key": fired.task_key, "trace_id": fired.trace_id, "run_id": fired.run_id},
                )
        else:
            logger.info("tablebeat: fired %d runs in one batch", len(batch))
        return sent

    def _drop_stolen(self, batch: list[PreparedMessage]) -> list[PreparedMessage]:
        """After a stall, publish only claims no other beat has taken over meanwhile."""
        assert self._engine is not None
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
        assert self._engine is not None
        try:
            with self._engine.begin() as conn:
                store.mark_published(conn, run_ids, utcnow())
        except SQLAlchemyError as exc:
            # Worst case the sweep republishes; the worker's pending->running guard drops the copy.
            self._db_failed("marking runs published", exc)

    # --- other beats ------------------------------------------------------------------------

    def _take_over(self, dead: list[str]) -> None:
        """Publish, at their instants, the fires claimed by beats that stopped stamping."""
        assert self._engine is not None
        now = utcnow()
        try:
            with self._engine.begin() as conn:
                runs = store.take_claims_of(conn, dead, self.token, now)
                stamp = self._stamp_with_claims(conn, bool(runs))
                timeline.forget_beats(conn, dead, now - timedelta(seconds=self.settings.beat_dead_seconds))
        except SQLAlchemyError as exc:
            self._db_failed("taking over a stopped beat's claims", exc)
            return
        if stamp and self.heartbeat is not None:
            self.heartbeat.stamped()
        if not runs:
            return
        logger.warning("tablebeat: beat(s) %s stopped; took over %d claimed fires", ", ".join(dead), len(runs))
        try:
            jobs = self._compile_for_outbox({run.task_id for run in runs})
        except SQLAlchemyError as exc:
            # The claims are this beat's now: the outbox sweep publishes them (as any unpublished claim).
            self._db_failed("taking over a stopped beat's claims", exc)
            return
        orphaned: list[store.UnpublishedRun] = []
        missed: list[store.UnpublishedRun] = []
        now_m = time.monotonic()
        for run in runs:
            job = jobs.get(run.task_id)
            if job is None:
                orphaned.append(run)
                continue
            if _past_grace(run, job, now):
                missed.append(run)
                continue
            prepared = self.publisher.prepare(
                Dispatch.for_job(job, run.run_id, run.trace_id, run.celery_id, run.scheduled_at, scheduled=True)
            )
            heapq.heappush(self._ready, (run.scheduled_at.timestamp(), run.run_id, prepared))
            self._claimed_m[run.run_id] = now_m
        self._hold_claims()
        try:
            self._skip_orphaned(orphaned, now)
            self._skip_orphaned(missed, now, MISSED_CLAIM)
        except SQLAlchemyError as exc:
            self._db_failed("skipping taken-over claims", exc)  # left unpublished: the outbox sweep skips them

    def _hold_claims(self) -> None:
        """Tell the heartbeat whether claimed fires are held: it stamps every second only while they are
        (at once when claims are added, so a long publish in the same tick is covered)."""
        if self.heartbeat is not None:
            self.heartbeat.hold(bool(self._ready))

    def _stamp_with_claims(self, conn: Any, claiming: bool) -> bool:
        """Stamp this beat in the transaction that claims (or takes over) fires when its last stamp may
        be old (it held no claims): others must not find a claim older than its beat's stamp."""
        heartbeat = self.heartbeat
        if not claiming or heartbeat is None or (heartbeat.holding and not heartbeat.due()):
            return False
        heartbeat.stamp_in(conn)
        return True

    def _skip_orphaned(self, runs: list[store.UnpublishedRun], now: datetime, reason: str = ORPHANED_CLAIM) -> None:
        if not runs:
            return
        assert self._engine is not None
        with self._engine.begin() as conn:  # paused, deleted or invalid since the claim: recorded, never left pending
            store.skip_unpublished(conn, [run.run_id for run in runs], reason, now)
            ids = list({run.task_id for run in runs[:LOG_EACH_FIRE_UP_TO]})
            keys = dict(
                conn.execute(select(task_table.c.id, task_table.c.task_key).where(task_table.c.id.in_(ids)))
                .tuples()
                .all()
            )
        metrics.fire_skipped(reason, len(runs))
        for run in runs[:LOG_EACH_FIRE_UP_TO]:  # the run's one line: it ends here, never reaching a worker
            logger.warning(
                "tablebeat: run %s at %s skipped, %s%s",
                run.run_id,
                run.scheduled_at.isoformat(),
                reason,
                trace_suffix(keys.get(run.task_id, f"(deleted task {run.task_id})"), run.trace_id),
                extra={"trace_id": run.trace_id, "run_id": run.run_id},
            )
        if len(runs) > LOG_EACH_FIRE_UP_TO:
            logger.warning("tablebeat: %d more claimed runs skipped, %s", len(runs) - LOG_EACH_FIRE_UP_TO, reason)

    # --- housekeeping ---------------------------------------------------------------------

    def _housekeep(self, now_m: float) -> None:
        if now_m < self._next_housekeep or self._db_down_since is not None:
            return
        if (
            self._ready
            and self._ready[0][0] - time.time() < HOUSEKEEP_QUIET_S
            and now_m < self._next_housekeep + self.settings.refresh_seconds
        ):
            return  # claimed fires are about to be due: sweep after publishing them (a sweep took 0.9 s)
        self._next_housekeep = now_m + self.settings.refresh_seconds
        # Not while a burst is held (a full pass over 100,000 held messages takes about a second),
        # unless sustained fires have held one for a minute: their cyclic garbage must go too.
        if len(self._ready) <= GC_FREEZE_ABOVE or now_m - self._gc_collected_m > GC_COLLECT_EVERY_S:
            self._gc_collected_m = now_m
            gc_freeze.collect_after_burst()
        assert self._engine is not None
        try:
            if now_m >= self._next_prune:
                self._next_prune = now_m + PRUNE_EVERY_S
                with self._engine.begin() as conn:
                    store.prune_changes(conn, utcnow() - CHANGE_LOG_KEEP, self._change_cursor.settled_upto())
                    timeline.prune_beats(conn, utcnow() - BEAT_NODE_KEEP)
            if self._idle_poll is not None:
                busy = self._idle_poll.anything_to_sweep()  # the raw cursor: a tenth of the CPU
            else:
                with self._engine.begin() as conn:
                    busy = sweeps.anything_to_sweep(conn)
            if not busy:
                return  # no run pending or running, no row doing or noted: the sweeps would find nothing
            self._sweep_pending()
            self._republish_unpublished()
            lost = []
            if now_m >= self._lost_check_after:
                with self._engine.begin() as conn:
                    now = utcnow()
                    lost = store.mark_lost_runs(
                        conn, store.heartbeat_cutoff(now, self.settings.worker_dead_seconds), now
                    )
                    store.release_idle_doing(conn)
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

    def _sweep_pending(self) -> None:
        """The run invariant (``scheduler/sweeps.py``): republish runs whose message may be lost, close
        runs that never started within the bound."""
        assert self._engine is not None
        now = utcnow()
        with self._engine.begin() as conn:
            republished = 0
            if self._broker_down_since is None:
                cut = now - timedelta(seconds=self.settings.pending_republish_seconds)
                republished = sweeps.republish_stale(conn, cut)
            expired = sweeps.expire_unstarted(conn, now - timedelta(seconds=self.settings.pending_expire_seconds), now)
            unconsumed = sweeps.mark_unconsumed_queues(
                conn,
                now - timedelta(seconds=self.settings.worker_dead_seconds),
                now - timedelta(seconds=self.settings.stale_claim_seconds),
                str(self.app.conf.task_default_queue or "celery"),
            )
        for task in unconsumed:
            logger.error(
                "tablebeat: task %r: %s [task_key=%s]",
                task.task_key,
                sweeps.no_consumer_message(task.queue),
                task.task_key,
            )
        if republished:
            logger.warning(
                "tablebeat: %d runs still pending %ss after their publish will be published again "
                "(message lost? the worker's guard keeps each a single run)",
                republished,
                int(self.settings.pending_republish_seconds),
            )
        for run in expired:
            logger.error(
                "tablebeat: run %s expired: not started within %ss of its instant (queue %r)%s",
                run.run_id,
                int(self.settings.pending_expire_seconds),
                run.queue or "celery",
                trace_suffix(run.task_key, run.trace_id),
                extra={"trace_id": run.trace_id, "run_id": run.run_id},
            )
            alert_run(run.run_id, RunStatus.EXPIRED)

    def _republish_unpublished(self) -> None:
        with self._stop_guard.holding():
            self._republish_now()

    def _republish_now(self) -> None:
        if self._broker_down_since is not None:
            return  # nothing can be published; the sweep runs again once the broker is back
        assert self._engine is not None
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
        jobs = self._compile_for_outbox({run.task_id for run in runs if not run.manual})
        # Run-now runs whatever the row's state (a paused task too): its message is only late.
        manual_jobs = self._compile_for_outbox({run.task_id for run in runs if run.manual}, enabled_only=False)
        dispatches: list[Dispatch] = []
        orphaned: list[store.UnpublishedRun] = []
        missed: list[store.UnpublishedRun] = []
        for run in runs:
            job = (manual_jobs if run.manual else jobs).get(run.task_id)
            if job is None:
                orphaned.append(run)
                continue
            if _past_grace(run, job, now):
                missed.append(run)
                continue
            dispatches.append(
                Dispatch.for_job(
                    job, run.run_id, run.trace_id, run.celery_id, run.scheduled_at, scheduled=not run.manual
                )
            )
        self._skip_orphaned(orphaned, now)
        self._skip_orphaned(missed, now, MISSED_CLAIM)
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

    def _compile_for_outbox(self, task_ids: set[int], *, enabled_only: bool = True) -> dict[int, ScheduledJob]:
        """Valid rows (enabled ones only, unless told) compiled to publish claims already made
        (a fired date job included)."""
        if not task_ids:
            return {}
        assert self._engine is not None
        with self._engine.begin() as conn:
            rows = store.load_rows(conn, task_ids)
        jobs: dict[int, ScheduledJob] = {}
        for row in rows:
            if enabled_only and row.is_valid != 1:
                continue
            try:
                jobs[int(row.id)] = self.settler.compile(row)
            except RowError:
                continue
        return jobs

    def _sleep_seconds(self) -> float:
        now_ts = time.time()
        now_m = time.monotonic()
        # Wake for the next change-log poll on its own cadence: a tick woken early by a fire must
        # not push the poll a whole poll_seconds further out (edits would then take up to 2x).
        wake = now_ts + max(self._next_poll - now_m, 0.0)
        if self._ready:
            wake = min(wake, self._ready[0][0])
        if self._next_due_ts is not None:
            claim_at = self._next_due_ts - self._lead
            if self._lead_counted_for != self._next_due_ts:  # wake to count its burst first
                claim_at = min(claim_at, self._next_due_ts - MAX_LEAD_S - self.settings.lookahead_seconds)
            wake = min(wake, max(claim_at, now_ts + self._claim_after - now_m))
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


def _note_last_status(
    planned: list[Planned],
    claims: list[store.FireClaim],
    won: dict[str, int],
    writes: list[tuple[int, dict[str, Any], dict[str, Any]]],
) -> None:
    """Add ``last_status`` to the row writes of tasks whose latest fire this beat won."""
    latest: dict[int, store.FireClaim] = {}
    for claim in claims:
        if claim.trace_id in won:
            held = latest.get(claim.task_id)
            if held is None or claim.scheduled_at > held.scheduled_at:
                latest[claim.task_id] = claim
    for task_id, _guard, values in writes:
        newest = latest.get(task_id)
        if newest is not None:
            values["last_status"] = RunStatus.SKIPPED.value if newest.skip_reason else RunStatus.PENDING.value


def _limit_idle_transactions(engine: Engine, dead_seconds: float) -> None:
    """A beat frozen inside a claim must not hold its locked rows for longer than the dead time.

    The server ends a session idle inside a transaction that long (MariaDB
    ``idle_transaction_timeout``, PostgreSQL ``idle_in_transaction_session_timeout``); its
    locks go back and the other beats claim the rows.
    """
    backend = engine.dialect.name
    seconds = max(1, math.ceil(dead_seconds))
    if backend == "postgresql":
        statement = f"SET idle_in_transaction_session_timeout = {seconds * 1000}"
    elif backend in ("mysql", "mariadb"):
        statement = f"SET SESSION idle_transaction_timeout = {seconds}"
    else:
        return

    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(statement)
        except Exception:  # MySQL has no such variable: frozen beats' locks then last until its timeouts
            logger.debug("tablebeat: %s not supported by this server", statement)
        finally:
            cursor.close()
        dbapi_connection.commit()

    event.listen(engine, "connect", on_connect)


def _past_grace(run: store.UnpublishedRun, job: ScheduledJob, now: datetime) -> bool:
    """Whether a claimed fire is now later than its task's misfire grace (a fire is never run
    later than that: the regular misfire rule, applied to claims a stopped beat left behind)."""
    return (now - run.scheduled_at).total_seconds() > job.grace_seconds

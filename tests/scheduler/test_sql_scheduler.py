"""SqlScheduler against real SQLite, MariaDB and PostgreSQL, with a recording publisher (no broker)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar, cast

import pytest
from celery import Celery
from sqlalchemy import Engine, event, insert, select, text
from sqlalchemy.orm import Session

import workers
from conf.settings import Settings
from models import ExecuteTask, Task, make_engine
from scheduler import timeline
from scheduler.beat import SqlScheduler
from scheduler.dispatch import Dispatch, PreparedMessage


class RecordingPublisher:
    """Stands in for the broker: remembers every dispatch."""

    def __init__(self) -> None:
        self.sent: list[Dispatch] = []

    def prepare(self, dispatch: Dispatch) -> PreparedMessage:
        return PreparedMessage(dispatch, None, {})

    def publish(self, items: Sequence[Dispatch | PreparedMessage]) -> list[int]:
        dispatches = [i.dispatch if isinstance(i, PreparedMessage) else i for i in items]
        self.sent.extend(dispatches)
        return [d.run_id for d in dispatches]

    def load_transport(self) -> None:
        """No broker: nothing to load (beat's warm-up thread calls it after the first tick)."""


T = TypeVar("T")


def make_scheduler(url: str, **conf: Any) -> SqlScheduler:
    app = Celery("tablebeat-test", set_as_current=False)
    settings = Settings(
        database_url=url,
        poll_seconds=0.05,
        refresh_seconds=conf.pop("refresh_seconds", 3600),
        lookahead_seconds=conf.pop("lookahead_seconds", 0.2),
        **conf,
    )
    scheduler = SqlScheduler(app, settings=settings, registered=workers.load_job_modules())
    scheduler.publisher = RecordingPublisher()
    return scheduler


def run_for(seconds: float, *schedulers: SqlScheduler) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for scheduler in schedulers:
            scheduler.tick()
        time.sleep(0.01)


def tick_until(predicate: Callable[[], T], *schedulers: SqlScheduler, timeout: float = 15.0, what: str = "it") -> T:
    """Tick the schedulers until ``predicate`` holds (a loaded machine may need many ticks); its value."""
    deadline = time.monotonic() + timeout
    while True:
        for scheduler in schedulers:
            scheduler.tick()
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.01)


def drain(scheduler: SqlScheduler, timeout: float = 5.0) -> None:
    """Tick until every fire claimed ahead of its instant has been published."""
    deadline = time.monotonic() + timeout
    while scheduler._ready and time.monotonic() < deadline:
        scheduler.tick()
        time.sleep(0.01)


def sent(scheduler: SqlScheduler) -> list[Dispatch]:
    return scheduler.publisher.sent  # type: ignore[attr-defined, no-any-return]


def add_task(engine: Engine, key: str, func: str, trigger: str, spec: str, **cols: Any) -> int:
    values = {
        "task_key": key,
        "desc": "t",
        "execute_func": func,
        "trigger": trigger,
        "spec": spec,
        "args": "",
        "is_valid": 1,
        "status": "ready",
        "extra": "{}",
        **cols,
    }
    with engine.begin() as conn:
        return int(conn.execute(Task.__table__.insert().values(**values)).inserted_primary_key[0])


@pytest.fixture
def engine(migrated_url: str) -> Iterator[Engine]:
    eng = make_engine(migrated_url)
    yield eng
    eng.dispose()


@pytest.fixture
def schedulers(migrated_url: str) -> Iterator[Callable[..., SqlScheduler]]:
    made: list[SqlScheduler] = []

    def factory(**conf: Any) -> SqlScheduler:
        made.append(make_scheduler(migrated_url, **conf))
        return made[-1]

    yield factory
    for scheduler in made:
        scheduler.close()


def run_rows(engine: Engine, task_id: int) -> list[ExecuteTask]:
    with Session(engine) as session:
        return list(
            session.scalars(
                select(ExecuteTask).where(ExecuteTask.task_id == task_id).order_by(ExecuteTask.scheduled_at)
            )
        )


def task_row(engine: Engine, task_id: int) -> Task:
    with Session(engine) as session:
        return session.get_one(Task, task_id)


def test_interval_fires_on_its_grid_and_writes_back(engine: Engine, schedulers: Callable[..., SqlScheduler]) -> None:
    task_id = add_task(engine, "every1", "test_interval", "interval", "1", args="1,2")
    scheduler = schedulers()
    run_for(2.6, scheduler)
    drain(scheduler)  # a fire claimed ahead of its instant at the end is published, not left half-done
    dispatches = [d for d in sent(scheduler) if d.task_key == "every1"]
    assert 2 <= len(dispatches) <= 4
    anchor = task_row(engine, task_id).update_at
    for d in dispatches:
        offset = (d.scheduled_at - anchor).total_seconds()
        assert offset == pytest.approx(round(offset), abs=1e-3) and offset >= 1
        assert d.args == (1, 2) and d.job_name == "test_interval" and len(d.trace_id) == 32
    # A fire claimed over a second late on a loaded machine is coalesced: a 'skipped' row, not a message.
    rows = [r for r in run_rows(engine, task_id) if r.status != "skipped"]
    assert [r.id for r in rows] == sorted(d.run_id for d in dispatches)
    assert all(r.status == "pending" and r.published_at is not None for r in rows)
    task = task_row(engine, task_id)
    assert task.last_run_at == dispatches[-1].scheduled_at
    assert task.next_run_at == dispatches[-1].scheduled_at + timedelta(seconds=1)


def test_two_beats_dispatch_each_fire_once(engine: Engine, schedulers: Callable[..., SqlScheduler]) -> None:
    ids = [add_task(engine, f"shared{i}", "test_interval", "interval", "1") for i in range(5)]
    first, second = schedulers(), schedulers()
    run_for(3.2, first, second)
    drain(first)
    drain(second)
    published = [d.run_id for d in sent(first)] + [d.run_id for d in sent(second)]
    assert len(published) == len(set(published))
    rows = [r for task_id in ids for r in run_rows(engine, task_id)]
    # A fire claimed over a second late on a loaded machine is coalesced: one 'skipped' row, not a message.
    assert len([r for r in rows if r.status != "skipped"]) == len(published) >= 5 * 2
    keys = [(r.task_id, r.scheduled_at) for r in rows]
    assert len(keys) == len(set(keys))


@pytest.mark.parametrize(
    ("cols", "column"),
    [
        ({"execute_func": "os.system"}, "execute_func"),
        ({"spec": "61 * * * *", "trigger": "cron"}, "spec"),
        ({"trigger": "weekly"}, "trigger"),
        ({"spec": "0"}, "spec"),
        ({"args": "__import__('os').system('id')"}, "args"),
        ({"kwargs": "[1, 2]"}, "kwargs"),
        ({"timezone": "Mars/Base"}, "timezone"),
    ],
)
def test_bad_row_goes_to_error_naming_the_column(
    engine: Engine, schedulers: Callable[..., SqlScheduler], cols: dict[str, str], column: str
) -> None:
    good = add_task(engine, "good", "test_interval", "interval", "1")
    row = {"func": "test_interval", "trigger": "interval", "spec": "5", **cols}
    row["func"] = row.pop("execute_func", row["func"])
    bad = add_task(engine, "bad", **row)
    scheduler = schedulers()
    tick_until(lambda: run_rows(engine, good) and task_row(engine, bad).status == "error", scheduler, what="both rows")
    row = task_row(engine, bad)
    assert row.status == "error" and row.last_error.startswith(f"{column}:"), row.last_error
    assert run_rows(engine, bad) == []
    assert run_rows(engine, good), "the good row must keep firing"


def test_sql_edits_are_found_through_the_change_log(
    engine: Engine, schedulers: Callable[..., SqlScheduler], monkeypatch: pytest.MonkeyPatch
) -> None:
    scheduler = schedulers()
    full_loads: list[int] = []
    original = timeline.rows_after
    monkeypatch.setattr(timeline, "rows_after", lambda conn, after: full_loads.append(1) or original(conn, after))
    task_id = add_task(engine, "late_insert", "test_interval", "interval", "1")
    tick_until(lambda: [d for d in sent(scheduler) if d.task_key == "late_insert"], scheduler, what="a first fire")
    with engine.begin() as conn:
        conn.execute(text("UPDATE task SET is_valid = 0 WHERE id = :i"), {"i": task_id})
    tick_until(lambda: task_row(engine, task_id).status == "paused", scheduler, what="the pause")
    row = task_row(engine, task_id)
    assert row.status == "paused" and row.next_run_at is None
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM task WHERE id = :i"), {"i": task_id})
    run_for(0.3, scheduler)
    assert full_loads == [], "edits must not trigger full reloads"


def test_misfire_runs_latest_late_and_records_older_as_skipped(
    engine: Engine, schedulers: Callable[..., SqlScheduler]
) -> None:
    now = datetime.now(UTC)
    anchor = now.replace(microsecond=0) - timedelta(seconds=300)
    task_id = add_task(
        engine,
        "missed",
        "test_interval",
        "interval",
        "10",
        create_at=anchor,
        update_at=anchor,
        last_run_at=anchor + timedelta(seconds=200),
        misfire_grace_seconds=30,
    )
    scheduler = schedulers()
    run_for(0.5, scheduler)
    rows = run_rows(engine, task_id)
    statuses = [(r.status, r.scheduled_at) for r in rows]
    assert statuses[0] == ("skipped", anchor + timedelta(seconds=210))
    assert "coalesced" in rows[0].result
    assert statuses[1][0] == "pending" and now - statuses[1][1] < timedelta(seconds=10)
    assert len(rows) == 2


def test_fire_older_than_grace_is_only_skipped(engine: Engine, schedulers: Callable[..., SqlScheduler]) -> None:
    now = datetime.now(UTC)
    run_at = (now - timedelta(seconds=120)).replace(microsecond=0)
    created = run_at - timedelta(seconds=60)
    task_id = add_task(
        engine,
        "old_date",
        "test_date",
        "date",
        run_at.strftime("%Y-%m-%d %H:%M:%S"),
        timezone="UTC",
        create_at=created,
        update_at=created,
        misfire_grace_seconds=30,
    )
    scheduler = schedulers()
    run_for(0.5, scheduler)
    rows = run_rows(engine, task_id)
    assert [r.status for r in rows] == ["skipped"]
    assert "misfire" in rows[0].result and sent(scheduler) == []
    assert task_row(engine, task_id).status == "completed"


def test_unpublished_claim_is_republished_once(engine: Engine, schedulers: Callable[..., SqlScheduler]) -> None:
    task_id = add_task(engine, "outbox", "test_interval", "interval", "3600")
    # Stale (older than stale_claim_seconds) but within the task's misfire grace (60 s): republished.
    old = datetime.now(UTC) - timedelta(seconds=30)
    with engine.begin() as conn:
        conn.execute(
            ExecuteTask.__table__.insert().values(
                task_id=task_id,
                status="pending",
                scheduled_at=old,
                trace_id="t" * 32,
                celery_id="c-1",
                claimed_by="crashed-beat",
                create_at=old,
                update_at=old,
                extra="{}",
            )
        )
    first, second = schedulers(stale_claim_seconds=5), schedulers(stale_claim_seconds=5)
    run_for(0.5, first, second)
    republished = [d for d in sent(first) + sent(second) if d.trace_id == "t" * 32]
    assert len(republished) == 1 and republished[0].celery_id == "c-1"
    assert run_rows(engine, task_id)[0].published_at is not None


def test_no_change_sync_reads_only_the_change_log(
    engine: Engine, schedulers: Callable[..., SqlScheduler], monkeypatch: pytest.MonkeyPatch
) -> None:
    for i in range(50):
        add_task(engine, f"idle{i}", "test_interval", "interval", "3600")
    scheduler = schedulers()
    loads: list[str] = []
    monkeypatch.setattr(timeline, "rows_for_update", lambda conn, ids: loads.append("rows") or [])
    monkeypatch.setattr(timeline, "rows_after", lambda conn, after: loads.append("all") or [])
    monkeypatch.setattr(timeline, "due_rows", lambda conn, horizon, limit: loads.append("due") or [])
    run_for(0.5, scheduler)
    assert loads == []
    with engine.begin() as conn:
        assert conn.scalar(text("SELECT COUNT(*) FROM task WHERE next_run_at IS NOT NULL")) == 50


def test_claim_batches_end_before_claimed_fires_are_due(schedulers: Callable[..., SqlScheduler]) -> None:
    """A publish never waits behind a claim: a batch is sized to what the measured claim rate does
    before the first claimed fire is due, and none starts when too little time is left."""
    scheduler = schedulers(claim_batch=2000)
    scheduler._claim_rate = 1500.0
    assert scheduler._batch_rows() == 1500  # nothing claimed yet: a second's worth
    scheduler._claim_rate = 100.0
    assert scheduler._batch_rows() == 500  # never fewer than 500 rows away from an instant
    scheduler._claim_rate = 1000.0
    held = PreparedMessage(cast(Dispatch, None), None, {})
    scheduler._ready = [(time.time() + 0.2, 1, held)]
    assert 50 <= scheduler._batch_rows() <= 80  # half of the ~0.15 s left before the fire, at the rate
    scheduler._ready = [(time.time() + 0.1, 1, held)]
    assert scheduler._batch_rows() == 0  # publish first
    scheduler._ready = []
    scheduler._claim_cap = 300  # a batch failed: smaller ones until batches commit again
    assert scheduler._batch_rows() == 300
    small = schedulers(claim_batch=10)
    small._claim_rate = 1000.0
    small._ready = [(time.time() + 0.5, 1, held)]
    assert small._batch_rows() == 10


def test_an_idle_beat_refreshes_and_housekeeps_on_one_statement(
    engine: Engine, schedulers: Callable[..., SqlScheduler]
) -> None:
    """Idle CPU: with nothing open, housekeeping is its "anything to sweep?" lookup alone, on the idle
    poll's raw cursor, and a refresh whose marks did not move stays on the raw-cursor poll (no
    SQLAlchemy statement at all)."""
    task_id = add_task(engine, "idle", "test_interval", "interval", "3600")
    scheduler = schedulers(refresh_seconds=0.2)
    # Ready, the first housekeeping (prune included) and the first, full refresh done.
    tick_until(lambda: scheduler._raw_marks_covered is not None, scheduler, what="the first full refresh")
    assert scheduler._engine is not None
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(" ".join(statement.split()))

    event.listen(scheduler._engine, "before_cursor_execute", record)
    refreshed_until, housekept_until = scheduler._next_refresh, scheduler._next_housekeep
    tick_until(
        lambda: scheduler._next_housekeep > housekept_until + 0.5 and scheduler._next_refresh > refreshed_until + 0.3,
        scheduler,
        what="three housekeepings and two more refreshes",
    )
    assert statements == []
    with engine.begin() as conn:  # an open run: the sweeps have something to look at again
        conn.execute(insert(ExecuteTask).values(task_id=task_id, status="pending", scheduled_at=datetime.now(UTC)))
    statements.clear()
    tick_until(  # republish_stale's lookup
        lambda: any("published_at <" in s for s in statements), scheduler, what="the sweeps to run again"
    )

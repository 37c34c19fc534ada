"""Bulk seeding of the bench database: INSERT ... SELECT from a number series, multi-row INSERTs."""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import text

from bench.env import BenchEnv

#: Rows per executemany call; PyMySQL folds each call into multi-row INSERT statements.
BATCH = 5000
#: Rows per INSERT ... SELECT of the task seed.
BATCH_SELECT = 100_000
_RUN_INSERT = (
    "INSERT INTO execute_task (task_id, status, extra, trace_id, create_at, update_at, scheduled_at,"
    " published_at, celery_id, attempt, claimed_by)"
    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
)


def utc_naive(value: datetime) -> datetime:
    """Aware -> naive UTC, as tablebeat stores DATETIME(6) on MySQL/MariaDB."""
    return value.astimezone(UTC).replace(tzinfo=None)


def whole_second(ts: float | None = None) -> datetime:
    ts = time.time() if ts is None else ts
    return datetime.fromtimestamp(int(ts), tz=UTC)


def empty_tables(env: BenchEnv) -> None:
    """Empty the tables (TRUNCATE: no triggers fire, ids restart at 1); the empty table is settled."""
    with env.engine.begin() as conn:
        quote = conn.dialect.identifier_preparer.quote
        for table in ("execute_task", "task_change", "task", "worker_heartbeat", "beat_node"):
            restart = " RESTART IDENTITY" if env.is_postgresql else ""
            conn.exec_driver_sql(f"TRUNCATE TABLE {quote(table)}{restart}")
        conn.execute(text("UPDATE schedule_cursor SET change_id = 0"))


def mark_settled(env: BenchEnv) -> None:
    """Set the settled cursor to the newest change, as a beat that applied every change leaves it."""
    with env.engine.begin() as conn:
        top = conn.scalar(text("SELECT COALESCE(MAX(id), 0) FROM task_change"))
        conn.execute(text("UPDATE schedule_cursor SET change_id = :top"), {"top": top})


def seed_tasks(
    env: BenchEnv,
    count: int,
    *,
    trigger: str,
    spec: str,
    anchor: datetime,
    next_run_at: datetime | None,
    last_run_at: datetime | None = None,
    execute_func: str = "noop",
    key_prefix: str = "bench",
    max_instances: int = 1,
) -> float:
    """Insert ``count`` enabled rows sharing one schedule; return seconds taken.

    One ``INSERT ... SELECT`` per :data:`BATCH_SELECT` rows from a number series (MariaDB's
    ``seq_A_to_B`` table, PostgreSQL's ``generate_series``): 1,000,000 rows without sending
    them over the wire.  ``anchor`` becomes create_at/update_at (interval fires count from it);
    ``next_run_at`` and ``last_run_at`` are written as a running beat would have left them, and
    the settled cursor set to the newest change, so a starting beat finds nothing to correct
    (a restart on a settled table).
    """
    started = time.perf_counter()
    prefix = f"{key_prefix}-{uuid.uuid4().hex[:6]}-"
    pg = env.is_postgresql
    params: dict[str, Any] = {
        "prefix": prefix,
        "func": execute_func,
        "trigger": trigger,
        "spec": spec,
        "anchor": anchor if pg else utc_naive(anchor),
        "nxt": None if next_run_at is None else (next_run_at if pg else utc_naive(next_run_at)),
        "last": None if last_run_at is None else (last_run_at if pg else utc_naive(last_run_at)),
        "maxi": max_instances,
    }
    with env.engine.begin() as conn:
        quote = conn.dialect.identifier_preparer.quote
        columns = (
            f"task_key, {quote('desc')}, execute_func, {quote('trigger')}, spec, args, kwargs, is_valid, status,"
            " extra, create_at, update_at, max_instances, next_run_at, last_run_at"
        )
        for first in range(0, count, BATCH_SELECT):
            last_n = min(first + BATCH_SELECT, count) - 1
            if pg:
                source = (
                    "SELECT :prefix || lpad(g::text, 7, '0'), 'bench row', :func, :trigger, :spec,"
                    " (g % 97)::text || ',\"k' || (g % 13)::text || '\"', '{}', 1, 'ready', '{}',"
                    " CAST(:anchor AS timestamptz), CAST(:anchor AS timestamptz), :maxi,"
                    " CAST(:nxt AS timestamptz), CAST(:last AS timestamptz)"
                    f" FROM generate_series({first}, {last_n}) AS g"
                )
            else:
                source = (
                    "SELECT CONCAT(:prefix, LPAD(seq, 7, '0')), 'bench row', :func, :trigger, :spec,"
                    " CONCAT(seq % 97, ',\"k', seq % 13, '\"'), '{}', 1, 'ready', '{}', :anchor, :anchor, :maxi,"
                    f" :nxt, :last FROM seq_{first}_to_{last_n}"
                )
            conn.execute(text(f"INSERT INTO task ({columns}) {source}"), params)
    mark_settled(env)
    return time.perf_counter() - started


def task_ids(env: BenchEnv) -> list[int]:
    return [int(r[0]) for r in env.rows("SELECT id FROM task ORDER BY id")]


def seed_pending_runs(env: BenchEnv, ids: Sequence[int], scheduled_at: datetime) -> list[tuple[int, int, str, str]]:
    """One ``pending`` execute_task row per task id, as beat's claim writes it.

    Returns ``(run_id, task_id, trace_id, celery_id)`` for each.
    """
    now = utc_naive(datetime.now(UTC))
    sched = utc_naive(scheduled_at)
    planned = [(tid, uuid.uuid4().hex, str(uuid.uuid4())) for tid in ids]
    raw = env.engine.raw_connection()
    try:
        cur = raw.cursor()
        for start in range(0, len(planned), BATCH):
            cur.executemany(
                _RUN_INSERT,
                [
                    (tid, "pending", "{}", trace, now, now, sched, now, cid, 1, "bench")
                    for tid, trace, cid in planned[start : start + BATCH]
                ],
            )
        raw.commit()
        cur.close()
    finally:
        raw.close()
    by_trace = {r[1]: int(r[0]) for r in env.rows("SELECT id, trace_id FROM execute_task")}
    return [(by_trace[trace], tid, trace, cid) for tid, trace, cid in planned]


def next_grid_instant(period_s: int, at_least_in: float) -> datetime:
    """The first multiple of ``period_s`` (UTC epoch grid) at least ``at_least_in`` seconds away."""
    earliest = time.time() + at_least_in
    ts = (int(earliest) // period_s + 1) * period_s
    return datetime.fromtimestamp(ts, tz=UTC)


def seed_every_second(env: BenchEnv, rows: int, lead_s: float) -> tuple[datetime, float]:
    """``rows`` tasks on interval 1 s sharing one anchor, all due at each whole second from the first
    grid instant at least ``lead_s`` away (seeded as a running beat leaves them); that instant and
    the seconds seeding took (T5, T8)."""
    start = next_grid_instant(1, lead_s)
    took = seed_tasks(
        env,
        rows,
        trigger="interval",
        spec="1",
        anchor=whole_second(),
        next_run_at=start,
        last_run_at=start - timedelta(seconds=1),
    )
    return start, took

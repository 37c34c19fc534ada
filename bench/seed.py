"""Bulk seeding of the bench database with multi-row INSERTs (100,000 rows in a few seconds)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from bench.env import BenchEnv

#: Rows per executemany call; PyMySQL folds each call into multi-row INSERT statements.
BATCH = 5000

_TASK_INSERT = (
    "INSERT INTO task (task_key, `desc`, execute_func, `trigger`, spec, args, kwargs, is_valid, status, extra,"
    " create_at, update_at, max_instances, next_run_at, last_run_at)"
    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
)
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
    """Empty task, task_change and execute_task (TRUNCATE: no triggers fire, ids restart at 1)."""
    with env.engine.begin() as conn:
        for table in ("execute_task", "task_change", "task", "worker_heartbeat"):
            try:
                conn.exec_driver_sql(f"TRUNCATE TABLE `{table}`")
            except Exception:
                if table != "worker_heartbeat":
                    raise


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

    ``anchor`` becomes create_at/update_at (interval fires count from it); ``next_run_at`` and
    ``last_run_at`` are written as a running beat would have left them, so a starting beat
    finds nothing to correct (a restart on a settled table).
    """
    started = time.perf_counter()
    anchor_n = utc_naive(anchor)
    nxt = utc_naive(next_run_at) if next_run_at else None
    last = utc_naive(last_run_at) if last_run_at else None
    raw = env.engine.raw_connection()
    try:
        cur = raw.cursor()
        rows: list[Sequence[Any]] = []
        for i in range(count):
            rows.append(
                (
                    f"{key_prefix}-{i:07d}-{uuid.uuid4().hex[:6]}",
                    "bench row",
                    execute_func,
                    trigger,
                    spec,
                    f'{i % 97},"k{i % 13}"',
                    "{}",
                    1,
                    "ready",
                    "{}",
                    anchor_n,
                    anchor_n,
                    max_instances,
                    nxt,
                    last,
                )
            )
            if len(rows) >= BATCH:
                cur.executemany(_TASK_INSERT, rows)
                rows.clear()
        if rows:
            cur.executemany(_TASK_INSERT, rows)
        raw.commit()
        cur.close()
    finally:
        raw.close()
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

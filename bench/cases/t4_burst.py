"""T4: N rows on ``* * * * *``: from the minute boundary -> all N messages in Redis and N runs in the table.

The rows are seeded as a running beat leaves them (``last_run_at`` = the previous boundary,
``next_run_at`` = the target boundary B), early enough before B so beat is loaded well
before it.  From outside: ``LLEN celery`` sampled every 5 ms, ``COUNT(*)`` / ``COUNT(published_at)``
of ``execute_task`` every 20 ms, both against B.  Afterwards every message's Celery task id and
every ``(task_id, scheduled_at)`` is checked for duplicates.  Runs are claimed ahead of B, so
"all rows" is usually negative (already there at the boundary).

Quick runs use ``* * * * * */10`` (a 10 s period) so a boundary comes sooner.
"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

from sqlalchemy import case, func, select

from bench import measure, seed
from bench.context import CaseContext
from bench.env import running
from models.execution import ExecuteTask

RUNS = ExecuteTask.__table__

#: Seed this long before the boundary at least: beat start-up (about 1 s per 10,000 rows here) + margin.
LEAD_BASE_S = 3.0


def _spec(period: int) -> str:
    if period == 60:
        return "* * * * *"
    if 60 % period:
        raise ValueError(f"t4 period must divide 60, got {period}")
    return f"* * * * * */{period}"


def _totals() -> Any:
    """Runs, distinct ``(task_id, scheduled_at)``, pending and skipped runs: one statement for both dialects.

    (MariaDB's ``COUNT(DISTINCT a, b)`` and ``SUM(status = 'x')`` do not exist on PostgreSQL: the
    distinct pairs are counted over a ``SELECT DISTINCT`` subquery, the statuses with ``SUM(CASE ...)``.)
    """
    pairs = select(RUNS.c.task_id, RUNS.c.scheduled_at).distinct().subquery()

    def of_status(status: str) -> Any:
        return func.sum(case((RUNS.c.status == status, 1), else_=0))

    return select(
        func.count(),
        select(func.count()).select_from(pairs).scalar_subquery(),
        of_status("pending"),
        of_status("skipped"),
    ).select_from(RUNS)


def run(ctx: CaseContext) -> dict[str, Any]:
    n = ctx.rows
    period = ctx.t4_period
    ctx.fresh()
    boundary = seed.next_grid_instant(period, LEAD_BASE_S + n / 2000)
    seed_s = seed.seed_tasks(
        ctx.env,
        n,
        trigger="cron",
        spec=_spec(period),
        anchor=seed.whole_second(),
        next_run_at=boundary,
        last_run_at=boundary - timedelta(seconds=period),
    )
    ctx.log(f"  seeded {n:,} cron rows in {seed_s:.2f}s; boundary {boundary:%H:%M:%S}")
    b_ts = boundary.timestamp()
    broker = ctx.env.new_redis()
    beat = ctx.env.start_beat("t4-beat")
    with running(ctx.env, beat):
        beat.wait_ready()
        ready_before_s = b_ts - time.time()
        if ready_before_s < 1.5:
            ctx.log(f"  WARNING: beat ready only {ready_before_s:.2f}s before the boundary")
        msgs = measure.Sampler(lambda: measure.llen(broker), 0.005, stop_when=lambda v: v >= n)

        def count_rows() -> tuple[int, int]:
            with ctx.env.engine.connect() as conn:
                row = conn.exec_driver_sql("SELECT COUNT(*), COUNT(published_at) FROM execute_task").one()
            return int(row[0]), int(row[1])

        rows = measure.Sampler(count_rows, 0.02, stop_when=lambda v: v[0] >= n and v[1] >= n)
        ctx.wait_until(b_ts - 0.5)
        msgs.start()
        rows.start()
        timeout = b_ts + min(period - 3, 30)
        while (msgs.is_alive() or rows.is_alive()) and time.time() < timeout:
            time.sleep(0.01)
        msgs.stop()
        rows.stop()
        for sampler in (msgs, rows):
            if sampler.error:
                raise sampler.error
        beat_cpu = measure.cpu_seconds(beat.pid)
    headers = measure.message_ids(broker)
    broker.close()
    first_msg = msgs.first_time(lambda v: v > 0)
    all_msg = msgs.first_time(lambda v: v >= n)
    all_rows = rows.first_time(lambda v: v[0] >= n)
    all_pub = rows.first_time(lambda v: v[1] >= n)
    rows_at_b = next((v[0] for t, v in rows.samples if t >= b_ts), None)
    with ctx.env.engine.connect() as conn:
        total_rows, distinct_fires, pending, skipped = conn.execute(_totals()).one()
        # UTCDateTime binds the aware boundary as each dialect stores it (naive UTC / timestamptz).
        distinct_tasks_at_b = conn.scalar(
            select(func.count(RUNS.c.task_id.distinct())).where(RUNS.c.scheduled_at == boundary)
        )
    llen = len(headers)
    distinct_ids = len({h.get("id") for h in headers})

    def rel(t: float | None) -> float | None:
        return None if t is None else round(t - b_ts, 4)

    ctx.dirty()
    return {
        "first_message_s": rel(first_msg),
        "all_messages_s": rel(all_msg),
        "all_rows_s": rel(all_rows),
        "all_published_at_s": rel(all_pub),
        "rows_claimed_at_boundary": rows_at_b,
        # Missed: a row without its message at B (or its fire recorded as skipped).
        "missed": max(0, n - min(distinct_ids, int(distinct_tasks_at_b or 0))) + int(skipped or 0),
        # Doubled: a message twice, a fire twice in the table, or more fires than rows.
        "doubled": (llen - distinct_ids) + (int(total_rows) - int(distinct_fires)) + max(0, distinct_ids - n),
        "llen": llen,
        "distinct_message_ids": distinct_ids,
        "execute_task_rows": int(total_rows),
        "skipped_rows": int(skipped or 0),
        "beat_ready_before_boundary_s": round(ready_before_s, 2),
        "beat_cpu_s_total": round(beat_cpu, 3),
        "period_s": period,
        "seed_s": round(seed_s, 3),
    }

"""T3: an SQL UPDATE that makes one of N rows due now -> its message in the broker.

Each repetition turns a different idle row into a one-shot ``date`` job due 20 ms after the
edit (``UPDATE task SET trigger='date', spec='<now+20ms>Z'``; a date already past would never
fire), then polls ``LLEN celery`` every 5 ms until the message is there.  The edits are spread
over the poll phase with random pauses.  Measured from just before the UPDATE is sent.
"""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import text

from bench import measure
from bench.context import CaseContext
from bench.env import running

DUE_AFTER_S = 0.02
TIMEOUT_S = 30.0
DEFAULT_REPS = 15


def run(ctx: CaseContext) -> dict[str, Any]:
    seed_info = ctx.ensure_idle_rows()
    ctx.env.flush_broker()
    reps = ctx.reps or DEFAULT_REPS
    ids = [int(r[0]) for r in ctx.env.rows("SELECT id FROM task ORDER BY id")]
    picks = random.Random(6).sample(ids, min(reps, len(ids)))
    client = ctx.env.new_redis()
    samples: list[float] = []
    timeouts = 0
    beat = ctx.env.start_beat("t3-beat")
    ctx.dirty()  # the edited rows become completed one-shot jobs
    with running(ctx.env, beat):
        beat.wait_ready()
        time.sleep(2.0)
        with ctx.env.engine.connect() as conn:
            for task_id in picks:
                time.sleep(random.uniform(0.3, 1.3))
                before = measure.llen(client)
                due = datetime.now(UTC) + timedelta(seconds=DUE_AFTER_S)
                spec = due.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
                t0 = time.perf_counter()
                trigger = conn.dialect.identifier_preparer.quote(
                    "trigger"
                )  # a reserved word: `` on MySQL, "" on PostgreSQL
                conn.execute(
                    text(f"UPDATE task SET {trigger} = 'date', spec = :spec WHERE id = :id"),
                    {"spec": spec, "id": task_id},
                )
                conn.commit()
                deadline = t0 + TIMEOUT_S
                while measure.llen(client) <= before:
                    if time.perf_counter() > deadline:
                        timeouts += 1
                        break
                    time.sleep(0.005)
                else:
                    samples.append(time.perf_counter() - t0)
        published = ctx.env.scalar("SELECT COUNT(*) FROM execute_task WHERE published_at IS NOT NULL")
    client.close()
    return {
        "median_s": round(measure.median(samples), 3) if samples else None,
        "max_s": round(max(samples + [TIMEOUT_S] * timeouts), 3)
        if samples or timeouts
        else None,  # a timeout counts as >= TIMEOUT_S
        "min_s": round(min(samples), 3) if samples else None,
        "p90_s": round(measure.percentile(samples, 90), 3) if samples else None,
        "reps": len(picks),
        "timeouts": timeouts,
        "published_rows": published,
        "samples_s": [round(s, 3) for s in samples],
        **seed_info,
    }

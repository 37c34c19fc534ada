"""T5: N rows on interval 1 s for a window of ``seconds``: fires/s, lateness, none missed.

All rows share one anchor on a whole second, so N fires are due at every second S, S+1, ...
(the rows are seeded as a running beat leaves them: ``last_run_at`` = S-1, ``next_run_at`` = S).
Counted afterwards in ``execute_task`` for fires scheduled inside [S, S+seconds):

* fires/s = published runs / seconds; the lowest single second is reported too;
* lateness = ``published_at - scheduled_at`` (beat writes ``published_at`` after the batch publish,
  so it is an upper bound of when the message reached Redis); p50/p99/max;
* with ``--beats N``, N beats share the fires on the same database and Redis DB (their CPU summed);
* with ``--close-runs``, a stand-in for workers closes published runs (``bench/run_closer.py``): no
  pending backlog for housekeeping to scan, no task noted as waiting on an unconsumed queue;
* broker arrival, from outside: ``LLEN celery`` sampled every 5 ms; for each second k, the time the
  list reached N*(k+1) messages minus S+k (when the last message of that burst arrived).
"""

from __future__ import annotations

import time
from contextlib import ExitStack
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from bench import measure, seed
from bench.context import CaseContext
from bench.env import running
from bench.run_closer import RunCloser
from models.execution import ExecuteTask

RUNS = ExecuteTask.__table__

LEAD_BASE_S = 3.0
DRAIN_S = 2.0


def run(ctx: CaseContext) -> dict[str, Any]:
    n = ctx.rows
    seconds = max(1, int(round(ctx.seconds)))
    ctx.fresh()
    start, seed_s = seed.seed_every_second(ctx.env, n, LEAD_BASE_S + n / 1000)
    s_ts = start.timestamp()
    broker = ctx.env.new_redis()
    beats = [ctx.env.start_beat("t5-beat" if ctx.beats == 1 else f"t5-beat-{i + 1}") for i in range(ctx.beats)]
    with ExitStack() as stack:
        if ctx.close_runs:
            closer = RunCloser(ctx)
            closer.start()
            stack.callback(closer.close)
        for beat in beats:
            stack.enter_context(running(ctx.env, beat))
        for beat in beats:
            beat.wait_ready()
        ready_before_s = s_ts - time.time()
        msgs = measure.Sampler(lambda: measure.llen(broker), 0.005)
        ctx.wait_until(s_ts - 0.5)
        msgs.start()
        ctx.wait_until(s_ts)
        cpu0 = sum(measure.cpu_seconds(b.pid) for b in beats)
        ctx.wait_until(s_ts + seconds)
        cpu1 = sum(measure.cpu_seconds(b.pid) for b in beats)
        rss = max(measure.peak_rss_mb(b.pid) for b in beats)
        time.sleep(DRAIN_S)
        msgs.stop()
        if msgs.error:
            raise msgs.error
    broker.close()
    # UTCDateTime binds the aware bounds and returns aware UTC datetimes on MariaDB and PostgreSQL alike;
    # second and lateness are computed here (no UNIX_TIMESTAMP / TIMESTAMPDIFF, which are MariaDB's).
    with ctx.env.engine.connect() as conn:
        rows = conn.execute(
            select(RUNS.c.scheduled_at, RUNS.c.published_at, RUNS.c.status).where(
                RUNS.c.scheduled_at >= start, RUNS.c.scheduled_at < start + timedelta(seconds=seconds)
            )
        ).all()
    published = [r for r in rows if r.published_at is not None]
    skipped = sum(1 for r in rows if r.status == "skipped")
    lateness = [(r.published_at - r.scheduled_at).total_seconds() for r in published]
    per_second: dict[int, int] = {}
    for r in published:
        second = int(r.scheduled_at.timestamp())
        per_second[second] = per_second.get(second, 0) + 1
    arrivals: list[float] = []
    for k in range(seconds):
        reached = msgs.first_time(lambda v, want=n * (k + 1): v >= want)
        if reached is not None:
            arrivals.append(reached - (s_ts + k))
    expected = n * seconds
    ctx.dirty()
    return {
        "fires_per_s": round(len(published) / seconds, 1),
        "min_fires_in_a_second": min((per_second.get(int(s_ts) + k, 0) for k in range(seconds)), default=0),
        "p99_lateness_s": round(measure.percentile(lateness, 99), 4) if lateness else None,
        "p50_lateness_s": round(measure.percentile(lateness, 50), 4) if lateness else None,
        "max_lateness_s": round(max(lateness), 4) if lateness else None,
        "missed": expected - len(published),
        "skipped": skipped,
        "expected_fires": expected,
        "published_fires": len(published),
        "broker_burst_complete_p50_s": round(measure.percentile(arrivals, 50), 4) if arrivals else None,
        "broker_burst_complete_p99_s": round(measure.percentile(arrivals, 99), 4) if arrivals else None,
        "broker_bursts_complete": len(arrivals),
        "beats": ctx.beats,
        "runs_closed_by_stand_in": ctx.close_runs,
        # Summed over the beats (CPU-seconds per second); peak RSS is the largest beat's.
        "beat_cpu_util": round((cpu1 - cpu0) / seconds, 3),
        "beat_peak_rss_mb": round(rss, 1),
        "beat_ready_before_start_s": round(ready_before_s, 2),
        "window_s": seconds,
        "seed_s": round(seed_s, 3),
    }

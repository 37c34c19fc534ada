"""T1: ``celery -A workers beat`` start with N enabled rows -> ready to dispatch; peak RSS.

"Ready" is the log line ``tablebeat: ready in Xs, tasks scheduled from the table``, written when
beat is about to tick (it loads nothing of the table: rows stay there, found through an index).
Time counts from spawning the process (interpreter + Celery start-up included).
"""

from __future__ import annotations

import time
from typing import Any

from bench import measure
from bench.context import CaseContext
from bench.env import running


def run(ctx: CaseContext) -> dict[str, Any]:
    seed_info = ctx.ensure_idle_rows()
    ctx.env.flush_broker()
    beat = ctx.env.start_beat("t1-beat")
    with running(ctx.env, beat):
        startup_s, match = beat.wait_ready()
        rss_ready = measure.peak_rss_mb(beat.pid)
        cpu_ready = measure.cpu_seconds(beat.pid)
        # Peak RSS over start-up and the first ticks (row-state writes, first refresh would come at 10 s).
        time.sleep(2.0)
        rss_after = measure.peak_rss_mb(beat.pid)
        current_rss = measure.status_kb(beat.pid, "VmRSS") / 1024.0
        llen = measure.llen(ctx.env.redis)
    return {
        "startup_s": round(startup_s, 3),
        "peak_rss_mb": round(max(rss_ready, rss_after), 1),
        "rss_at_ready_mb": round(rss_ready, 1),
        "rss_now_mb": round(current_rss, 1),
        "cpu_to_ready_s": round(cpu_ready, 3),
        "settled_at_start": int(match.group(2)),
        "load_s_logged": float(match.group(1)),
        "messages_during_start": llen,
        **seed_info,
    }

"""T2: beat CPU per minute while idle with N rows (nothing due), and what it costs MariaDB.

Beat CPU is utime+stime from ``/proc/<pid>/stat`` over the window, after start-up has settled.
The MariaDB cost is the server's global ``Questions`` / ``Com_select`` and ``mariadbd`` CPU over the
window minus the same counters over an equal baseline window with no beat running (other clients of
the server are in both windows).
"""

from __future__ import annotations

import time
from typing import Any

from bench import measure
from bench.context import CaseContext
from bench.env import running

SETTLE_S = 3.0
COUNTERS = ("Questions", "Com_select", "Com_update", "Com_insert", "Com_commit")


def _window(ctx: CaseContext, seconds: float, pid: int | None) -> dict[str, float]:
    with ctx.env.engine.connect() as conn:
        before = measure.global_status(conn, COUNTERS)
        db_cpu0 = measure.mariadbd_cpu()
        cpu0 = measure.cpu_seconds(pid) if pid else 0.0
        t0 = time.perf_counter()
        time.sleep(seconds)
        elapsed = time.perf_counter() - t0
        cpu1 = measure.cpu_seconds(pid) if pid else 0.0
        db_cpu1 = measure.mariadbd_cpu()
        after = measure.global_status(conn, COUNTERS)
    per_min = 60.0 / elapsed
    # Both windows run the same SHOW statements, so the baseline subtraction cancels them.
    out = {name: (after[name] - before[name]) * per_min for name in COUNTERS}
    out["beat_cpu"] = (cpu1 - cpu0) * per_min
    out["db_cpu"] = ((db_cpu1 - db_cpu0) * per_min) if db_cpu0 is not None and db_cpu1 is not None else float("nan")
    out["elapsed"] = elapsed
    return out


def run(ctx: CaseContext) -> dict[str, Any]:
    seed_info = ctx.ensure_idle_rows()
    ctx.env.flush_broker()
    baseline_s = min(ctx.seconds, 30.0)
    base = _window(ctx, baseline_s, None)
    beat = ctx.env.start_beat("t2-beat")
    with running(ctx.env, beat):
        beat.wait_ready()
        time.sleep(SETTLE_S)
        win = _window(ctx, ctx.seconds, beat.pid)
        llen = measure.llen(ctx.env.redis)
    return {
        "beat_cpu_s_per_min": round(win["beat_cpu"], 4),
        "window_s": round(win["elapsed"], 1),
        "baseline_window_s": round(base["elapsed"], 1),
        "db_questions_per_min": round(win["Questions"] - base["Questions"], 1),
        "db_com_select_per_min": round(win["Com_select"] - base["Com_select"], 1),
        "db_com_commit_per_min": round(win["Com_commit"] - base["Com_commit"], 1),
        "db_com_update_per_min": round(win["Com_update"] - base["Com_update"], 1),
        "mariadbd_cpu_s_per_min": round(win["db_cpu"] - base["db_cpu"], 4),
        "mariadbd_cpu_s_per_min_raw": round(win["db_cpu"], 4),
        "db_questions_per_min_raw": round(win["Questions"], 1),
        "messages_while_idle": llen,
        **seed_info,
    }

"""T2: beat CPU per minute while idle with N rows (nothing due), and what it costs MariaDB.

Beat CPU is utime+stime from ``/proc/<pid>/stat`` over the window, after start-up has settled.
What it costs MariaDB, two ways:

* exactly, from outside: the CPU of the mariadbd threads serving beat's connections (found in
  ``information_schema.PROCESSLIST`` by database, ``TID`` -> ``/proc/<mariadbd>/task/<tid>/stat``);
* roughly: the server's global ``Questions`` / ``Com_*`` and whole ``mariadbd`` CPU over the window
  minus the same over a baseline window with no beat (other clients of a shared server add noise
  to both; the ``_raw`` numbers show how much).
"""

from __future__ import annotations

import math
import time
from typing import Any

from bench import measure
from bench.context import CaseContext
from bench.env import running

SETTLE_S = 3.0
COUNTERS = ("Questions", "Com_select", "Com_update", "Com_insert", "Com_commit")


def _window(ctx: CaseContext, seconds: float, pid: int | None) -> dict[str, float]:
    if ctx.env.is_postgresql:  # the server-side counters below are MariaDB's: beat's own CPU only
        cpu0, t0 = (measure.cpu_seconds(pid) if pid else 0.0), time.perf_counter()
        time.sleep(seconds)
        elapsed = time.perf_counter() - t0
        cpu1 = measure.cpu_seconds(pid) if pid else 0.0
        nan = float("nan")
        return {
            **dict.fromkeys(COUNTERS, nan),
            "beat_cpu": (cpu1 - cpu0) * 60.0 / elapsed,
            "db_cpu": nan,
            "conn_cpu": nan,
            "connections": nan,
            "elapsed": elapsed,
        }
    database = ctx.env.engine.url.database or ""
    ctx.env.engine.dispose()  # only beat's connections (and this one) use the bench database now
    with ctx.env.engine.connect() as conn:
        before = measure.global_status(conn, COUNTERS)
        threads0 = measure.connection_threads(conn, database)
        thr_cpu0 = measure.mariadbd_threads_cpu(list(threads0.values()))
        db_cpu0 = measure.mariadbd_cpu()
        cpu0 = measure.cpu_seconds(pid) if pid else 0.0
        t0 = time.perf_counter()
        time.sleep(seconds)
        elapsed = time.perf_counter() - t0
        cpu1 = measure.cpu_seconds(pid) if pid else 0.0
        db_cpu1 = measure.mariadbd_cpu()
        threads1 = measure.connection_threads(conn, database)
        thr_cpu1 = measure.mariadbd_threads_cpu(list(threads1.values()))
        after = measure.global_status(conn, COUNTERS)
    per_min = 60.0 / elapsed
    # Both windows run the same SHOW statements, so the baseline subtraction cancels them.
    out = {name: (after[name] - before[name]) * per_min for name in COUNTERS}
    out["beat_cpu"] = (cpu1 - cpu0) * per_min
    out["db_cpu"] = ((db_cpu1 - db_cpu0) * per_min) if db_cpu0 is not None and db_cpu1 is not None else float("nan")
    # Connections opened during the window count from zero; closed ones are lost (beat keeps its pool).
    out["conn_cpu"] = sum(cpu - thr_cpu0.get(tid, 0.0) for tid, cpu in thr_cpu1.items()) * per_min
    out["connections"] = float(len(threads1))
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
        "mariadbd_cpu_s_per_min_for_beat": round(win["conn_cpu"], 4),
        "beat_db_connections": None if math.isnan(win["connections"]) else int(win["connections"]),
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

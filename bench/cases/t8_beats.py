"""T8: several beats share the work: N rows on interval 1 s, one beat, then three, the same window.

Issue 14 item 2: due fires are divided among the beats (``FOR UPDATE SKIP LOCKED`` on the timeline
rows), each fire once, and the database's CPU per fire with 3 beats is at most 1.5x one beat's.
Each run reseeds the table as T5 does (one anchor: N fires due at every whole second), starts its
beats on the same database and Redis DB, waits until all are ready plus a warm-up, and measures
over ``seconds`` whole seconds, stretched by whole seconds while the beats' connections have used
less than 10 ticks of CPU (small ``--rows``):

* database CPU, from ``/proc``: the server threads (MariaDB: ``PROCESSLIST.TID``) or backends
  (PostgreSQL: ``pg_stat_activity.pid``) serving the beats' connections; and the whole server
  (``mariadbd``; the postmaster and its children), which other clients of a shared server inflate;
* the beats' own CPU, summed;
* fires: ``execute_task`` rows published for instants in the window, distinct ``(task_id,
  scheduled_at)``, duplicates (rows, and messages in Redis with the same run id: no worker consumes
  them), missed, and the division by ``claimed_by`` (a beat's token holds its pid).

Per fire = CPU over the window / fires published for the window's instants.

No worker runs (two cores cannot run 1,000 jobs a second beside three beats): a stand-in closes
published runs twice a second (``status = 'success'``), through a connection of its own that is
not counted as a beat's. Without it, every fire of the run would stay ``pending``, and each beat's
housekeeping would scan tens of thousands of pending runs every refresh, which a deployment with
workers never has: the three-beat run would measure three such scans, not the sharing.
"""

from __future__ import annotations

import math
import os
import time
from collections import Counter
from contextlib import ExitStack
from datetime import UTC, datetime
from typing import Any

from bench import measure, seed
from bench.context import CaseContext
from bench.env import CeleryProcess, running
from bench.run_closer import RunCloser
from protocol.message import RUN_ID_HEADER

BEATS = (1, 3)
LEAD_BASE_S = 3.0
#: After the last beat is ready: the first claims and any catch-up stay out of the window.
WARMUP_S = 2.0
DRAIN_S = 2.0
#: ``/proc`` counts CPU in 10 ms ticks: a window is stretched by whole seconds until the beats'
#: connections used at least this much (a ratio of one or two ticks is noise, of none undefined) ...
MIN_CONN_CPU_S = 0.1
#: ... up to this many times the asked-for window.
MAX_STRETCH = 8


def _snapshot(ctx: CaseContext, conn: Any, beats: list[CeleryProcess], closer: RunCloser) -> dict[str, Any]:
    """CPU seconds so far: whole database server, each server thread/backend of another client (the
    run closer's excepted), each beat."""
    database = ctx.env.engine.url.database or ""
    # Every server thread's CPU so far (MariaDB): a cached thread that serves a beat's connection
    # opened in the window counts from here, not from its first connection long ago.
    threads: dict[int, float] = {}
    if ctx.env.is_postgresql:
        pids = [pid for pid in measure.backend_pids(conn, database) if pid != closer.server_id]
        server, conns = measure.postgres_cpu(), measure.processes_cpu(pids)
    else:
        serving = measure.connection_threads(conn, database)
        server, threads = measure.mariadbd_cpu(), measure.mariadbd_all_threads_cpu()
        conns = {
            tid: threads[tid] for conn_id, tid in serving.items() if conn_id != closer.server_id and tid in threads
        }
    return {
        "t": time.perf_counter(),
        "server": server,
        "conns": conns,
        "threads": threads,
        "beats": sum(measure.cpu_seconds(b.pid) for b in beats),
    }


def _per_fire_ms(cpu_s: float | None, fires: int) -> float | None:
    return None if cpu_s is None or not fires else round(cpu_s * 1000.0 / fires, 4)


def _ratio(three: dict[str, Any], one: dict[str, Any], cpu_key: str) -> float | None:
    """CPU per fire with 3 beats / with 1 (``/proc`` counts in ticks: the rounded seconds are exact)."""
    per = [
        None if r[cpu_key] is None or not r["distinct_fires"] else r[cpu_key] / r["distinct_fires"]
        for r in (three, one)
    ]
    return None if per[0] is None or not per[1] else round(per[0] / per[1], 3)


def _window(
    ctx: CaseContext, count: int, seconds: int
) -> tuple[int, int, dict[str, Any], dict[str, Any], dict[str, str]]:
    """Seed, start ``count`` beats, measure ``seconds`` (or more, see :data:`MIN_CONN_CPU_S`) after a
    warm-up; the window, its snapshots, pid -> beat."""
    ctx.fresh()
    first, _ = seed.seed_every_second(ctx.env, ctx.rows, LEAD_BASE_S + ctx.rows / 1000)
    beats = [ctx.env.start_beat(f"t8-{count}beat-{i + 1}") for i in range(count)]
    with ExitStack() as stack:
        for beat in beats:
            stack.enter_context(running(ctx.env, beat))
        for beat in beats:
            beat.wait_ready()
        lo = int(max(first.timestamp(), math.ceil(time.time())) + WARMUP_S)
        ctx.env.engine.dispose()  # the bench's pooled connections would be counted as the beats'
        closer = RunCloser(ctx)
        closer.start()
        stack.callback(closer.close)
        with ctx.env.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            ctx.wait_until(lo)
            before = _snapshot(ctx, conn, beats, closer)
            hi = lo + seconds
            while True:
                ctx.wait_until(hi)
                after = _snapshot(ctx, conn, beats, closer)
                if _conn_cpu(before, after) >= MIN_CONN_CPU_S or hi - lo >= seconds * MAX_STRETCH:
                    break
                hi += 1
        time.sleep(DRAIN_S)
    return lo, hi, before, after, {str(b.pid): b.name for b in beats}


def _conn_cpu(before: dict[str, Any], after: dict[str, Any]) -> float:
    """CPU of the beats' connections between two snapshots. Connections opened in between count from
    their thread's CPU at the start (zero for a new thread or backend); closed ones are lost (beats
    keep their pools)."""
    return sum(cpu - before["conns"].get(k, before["threads"].get(k, 0.0)) for k, cpu in after["conns"].items())


def _fires(ctx: CaseContext, lo: int, hi: int, by_pid: dict[str, str]) -> dict[str, Any]:
    """What the beats left in ``execute_task`` for the window's instants and in the broker (no worker
    consumed; the run closer marked published runs ``success``)."""
    messages = Counter(h.get(RUN_ID_HEADER) for h in measure.message_ids(ctx.env.redis))
    messages.pop(None, None)  # not a fire's message (none expected)
    bounds = [datetime.fromtimestamp(ts, tz=UTC) for ts in (lo, hi)]
    if not ctx.env.is_postgresql:
        bounds = [seed.utc_naive(b) for b in bounds]
    rows = ctx.env.rows(
        "SELECT task_id, scheduled_at, published_at, claimed_by, status FROM execute_task"
        " WHERE scheduled_at >= :lo AND scheduled_at < :hi",
        lo=bounds[0],
        hi=bounds[1],
    )
    published = [r for r in rows if r[2] is not None]
    distinct = len({(r[0], r[1]) for r in published})
    # A token is "host:pid:random"; claims of anything else (none expected) are shown as they are.
    owners = Counter(by_pid.get(str(r[3]).rsplit(":", 2)[-2] if r[3] else "", str(r[3])) for r in published)
    by_instant: dict[Any, set[str]] = {}
    for r in published:
        by_instant.setdefault(r[1], set()).add(str(r[3]))
    lateness = [(r[2] - r[1]).total_seconds() for r in published]
    expected = ctx.rows * (hi - lo)
    return {
        "fires": len(published),
        "distinct_fires": distinct,
        "expected_fires": expected,
        "missed": expected - distinct,
        "skipped": sum(1 for r in rows if r[4] == "skipped"),
        "duplicate_rows": len(published) - distinct,
        "duplicate_messages": sum(c - 1 for c in messages.values() if c > 1),
        "messages": sum(messages.values()),
        "fires_by_beat": {name: owners.get(name, 0) for name in by_pid.values()}
        | {k: v for k, v in owners.items() if k not in by_pid.values()},
        # Instants whose fires more than one beat claimed (else the beats took turns by whole instants).
        "instants_shared": sum(1 for claimers in by_instant.values() if len(claimers) > 1),
        "instants": len(by_instant),
        "p50_lateness_s": round(measure.percentile(lateness, 50), 4) if lateness else None,
        "p99_lateness_s": round(measure.percentile(lateness, 99), 4) if lateness else None,
    }


def _run(ctx: CaseContext, count: int, seconds: int) -> dict[str, Any]:
    load = os.getloadavg()[0]
    lo, hi, before, after, by_pid = _window(ctx, count, seconds)
    out: dict[str, Any] = {"beats": count, "seconds": hi - lo, **_fires(ctx, lo, hi, by_pid)}
    ctx.env.flush_broker()
    fires = out["distinct_fires"]
    server = None if None in (before["server"], after["server"]) else after["server"] - before["server"]
    conns = _conn_cpu(before, after)
    beats = after["beats"] - before["beats"]
    out |= {
        "db_cpu_ms_per_fire": _per_fire_ms(conns, fires),
        "db_server_cpu_ms_per_fire": _per_fire_ms(server, fires),
        "beat_cpu_ms_per_fire": _per_fire_ms(beats, fires),
        "db_conn_cpu_s": round(conns, 3),
        "db_server_cpu_s": None if server is None else round(server, 3),
        "beats_cpu_s": round(beats, 3),
        "db_connections": len(after["conns"]),
        # Open at the end but not at the start: the beats' pools opened connections in the window.
        "db_connections_opened": len(set(after["conns"]) - set(before["conns"])),
        "window_s": round(after["t"] - before["t"], 2),
        "loadavg_1m": round(load, 2),
    }
    ctx.log(
        f"  {count} beat(s): {fires:,} of {out['expected_fires']:,} fires in {out['seconds']} s,"
        f" {out['duplicate_rows'] + out['duplicate_messages']} duplicates, by beat"
        f" {list(out['fires_by_beat'].values())} ({out['instants_shared']} of {out['instants']} instants shared);"
        f" DB CPU/fire {out['db_cpu_ms_per_fire']} ms (connections), {out['db_server_cpu_ms_per_fire']} ms (server);"
        f" beats {out['beat_cpu_ms_per_fire']} ms"
    )
    return out


def run(ctx: CaseContext) -> dict[str, Any]:
    seconds = max(1, int(round(ctx.seconds)))
    one, three = (_run(ctx, count, seconds) for count in BEATS)
    return {
        "db_cpu_per_fire_ratio": _ratio(three, one, "db_conn_cpu_s"),
        "db_server_cpu_per_fire_ratio": _ratio(three, one, "db_server_cpu_s"),
        "beat_cpu_per_fire_ratio": _ratio(three, one, "beats_cpu_s"),
        "beats_claiming": sum(1 for v in three["fires_by_beat"].values() if v),
        "duplicates": sum(r["duplicate_rows"] + r["duplicate_messages"] for r in (one, three)),
        "missed": one["missed"] + three["missed"],
        "one_beat": one,
        "three_beats": three,
        "window_s": seconds,
    }

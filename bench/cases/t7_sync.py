"""T7: one sync that finds nothing changed, N rows, timed in-process against the bench database.

``probe``: what beat does every ``poll_seconds`` -- ``engine.begin()`` + ``store.read_changes``
(a primary-key range probe of ``task_change``) + commit.  ``fingerprint``: the safety-net marks
of ``task`` beat reads every ``refresh_seconds`` (``MAX(update_at)``, ``MAX(id)``: index lookups);
``refresh sync``: both in one transaction, as beat does every ``refresh_seconds``; ``due_scan``:
the probe plus the timeline's first entry and an empty due-row scan (``FOR UPDATE SKIP LOCKED``),
what a claim that finds nothing costs.
Median (and p95) of ``reps`` (200) after 10 warm-up runs.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from bench import measure
from bench.context import CaseContext

DEFAULT_REPS = 200
WARMUP = 10


def _probe_function(store: Any, newest: int) -> Callable[[Any], set[int]]:
    """``conn -> changed task ids`` with beat's cursor, for either ``read_changes`` signature."""
    if hasattr(store, "ChangeCursor"):  # read_changes(conn, cursor, now_m) -> set, cursor advanced in place
        cursor = store.ChangeCursor(newest)
        return lambda conn: set(store.read_changes(conn, cursor, time.monotonic()))
    return lambda conn: set(store.read_changes(conn, newest)[1])  # read_changes(conn, after_id) -> (id, set)


def run(ctx: CaseContext) -> dict[str, Any]:
    from datetime import UTC, datetime

    from models import make_engine
    from scheduler import store, timeline

    seed_info = ctx.ensure_idle_rows()
    reps = ctx.reps or DEFAULT_REPS
    engine = make_engine(ctx.env.db_url)
    try:
        with engine.begin() as conn:
            newest = store.change_cursor(conn)
        read_changes = _probe_function(store, newest)

        def probe() -> None:
            with engine.begin() as conn:
                read_changes(conn)

        def fingerprint() -> None:
            with engine.begin() as conn:
                timeline.newest_marks(conn)

        def refresh() -> None:
            with engine.begin() as conn:
                read_changes(conn)
                timeline.newest_marks(conn)

        def due_scan() -> None:
            with engine.begin() as conn:
                read_changes(conn)
                timeline.next_due_at(conn)
                timeline.due_rows(conn, datetime.now(UTC), 2000)

        timings: dict[str, list[float]] = {}
        for name, fn in (
            ("probe", probe),
            ("fingerprint", fingerprint),
            ("refresh_sync", refresh),
            ("due_scan", due_scan),
        ):
            for _ in range(WARMUP):
                fn()
            samples = []
            for _ in range(reps):
                t0 = time.perf_counter()
                fn()
                samples.append((time.perf_counter() - t0) * 1000.0)
            timings[name] = samples
        with engine.begin() as conn:
            changed = read_changes(conn)
    finally:
        engine.dispose()
    out: dict[str, Any] = {}
    for name, samples in timings.items():
        out[f"{name}_ms"] = round(measure.median(samples), 3)
        out[f"{name}_p95_ms"] = round(measure.percentile(samples, 95), 3)
    out["reps"] = reps
    out["changes_found"] = len(changed)
    out.update(seed_info)
    return out

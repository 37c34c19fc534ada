"""T7: one sync that finds nothing changed, N rows, timed in-process against the bench database.

``probe``: what beat does every ``poll_seconds`` -- ``engine.begin()`` + ``store.read_changes``
(a primary-key range probe of ``task_change``) + commit.  ``fingerprint``: the safety-net summary
of ``task`` (``COUNT(*)``, ``MAX(update_at)``, ``MAX(id)``, ``SUM(is_valid)``) alone;
``refresh sync``: both in one transaction, as beat does every ``refresh_seconds``.  Median (and p95)
of ``reps`` (200) after 10 warm-up runs.
"""

from __future__ import annotations

import time
from typing import Any

from bench import measure
from bench.context import CaseContext

DEFAULT_REPS = 200
WARMUP = 10


def run(ctx: CaseContext) -> dict[str, Any]:
    from models import make_engine
    from scheduler import store

    seed_info = ctx.ensure_idle_rows()
    reps = ctx.reps or DEFAULT_REPS
    engine = make_engine(ctx.env.db_url)
    try:
        with engine.begin() as conn:
            cursor = store.change_cursor(conn)

        def probe() -> None:
            with engine.begin() as conn:
                store.read_changes(conn, cursor)

        def fingerprint() -> None:
            with engine.begin() as conn:
                store.fingerprint(conn)

        def refresh() -> None:
            with engine.begin() as conn:
                store.read_changes(conn, cursor)
                store.fingerprint(conn)

        timings: dict[str, list[float]] = {}
        for name, fn in (("probe", probe), ("fingerprint", fingerprint), ("refresh_sync", refresh)):
            for _ in range(WARMUP):
                fn()
            samples = []
            for _ in range(reps):
                t0 = time.perf_counter()
                fn()
                samples.append((time.perf_counter() - t0) * 1000.0)
            timings[name] = samples
        with engine.begin() as conn:
            changed = store.read_changes(conn, cursor)[1]
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

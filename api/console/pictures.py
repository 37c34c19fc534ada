"""Geometry of the console's server-rendered SVG: per-job timelines and the system chart."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection

from api.console.formatting import absolute
from service import console_queries as queries
from service.schedules import upcoming_fires

#: The timeline shows this much before and after now.
WINDOW = timedelta(hours=24)
BUCKET_S = 15 * 60
BUCKETS_PER_SIDE = int(WINDOW.total_seconds()) // BUCKET_S
TIMELINE_WIDTH = 960
#: Future fires computed per job; a denser schedule fills every later bucket.
MAX_FUTURE_FIRES = 2000
CHART_MINUTES = 60
CHART_WIDTH, CHART_HEIGHT = 600, 120


@dataclass(frozen=True, slots=True)
class Bar:
    x: float
    width: float
    status: str  # a run status, or "planned" for future fires
    title: str


@dataclass(frozen=True, slots=True)
class Timeline:
    """One job's last 24 h of runs (by worst outcome per 15 min) and next 24 h of fires."""

    task_id: int
    task_key: str
    bars: list[Bar]
    now_x: float
    width: int = TIMELINE_WIDTH


@dataclass(frozen=True, slots=True)
class Chart:
    """Runs and failures per minute over the last hour, as SVG polyline points."""

    runs_points: str
    failures_points: str
    peak: int
    total_runs: int
    total_failures: int
    width: int = CHART_WIDTH
    height: int = CHART_HEIGHT


def timelines(conn: Connection, rows: Sequence[Any], now: datetime, default_timezone: str) -> list[Timeline]:
    """Timelines of ``rows`` (task rows from :mod:`queries`), one grouped query for all of them."""
    start = now - WINDOW
    past = queries.run_buckets(conn, [row.id for row in rows], start, now, BUCKET_S)
    return [_timeline(row, past.get(row.id, {}), now, default_timezone) for row in rows]


def _timeline(row: Any, past: dict[int, Counter[str]], now: datetime, default_timezone: str) -> Timeline:
    step = TIMELINE_WIDTH / (2 * BUCKETS_PER_SIDE)
    start = now - WINDOW
    bars = []
    for bucket, statuses in sorted(past.items()):
        if not 0 <= bucket < BUCKETS_PER_SIDE:
            continue
        begins = start + timedelta(seconds=bucket * BUCKET_S)
        counts = ", ".join(f"{count} {status}" for status, count in statuses.most_common())
        bars.append(Bar(bucket * step, step, queries.worst(statuses), f"{absolute(begins)} +15 min: {counts}"))
    for bucket, count in sorted(_future_buckets(row, now, default_timezone).items()):
        begins = now + timedelta(seconds=bucket * BUCKET_S)
        x = (BUCKETS_PER_SIDE + bucket) * step
        bars.append(Bar(x, step, "planned", f"{absolute(begins)} +15 min: {count} planned"))
    return Timeline(row.id, row.task_key, bars, BUCKETS_PER_SIDE * step)


def _future_buckets(row: Any, now: datetime, default_timezone: str) -> dict[int, int | str]:
    fires = upcoming_fires(row, default_timezone, now, MAX_FUTURE_FIRES)
    found: dict[int, int | str] = {}
    for fire in fires:
        bucket = int((fire - now).total_seconds() // BUCKET_S)
        if bucket >= BUCKETS_PER_SIDE:
            return found
        found[bucket] = int(found.get(bucket, 0)) + 1
    if len(fires) == MAX_FUTURE_FIRES:
        # Too dense to count: every bucket after the last computed fire has fires too.
        last = int((fires[-1] - now).total_seconds() // BUCKET_S)
        for bucket in range(last, BUCKETS_PER_SIDE):
            found[bucket] = "many"
    return found


def system_chart(conn: Connection, now: datetime) -> Chart:
    """Runs and failures per minute in the last :data:`CHART_MINUTES` minutes (this minute included)."""
    start = now.replace(second=0, microsecond=0) - timedelta(minutes=CHART_MINUTES - 1)
    minutes = queries.system_minutes(conn, start, CHART_MINUTES)
    peak = max((runs for runs, _ in minutes), default=0)
    scale = (CHART_HEIGHT - 10) / max(peak, 1)
    step = CHART_WIDTH / (CHART_MINUTES - 1)

    def points(values: Sequence[int]) -> str:
        return " ".join(f"{i * step:.1f},{CHART_HEIGHT - value * scale:.1f}" for i, value in enumerate(values))

    return Chart(
        runs_points=points([runs for runs, _ in minutes]),
        failures_points=points([failures for _, failures in minutes]),
        peak=peak,
        total_runs=sum(runs for runs, _ in minutes),
        total_failures=sum(failures for _, failures in minutes),
    )

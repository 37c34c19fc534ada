"""The dead-worker rule as SQL (lost-run detection by beat, takeover of redelivered runs by a worker)."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, or_, select

from models.tables import execute_task_table, worker_heartbeat_table


def dead_before(now: datetime, dead_seconds: float) -> datetime:
    """The instant before which a silent worker counts as dead."""
    return now - timedelta(seconds=dead_seconds)


def run_worker_died(cutoff: datetime) -> ColumnElement[bool]:
    """SQL, true for an ``execute_task`` row whose worker is dead (the one statement of that rule).

    Dead means: its heartbeat is older than ``cutoff``; or it has no heartbeat row (a clean
    shutdown removed it, or it never wrote one) and the run began before ``cutoff``; or it
    restarted under the same hostname after the run began (the run died with the old process).
    Beat uses it to mark ``running`` rows lost, a worker to take over a redelivered one.
    """
    heartbeat, run = worker_heartbeat_table.c, execute_task_table.c
    same_host = heartbeat.hostname == run.worker
    silent = select(heartbeat.hostname).where(same_host, heartbeat.seen_at < cutoff).exists()
    restarted = select(heartbeat.hostname).where(same_host, heartbeat.started_at > run.started_at).exists()
    gone = and_(~select(heartbeat.hostname).where(same_host).exists(), run.started_at < cutoff)
    return and_(run.worker.is_not(None), run.worker != "", or_(silent, restarted, gone))

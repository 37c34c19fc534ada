"""System-wide gauges read from SQL at scrape time: tasks by status, runs in flight, oldest pending.

Served by the API's ``/metrics``: one place answers for the whole system, whatever the
number of beats and workers. Each scrape runs a few indexed queries (``task.status``,
``execute_task(status, ...)``, ``worker_heartbeat``), about a millisecond at 100,000 tasks.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import Engine, func, select
from sqlalchemy.exc import SQLAlchemyError

from conf.settings import default
from models import ExecuteTask, RunStatus, Task, TaskStatus, WorkerHeartbeat

logger = logging.getLogger("tablebeat.metrics")

#: Run statuses that are still moving (the final ones only grow; count those with the worker counters).
IN_FLIGHT = (RunStatus.PENDING.value, RunStatus.RUNNING.value, RunStatus.RETRYING.value)


class SqlCollector(Collector):
    """Collects the gauges with one short read-only transaction per scrape."""

    def __init__(self, engine: Engine, worker_alive_seconds: float = default("worker_dead_seconds")) -> None:
        """``worker_alive_seconds``: a worker whose heartbeat is older is not counted (beat's dead-worker bound)."""
        self.engine = engine
        self.worker_alive_seconds = worker_alive_seconds

    def collect(self) -> Iterator[Any]:
        started = time.perf_counter()
        up = GaugeMetricFamily("tablebeat_database_up", "1 when the API could read the database for this scrape.")
        try:
            families = list(self._read())
        except SQLAlchemyError as exc:
            logger.warning("metrics: database unreadable: %s", getattr(exc, "orig", exc))
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from families
        took = GaugeMetricFamily("tablebeat_metrics_query_seconds", "Time the SQL of this scrape took.")
        took.add_metric([], time.perf_counter() - started)
        yield took

    def _read(self) -> Iterator[Any]:
        now = datetime.now(UTC)
        with self.engine.connect() as conn:
            by_status = dict(conn.execute(select(Task.status, func.count()).group_by(Task.status)).all())
            runs = dict(
                conn.execute(
                    select(ExecuteTask.status, func.count())
                    .where(ExecuteTask.status.in_(IN_FLIGHT))
                    .group_by(ExecuteTask.status)
                ).all()
            )
            oldest = conn.scalar(
                select(func.min(ExecuteTask.scheduled_at)).where(ExecuteTask.status == RunStatus.PENDING.value)
            )
            unpublished = conn.scalar(
                select(func.count())
                .select_from(ExecuteTask)
                .where(ExecuteTask.status == RunStatus.PENDING.value, ExecuteTask.published_at.is_(None))
            )
            alive = conn.scalar(
                select(func.count())
                .select_from(WorkerHeartbeat)
                .where(WorkerHeartbeat.seen_at >= now - timedelta(seconds=self.worker_alive_seconds))
            )
        tasks = GaugeMetricFamily("tablebeat_tasks", "Tasks by status (task.status).", labels=["status"])
        for status in TaskStatus:
            tasks.add_metric([status.value], by_status.pop(status.value, 0))
        for other, count in by_status.items():  # a value written by hand still shows up
            tasks.add_metric([str(other)], count)
        yield tasks
        in_flight = GaugeMetricFamily("tablebeat_runs", "Runs not finished yet, by status.", labels=["status"])
        for run_status in IN_FLIGHT:
            in_flight.add_metric([run_status], runs.get(run_status, 0))
        yield in_flight
        age = GaugeMetricFamily(
            "tablebeat_runs_pending_oldest_age_seconds",
            "How long the oldest pending run has waited past its fire instant (0 when none).",
        )
        age.add_metric([], max((now - _aware(oldest)).total_seconds(), 0.0) if oldest is not None else 0.0)
        yield age
        claimed = GaugeMetricFamily(
            "tablebeat_runs_unpublished", "Pending runs claimed but not yet sent to the broker (the outbox)."
        )
        claimed.add_metric([], unpublished or 0)
        yield claimed
        workers = GaugeMetricFamily("tablebeat_workers_alive", "Workers whose heartbeat is recent.")
        workers.add_metric([], alive or 0)
        yield workers


def render(engine: Engine, worker_dead_seconds: float) -> bytes:
    """The Prometheus text page of the SQL gauges (live workers: heartbeat newer than ``worker_dead_seconds``)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SqlCollector(engine, worker_dead_seconds))
    return generate_latest(registry)


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)

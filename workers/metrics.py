"""Workers' Prometheus metrics: runs by outcome and job, run duration, refused starts, outages.

Off unless ``TABLEBEAT_METRICS_PORT`` is set: then the main worker process (at ``worker_init``,
before the pool forks) makes the metrics in multiprocess mode and serves the port, and pool
children record into their own files, which the port adds up. Before that each hook is one
``None`` check. Labels: ``job`` (registered job name), ``outcome`` (a run status), ``reason``,
and ``task`` (the task_key, only for tasks listed in ``TABLEBEAT_METRICS_TASK_KEYS``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

from celery import bootsteps, signals

from conf.celery import settings_of
from telemetry import exposition
from telemetry.exposition import counter, gauge, histogram
from workers.celery_app import app

#: Run lengths from a no-op job (about a millisecond) to long batch jobs.
DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
OUTCOMES = ("success", "failed", "retrying", "skipped", "expired")
REFUSALS = ("duplicate", "max_instances", "changed", "forged")


class WorkerMetrics:
    """The metric objects, made in the main worker process once metrics are on."""

    def __init__(self, task_keys: Iterable[str]) -> None:
        self.task_keys = frozenset(task_keys)
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}
        self.finished = counter(
            "tablebeat_worker_runs_finished", "Runs ended, by outcome and job.", ("job", "outcome", "task")
        )
        self.duration = histogram(
            "tablebeat_worker_run_duration_seconds",
            "Job run time (success or failure).",
            DURATION_BUCKETS,
            ("job", "task"),
        )
        self.refused = counter(
            "tablebeat_worker_starts_refused",
            "Deliveries not run: duplicate, max_instances, changed (task edited since the claim), forged.",
            ("reason",),
        )
        self.running = gauge("tablebeat_worker_runs_running", "Runs executing in this worker now.", mode="livesum")
        self.outages = counter("tablebeat_outages", "Outages seen (one per outage, not per error).", ("service",))
        self.up = gauge(
            "tablebeat_dependency_up",
            "1 while the database/broker answers this process.",
            ("service",),
            "livemostrecent",
        )
        for reason in REFUSALS:
            self.refused.labels(reason)
        for service in ("database", "broker"):
            self.outages.labels(service)
            self.up.labels(service).set(1)

    def task(self, task_key: str | None) -> str:
        return task_key if task_key in self.task_keys else ""

    def child(self, metric: Any, *labels: str) -> Any:
        """``metric.labels(*labels)``, cached: called on every run."""
        key = (id(metric), labels)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*labels)
        return found


_on: WorkerMetrics | None = None


@signals.worker_init.connect
def _start(sender: Any = None, **_: Any) -> None:
    """Main worker process, before the pool forks: turn metrics on and serve them if a port is set."""
    global _on
    conf = getattr(getattr(sender, "app", None), "conf", None)
    if conf is None or _on is not None:
        return
    settings = settings_of(conf)
    if settings.metrics_port <= 0:
        return
    exposition.prepare_multiprocess_dir(settings.metrics_port)
    _on = WorkerMetrics(settings.metrics_task_keys)
    exposition.serve(settings.metrics_port, settings.metrics_address, "worker")


@signals.worker_process_shutdown.connect
def _child_exited(**_: Any) -> None:
    if _on is not None:
        exposition.process_exited(os.getpid())


@signals.worker_shutdown.connect
def _stopped(**_: Any) -> None:
    exposition.remove_created()


class BrokerWatch(bootsteps.StartStopStep):  # type: ignore[misc]  # Celery is untyped
    """A consumer step: started once the broker connection is up, stopped when the consumer
    restarts after losing it (the blueprint still running), so broker outages are counted."""

    requires = ("celery.worker.consumer.tasks:Tasks",)

    def start(self, c: Any) -> None:
        _broker(down=False)

    def stop(self, c: Any) -> None:
        if c.blueprint.state == bootsteps.RUN:  # a restart after a connection error, not a shutdown
            _broker(down=True)


app.steps["consumer"].add(BrokerWatch)
_broker_down = False


def _broker(down: bool) -> None:
    global _broker_down
    if down != _broker_down:
        _broker_down = down
        outage("broker", down)


# --- hooks -----------------------------------------------------------------------------


def run_started() -> None:
    if _on is not None:
        _on.running.inc()


def run_finished(job: str, task_key: str | None, outcome: str, seconds: float | None) -> None:
    """A run ended (``seconds`` is None for one that never ran, e.g. skipped or expired)."""
    if _on is None:
        return
    task = _on.task(task_key)
    _on.child(_on.finished, job, outcome, task).inc()
    if seconds is not None:
        _on.running.dec()
        _on.child(_on.duration, job, task).observe(seconds)


def start_refused(reason: str) -> None:
    if _on is not None:
        _on.refused.labels(reason).inc()


def outage(service: str, down: bool) -> None:
    if _on is not None:
        if down:
            _on.outages.labels(service).inc()
        _on.up.labels(service).set(0 if down else 1)

"""Beat's Prometheus metrics: one-line hooks called at clear points of the beat loop.

Off unless ``TABLEBEAT_METRICS_PORT`` is set: then :func:`start` (at ``beat_init``) makes
the metrics and serves them, and every hook records; before that each hook is one ``None``
check. Labels stay bounded: ``job`` (a registered job name), ``reason`` (a fixed set),
``kind``; a ``task`` label carries the task_key only for the tasks listed in
``TABLEBEAT_METRICS_TASK_KEYS`` and is empty for every other task.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from conf.settings import Settings
from telemetry import exposition
from telemetry.exposition import counter, gauge, histogram

#: Seconds; publish lateness is normally milliseconds, an outage makes it minutes.
LATENESS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
#: Seconds from an edit's commit to beat applying it (the poll is every 0.5 s).
PICKUP_BUCKETS = (0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 5.0, 10.0, 30.0, 60.0)
SYNC_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 30.0)

#: Why a fire was recorded ``skipped`` instead of run.
SKIP_REASONS = ("coalesced", "misfire", "task_gone", "rescheduled", "other")


class BeatMetrics:
    """The metric objects, made once metrics are on (so they use multiprocess values)."""

    def __init__(self, task_keys: Iterable[str]) -> None:
        self.task_keys = frozenset(task_keys)
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}
        self.claimed = counter("tablebeat_beat_fires_claimed", "Fires this beat claimed (won).", ("job", "task"))
        self.published = counter("tablebeat_beat_fires_published", "Fires sent to the broker.", ("job", "task"))
        self.skipped = counter(
            "tablebeat_beat_fires_skipped", "Fires recorded 'skipped' instead of run, by reason.", ("reason",)
        )
        self.rejected = counter(
            "tablebeat_beat_claim_rejections", "Fires another beat had already claimed (lost the claim race)."
        )
        self.republished = counter(
            "tablebeat_beat_fires_republished", "Claimed fires republished by the outbox sweep or after an outage."
        )
        self.lateness = histogram(
            "tablebeat_beat_publish_lateness_seconds", "Fire instant to publish.", LATENESS_BUCKETS, ("task",)
        )
        self.pickup = histogram(
            "tablebeat_beat_edit_pickup_seconds",
            "Commit of a task edit to beat applying it (database clock vs beat clock).",
            PICKUP_BUCKETS,
        )
        self.sync = histogram(
            "tablebeat_beat_sync_duration_seconds",
            "One sync of the task table: 'poll' (change log) or 'full' (every row).",
            SYNC_BUCKETS,
            ("kind",),
        )
        self.lost = counter("tablebeat_beat_runs_lost", "Running runs declared lost (their worker stopped).")
        self.outages = counter("tablebeat_outages", "Outages seen (one per outage, not per error).", ("service",))
        self.up = gauge(
            "tablebeat_dependency_up",
            "1 while the database/broker answers this process.",
            ("service",),
            "livemostrecent",
        )
        self.last_tick = gauge("tablebeat_beat_last_tick_timestamp_seconds", "When beat last ran its loop.", mode="max")
        self.scheduled = gauge("tablebeat_beat_scheduled_tasks", "Tasks this beat schedules.", mode="livemax")
        for service in ("database", "broker"):
            self.up.labels(service).set(1)
            self.outages.labels(service)
        for reason in SKIP_REASONS:
            self.skipped.labels(reason)

    def task(self, task_key: str) -> str:
        return task_key if task_key in self.task_keys else ""

    def child(self, metric: Any, *labels: str) -> Any:
        """``metric.labels(*labels)``, cached: the hot path calls it once per fire."""
        key = (id(metric), labels)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*labels)
        return found


_on: BeatMetrics | None = None


def start(settings: Settings) -> None:
    """Turn metrics on and serve them if ``metrics_port`` is set (called at beat start)."""
    global _on
    if settings.metrics_port <= 0 or _on is not None:
        return
    exposition.prepare_multiprocess_dir(settings.metrics_port)
    _on = BeatMetrics(settings.metrics_task_keys)
    exposition.serve(settings.metrics_port, settings.metrics_address, "beat")


def skip_reason(text: str | None) -> str:
    """The bounded label for a skip reason text."""
    if not text:
        return "other"
    if "coalesced" in text:
        return "coalesced"
    if text.startswith("misfire"):
        return "misfire"
    if "paused, deleted" in text or text.startswith(("paused:", "deleted:")):
        return "task_gone"
    if text.startswith("rescheduled:"):
        return "rescheduled"
    return "other"


# --- hooks -----------------------------------------------------------------------------


def enabled() -> bool:
    """Whether metrics are served (callers skip work only a metric needs)."""
    return _on is not None


def tick() -> None:
    if _on is not None:
        _on.last_tick.set(time.time())


def fires_claimed(jobs: Iterable[tuple[str, str]]) -> None:
    """Fires this beat won, as (job name, task_key) pairs: one counter write per label set."""
    if _on is None:
        return
    claimed: dict[tuple[str, str], int] = {}
    for job, task_key in jobs:
        key = (job, _on.task(task_key))
        claimed[key] = claimed.get(key, 0) + 1
    for (job, task), count in claimed.items():
        _on.child(_on.claimed, job, task).inc(count)


def fire_skipped(reason_text: str | None, count: int = 1) -> None:
    if _on is not None and count:
        _on.skipped.labels(skip_reason(reason_text)).inc(count)


def claims_rejected(count: int) -> None:
    if _on is not None and count:
        _on.rejected.inc(count)


def fires_published(items: Iterable[Any], now: datetime | None = None) -> None:
    """``items`` have ``job_name``, ``task_key`` and ``scheduled_at`` (beat's ``Dispatch``)."""
    if _on is None:
        return
    now_ts = (now or datetime.now(UTC)).timestamp()
    published: dict[tuple[str, str], int] = {}
    lateness: dict[str, list[float]] = {}
    for item in items:
        task = _on.task(item.task_key)
        key = (item.job_name, task)
        published[key] = published.get(key, 0) + 1
        lateness.setdefault(task, []).append(max(now_ts - item.scheduled_at.timestamp(), 0.0))
    for (job, task), count in published.items():
        _on.child(_on.published, job, task).inc(count)
    for task, values in lateness.items():
        exposition.observe_many(_on.child(_on.lateness, task), values)


def fires_republished(count: int) -> None:
    if _on is not None and count:
        _on.republished.inc(count)


def edits_applied(changed_at: Iterable[datetime | None], now: datetime | None = None) -> None:
    """Edit pickup: each change's commit time (``task_change.changed_at``) to now."""
    if _on is None:
        return
    now_ts = (now or datetime.now(UTC)).timestamp()
    for at in changed_at:
        if at is not None:
            aware = at if at.tzinfo is not None else at.replace(tzinfo=UTC)
            _on.pickup.observe(max(now_ts - aware.timestamp(), 0.0))


def synced(kind: str, seconds: float) -> None:
    if _on is not None:
        _on.sync.labels(kind).observe(seconds)


def runs_lost(count: int) -> None:
    if _on is not None and count:
        _on.lost.inc(count)


def scheduled_tasks(count: int) -> None:
    if _on is not None:
        _on.scheduled.set(count)


def outage(service: str, down: bool) -> None:
    """``service`` (``database`` or ``broker``) went down (``down=True``, once per outage) or came back."""
    if _on is not None:
        if down:
            _on.outages.labels(service).inc()
        _on.up.labels(service).set(0 if down else 1)

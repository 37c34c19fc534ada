"""Webhook alerts for failed, lost and expired runs, rate-limited per task across processes.

:func:`alert_run` is the one hook: the worker calls it after recording a ``failed`` or
``expired`` run, beat after marking runs ``lost``. It only queues the run id and returns;
a daemon thread of the calling process reads the run, decides the rate limit in the
``alert_state`` table (so every worker and beat share it) and POSTs the JSON payload with a
short timeout. Nothing here ever raises into the caller: a failure is one log line.

Where it goes: ``TABLEBEAT_ALERT_WEBHOOK``, or per task the ``alert_webhook`` key of the
row's ``extra`` JSON (an empty string there turns alerts off for that task).
"""

from __future__ import annotations

import json
import logging
import os
import queue
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, insert, select, update
from sqlalchemy.exc import IntegrityError

from conf.profiles import load_settings
from conf.settings import Settings
from models import RunStatus, make_engine
from models.tables import alert_state_table, execute_task_table, task_table

logger = logging.getLogger("tablebeat.alerts")

#: Statuses that raise an alert.
ALERT_STATUSES = frozenset({RunStatus.FAILED, RunStatus.LOST, RunStatus.EXPIRED})
#: Per-task override key in ``task.extra``.
EXTRA_WEBHOOK_KEY = "alert_webhook"
SEND_TIMEOUT_S = 2.0
#: Alerts waiting to be sent by one process; beyond this they are dropped (and logged).
QUEUE_SIZE = 1000
ERROR_HEAD_LINES = 3
ERROR_TAIL_LINES = 6
ERROR_LINE_MAX_CHARS = 300


@dataclass(frozen=True, slots=True)
class RateDecision:
    """Whether to send now, and how many alerts of the task were held back before this one."""

    send: bool
    suppressed: int


def error_head(error: str | None) -> str:
    """The first and last lines of a run's error (the traceback's entry point and its message)."""
    if not error:
        return ""
    lines = [line[:ERROR_LINE_MAX_CHARS] for line in error.strip().splitlines()]
    if len(lines) <= ERROR_HEAD_LINES + ERROR_TAIL_LINES:
        return "\n".join(lines)
    omitted = len(lines) - ERROR_HEAD_LINES - ERROR_TAIL_LINES
    return "\n".join([*lines[:ERROR_HEAD_LINES], f"... ({omitted} lines omitted) ...", *lines[-ERROR_TAIL_LINES:]])


def webhook_for(extra: str | None, default: str) -> str:
    """The task's own ``alert_webhook`` from its ``extra`` JSON, else ``default``."""
    try:
        data = json.loads(extra or "{}")
    except ValueError:
        return default
    if isinstance(data, dict) and EXTRA_WEBHOOK_KEY in data:
        value = data[EXTRA_WEBHOOK_KEY]
        return str(value).strip() if value else ""
    return default


def decide_rate_limit(engine: Engine, task_id: int, now: datetime, min_interval_s: float) -> RateDecision:
    """Record an alert of ``task_id`` at ``now``: send it, or count it as suppressed.

    At most one alert per task is sent every ``min_interval_s``; the row is locked while
    deciding, so two processes alerting for one task at once send it once.
    """
    for _attempt in range(2):
        try:
            with engine.begin() as conn:
                row = conn.execute(
                    select(alert_state_table.c.last_sent_at, alert_state_table.c.suppressed)
                    .where(alert_state_table.c.task_id == task_id)
                    .with_for_update()
                ).first()
                if row is None:
                    conn.execute(insert(alert_state_table).values(task_id=task_id, last_sent_at=now, suppressed=0))
                    return RateDecision(True, 0)
                due = row.last_sent_at is None or now - row.last_sent_at >= timedelta(seconds=min_interval_s)
                if due:
                    conn.execute(
                        update(alert_state_table)
                        .where(alert_state_table.c.task_id == task_id)
                        .values(last_sent_at=now, suppressed=0)
                    )
                    return RateDecision(True, int(row.suppressed or 0))
                conn.execute(
                    update(alert_state_table)
                    .where(alert_state_table.c.task_id == task_id)
                    .values(suppressed=alert_state_table.c.suppressed + 1)
                )
                return RateDecision(False, int(row.suppressed or 0) + 1)
        except IntegrityError:
            continue  # another process inserted the first row meanwhile; decide again under its lock
    return RateDecision(False, 0)


def build_payload(
    run: Any, status: str, settings: Settings, suppressed: int, alerted_at: datetime | None = None
) -> dict[str, Any]:
    """The JSON body of one alert (also readable by Slack-style webhooks through ``text``).

    ``alerted_at`` is when the rate limit let it through: the instant two alerts of a task are
    at least ``alert_min_interval_seconds`` apart by (their delivery may be later).
    """
    head = error_head(run.error) or (run.result or "")
    run_url = f"{settings.console_url}/runs/{run.id}" if settings.console_url else None
    task_key = run.task_key or f"task {run.task_id}"
    text = f"tablebeat: {task_key} run {run.id} {status}"
    last_line = head.strip().splitlines()[-1] if head.strip() else ""
    if last_line:
        text += f": {last_line}"
    if suppressed:
        text += f" ({suppressed} earlier alerts of this task suppressed)"
    return {
        "event": f"run_{status}",
        "status": status,
        "task_id": run.task_id,
        "task_key": run.task_key,
        "job": run.execute_func,
        "run_id": run.id,
        "run_url": run_url,
        "trace_id": run.trace_id,
        "celery_id": run.celery_id,
        "worker": run.worker,
        "attempt": run.attempt,
        "scheduled_at": _iso(run.scheduled_at),
        "started_at": _iso(run.started_at),
        "finished_at": _iso(run.finished_at),
        "error_head": head,
        "suppressed": suppressed,
        "rate_limit": {
            "min_interval_seconds": settings.alert_min_interval_seconds,
            "suppressed_since_last": suppressed,
            "alerted_at": _iso(alerted_at),
        },
        "text": text,
    }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


class Alerter:
    """Queues alerts and sends them from one daemon thread per process (re-made after fork)."""

    def __init__(self, settings: Settings | None = None) -> None:
        self._settings = settings
        self._engine: Engine | None = None
        self._pid = 0
        self._queue: queue.Queue[tuple[int, str]] = queue.Queue(QUEUE_SIZE)
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def configure(self, settings: Settings) -> None:
        """Use ``settings`` from now on (before the first alert; later ones keep the engine already made)."""
        self._settings = settings

    @property
    def settings(self) -> Settings:
        """The settings given, else the profile's (built on first use)."""
        if self._settings is None:
            self._settings = load_settings()
        return self._settings

    def submit(self, run_id: int, status: RunStatus | str) -> None:
        """Queue an alert for ``run_id``; never blocks and never raises."""
        try:
            value = RunStatus(status).value
            if RunStatus(value) not in ALERT_STATUSES:
                return
            self._ensure_thread()
            self._queue.put_nowait((int(run_id), value))
        except queue.Full:
            logger.warning("alert for run %s dropped: %d alerts already waiting", run_id, QUEUE_SIZE)
        except Exception as exc:  # an alert must never disturb a run or the beat loop
            logger.warning("alert for run %s not queued: %s: %s", run_id, type(exc).__name__, exc)

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every queued alert was handled (tests, shutdown); True if all were."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        return True

    def send_now(self, run_id: int, status: str) -> None:
        """Look up the run, apply the rate limit and POST; logs instead of raising."""
        try:
            self._send(run_id, status)
        except Exception as exc:  # the webhook or the database may be down: one line, go on
            logger.warning("alert for run %s (%s) not sent: %s: %s", run_id, status, type(exc).__name__, exc)

    # --- internals -----------------------------------------------------------------

    def _ensure_thread(self) -> None:
        with self._lock:
            if self._pid != os.getpid():
                # After a fork the parent's thread and connections do not exist here.
                if self._engine is not None:
                    self._engine.dispose(close=False)
                    self._engine = None
                self._queue = queue.Queue(QUEUE_SIZE)
                self._thread = None
                self._pid = os.getpid()
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._drain, name="tablebeat-alerts", daemon=True)
                self._thread.start()

    def _drain(self) -> None:
        q = self._queue
        while True:
            run_id, status = q.get()
            try:
                self.send_now(run_id, status)
            finally:
                q.task_done()

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            self._engine = make_engine(self.settings.database_url or None)
        return self._engine

    def _send(self, run_id: int, status: str) -> None:
        settings = self.settings
        with self.engine.connect() as conn:
            run = conn.execute(
                select(
                    execute_task_table.c.id,
                    execute_task_table.c.task_id,
                    execute_task_table.c.trace_id,
                    execute_task_table.c.celery_id,
                    execute_task_table.c.worker,
                    execute_task_table.c.attempt,
                    execute_task_table.c.scheduled_at,
                    execute_task_table.c.started_at,
                    execute_task_table.c.finished_at,
                    execute_task_table.c.error,
                    execute_task_table.c.result,
                    task_table.c.task_key,
                    task_table.c.execute_func,
                    task_table.c.extra,
                )
                .outerjoin(task_table, task_table.c.id == execute_task_table.c.task_id)
                .where(execute_task_table.c.id == run_id)
            ).first()
        if run is None:
            logger.warning("alert for run %s not sent: the run does not exist", run_id)
            return
        url = webhook_for(run.extra, settings.alert_webhook)
        if not url:
            return
        if not url.startswith(("http://", "https://")):
            logger.warning(
                "alert for run %s not sent: task %r: extra.%s is not an http(s) URL",
                run_id,
                run.task_key,
                EXTRA_WEBHOOK_KEY,
            )
            return
        now = datetime.now(UTC)
        decision = decide_rate_limit(self.engine, int(run.task_id), now, settings.alert_min_interval_seconds)
        if not decision.send:
            logger.info(
                "alert for run %s (%s) of %s suppressed: rate limit %ss (%d held back)",
                run_id,
                status,
                run.task_key,
                settings.alert_min_interval_seconds,
                decision.suppressed,
            )
            return
        payload = build_payload(run, status, settings, decision.suppressed, now)
        import httpx  # here, not at module level: httpx pulls in rich and pygments (~10 MB in every beat)

        try:
            response = httpx.post(url, json=payload, timeout=SEND_TIMEOUT_S)
        except httpx.HTTPError as exc:
            # httpx messages may quote the URL, whose path often is the webhook's secret.
            logger.warning("alert for run %s (%s) not sent to %s: %s", run_id, status, _redact(url), type(exc).__name__)
            return
        if response.is_error:
            logger.warning(
                "alert for run %s (%s) not accepted by %s: HTTP %s", run_id, status, _redact(url), response.status_code
            )
            return
        logger.info("alert for run %s (%s) of %s sent to %s", run_id, status, run.task_key, _redact(url))


def _redact(url: str) -> str:
    """The webhook URL without its path (webhook paths often carry the secret)."""
    import httpx

    try:
        parts = httpx.URL(url)
    except Exception:  # an unparsable URL is shown as nothing rather than leaked
        return "<webhook>"
    return f"{parts.scheme}://{parts.host}{':' + str(parts.port) if parts.port else ''}/..."


#: The process-wide alerter used by :func:`alert_run`.
alerter = Alerter()


def configure(settings: Settings) -> None:
    """Give the process-wide alerter the process's settings (beat and workers call this at start)."""
    alerter.configure(settings)


def alert_run(run_id: int, status: RunStatus | str) -> None:
    """Hook: a run ended ``failed``, ``lost`` or ``expired``; alert about it in the background."""
    alerter.submit(run_id, status)

"""Trace context of the run in progress: carried in contextvars, logs and child messages."""

from __future__ import annotations

import logging
from collections import OrderedDict
from contextvars import ContextVar
from typing import Any, NamedTuple

from celery import signals

from conf.celery import settings_of
from protocol.message import TRACE_HEADER
from protocol.trace import trace_suffix
from telemetry import otel
from telemetry.logs import use_json

current_trace_id: ContextVar[str | None] = ContextVar("tablebeat_trace_id", default=None)
current_task_key: ContextVar[str | None] = ContextVar("tablebeat_task_key", default=None)
current_run_id: ContextVar[int | None] = ContextVar("tablebeat_run_id", default=None)

#: Messages the main worker process received, remembered (at most this many) for its own log lines.
RECEIVED_REMEMBERED = 10000


class RunTags(NamedTuple):
    task_key: str | None
    trace_id: str | None
    run_id: int | None


received_runs: OrderedDict[str, RunTags] = OrderedDict()


def _tags_of_celery_line(record: logging.LogRecord) -> RunTags | None:
    """The run a Celery worker line is about (``Task name[id] received`` and the like)."""
    data = getattr(record, "data", None)
    if not isinstance(data, dict):
        data = record.args if isinstance(record.args, dict) else None
    celery_id = data.get("id") if data else None
    return received_runs.get(celery_id) if isinstance(celery_id, str) else None


class TraceLogFilter(logging.Filter):
    """Adds ``task_key``, ``trace_id``, ``run_id`` and ``trace`` (`` [task_key=.. trace_id=..]``) to records."""

    def filter(self, record: logging.LogRecord) -> bool:
        trace_id = current_trace_id.get()
        task_key = current_task_key.get()
        run_id = current_run_id.get()
        if trace_id is None and not hasattr(record, "trace_id"):
            tags = _tags_of_celery_line(record)
            if tags is not None:
                task_key, trace_id, run_id = tags
        if not hasattr(record, "trace_id"):
            record.trace_id = trace_id or "-"
        if not hasattr(record, "task_key"):
            record.task_key = task_key or "-"
        if not hasattr(record, "run_id"):
            record.run_id = run_id
        # Lines that name their run in ``extra`` (beat's) already say it in the message text.
        record.trace = trace_suffix(task_key, trace_id)
        return True


def install_log_filter(logger: logging.Logger) -> None:
    """Attach the trace filter to ``logger``'s handlers (idempotent)."""
    for handler in logger.handlers:
        if not any(isinstance(f, TraceLogFilter) for f in handler.filters):
            handler.addFilter(TraceLogFilter())


@signals.after_setup_logger.connect
@signals.after_setup_task_logger.connect
def _on_logger_setup(logger: logging.Logger | None = None, **_: Any) -> None:
    if logger is not None:
        install_log_filter(logger)
        if _log_format() == "json":
            use_json(logger)


@signals.celeryd_init.connect
def _json_from_the_start(instance: Any = None, conf: Any = None, **_: Any) -> None:
    """With JSON logs, no start-up banner, and warnings before Celery's own logging set-up are JSON too."""
    if instance is None or conf is None or settings_of(conf).log_format != "json":
        return
    instance.quiet = True
    logging.captureWarnings(True)
    root = logging.getLogger()
    if not root.handlers:  # Celery replaces this handler with its own (worker_hijack_root_logger)
        root.addHandler(logging.StreamHandler())
        use_json(root)


def _log_format() -> str:
    from workers.celery_app import app

    return settings_of(app.conf).log_format


def _propagate_trace(headers: dict[str, Any] | None = None, **_: Any) -> None:
    """Hand the current run's trace ID on to every Celery task it starts."""
    trace_id = current_trace_id.get()
    if trace_id and headers is not None and not headers.get(TRACE_HEADER):
        headers[TRACE_HEADER] = trace_id
        otel.inject(headers)


@signals.worker_init.connect
def _start_tracing(sender: Any = None, **_: Any) -> None:
    """OpenTelemetry spans for runs when ``TABLEBEAT_OTEL`` is on (main process, before the pool forks),
    and the trace hand-off to tasks a job starts."""
    # Connected in workers only: beat loads this module too, and any publish-signal receiver
    # there sends its fires through kombu instead of the Redis lane (scheduler.redis_lane).
    signals.before_task_publish.connect(_propagate_trace, weak=False, dispatch_uid="tablebeat-propagate-trace")
    conf = getattr(getattr(sender, "app", None), "conf", None)
    if conf is not None:
        otel.start(settings_of(conf).otel, "tablebeat-worker")


@signals.worker_process_shutdown.connect
@signals.worker_shutdown.connect
def _flush_spans(**_: Any) -> None:
    otel.flush()

"""Trace context of the run in progress: carried in contextvars, logs and child messages."""

from __future__ import annotations

import logging
from contextvars import ContextVar
from typing import Any

from celery import signals

from protocol.message import TRACE_HEADER
from protocol.trace import trace_suffix

current_trace_id: ContextVar[str | None] = ContextVar("tablebeat_trace_id", default=None)
current_task_key: ContextVar[str | None] = ContextVar("tablebeat_task_key", default=None)


class TraceLogFilter(logging.Filter):
    """Adds ``task_key``, ``trace_id`` and ``trace`` (`` [task_key=.. trace_id=..]`` inside a run) to records."""

    def filter(self, record: logging.LogRecord) -> bool:
        trace_id = current_trace_id.get()
        task_key = current_task_key.get()
        if not hasattr(record, "trace_id"):
            record.trace_id = trace_id or "-"
        if not hasattr(record, "task_key"):
            record.task_key = task_key or "-"
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


@signals.before_task_publish.connect
def _propagate_trace(headers: dict[str, Any] | None = None, **_: Any) -> None:
    """Hand the current run's trace ID on to every Celery task it starts."""
    trace_id = current_trace_id.get()
    if trace_id and headers is not None and not headers.get(TRACE_HEADER):
        headers[TRACE_HEADER] = trace_id

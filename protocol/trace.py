"""Trace IDs: one per run, made here only, by beat at claim time or by a worker for a manual run."""

from __future__ import annotations

import uuid


def new_trace_id() -> str:
    """A fresh trace ID (32 hex characters)."""
    return uuid.uuid4().hex


def new_celery_id() -> str:
    """A fresh Celery task id (a UUID, the form Celery itself uses)."""
    return str(uuid.uuid4())


def trace_suffix(task_key: str | None, trace_id: str | None) -> str:
    """`` [task_key=.. trace_id=..]``, the tag every log line of a run ends its prefix with."""
    return f" [task_key={task_key} trace_id={trace_id}]" if trace_id else ""

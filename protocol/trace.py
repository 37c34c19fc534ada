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


#: W3C Trace Context header; its trace ID is the run's trace ID (set when OpenTelemetry is on).
TRACEPARENT_HEADER = "traceparent"
_HEX = frozenset("0123456789abcdef")


def fire_span_id(trace_id: str) -> str:
    """The span ID of beat's span for a fire: the trace ID's second half (16 hex, never all zero).

    Derived, not stored: the message (built at claim) and the span (made at publish) agree on it.
    """
    return trace_id[16:32]


def traceparent(trace_id: str, span_id: str, sampled: bool = True) -> str:
    """``00-<32 hex trace id>-<16 hex span id>-<flags>``."""
    return f"00-{trace_id}-{span_id}-{'01' if sampled else '00'}"


def parse_traceparent(value: str) -> tuple[str, str, bool] | None:
    """(trace_id, span_id, sampled) of a ``traceparent`` header, or None if it is not a valid one."""
    parts = value.strip().lower().split("-")
    if len(parts) < 4 or parts[0] == "ff" or len(parts[0]) != 2:
        return None
    trace_id, span_id, flags = parts[1], parts[2], parts[3]
    if len(trace_id) != 32 or len(span_id) != 16 or len(flags) != 2:
        return None
    if not set(trace_id + span_id + flags) <= _HEX or set(trace_id) == {"0"} or set(span_id) == {"0"}:
        return None
    return trace_id, span_id, bool(int(flags, 16) & 0x01)

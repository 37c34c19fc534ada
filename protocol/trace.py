"""Trace IDs: one per run, made here only, by beat at claim time or by a worker for a manual run."""

from __future__ import annotations

import re
import secrets
import uuid


def new_trace_id() -> str:
    """A fresh trace ID: 32 hex characters, all 128 bits random.

    Not a UUID4's hex: OpenTelemetry's ratio sampler (``TraceIdRatioBased``) keeps a trace when
    its low 64 bits fall under ``ratio * 2**64``, and a UUID4's variant bits pin those at 2**63
    or above, so no trace was ever sampled at a ratio under one half.
    """
    while True:
        trace_id = secrets.token_hex(16)
        if trace_id[16:] != "0" * 16:  # the second half is beat's span ID (fire_span_id)
            return trace_id


def new_celery_id() -> str:
    """A fresh Celery task id (a UUID, the form Celery itself uses)."""
    return str(uuid.uuid4())


def trace_suffix(task_key: str | None, trace_id: str | None) -> str:
    """`` [task_key=.. trace_id=..]``, the tag every log line of a run ends its prefix with."""
    return f" [task_key={task_key} trace_id={trace_id}]" if trace_id else ""


#: W3C Trace Context header; its trace ID is the run's trace ID (set when OpenTelemetry is on).
TRACEPARENT_HEADER = "traceparent"
#: version-trace id-parent span id-flags, all lowercase hex; later versions may append fields.
_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(?:-.*)?", re.DOTALL)
_ZERO_TRACE, _ZERO_SPAN = "0" * 32, "0" * 16


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
    match = _TRACEPARENT.fullmatch(value.strip().lower())
    if match is None:
        return None
    version, trace_id, span_id, flags = match.groups()
    if version == "ff" or trace_id == _ZERO_TRACE or span_id == _ZERO_SPAN:
        return None
    return trace_id, span_id, bool(int(flags, 16) & 0x01)

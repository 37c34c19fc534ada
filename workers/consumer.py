"""The worker's message consumer: Celery's, plus a record for runs whose message cannot be decoded.

Celery logs an undecodable message (bad JSON, a content type or signature this worker does not
accept) and acknowledges it, so its run would wait ``pending`` until beat's pending sweep
expires it.  The run id and trace ID travel in the message headers too, which stay readable:
the run is recorded ``failed`` with the reason at once, and alerted.
"""

from __future__ import annotations

import logging
from typing import Any

from celery.worker.consumer import Consumer

from alerts.webhook import alert_run
from models import RunStatus
from protocol.message import RUN_ID_HEADER, TRACE_HEADER

logger = logging.getLogger("tablebeat.run")


class RecordingConsumer(Consumer):  # type: ignore[misc]  # Celery is untyped
    """``worker_consumer`` of tablebeat workers (set in celeryconfig)."""

    def on_decode_error(self, message: Any, exc: Exception) -> None:
        super().on_decode_error(message, exc)  # logs and acknowledges
        try:
            record_undecodable(message, exc)
        except Exception:  # bookkeeping must never take the consumer down
            logger.critical("could not record a run whose message could not be decoded", exc_info=True)


def record_undecodable(message: Any, exc: Exception) -> bool:
    """Record the message's own run (matched by trace ID) ``failed``; returns whether it was written."""
    from workers.recording import run_store  # the worker's store (imported late: registry import order)

    headers = getattr(message, "headers", None) or {}
    trace_id = headers.get(TRACE_HEADER)
    try:
        raw = headers.get(RUN_ID_HEADER)
        run_id = int(raw) if raw is not None else 0
    except (TypeError, ValueError):
        return False
    if not trace_id or run_id <= 0:
        return False
    reason = f"not started: the worker could not decode its message ({type(exc).__name__}: {exc})"
    written = run_store.finish_run(
        run_id,
        RunStatus.FAILED,
        error=reason,
        from_statuses=(RunStatus.PENDING.value, RunStatus.RETRYING.value),
        trace_id=str(trace_id),
    )
    if written:
        logger.error("run %s failed: %s", run_id, reason, extra={"trace_id": str(trace_id), "run_id": run_id})
        alert_run(run_id, RunStatus.FAILED)
    return written
